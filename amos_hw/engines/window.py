"""Sliding-window generator with a line buffer: raster pixels in, im2col words out."""
from __future__ import annotations

import math

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import counter

__all__ = ["SlidingWindow", "line_buffer_rows"]


def _pos_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return value


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output extent of a convolution along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def line_buffer_rows(height: int, kernel: int, stride: int, padding: int) -> int:
    """Rows the line buffer holds so that the input never waits on the window in steady state.

    The writer may fill row ``r`` (counted from the start of the image being read) while
    ``r < low + R``, ``low`` being the first input row of the output row being read. ``R =
    kernel + stride`` lets it write the next output row's ``stride`` new rows during the current
    one; near the end of an image it must also reach the rows that the next image's first output
    row needs (``height + kernel - padding - 1``), which a "valid" convolution (no padding) makes
    a little larger.
    """
    ho = out_size(height, kernel, stride, padding)
    low_last = max(0, (ho - 1) * stride - padding)
    return max(kernel + stride, height + kernel - padding - low_last)


class SlidingWindow(wiring.Component):
    """Turn a raster stream of pixels into the im2col vectors of a ``kernel x kernel`` convolution.

    Input: for each image, pixels in raster order (row by row), each pixel as ``C / simd`` words of
    ``simd`` channels. Output: for each output pixel in raster order, the window in
    ``(ky, kx, channel)`` order (as :func:`python_ref.snn.im2col`, weights ``(O, ky, kx, C)``),
    again ``C / simd`` words per window pixel; positions outside the image (zero padding) give
    zero words.

    The line buffer is an :class:`amaranth.lib.memory.Memory` of :attr:`rows` image rows, written
    as a ring in input order. An output row is read once every input row it needs has been
    written; an input row is written once the row it replaces is no longer needed. Images follow
    each other without a gap.

    Throughput: one output word per cycle while the needed rows are present and the output is
    ready; one input word per cycle while the buffer has room. Latency: the first output word of
    an image is valid :attr:`latency` cycles after its first input word (input always valid).

    Parameters
    ----------
    height, width, channels : int
        Input image size.
    kernel, stride, padding : int
        Window size, step and zero padding on each side (``0 <= padding < kernel``).
    simd : int
        Channels per word; must divide ``channels``.
    bits : int
        Bits per channel value.
    name : str
        Layer name for error messages.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(bits), simd)))``
    o : ``Out(stream.Signature(ArrayLayout(unsigned(bits), simd)))``
    """

    def __init__(self, *, height, width, channels, kernel, stride, padding, simd, bits,
                 name="conv"):
        self._MustUse__silence = True
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, not {name!r}")
        for what, value in (("height", height), ("width", width), ("channels", channels),
                            ("kernel", kernel), ("stride", stride), ("simd", simd),
                            ("bits", bits)):
            _pos_int(value, f"{name}: {what}")
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"{name}: padding must be a non-negative integer, not {padding!r}")
        if padding >= kernel:
            raise ValueError(f"{name}: padding must be less than kernel={kernel}, not {padding}")
        if channels % simd:
            raise ValueError(f"{name}: simd must divide the {channels} input channels, not {simd}")
        ho = out_size(height, kernel, stride, padding)
        wo = out_size(width, kernel, stride, padding)
        if ho < 1 or wo < 1:
            raise ValueError(
                f"{name}: a {kernel}x{kernel} window with padding {padding} does not fit a "
                f"{height}x{width} image"
            )
        self._name = name
        self._h, self._w, self._c = height, width, channels
        self._k, self._s, self._p = kernel, stride, padding
        self._simd, self._bits = simd, bits
        self._cf = channels // simd
        self._ho, self._wo = ho, wo
        self._rows = line_buffer_rows(height, kernel, stride, padding)
        word = data.ArrayLayout(unsigned(bits), simd)
        super().__init__({"i": In(stream.Signature(word)), "o": Out(stream.Signature(word))})
        self._MustUse__silence = False

    out_height = property(lambda self: self._ho)
    out_width = property(lambda self: self._wo)
    rows = property(lambda self: self._rows, doc="Image rows in the line buffer.")
    words_per_window = property(lambda self: self._k * self._k * self._cf)

    @property
    def latency(self) -> int:
        """Cycles from an image's first input word to its first output word (input never idle)."""
        first_rows = min(self._h, self._k - self._p)
        return first_rows * self._w * self._cf + 1

    @property
    def memories(self) -> list:
        """The line buffer, as :class:`~amos_hw.lib.bram.MemShape`."""
        from amos_hw.lib.bram import MemShape

        return [MemShape("lines", self._rows * self._w * self._cf, self._simd * self._bits)]

    @property
    def memory_bits(self) -> int:
        """Bits of the line buffer."""
        return self._rows * self._w * self._cf * self._simd * self._bits

    @property
    def flip_flops(self) -> int:
        """Counters, address registers and the output stage."""
        a = max(1, math.ceil(math.log2(self._rows * self._w * self._cf + 1)))
        return 4 * a + 8 * max(1, math.ceil(math.log2(max(self._h, self._w) + 2 * self._k))) + 4

    @property
    def luts(self) -> int:
        """LUT4 estimate: address adders and comparisons, the padding zero mux."""
        a = max(1, math.ceil(math.log2(self._rows * self._w * self._cf + 1)))
        return 8 * a + self._simd * self._bits + 60

    def elaborate(self, platform):
        m = Module()
        H, W, CF, k, s, p, R = (self._h, self._w, self._cf, self._k, self._s, self._p,
                                self._rows)
        Ho, Wo = self._ho, self._wo
        row_words = W * CF
        depth = R * row_words
        m.submodules.lines = mem = Memory(shape=unsigned(self._simd * self._bits), depth=depth,
                                          init=[])
        wr = mem.write_port()
        rd = mem.read_port()

        def wrap_add(value, step):
            step %= depth
            total = value + step
            return Mux(total >= depth, total - depth, total)

        # rows fully written, counted from the first row of the image being read
        avail = Signal(range(-H, H + R + 2))  # negative while unused last rows are pending
        top = Signal(signed(max(H, k).bit_length() + 2), init=-p)  # first input row (oy*s - p)
        # the rows the output row needs and the writer's limit, as registers loaded when `top`
        # moves (from `top`'s next value, computed from the register): comparing `avail` with
        # them is then register to register (as `top + k` and `top + R` they were the boards'
        # critical path, `top` -> `need` -> `go` -> `top`)
        def need_of(t):
            return Mux(t + k > H, H, t + k)

        def limit_of(t):
            return Mux(t[-1], 0, t) + R

        need = Signal(range(H + 1), init=min(k - p, H))
        limit = Signal(range(H + R + 1), init=max(-p, 0) + R)
        # and their values for the next output row, registered from `top` (which moves once an
        # output row, Wo*k*k*CF >= 2 cycles apart): the reader's `go` then only selects them
        # (computed from `top + s` after `go`, they were the 85F's critical path)
        nxt = Signal.like(top, name="top_next")
        m.d.comb += nxt.eq(top + s)
        if Wo * k * k * CF >= 2:
            need_n = Signal.like(need, name="need_next")
            limit_n = Signal.like(limit, name="limit_next")
            m.d.sync += [need_n.eq(need_of(nxt)), limit_n.eq(limit_of(nxt))]
        else:  # a one-cycle output row: no time to register them
            need_n, limit_n = need_of(nxt), limit_of(nxt)

        # writer: a ring in input order
        waddr = Signal(range(depth))
        wcol = counter(row_words, "wcol")
        row_done = Signal()
        m.d.comb += [
            self.i.ready.eq(avail < limit),
            wr.addr.eq(waddr),
            wr.data.eq(self.i.payload.as_value()),
            wr.en.eq(self.i.valid & self.i.ready),
            row_done.eq(wr.en & (wcol == row_words - 1)),
        ]
        with m.If(wr.en):
            m.d.sync += [
                waddr.eq(Mux(waddr == depth - 1, 0, waddr + 1)),
                wcol.eq(Mux(wcol == row_words - 1, 0, wcol + 1)),
            ]

        # reader: output row oy, column ox, window position (ky, kx, cf)
        oy = counter(Ho, "oy")
        ox = counter(Wo, "ox")
        ky = counter(k, "ky")
        kx = counter(k, "kx")
        cf = counter(CF, "cf")
        woff = counter(k * CF, "woff")  # kx*CF + cf
        ix0 = Signal(signed(max(W, k).bit_length() + 2), init=-p)  # ox*s - p
        col = Signal(signed(ix0.shape().width + max(1, CF.bit_length()) + 1), init=-p * CF)
        rb_top = Signal(range(depth), init=((-p) % R) * row_words)  # ring base of row `top`
        rb = Signal(range(depth), init=((-p) % R) * row_words)  # ring base of row top + ky

        en = Signal()
        go = Signal()
        valid_o = Signal()
        pad_o = Signal()
        iy = top + ky
        ix = ix0 + kx
        pad = (iy < 0) | (iy >= H) | (ix < 0) | (ix >= W)
        m.d.comb += [
            en.eq(~valid_o | self.o.ready),
            go.eq(en & (avail >= need)),
            rd.en.eq(en),
            rd.addr.eq(rb + col + woff),
            self.o.valid.eq(valid_o),
            self.o.payload.eq(Mux(pad_o, 0, rd.data)),
        ]
        with m.If(en):
            m.d.sync += [valid_o.eq(go), pad_o.eq(pad)]

        last_cf = cf == CF - 1
        last_kx = kx == k - 1
        last_ky = ky == k - 1
        last_ox = ox == Wo - 1
        last_oy = oy == Ho - 1
        image_done = Signal()
        m.d.comb += image_done.eq(go & last_cf & last_kx & last_ky & last_ox & last_oy)
        with m.If(go):
            m.d.sync += cf.eq(Mux(last_cf, 0, cf + 1))
            with m.If(last_cf):
                m.d.sync += kx.eq(Mux(last_kx, 0, kx + 1))
            with m.If(last_cf & last_kx):
                m.d.sync += [woff.eq(0), ky.eq(Mux(last_ky, 0, ky + 1))]
                with m.If(last_ky):
                    m.d.sync += rb.eq(rb_top)
                with m.Else():
                    m.d.sync += rb.eq(wrap_add(rb, row_words))
            with m.Else():
                m.d.sync += woff.eq(woff + 1)
            with m.If(last_cf & last_kx & last_ky):
                m.d.sync += ox.eq(Mux(last_ox, 0, ox + 1))
                with m.If(last_ox):
                    m.d.sync += [ix0.eq(-p), col.eq(-p * CF)]
                    m.d.sync += oy.eq(Mux(last_oy, 0, oy + 1))
                    with m.If(last_oy):
                        step = (H - (Ho - 1) * s) % R * row_words
                        m.d.sync += [top.eq(-p), rb_top.eq(wrap_add(rb_top, step)),
                                     rb.eq(wrap_add(rb_top, step)),
                                     need.eq(min(k - p, H)), limit.eq(max(-p, 0) + R)]
                    with m.Else():
                        step = s % R * row_words
                        m.d.sync += [top.eq(nxt), rb_top.eq(wrap_add(rb_top, step)),
                                     rb.eq(wrap_add(rb_top, step)),
                                     need.eq(need_n), limit.eq(limit_n)]
                with m.Else():
                    m.d.sync += [ix0.eq(ix0 + s), col.eq(col + s * CF)]
        m.d.sync += avail.eq(avail + row_done - Mux(image_done, H, 0))
        return m
