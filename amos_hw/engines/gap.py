"""Global average pooling engine: per-channel sums over all positions of an image."""
from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import _pos_int, counter
from python_ref import snn

__all__ = ["GlobalAvgPoolEngine"]


class GlobalAvgPoolEngine(wiring.Component):
    """Sum every channel over the ``height x width`` positions of an image (``1/(H*W)`` is folded
    into the next dense layer's weights, ``docs/integer_semantics.md``).

    The ``C / lanes`` running sums of ``lanes`` channels each rotate through a ring of registers,
    one word per input word, so a sum is ready exactly when the image's last pixel arrives: the
    outputs leave while the last pixel streams in, and the next image follows without a gap.
    Each output is ``sum_bits`` wide (the exact bound ``H*W*(2**in_bits - 1)``), which is the
    ``in_bits`` of the dense engine after it.

    Throughput: one input word per cycle, :attr:`expected_cycles` per image. Latency: the first
    output is valid :attr:`latency` cycles after the image's first input word (input never idle).

    Parameters
    ----------
    height, width, channels : int
        Input image size.
    in_bits : int
        Bits per input activation.
    lanes : int
        Channels per word (input and output); must divide ``channels``.
    name : str
        Layer name for error messages.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(in_bits), lanes)))``
        Pixels in raster order, channels innermost.
    o : ``Out(stream.Signature(ArrayLayout(unsigned(sum_bits), lanes)))``
        The ``channels`` sums, ``lanes`` a word.
    """

    def __init__(self, *, height, width, channels, in_bits, lanes=1, name="gap"):
        self._MustUse__silence = True
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, not {name!r}")
        for what, value in (("height", height), ("width", width), ("channels", channels),
                            ("lanes", lanes)):
            _pos_int(value, f"{name}: {what}")
        in_bits = _pos_int(in_bits, f"{name}: in_bits", 16)
        if channels % lanes:
            raise ValueError(f"{name}: lanes must divide the {channels} channels, not {lanes}")
        self._name = name
        self._h, self._w, self._c, self._in_bits, self._lanes = (height, width, channels,
                                                                 in_bits, lanes)
        self._sum_bits = (height * width * (2**in_bits - 1)).bit_length()
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(in_bits), lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(unsigned(self._sum_bits), lanes))),
        })
        self._MustUse__silence = False

    name = property(lambda self: self._name)
    lanes = property(lambda self: self._lanes)
    pe = property(lambda self: self._lanes, doc="Output lanes (as the other engines' ``pe``).")
    simd = property(lambda self: self._lanes, doc="Input lanes.")
    sum_bits = property(lambda self: self._sum_bits, doc="Width of a sum (unsigned).")
    out_width = property(lambda self: self._sum_bits)

    @property
    def expected_cycles(self) -> int:
        """Cycles per image: one input word per cycle."""
        return self._h * self._w * self._c // self._lanes

    @property
    def latency(self) -> int:
        """Cycles from the first input word to the first output word."""
        return (self._h * self._w - 1) * (self._c // self._lanes) + 1

    @property
    def memories(self) -> list:
        """None (:attr:`memory_bits`)."""
        return []

    @property
    def memory_bits(self) -> int:
        """No memory: the running sums are a ring of registers."""
        return 0

    @property
    def flip_flops(self) -> int:
        """The ring of running sums, the output register and the counters."""
        words = self._c // self._lanes
        ctr = max(1, math.ceil(math.log2(self._h * self._w * words + 1)))
        return (words + 1) * self._lanes * self._sum_bits + ctr + 2

    @property
    def luts(self) -> int:
        """LUT4 estimate: one adder of ``sum_bits`` per lane, counters."""
        return self._lanes * 2 * self._sum_bits + 20

    def model(self, a):
        """Reference: :func:`python_ref.snn.gap` of images ``(N, H, W, C)`` -> ``(N, C)``."""
        a = np.asarray(a, np.int64)
        if a.ndim != 4 or a.shape[1:] != (self._h, self._w, self._c):
            raise ValueError(
                f"{self._name}: images must have shape (N, {self._h}, {self._w}, {self._c})"
            )
        return snn.gap(a)

    def elaborate(self, platform):
        m = Module()
        words = self._c // self._lanes
        pixels = self._h * self._w
        width = self._lanes * self._sum_bits
        ring = [Signal(width, name=f"ring_{n}") for n in range(words)]
        word = counter(words, "word")
        pixel = counter(pixels, "pixel")
        en = Signal()
        go = Signal()
        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            go.eq(en & self.i.valid),
            self.i.ready.eq(en),
        ]
        first = pixel == 0
        last = pixel == pixels - 1
        head = ring[0]
        new = Signal(width)
        for n in range(self._lanes):
            old = Mux(first, 0, head.word_select(n, self._sum_bits))
            m.d.comb += new.word_select(n, self._sum_bits).eq(old + self.i.payload[n])
        with m.If(en):
            m.d.sync += self.o.valid.eq(go & last)
        with m.If(go):
            m.d.sync += [ring[n].eq(ring[n + 1]) for n in range(words - 1)]
            m.d.sync += ring[words - 1].eq(new)
            m.d.sync += self.o.payload.as_value().eq(new)
            m.d.sync += word.eq(Mux(word == words - 1, 0, word + 1))
            with m.If(word == words - 1):
                m.d.sync += pixel.eq(Mux(last, 0, pixel + 1))
        return m
