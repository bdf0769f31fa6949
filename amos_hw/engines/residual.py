"""Residual add engine: main accumulators plus the aligned skip path, then the AMOS unit."""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from amos_hw.engines.figures import SKIP_REGS, AddParams, Figures
from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.bram_fifo import buffered_fifo
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift

__all__ = ["ResidualAddEngine"]


class ResidualAddEngine(wiring.Component):
    """``a = AMOS(((main << main_shift) + (skip << skip_shift) + 2**(S-1)) >> S)``, lane by
    lane (``main_shift`` 0 unless the converter aligned the two terms' scales, e.g. under a
    per-layer K).

    ``main`` is the raw accumulator stream of the block's last convolution (a
    :class:`~amos_hw.engines.conv.ConvEngine` with ``out_bits=None, shift=0``), ``skip`` the
    block's input spike words, or, ``skip_signed=True``, two's-complement values: the raw
    accumulators of a projection convolution or a trained unit's words ``y`` (an MBConv
    block's input). With ``out_bits=None`` there is no AMOS unit: the engine emits ``v = (main
    + (skip << skip_shift) + 2**(S-1)) >> S`` (``S = 0``: the sum itself), signed,
    :attr:`out_width` bits, for a trained unit after the add (a
    :class:`~amos_hw.engines.unit.UnitEngine`, the signed identity of a linear block).

    The skip stream leaves the block input long before the main path produces the matching
    word, so it waits in a FIFO of ``skip_depth`` words: the skip path
    delayed to align. ``skip_depth`` must cover the main path's latency in words (the generator
    sizes it from the engines' ``latency``); too small a FIFO stalls the fork that feeds both
    paths.

    Throughput: one word (``lanes`` values) per cycle; :attr:`expected_cycles` per image.
    Latency: :attr:`latency` cycles from a main word (with its skip word present) to the output.

    Parameters
    ----------
    lanes : int
        Values per word on every stream.
    words_per_image : int
        Words of one image (``H * W * C / lanes``).
    main_width : int
        Signed width of the main accumulators.
    skip_bits : int
        Width of a skip value (unsigned spike word, or signed with ``skip_signed``).
    skip_shift : int
        Left shift that brings the skip values to the accumulator's scale (0..30).
    main_shift : int
        Left shift that brings the main accumulators to the accumulator's scale (0..30; 0
        unless the main convolution's scale is the coarser one,
        :data:`python_ref.convert.ALIGN_BITS`).
    shift : int
        Requantisation shift ``S`` (0..62).
    out_bits : int or None
        ``K`` of the ReLU AMOS unit after the add (1..16), or ``None`` for the requantised
        sums ``v`` (signed, ``out_width`` =
        :func:`~amos_hw.engines.figures.add_v_width` bits).
    skip_depth : int
        FIFO depth of the skip path, in words.
    skip_signed : bool
        The skip values are two's complement (a projection shortcut's accumulators, a trained
        unit's words).
    name : str
        Layer name for error messages.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(signed(main_width), lanes)))``
        Main path.
    skip : ``In(stream.Signature(ArrayLayout(unsigned(skip_bits) or signed(skip_bits), lanes)))``
        Skip path (signed with ``skip_signed``).
    o : ``Out(stream.Signature(ArrayLayout(unsigned(out_bits) or signed(...), lanes)))``
    spike_count : ``Out(32)``
    """

    def __init__(self, *, lanes, words_per_image, main_width, skip_bits, skip_shift, shift,
                 out_bits, skip_depth, skip_signed=False, main_shift=0, name="add"):
        p = AddParams.check(lanes=lanes, words_per_image=words_per_image, main_width=main_width,
                            skip_bits=skip_bits, skip_shift=skip_shift, shift=shift,
                            out_bits=out_bits, skip_depth=skip_depth, skip_signed=skip_signed,
                            main_shift=main_shift, name=name)
        self._p = p
        out_shape = unsigned(p.out_bits) if p.out_bits is not None else signed(p.v_width)
        skip_shape = signed(p.skip_bits) if p.skip_signed else unsigned(p.skip_bits)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(p.main_width), p.lanes))),
            "skip": In(stream.Signature(data.ArrayLayout(skip_shape, p.lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(out_shape, p.lanes))),
            "spike_count": Out(32),
        })

    @staticmethod
    def figures(*, lanes, words_per_image, main_width, skip_bits, skip_shift, shift, out_bits,
                skip_depth, skip_signed=False, main_shift=0, name="add") -> Figures:
        """The figures of the engine these arguments would build, without building it: the
        constructor's arguments and checks (same errors), then
        :meth:`amos_hw.engines.figures.AddParams.figures`."""
        return AddParams.check(lanes=lanes, words_per_image=words_per_image,
                               main_width=main_width, skip_bits=skip_bits,
                               skip_shift=skip_shift, shift=shift, out_bits=out_bits,
                               skip_depth=skip_depth, skip_signed=skip_signed,
                               main_shift=main_shift, name=name).figures()

    params = property(lambda self: self._p, doc="The checked parameters (AddParams).")
    name = property(lambda self: self._p.name)
    lanes = property(lambda self: self._p.lanes)
    pe = property(lambda self: self._p.lanes, doc="Output lanes (as the other engines' ``pe``).")
    simd = property(lambda self: self._p.lanes, doc="Input lanes.")
    skip_shift = property(lambda self: self._p.skip_shift)
    main_shift = property(lambda self: self._p.main_shift)
    shift = property(lambda self: self._p.shift)
    out_bits = property(lambda self: self._p.out_bits)
    skip_depth = property(lambda self: self._p.skip_depth)
    sum_width = property(lambda self: self._p.sum_width, doc="Width of main + aligned skip.")
    out_width = property(lambda self: self._p.out_width)
    # the figures: AddParams's formulas (see there)
    expected_cycles = property(lambda self: self._p.cycles,
                               doc="Cycles per image: one word per cycle.")
    latency = property(lambda self: self._p.latency,
                       doc="Cycles from the first main word (its skip word already queued) to "
                           "the first output.")
    memories = property(lambda self: list(self._p.memories),
                        doc="The skip FIFO and the register queue behind it, as "
                            ":class:`~amos_hw.lib.bram.MemShape`.")
    memory_bits = property(lambda self: self._p.memory_bits, doc="Bits of the skip FIFO.")
    flip_flops = property(lambda self: self._p.flip_flops, doc="Flip-flop estimate.")
    luts = property(lambda self: self._p.luts, doc="LUT4 estimate.")

    def model(self, main, skip):
        """Reference: :func:`python_ref.snn.add` then :func:`python_ref.snn.requant_unit`."""
        p = self._p
        acc = snn.add([np.asarray(main), np.asarray(skip)], [p.main_shift, p.skip_shift])
        if p.out_bits is None:
            return requant_shift(acc, p.shift)
        return snn.requant_unit([acc], [p.shift], IntAmosUnit.relu(p.out_bits))[0]

    def elaborate(self, platform):
        m = Module()
        p = self._p
        lanes = p.lanes
        sb = p.skip_bits
        # the skip words wait in block RAM; BramFifo is SyncFIFOBuffered cycle for cycle, but its
        # read leaves the block through the block's own read register with no bypass
        # multiplexer behind it (that multiplexer after a DP16KD read without its output
        # register was the critical path of both K = 6 ECP5-85F builds at 100 MHz); a deep
        # one is built in columns that each fill one block, so no bank multiplexer follows them
        m.submodules.skip_fifo = big = buffered_fifo(width=lanes * sb, depth=p.skip_depth,
                                                     column_bits=p.skip_column_bits)
        # the skip words reach the adder from flip-flops, not from the block RAM's read port
        # (its clock-to-out and the add were the 85F's critical path): a three-place register
        # queue behind the memory, kept full while the skip path runs ahead (it always does:
        # the main path waits for its line buffers)
        m.submodules.skip_regs = fifo = SyncFIFOBuffered(width=lanes * sb, depth=SKIP_REGS)
        # and one plain register between the two: the block RAM's read port drives flip-flops
        # only, not the queue's LUT RAM (that path, 6.5 ns of block-RAM clock-to-out and 5 ns
        # of routing, was the critical path of both 85F PLL builds)
        st_valid = Signal()
        st_data = Signal(lanes * sb)
        move = ~st_valid | fifo.w_rdy  # the stage register takes a new word (or empties)
        m.d.comb += [
            big.w_data.eq(self.skip.payload.as_value()),
            big.w_en.eq(self.skip.valid),
            self.skip.ready.eq(big.w_rdy),
            big.r_en.eq(move),
            fifo.w_data.eq(st_data),
            fifo.w_en.eq(st_valid),
        ]
        with m.If(move):
            m.d.sync += [st_valid.eq(big.r_rdy), st_data.eq(big.r_data)]
        en = Signal()
        go = Signal()
        valid_s = Signal()
        total = [Signal(signed(p.sum_width), name=f"sum_{n}") for n in range(lanes)]
        m.d.comb += [
            go.eq(en & self.i.valid & fifo.r_rdy),
            self.i.ready.eq(en & fifo.r_rdy),
            fifo.r_en.eq(go),
        ]
        with m.If(en):
            m.d.sync += valid_s.eq(go)
        for n in range(lanes):
            raw = fifo.r_data.word_select(n, sb)
            skip = raw.as_signed() if p.skip_signed else raw
            aligned = skip.shift_left(p.skip_shift) if p.skip_shift else skip
            main = self.i.payload[n]
            main = main.shift_left(p.main_shift) if p.main_shift else main
            with m.If(go):
                m.d.sync += total[n].eq(main + aligned)
        S = p.shift
        v = [(t + (1 << (S - 1))) >> S if S else t for t in total]
        if p.out_bits is not None:
            m.submodules.amos = amos = AmosUnit(IntAmosUnit.relu(p.out_bits), p.v_width,
                                                lanes=lanes)
            m.d.comb += [
                amos.i.valid.eq(valid_s),
                en.eq(~valid_s | amos.i.ready),
                self.o.valid.eq(amos.o.valid),
                amos.o.ready.eq(self.o.ready),
                self.spike_count.eq(amos.spike_count),
            ]
            m.d.comb += [amos.i.payload.x[n].eq(v[n]) for n in range(lanes)]
            m.d.comb += [self.o.payload[n].eq(amos.o.payload.z[n]) for n in range(lanes)]
        else:
            m.d.comb += [self.o.valid.eq(valid_s), en.eq(~valid_s | self.o.ready)]
            m.d.comb += [self.o.payload[n].eq(v[n]) for n in range(lanes)]
        return m

