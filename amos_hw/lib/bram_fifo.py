"""A synchronous FIFO whose block RAM read leaves through a register alone."""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from amos_hw.lib.bram import column_widths

__all__ = ["BramFifo", "buffered_fifo"]


class BramFifo(wiring.Component):
    """``amaranth.lib.fifo.SyncFIFOBuffered``, cycle for cycle, with its memory read written out.

    The same ports (``w_data``, ``w_en``, ``w_rdy``, ``r_data``, ``r_en``, ``r_rdy``,
    ``level``), the same handshakes and the same values in every cycle: a memory of ``depth - 1``
    words and the read register ``r_data`` in front of it (``r_rdy``: that register holds a
    word). The difference is in the netlist. ``SyncFIFOBuffered`` reads through a synchronous
    port, for which Yosys keeps read-before-write order between the two ports with a bypass
    multiplexer behind the block RAM: on the ECP5 the read then leaves the DP16KD without its
    output register (5.8 ns) and passes two LUT levels before any flip-flop (the critical path of
    both K = 6 ResNet8 builds at 100 MHz, in the residual add's skip FIFO). Here the port is
    asynchronous, ``r_data`` a register written out (Yosys merges it into the port: the block's
    own read register) and the memory carries ``no_rw_check``: a FIFO never reads the word it
    writes in the same cycle (equal pointers mean empty, when nothing is read, or full, when
    nothing is written), so no bypass is needed, and the next flip-flop may become the block's
    output register (:mod:`boards.outreg`).

    Parameters
    ----------
    width : int
        Bits per word.
    depth : int
        Words held, at least 2 (the memory has ``depth - 1``, the read register one).
    column_bits : int
        0: one memory of ``width`` bits. Else the memory is built as memories of
        ``column_bits`` bits side by side (the last one narrower where ``width`` is not a
        multiple), each with the same addresses: a width at which one block holds the whole
        depth keeps Yosys from banking the memory by depth, with multiplexers behind the
        blocks (:func:`amos_hw.lib.bram.unbanked_column_bits`). The same values either way.
    """

    def __init__(self, *, width: int, depth: int, column_bits: int = 0):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"BramFifo width must be a positive integer, not {width!r}")
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"BramFifo depth must be an integer of at least 2, not {depth!r}")
        if not isinstance(column_bits, int) or column_bits < 0:
            raise ValueError(f"BramFifo column_bits must be an integer of at least 0, "
                             f"not {column_bits!r}")
        self.width, self.depth, self.column_bits = width, depth, column_bits
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_en": In(1), "r_rdy": Out(1),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        inner = self.depth - 1
        inner_level = Signal(range(inner + 1))
        inner_rdy = Signal()
        produce = Signal(range(inner))
        consume = Signal(range(inner))
        do_write = self.w_rdy & self.w_en
        widths = column_widths(self.width, self.column_bits)
        reads, lo = [], 0
        for i, bits in enumerate(widths):
            mem = Memory(shape=bits, depth=inner, init=[], attrs={"no_rw_check": 1})
            m.submodules["storage" if len(widths) == 1 else f"storage_{i}"] = mem
            wr, rd = mem.write_port(), mem.read_port(domain="comb")
            m.d.comb += [wr.addr.eq(produce), wr.data.eq(self.w_data[lo:lo + bits]),
                         wr.en.eq(do_write), rd.addr.eq(consume)]
            reads.append(rd.data)
            lo += bits
        do_read = inner_rdy & (~self.r_rdy | self.r_en)  # the read register takes a word
        m.d.comb += [
            self.w_rdy.eq(inner_level != inner),
            inner_rdy.eq(inner_level != 0),
            self.level.eq(inner_level + self.r_rdy),
        ]
        with m.If(do_write):
            m.d.sync += produce.eq(_next(produce, inner))
        with m.If(do_read):
            m.d.sync += [consume.eq(_next(consume, inner)), self.r_data.eq(Cat(*reads)),
                         self.r_rdy.eq(1)]
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        with m.If(do_write & ~do_read):
            m.d.sync += inner_level.eq(inner_level + 1)
        with m.If(do_read & ~do_write):
            m.d.sync += inner_level.eq(inner_level - 1)
        return m


def buffered_fifo(*, width: int, depth: int,
                  column_bits: int = 0) -> BramFifo | SyncFIFOBuffered:
    """A FIFO with ``SyncFIFOBuffered``'s ports and timing: :class:`BramFifo` from two words
    on (its memory in columns of ``column_bits``, see there), Amaranth's own for one word (a
    single register, no memory to read)."""
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"FIFO depth must be a positive integer, not {depth!r}")
    if depth == 1:
        return SyncFIFOBuffered(width=width, depth=1)
    return BramFifo(width=width, depth=depth, column_bits=column_bits)


def _next(ptr, depth: int):
    """``ptr + 1`` modulo ``depth`` (a pointer of ``depth = 2**width`` wraps by itself)."""
    return ptr + 1 if depth == 2 ** len(ptr) else Mux(ptr == depth - 1, 0, ptr + 1)
