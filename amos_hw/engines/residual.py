"""Residual add engine: main accumulators plus the aligned skip path, then the AMOS unit."""
from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import _nonneg_int, _pos_int
from amos_hw.lib.amos_unit import AmosUnit
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift, signed_width

#: Skip words held in flip-flops between the skip FIFO's block RAM and the adder.
SKIP_REGS = 3

__all__ = ["ResidualAddEngine"]


class ResidualAddEngine(wiring.Component):
    """``a = AMOS((main + (skip << skip_shift) + 2**(S-1)) >> S)``, lane by lane.

    ``main`` is the raw accumulator stream of the block's last convolution (a
    :class:`~amos_hw.engines.conv.ConvEngine` with ``out_bits=None, shift=0``), ``skip`` the
    block's input spike words (or the raw accumulators of a projection convolution,
    ``skip_signed=True``). The skip stream leaves the block input long before the main path
    produces the matching word, so it waits in a FIFO of ``skip_depth`` words: the skip path
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
    shift : int
        Requantisation shift ``S`` (0..62).
    out_bits : int or None
        ``K`` of the ReLU AMOS unit after the add (1..16), or ``None`` for raw sums.
    skip_depth : int
        FIFO depth of the skip path, in words.
    skip_signed : bool
        The skip values are signed accumulators (projection shortcut).
    name : str
        Layer name for error messages.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(signed(main_width), lanes)))``
        Main path.
    skip : ``In(stream.Signature(ArrayLayout(unsigned(skip_bits), lanes)))``
        Skip path.
    o : ``Out(stream.Signature(ArrayLayout(unsigned(out_bits) or signed(...), lanes)))``
    spike_count : ``Out(32)``
    """

    def __init__(self, *, lanes, words_per_image, main_width, skip_bits, skip_shift, shift,
                 out_bits, skip_depth, skip_signed=False, name="add"):
        self._MustUse__silence = True
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, not {name!r}")
        lanes = _pos_int(lanes, f"{name}: lanes")
        words_per_image = _pos_int(words_per_image, f"{name}: words_per_image")
        main_width = _pos_int(main_width, f"{name}: main_width", 64)
        skip_bits = _pos_int(skip_bits, f"{name}: skip_bits", 64)
        skip_shift = _nonneg_int(skip_shift, f"{name}: skip_shift", 30)
        shift = _nonneg_int(shift, f"{name}: shift", 62)
        if out_bits is not None:
            out_bits = _pos_int(out_bits, f"{name}: out_bits", 16)
        skip_depth = _pos_int(skip_depth, f"{name}: skip_depth")
        if not isinstance(skip_signed, bool):
            raise ValueError(f"{name}: skip_signed must be a bool, not {skip_signed!r}")
        self._name = name
        self._lanes, self._wpi = lanes, words_per_image
        self._main_width, self._skip_bits, self._skip_signed = main_width, skip_bits, skip_signed
        self._skip_shift, self._shift, self._out_bits = skip_shift, shift, out_bits
        self._skip_depth = skip_depth
        m_lo, m_hi = -(2 ** (main_width - 1)), 2 ** (main_width - 1) - 1
        if skip_signed:
            s_lo, s_hi = -(2 ** (skip_bits - 1)), 2 ** (skip_bits - 1) - 1
        else:
            s_lo, s_hi = 0, 2**skip_bits - 1
        self._sum_range = (m_lo + (s_lo << skip_shift), m_hi + (s_hi << skip_shift))
        self._sum_width = signed_width(*self._sum_range)
        v_lo, v_hi = (int(v) for v in requant_shift(np.array(self._sum_range), shift))
        self._v_width = signed_width(v_lo, v_hi)
        self._amos = None
        if out_bits is not None:
            self._amos = AmosUnit(IntAmosUnit.relu(out_bits), self._v_width, lanes=lanes)
            out_shape = unsigned(out_bits)
        else:
            out_shape = signed(self._v_width)
        skip_shape = signed(skip_bits) if skip_signed else unsigned(skip_bits)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(main_width), lanes))),
            "skip": In(stream.Signature(data.ArrayLayout(skip_shape, lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(out_shape, lanes))),
            "spike_count": Out(32),
        })
        self._MustUse__silence = False

    name = property(lambda self: self._name)
    lanes = property(lambda self: self._lanes)
    pe = property(lambda self: self._lanes, doc="Output lanes (as the other engines' ``pe``).")
    simd = property(lambda self: self._lanes, doc="Input lanes.")
    skip_shift = property(lambda self: self._skip_shift)
    shift = property(lambda self: self._shift)
    out_bits = property(lambda self: self._out_bits)
    skip_depth = property(lambda self: self._skip_depth)
    sum_width = property(lambda self: self._sum_width, doc="Width of main + aligned skip.")
    out_width = property(
        lambda self: self._out_bits if self._out_bits is not None else self._v_width
    )

    @property
    def expected_cycles(self) -> int:
        """Cycles per image: one word per cycle."""
        return self._wpi

    @property
    def latency(self) -> int:
        """Cycles from the first main word (its skip word already queued) to the first output."""
        return 1 + (self._amos.latency if self._amos is not None else 0)

    @property
    def memories(self) -> list:
        """The skip FIFO and the register queue behind it (each a ``SyncFIFOBuffered``,
        whose memory holds ``depth - 1`` words), as :class:`~amos_hw.lib.bram.MemShape`."""
        from amos_hw.lib.bram import MemShape

        width = self._lanes * self._skip_bits
        return [MemShape(name, depth - 1, width)
                for name, depth in (("skip_fifo", self._skip_depth), ("skip_regs", SKIP_REGS))
                if depth > 1]

    @property
    def memory_bits(self) -> int:
        """Bits of the skip FIFO."""
        return self._skip_depth * self._lanes * self._skip_bits

    @property
    def flip_flops(self) -> int:
        ff = self._lanes * self._sum_width + 2 * max(1, math.ceil(math.log2(self._skip_depth + 1)))
        ff += self._lanes * self._skip_bits + 4  # the buffered FIFO's output register
        ff += SKIP_REGS * self._lanes * self._skip_bits + 4  # the register queue behind it
        ff += self._lanes * self._skip_bits + 1  # the stage register between the two
        return ff + (self._amos.flip_flops if self._amos is not None else 0)

    @property
    def luts(self) -> int:
        per_lane = self._sum_width + self._v_width
        if self._amos is not None:
            per_lane += 2 * (self._out_bits + 1) * self._v_width
        return self._lanes * per_lane + 30

    def model(self, main, skip):
        """Reference: :func:`python_ref.snn.add` then :func:`python_ref.snn.requant_unit`."""
        acc = snn.add([np.asarray(main), np.asarray(skip)], [0, self._skip_shift])
        if self._out_bits is None:
            return requant_shift(acc, self._shift)
        return snn.requant_unit([acc], [self._shift], IntAmosUnit.relu(self._out_bits))[0]

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        sb = self._skip_bits
        m.submodules.skip_fifo = big = SyncFIFOBuffered(width=lanes * sb,
                                                        depth=self._skip_depth)
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
        total = [Signal(signed(self._sum_width), name=f"sum_{n}") for n in range(lanes)]
        m.d.comb += [
            go.eq(en & self.i.valid & fifo.r_rdy),
            self.i.ready.eq(en & fifo.r_rdy),
            fifo.r_en.eq(go),
        ]
        with m.If(en):
            m.d.sync += valid_s.eq(go)
        for n in range(lanes):
            raw = fifo.r_data.word_select(n, sb)
            skip = raw.as_signed() if self._skip_signed else raw
            aligned = skip.shift_left(self._skip_shift) if self._skip_shift else skip
            with m.If(go):
                m.d.sync += total[n].eq(self.i.payload[n] + aligned)
        S = self._shift
        v = [(t + (1 << (S - 1))) >> S if S else t for t in total]
        if self._amos is not None:
            m.submodules.amos = amos = self._amos
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

