"""A ring of running accumulators, in registers or in a block RAM.

The pooling, depthwise and global-average-pooling engines keep one running value per channel
group (``depth`` of them) and visit them in a fixed rotation, one a cycle at most: the value of
the group that comes next is :attr:`AccumulatorRing.head`, and a step stores the group's new
value and moves on to the next group. :func:`in_memory` says which form a ring takes, and
:func:`ring_flip_flops` / :func:`ring_memories` give its figures (``amos_hw.engines.figures``).

Register form: ``depth`` registers shifted by one on each step (``head`` is the first).

Memory form: a memory of ``depth`` words and a pointer ``p`` to the head's word. The read port
is synchronous, so it is addressed one cycle ahead: with the word of ``p + 1`` on a step (the
next head) and of ``p`` otherwise; a step writes the new value at ``p``. With ``depth >= 2`` the
word read is never the word written in the same cycle, so the port needs no write-through, and
``head`` equals the register form's ``ring[0]`` in every cycle (both start at zero).
"""
from __future__ import annotations

from amaranth.hdl import Mux, Signal
from amaranth.lib.memory import Memory

from amos_hw.lib.bram import MemShape

__all__ = ["MEMORY_MIN_BITS", "MEMORY_MIN_DEPTH", "AccumulatorRing", "in_memory",
           "ring_flip_flops", "ring_memories"]

#: A ring goes into a memory when it has at least this many words ...
MEMORY_MIN_DEPTH = 32
#: ... and at least this many bits: below, its registers cost less than a block RAM (on the
#: ECP5-85F one DP16KD is 0.5 % of the block RAM, 2,048 flip-flops 3 % of the flip-flops).
MEMORY_MIN_BITS = 2048


def in_memory(depth: int, width: int) -> bool:
    """Whether a ring of ``depth`` words of ``width`` bits is built in a memory."""
    return depth >= MEMORY_MIN_DEPTH and depth * width >= MEMORY_MIN_BITS


def ring_flip_flops(depth: int, width: int) -> int:
    """Flip-flops of the ring: its registers, or the memory form's pointer and read word."""
    if in_memory(depth, width):
        return (depth - 1).bit_length() + width
    return depth * width


def ring_memories(depth: int, width: int, name: str = "ring") -> tuple:
    """The ring's memory as a :class:`~amos_hw.lib.bram.MemShape` (none in register form)."""
    return (MemShape(name, depth, width),) if in_memory(depth, width) else ()


class AccumulatorRing:
    """``depth`` running values of ``width`` bits visited in rotation (module docstring).

    Build it inside an engine's ``elaborate``: ``ring = AccumulatorRing(m, depth, width,
    name)`` (``attrs``: the memory form's attributes, :func:`amos_hw.lib.bram.style_attrs`),
    read :attr:`head` (the next group's value, a ``width``-bit unsigned value), and call
    :meth:`step` once with the condition and the new value.
    """

    def __init__(self, m, depth: int, width: int, name: str = "ring", attrs=None):
        if depth < 1 or width < 1:
            raise ValueError(f"{name}: a ring needs depth and width >= 1, not {depth}, {width}")
        self.depth, self.width, self.name = depth, width, name
        self.memory = in_memory(depth, width)
        self._m = m
        if self.memory:
            m.submodules[name] = mem = Memory(shape=width, depth=depth, init=[], attrs=attrs)
            self._wr, self._rd = mem.write_port(), mem.read_port(transparent_for=())
            self._ptr = Signal(range(depth), name=f"{name}_ptr")
            self.head = self._rd.data
        else:
            self._regs = [Signal(width, name=f"ring_{n}") for n in range(depth)]
            self.head = self._regs[0]

    def step(self, cond, new) -> None:
        """When ``cond``: store ``new`` as the head group's value and move to the next group."""
        m = self._m
        if not self.memory:
            regs = self._regs
            with m.If(cond):
                m.d.sync += [regs[n].eq(regs[n + 1]) for n in range(self.depth - 1)]
                m.d.sync += regs[-1].eq(new)
            return
        ptr, wr, rd = self._ptr, self._wr, self._rd
        nxt = Mux(ptr == self.depth - 1, 0, ptr + 1)
        m.d.comb += [
            wr.en.eq(cond), wr.addr.eq(ptr), wr.data.eq(new),
            rd.en.eq(1), rd.addr.eq(Mux(cond, nxt, ptr)),
        ]
        with m.If(cond):
            m.d.sync += ptr.eq(nxt)
