"""Sliding-window generator with a line buffer: raster pixels in, im2col words out."""
from __future__ import annotations

from typing import NamedTuple

from amaranth.hdl import C, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import counter
from amos_hw.engines.figures import WindowParams, line_buffer_rows, out_size
from amos_hw.lib.bram_fifo import buffered_fifo

__all__ = ["SlidingWindow", "line_buffer_rows", "out_size"]


class _Rows(NamedTuple):
    """The line buffer's row bookkeeping, shared by its writer and its reader."""

    avail: Signal  # rows fully written, from the first row of the image being read
    top: Signal  # the first input row of the output row being read (oy*s - p)
    need: Signal  # rows the output row being read needs
    limit: Signal  # rows the writer may fill
    nxt: Signal  # top's value for the next output row
    need_n: object  # need and limit for the next output row (registers, or expressions)
    limit_n: object
    need_0: int  # need and limit for an image's first output row
    limit_0: int


def _next_test(test, avail, row_done, image_done, row_move, height: int, bound, bound_n,
               bound_0: int):
    """``test(avail, bound)`` one cycle ahead, for a register that holds it: ``avail`` grows by
    ``row_done`` and falls by ``height`` at ``image_done``; ``bound`` becomes ``bound_n`` when the
    output row moves (``row_move``) and ``bound_0`` at the image's end. Written as six tests of
    registers and constants selected by the three late bits, so that those bits (the writer's and
    the reader's handshakes) pass two multiplexers, not an adder and a comparison."""
    def step(a, b):
        return Mux(row_done, test(a + 1, b), test(a, b))

    return Mux(image_done, step(avail - height, bound_0),
               Mux(row_move, step(avail, bound_n), step(avail, bound)))


def _wrap_add(value, step: int, depth: int):
    """``(value + step) mod depth`` for ``0 <= value < depth``: one add and one compare."""
    step %= depth
    total = value + step
    return Mux(total >= depth, total - depth, total)


class SlidingWindow(wiring.Component):
    """Turn a raster stream of pixels into the im2col vectors of a ``kernel x kernel`` convolution.

    Input: for each image, pixels in raster order (row by row), each pixel as ``C / simd`` words of
    ``simd`` channels. Output: for each output pixel in raster order, the window in
    ``(ky, kx, channel)`` order (as :func:`python_ref.snn.im2col`, weights ``(O, ky, kx, C)``),
    again ``C / simd`` words per window pixel; positions outside the image (zero padding) give
    zero words.

    A pointwise window (1x1, stride 1, no padding: :func:`~amos_hw.engines.figures.is_pointwise`)
    passes its input words on unchanged through a FIFO of two pixels
    (:func:`~amos_hw.lib.bram_fifo.buffered_fifo`, ``SyncFIFOBuffered``'s timing), or of
    ``fifo_rows`` image rows (:attr:`~amos_hw.engines.figures.WindowParams.fifo_words`: the
    generator gives a convolution near the pipeline's bottleneck two rows, so that a producer's
    row bursts never leave it waiting); every other window keeps a line
    buffer, an :class:`amaranth.lib.memory.Memory` of :attr:`rows` image rows, written
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
    signed : bool
        The channel values are two's-complement words (``signed(bits)`` lanes). The window
        only moves words, so this changes the ports' shape alone; a padding position is the
        all-zero word, value 0 either way.
    fifo_rows : int
        Pointwise windows only: the FIFO's size in image rows (0: two pixels).

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(bits) or signed(bits), simd)))``
    o : ``Out(stream.Signature(ArrayLayout(unsigned(bits) or signed(bits), simd)))``
    """

    def __init__(self, *, height, width, channels, kernel, stride, padding, simd, bits,
                 name="conv", signed=False, fifo_rows=0):
        self._p = WindowParams.check(height=height, width=width, channels=channels,
                                     kernel=kernel, stride=stride, padding=padding, simd=simd,
                                     bits=bits, name=name, fifo_rows=fifo_rows)
        if not isinstance(signed, bool):
            raise ValueError(f"{name}: signed must be a bool, not {signed!r}")
        self._signed = signed
        word = data.ArrayLayout(Shape(self._p.bits, signed=signed), self._p.simd)
        super().__init__({"i": In(stream.Signature(word)), "o": Out(stream.Signature(word))})

    params = property(lambda self: self._p, doc="The checked parameters (WindowParams).")
    signed = property(lambda self: self._signed, doc="Two's-complement lanes.")
    out_height = property(lambda self: self._p.out_height)
    out_width = property(lambda self: self._p.out_width)
    rows = property(lambda self: self._p.rows, doc="Image rows in the line buffer.")
    words_per_window = property(lambda self: self._p.words_per_window)
    latency = property(lambda self: self._p.latency,
                       doc="Cycles from an image's first input word to its first output word "
                           "(input never idle).")
    memories = property(lambda self: list(self._p.memories),
                        doc="The line buffer, as :class:`~amos_hw.lib.bram.MemShape`.")
    memory_bits = property(lambda self: self._p.memory_bits, doc="Bits of the line buffer.")
    flip_flops = property(lambda self: self._p.flip_flops,
                          doc="Counters, address registers and the output stage.")
    luts = property(lambda self: self._p.luts,
                    doc="LUT4 estimate: address adders and comparisons, the padding zero mux.")

    def elaborate(self, platform):
        m = Module()
        P = self._p
        if P.pointwise:  # output words = input words: a FIFO decouples the two sides
            m.submodules.fifo = q = buffered_fifo(width=P.simd * P.bits,
                                                  depth=P.fifo_words + 1)
            m.d.comb += [
                q.w_data.eq(self.i.payload.as_value()),
                q.w_en.eq(self.i.valid),
                self.i.ready.eq(q.w_rdy),
                self.o.payload.eq(q.r_data),
                self.o.valid.eq(q.r_rdy),
                q.r_en.eq(self.o.ready),
            ]
            return m
        depth = P.rows * P.width * P.cf
        # the read port is asynchronous with the read register written out in the reader: Yosys
        # merges that register into the block RAM's port itself (memory_dff), and only there
        # takes the memory's `no_rw_check` (a read and a write of one word in one cycle give
        # any value), so it adds no collision bypass behind the block RAM, which would keep the
        # output register in the fabric. The ring never reads the row being written: the
        # reader takes rows below `avail`, the writer writes row `avail`, fewer than R rows
        # above `top`. (In simulation the read register reads the old word, as before.)
        m.submodules.lines = mem = Memory(shape=unsigned(P.simd * P.bits), depth=depth, init=[],
                                          attrs={"no_rw_check": 1})
        wr = mem.write_port()
        rd = mem.read_port(domain="comb")
        rows = self._row_bounds(m)
        # `i.ready` ("avail < limit") and the reader's `have` ("avail >= need") are registers
        # loaded with the comparisons' next values (_next_test): the same value each cycle as
        # the comparisons themselves, but the ready that the producer and a fork before it see,
        # and the `have` that gates the reader's counters, leave a flip-flop. (As comparisons of
        # the registers they began the ECP5-85F K = 6 builds' critical paths: limit -> ready ->
        # fork -> producer, and need -> `avail >= need` -> go -> row counters.)
        ready = Signal(init=1, name="ready")
        have = Signal(init=int(0 >= rows.need_0), name="have")
        m.d.comb += self.i.ready.eq(ready)
        row_done = self._writer(m, wr, rows)
        image_done, row_move = self._reader(m, rd, rows, have)
        late = dict(avail=rows.avail, row_done=row_done, image_done=image_done,
                    row_move=row_move, height=P.height)
        av = rows.avail
        m.d.sync += [  # the four next row counts from the register, selected by the late bits
            av.eq(Mux(image_done, Mux(row_done, av + 1 - P.height, av - P.height),
                      Mux(row_done, av + 1, av))),
            ready.eq(_next_test(lambda a, b: a < b, bound=rows.limit, bound_n=rows.limit_n,
                                bound_0=rows.limit_0, **late)),
            have.eq(_next_test(lambda a, b: a >= b, bound=rows.need, bound_n=rows.need_n,
                               bound_0=rows.need_0, **late)),
        ]
        return m

    def _row_bounds(self, m) -> _Rows:
        """The rows written so far, the reader's first row and the bounds both sides wait on."""
        P = self._p
        H, k, s, p, R = P.height, P.kernel, P.stride, P.padding, P.rows
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

        need_0, limit_0 = min(k - p, H), max(-p, 0) + R
        need = Signal(range(H + 1), init=need_0)
        limit = Signal(range(H + R + 1), init=limit_0)
        # and their values for the next output row, registered from `top` (which moves once an
        # output row, Wo*k*k*CF >= 2 cycles apart): the reader's `go` then only selects them
        # (computed from `top + s` after `go`, they were the 85F's critical path)
        nxt = Signal.like(top, name="top_next")
        m.d.comb += nxt.eq(top + s)
        if P.out_width * P.words_per_window >= 2:
            need_n = Signal.like(need, name="need_next")
            limit_n = Signal.like(limit, name="limit_next")
            m.d.sync += [need_n.eq(need_of(nxt)), limit_n.eq(limit_of(nxt))]
        else:  # a one-cycle output row: no time to register them
            need_n, limit_n = need_of(nxt), limit_of(nxt)
        return _Rows(avail, top, need, limit, nxt, need_n, limit_n, need_0, limit_0)

    def _writer(self, m, wr, rows: _Rows):
        """The line buffer's writer, a ring in input order; returns "a row is complete"."""
        row_words = self._p.width * self._p.cf
        depth = self._p.rows * row_words
        waddr = Signal(range(depth))
        wcol = counter(row_words, "wcol")
        row_done = Signal()
        m.d.comb += [
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
        return row_done

    def _output_stage(self, m, rd, en, go, pad):
        """Two stages on one enable ``en``: the line buffer's read register, then the output
        register, so that nothing but a register follows the block RAM (on the ECP5 it becomes
        the block's own output register, boards.outreg: its data leave 5 ns sooner); the
        padding zero is applied after it. Returns the output's valid bit."""
        valid_r, pad_r = Signal(name="valid_r"), Signal(name="pad_r")
        valid_o, pad_o = Signal(name="valid_o"), Signal(name="pad_o")
        data_r = Signal.like(rd.data, name="data_r")  # the block RAM's read register
        data_o = Signal.like(rd.data, name="data_o")
        m.d.comb += [self.o.valid.eq(valid_o), self.o.payload.eq(Mux(pad_o, 0, data_o))]
        with m.If(en):
            m.d.sync += [valid_r.eq(go), pad_r.eq(pad), valid_o.eq(valid_r), pad_o.eq(pad_r),
                         data_r.eq(rd.data), data_o.eq(data_r)]
        return valid_o

    def _reader(self, m, rd, rows: _Rows, have):
        """The reader: output row oy, window position (ky, kx, cf) of the row's windows
        (``ix0``; :meth:`_row_end` counts the row's words, :meth:`_read_address` keeps the
        line buffer's address), reading while
        ``have`` (the rows it needs are written); returns "the image's last word is read" and
        "the output row moves on"."""
        P = self._p
        H, W, CF, k, s, p, R = P.height, P.width, P.cf, P.kernel, P.stride, P.padding, P.rows
        Ho = P.out_height
        row_words = W * CF
        depth = R * row_words
        top = rows.top
        oy = counter(Ho, "oy")
        ky = counter(k, "ky")
        kx = counter(k, "kx")
        cf = counter(CF, "cf")
        ix0 = Signal(signed(max(W, k).bit_length() + 2), init=-p)  # ox*s - p
        rb_top = Signal(range(depth), init=((-p) % R) * row_words)  # ring base of row `top`

        en = Signal()
        go = Signal()
        iy = top + ky
        ix = ix0 + kx
        pad = (iy < 0) | (iy >= H) | (ix < 0) | (ix >= W)
        m.d.comb += [
            en.eq(~self._output_stage(m, rd, en, go, pad) | self.o.ready),
            go.eq(en & have),
        ]

        last_cf = cf == CF - 1
        last_kx = kx == k - 1
        last_ky = ky == k - 1
        last_oy = oy == Ho - 1
        oy_step = Mux(last_oy, 0, oy + 1)  # oy when the output row moves
        # rb_top when the output row moves: the next row's ring base, or the next image's
        last_step = (H - (Ho - 1) * s) % R * row_words
        rb_step = Mux(last_oy, _wrap_add(rb_top, last_step, depth),
                      _wrap_add(rb_top, s % R * row_words, depth))
        row_end, image_end = self._row_end(m, go, oy, oy_step)
        image_done, row_move = Signal(), Signal()
        m.d.comb += [row_move.eq(go & row_end), image_done.eq(go & image_end)]
        self._read_address(m, rd, go, row_end, last_cf & last_kx, last_ky, rb_top, rb_step)
        with m.If(go):
            m.d.sync += cf.eq(Mux(last_cf, 0, cf + 1))
            with m.If(last_cf):
                m.d.sync += kx.eq(Mux(last_kx, 0, kx + 1))
            with m.If(last_cf & last_kx):
                m.d.sync += ky.eq(Mux(last_ky, 0, ky + 1))
            with m.If(last_cf & last_kx & last_ky):
                m.d.sync += ix0.eq(ix0 + s)
        # the output row moves (after the assignments above: these take precedence)
        with m.If(row_move):
            m.d.sync += [ix0.eq(-p), oy.eq(oy_step), rb_top.eq(rb_step)]
            with m.If(last_oy):
                m.d.sync += [top.eq(-p), rows.need.eq(rows.need_0), rows.limit.eq(rows.limit_0)]
            with m.Else():
                m.d.sync += [top.eq(rows.nxt), rows.need.eq(rows.need_n),
                             rows.limit.eq(rows.limit_n)]
        return image_done, row_move

    def _read_address(self, m, rd, go, row_end, kx_cf_last, last_ky, rb_top, rb_step):
        """The line buffer's read address ``rb + col + woff`` (the ring base of input row
        ``top + ky``, the window's first word ``(ox*s - p)*CF`` in the row, ``kx*CF + cf``) as
        a register ``raddr``, loaded on ``go`` with the sum of the three counters' values after
        ``go``; these are computed from registers alone (``kx_cf_last``: ``cf`` and ``kx`` at their
        last values), so ``go`` only enables the load. The same address every cycle as the sum
        it replaces; with the line buffer in LUT RAM (an ECP5 ``TRELLIS_DPR16X4``, read
        asynchronously) the read then starts at a flip-flop: the sum before the read began the
        ECP5-85F K = 6 build's critical path at 100 MHz (`woff` -> adder -> LUT RAM ->
        ``data_r``). In block RAM the address is the block's own input, likewise registered.
        ``rb_step`` is ``rb_top``'s value after the output row (the reader's)."""
        P = self._p
        W, CF, k, s, p, R = P.width, P.cf, P.kernel, P.stride, P.padding, P.rows
        row_words = W * CF
        depth = R * row_words
        base0 = ((-p) % R) * row_words
        col = Signal(signed(max(W, k).bit_length() + max(1, CF.bit_length()) + 3), init=-p * CF)
        rb = Signal(range(depth), init=base0)  # ring base of row top + ky
        woff = counter(k * CF, "woff")  # kx*CF + cf
        raddr = Signal.like(rd.addr, init=(base0 - p * CF) % (1 << len(rd.addr)), name="raddr")
        rb_g, col_g, woff_g = (Signal.like(v, name=f"{v.name}_go") for v in (rb, col, woff))
        m.d.comb += [rd.addr.eq(raddr), rb_g.eq(rb), col_g.eq(col), woff_g.eq(woff + 1)]
        with m.If(row_end):  # the next output row's first word (its first window's top-left)
            m.d.comb += [col_g.eq(-p * CF), woff_g.eq(0), rb_g.eq(rb_step)]
        with m.Elif(kx_cf_last):  # the window's next row, or the next window's first row
            m.d.comb += [woff_g.eq(0),
                         rb_g.eq(Mux(last_ky, rb_top, _wrap_add(rb, row_words, depth)))]
            with m.If(last_ky):
                m.d.comb += col_g.eq(col + s * CF)
        with m.If(go):
            m.d.sync += [rb.eq(rb_g), col.eq(col_g), woff.eq(woff_g),
                         raddr.eq(rb_g + col_g + woff_g)]

    def _row_end(self, m, go, oy, oy_step):
        """Registers ``row_end`` (the next word read is an output row's last: ``cf``, ``kx``,
        ``ky`` at their last values in the row's last window) and ``image_end`` (that and the
        last row; ``oy_step`` is ``oy``'s value after the row),
        kept with a count ``rw`` of the row's words read and loaded when ``go`` from values
        before it: the row and image ends that move the line buffer's bookkeeping are then
        one gate after ``go``, not the counters' comparisons (a K = 6 ECP5-85F build at
        100 MHz ended on `have` -> `go` -> the four comparisons -> the row count's adder)."""
        P = self._p
        n, Ho = P.out_width * P.words_per_window, P.out_height
        rw = counter(n, "row_word")
        row_end = Signal(init=int(n == 1), name="row_end")
        image_end = Signal(init=int(n == 1 and Ho == 1), name="image_end")
        end_next = (rw == n - 2) if n >= 2 else C(1, 1)  # row_end after this word
        oy_next = Mux(row_end, oy_step, oy)
        with m.If(go):
            m.d.sync += [rw.eq(Mux(row_end, 0, rw + 1)), row_end.eq(end_next),
                         image_end.eq(end_next & (oy_next == Ho - 1))]
        return row_end, image_end
