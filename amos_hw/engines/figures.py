"""What a layer engine costs, from its parameters alone: no Amaranth object is built here.

Every engine of :mod:`amos_hw.engines` states, before synthesis, its cycles per image, its
latency, its LUT4 / flip-flop / memory-bit estimates, the memories the block RAM count needs
(:func:`amos_hw.lib.bram.block_count`) and the width of one output value. These figures are
functions of the engine's constructor arguments; this module holds them, one class per engine
kind, each checking the arguments exactly as the engine's constructor does (same order, same
messages):

* :class:`DenseParams`: :class:`~amos_hw.engines.dense.DenseEngine`, also the matrix-vector
  unit of a convolution;
* :class:`WindowParams`: :class:`~amos_hw.engines.window.SlidingWindow`;
* :class:`ConvParams`: :class:`~amos_hw.engines.conv.ConvEngine` (a window, a skid buffer and a
  matrix-vector unit);
* :class:`PoolParams`: :class:`~amos_hw.engines.pool.MaxPoolEngine` and
  :class:`~amos_hw.engines.pool.AvgPoolEngine` (a window and a per-channel reducer);
* :class:`DepthwiseParams`: :class:`~amos_hw.engines.depthwise.DepthwiseConvEngine`;
* :class:`GapParams`: :class:`~amos_hw.engines.gap.GlobalAvgPoolEngine`;
* :class:`AddParams`: :class:`~amos_hw.engines.residual.ResidualAddEngine`.

Each engine's ``figures(...)`` static method (same arguments as its constructor) returns
``XParams.check(...).figures()``, a :class:`Figures`, and the engine's properties
(``expected_cycles``, ``latency``, ``luts``, ``flip_flops``, ``memory_bits``, ``memories``,
``out_width``) read the same :class:`...Params`: one formula for both. The cost model reads the
figures of every candidate folding without constructing, and so without elaborating, an engine.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import numpy as np

from amos_hw.engines.carry import CARRY_FORMS
from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.bram import MemShape, check_lut_memories, mark_lut, unbanked_column_bits
from amos_hw.lib.checks import positive_int
from amos_hw.lib.ring import ring_flip_flops, ring_memories
from amos_hw.lib.skid import SkidBuffer
from python_ref.quant import IntAmosUnit, requant_shift, signed_width

__all__ = [
    "MAX_IN_BITS",
    "AddParams",
    "BIAS_LIMIT",
    "ConvParams",
    "DenseParams",
    "DepthwiseParams",
    "Figures",
    "GapParams",
    "LUT_ROM_DEPTH",
    "PoolParams",
    "SKIP_REGS",
    "WEIGHT_LIMIT",
    "WindowParams",
    "accumulator_range",
    "add_sum_range",
    "add_v_width",
    "input_range",
    "is_pointwise",
    "line_buffer_rows",
    "mem_depth",
    "out_size",
    "pointwise_fifo_words",
    "tree_levels",
    "window_first_words",
    "window_held_rows",
]

WEIGHT_LIMIT = 127  # int8, symmetric (docs/integer_semantics.md)
BIAS_LIMIT = 2**31  # int32
#: Widest input word (``in_bits``) the engines take: an unsigned ReLU spike word, a trained
#: unit's two's-complement output, or a global pool's sum of them (an 8 x 8 pool of 12-bit unit
#: outputs needs 18 bits); a bit-serial engine spends one spike plane per bit. ``K`` of a ReLU
#: unit (``out_bits``, spikes per value) stays at most 16.
MAX_IN_BITS = 24
#: ROMs up to this depth are built from LUTs by synthesis (see DenseParams.luts).
LUT_ROM_DEPTH = 64
#: Skip words held in flip-flops between the residual add's skip FIFO and its adder.
SKIP_REGS = 3


@dataclass(frozen=True)
class Figures:
    """An engine's figures before synthesis.

    Attributes
    ----------
    cycles : int
        Cycles per image (per input vector for a dense engine) with the input always valid and
        the output always ready: the engine's ``expected_cycles``.
    latency : int
        Cycles from an image's first input word to its first output word.
    luts : int
        LUT4 estimate.
    flip_flops : int
        Flip-flop estimate.
    memory_bits : int
        Bits of the engine's memories (as the engine's ``memory_bits`` counts them).
    memories : tuple of amos_hw.lib.bram.MemShape
        The memories the engine builds, for :func:`amos_hw.lib.bram.block_count`.
    out_width : int
        Bits of one output value (an unsigned spike word, a signed raw value or a sum).
    multipliers : int
        Variable products (the serial AMOS units' ``c_s * x``): one DSP block each where the
        family has them (Yosys's default mapping); ``luts`` counts them as LUT multipliers.
    multiplier_luts : int
        The LUT4s of those LUT multipliers in ``luts`` (what a DSP block each saves).
    """

    cycles: int
    latency: int
    luts: int
    flip_flops: int
    memory_bits: int
    memories: tuple
    out_width: int
    multipliers: int = 0
    multiplier_luts: int = 0


# -- argument checks (the engines' messages) -----------------------------------------------------


def _check_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, not {name!r}")
    return name


def _pos(name: str, what: str, value, at_most: int | None = None) -> int:
    """``value`` as an int when it is a positive integer (of at most ``at_most``)."""
    return int(positive_int(f"{name}: {what}", value, at_most=at_most))


def _nonneg(name: str, what: str, value, at_most: int | None = None) -> int:
    """``value`` as an int when it is a non-negative integer (of at most ``at_most``), worded as
    :func:`amos_hw.lib.checks.positive_int`."""
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 0
          and (at_most is None or value <= at_most))
    if not ok:
        bound = f" of at most {at_most}" if at_most is not None else ""
        raise ValueError(f"{name}: {what} must be a non-negative integer{bound}, not {value!r}")
    return int(value)


def _check_bool(name: str, what: str, value) -> bool:
    """``value`` when it is a bool (``numpy.bool_`` too), else a ValueError naming the layer."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: {what} must be a bool, not {value!r}")
    return bool(value)


#: Widest signed operand of one multiplier of the products form (``multiply``): an ECP5
#: ``MULT18X18D`` (and an iCE40 ``SB_MAC16``'s 16 x 16 needs narrower) takes 18 x 18 bits.
MULT_OPERAND_BITS = 18


def _check_multiply(name: str, planes: int, in_bits: int, in_signed: bool,
                    w_width: int) -> None:
    """The products form multiplies whole input words: all planes in one cycle, and both
    operands within one multiplier (:data:`MULT_OPERAND_BITS`, signed)."""
    if planes != in_bits:
        raise ValueError(f"{name}: multiply takes whole input words, all {in_bits} planes in "
                         f"a cycle (planes = in_bits), not planes = {planes}")
    a_width = in_bits + (not in_signed)
    if max(a_width, w_width) > MULT_OPERAND_BITS:
        raise ValueError(f"{name}: multiply needs operands of at most {MULT_OPERAND_BITS} "
                         f"signed bits (one MULT18X18D a product); the inputs take {a_width}, "
                         f"the weights {w_width}")


def _int_array(value, what: str, ndim: int, name: str) -> np.ndarray:
    """``value`` as a new, read-only int64 array of ``ndim`` dimensions, not empty."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: {what} must hold integers, not {arr.dtype}")
    if arr.ndim != ndim or arr.size == 0:
        raise ValueError(
            f"{name}: {what} must be a non-empty {ndim}-D array, not shape {arr.shape}"
        )
    arr = arr.astype(np.int64)
    arr.setflags(write=False)
    return arr


def _check_unit_layer(weights: np.ndarray, bias, n_out: int, in_bits, shift, out_bits,
                      name: str) -> tuple:
    """The checks a weighted layer with a requantising unit shares (dense, conv, depthwise):
    int8 weights, an int32 bias of ``n_out`` values, the input width, the shift and the output
    width. Returns ``(bias, in_bits, shift, out_bits)``, checked."""
    if np.abs(weights).max() > WEIGHT_LIMIT:
        raise ValueError(
            f"{name}: weights must lie in -{WEIGHT_LIMIT}..{WEIGHT_LIMIT} (int8, symmetric), "
            f"not {int(weights.min())}..{int(weights.max())}"
        )
    bias = _int_array(bias, "bias", 1, name)
    if bias.shape != (n_out,):
        raise ValueError(f"{name}: bias must have shape ({n_out},), not {bias.shape}")
    if bias.min() < -BIAS_LIMIT or bias.max() > BIAS_LIMIT - 1:
        raise ValueError(f"{name}: bias must lie in the int32 range")
    in_bits = _pos(name, "in_bits", in_bits, MAX_IN_BITS)
    shift = _nonneg(name, "shift", shift, 62)
    if out_bits is not None:
        out_bits = _pos(name, "out_bits", out_bits, 16)
    return bias, in_bits, shift, out_bits


# -- shared formulas -----------------------------------------------------------------------------


def mem_depth(n: int) -> int:
    """Memory depth for ``n`` words, at least 2 (a depth-1 memory has a zero-width address)."""
    return max(n, 2)


def tree_levels(n: int) -> int:
    """Levels of a binary tree over ``n`` leaves."""
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def _relu_unit_figures(out_bits: int | None, in_width: int, lanes: int) -> tuple[int, int]:
    """Latency and flip-flops of the ReLU AMOS unit after a layer (0, 0 without one)."""
    if out_bits is None:
        return 0, 0
    unit = IntAmosUnit.relu(out_bits)
    return (AmosUnit.latency_for(unit),
            AmosUnit.flip_flops_for(unit, in_width, lanes=lanes))


def input_range(in_bits: int, in_signed: bool = False) -> tuple[int, int]:
    """The values an ``in_bits`` input word can hold: ``0..2**in_bits - 1`` (a ReLU AMOS unit's
    spike word) or, with ``in_signed``, the two's-complement ``-2**(in_bits-1)..2**(in_bits-1)
    - 1`` (a trained unit's output, its most significant bit weighing ``-2**(in_bits-1)``)."""
    if in_signed:
        return -(2 ** (in_bits - 1)), 2 ** (in_bits - 1) - 1
    return 0, 2**in_bits - 1


def accumulator_range(weights, bias, in_bits: int, in_signed: bool = False) -> tuple[int, int]:
    """Exact range of every partial sum ``bias_k + sum_{i in prefix} w_ki * a_i``.

    Each input lies in ``[a_lo, a_hi]`` (:func:`input_range`: ``[0, 2**in_bits - 1]``, or with
    ``in_signed`` ``[-2**(in_bits-1), 2**(in_bits-1) - 1]``), a range holding 0. A partial sum
    over any subset of inputs then lies in ``[bias_k + sum_i min(w*a_lo, w*a_hi), bias_k +
    sum_i max(w*a_lo, w*a_hi)]`` and both ends are reached (the worst-case inputs: each input
    at the end of its range that gives its product the wanted sign, or 0 where ``w = 0``). The
    accumulator is as wide as the union over all outputs ``k`` (and the bias-free partial sums)
    needs, no wider. Unsigned inputs give ``[bias_k + sum_{w<0} w*amax, bias_k + sum_{w>0}
    w*amax]``.

    Parameters
    ----------
    weights : (N_out, N_in) int array
    bias : (N_out,) int array
    in_bits : int
    in_signed : bool
        The inputs are ``in_bits``-bit two's-complement words.

    Returns
    -------
    (int, int)
        Inclusive range.
    """
    a_lo, a_hi = input_range(in_bits, in_signed)
    w = np.asarray(weights, dtype=object)
    b = np.asarray(bias, dtype=object)
    # each product's extremes: w*a_hi and w*a_lo (one of them <= 0 <= the other, a_lo <= 0)
    pos = np.where(w > 0, w * a_hi, w * a_lo).sum(axis=1)
    neg = np.where(w < 0, w * a_hi, w * a_lo).sum(axis=1)
    lo = min(int(v) for v in np.minimum(b, 0) + neg)
    hi = max(int(v) for v in np.maximum(b, 0) + pos)
    return lo, hi


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output extent of a convolution along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def is_pointwise(kernel: int, stride: int, padding: int) -> bool:
    """A 1x1 window of stride 1 without padding: its output words are its input words, in the
    same order, so :class:`~amos_hw.engines.window.SlidingWindow` is a FIFO of
    :func:`pointwise_fifo_words` words instead of a line buffer."""
    return kernel == 1 and stride == 1 and padding == 0


def pointwise_fifo_words(cf: int, width: int = 1, rows: int = 0) -> int:
    """Words a pointwise window's FIFO holds: two pixels of ``cf`` words, so that the next
    pixel is written while the matrix-vector unit works through the output folds of the one
    before (it takes a pixel's words during its first fold only); or ``rows`` image rows of
    ``width`` pixels, for a convolution that must not wait for a producer's row bursts
    (:func:`amos_hw.buffers.assign_window_fifos`)."""
    return rows * width * cf if rows else 2 * cf


def window_first_words(height: int, width: int, cf: int, kernel: int, stride: int,
                       padding: int) -> int:
    """Input words a window takes in before it emits its first output word (its latency is one
    cycle more): the rows the first output row needs, or a pointwise window's first word."""
    if is_pointwise(kernel, stride, padding):
        return 1
    return min(height, kernel - padding) * width * cf


def window_held_rows(height: int, width: int, kernel: int, stride: int, padding: int,
                     fifo_rows: int = 0) -> int:
    """Input rows a window may hold ahead of its output: its line buffer's
    (:func:`line_buffer_rows`), or a pointwise window's FIFO in whole rows."""
    if is_pointwise(kernel, stride, padding):
        return fifo_rows or math.ceil(pointwise_fifo_words(1) / width)
    return line_buffer_rows(height, kernel, stride, padding)


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


def _with_lut_memories(params, lut_memories):
    """``params`` (a frozen parameter dataclass with a ``lut_memories`` field and a
    ``memories`` property) with ``lut_memories`` checked against its memories and set."""
    if not lut_memories:
        return params
    names = check_lut_memories(params.name, lut_memories, params.memories)
    return dataclasses.replace(params, lut_memories=names)


# -- dense: the matrix-vector unit ---------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DenseParams:
    """The checked arguments of a :class:`~amos_hw.engines.dense.DenseEngine`, the widths they
    give and the engine's figures. Build it with :meth:`check`; the fields after ``credits``
    are derived (see the engine for the meaning of the others)."""

    name: str
    weights: np.ndarray  # (N_out, N_in) int64, read-only
    bias: np.ndarray  # (N_out,) int64, read-only
    in_bits: int
    shift: int
    out_bits: int | None
    pe: int
    simd: int
    planes: int
    carry: str
    credits: bool
    in_signed: bool  # the inputs are two's-complement words (the sign plane weighs negative)
    w_width: int  # signed width of a weight
    b_width: int  # signed width of a bias
    acc_range: tuple  # exact range of every partial sum (accumulator_range)
    acc_width: int  # signed width of the accumulator
    v_width: int  # signed width of a requantised value
    lut_memories: tuple = ()  # memories kept out of block RAM (lib.bram.style_attrs)
    banked_weights: bool = False  # the weight ROM as one memory (weight_column_bits)
    multiply: bool = False  # products by multipliers (DSP blocks), not spike-gated planes

    @classmethod
    def check(cls, weights, bias, *, in_bits, shift, out_bits, pe=1, simd=1, planes=None,
              name="dense", carry="generic", credits=False, in_signed=False,
              lut_memories=(), banked_weights=False, multiply=False) -> DenseParams:
        """Check the engine's arguments (raising as its constructor does) and derive the
        widths."""
        _check_name(name)
        weights = _int_array(weights, "weights", 2, name)
        n_out, n_in = weights.shape
        bias, in_bits, shift, out_bits = _check_unit_layer(weights, bias, n_out, in_bits, shift,
                                                           out_bits, name)
        pe = _pos(name, "pe", pe)
        simd = _pos(name, "simd", simd)
        if n_out % pe:
            raise ValueError(f"{name}: pe must divide the {n_out} outputs, not {pe}")
        if n_in % simd:
            raise ValueError(f"{name}: simd must divide the {n_in} inputs, not {simd}")
        planes = in_bits if planes is None else _pos(name, "planes", planes, in_bits)
        if in_bits % planes:
            raise ValueError(f"{name}: planes must divide the {in_bits} spikes of an input "
                             f"(in_bits), not {planes}")
        if carry not in CARRY_FORMS:
            raise ValueError(f"{name}: carry must be one of {', '.join(CARRY_FORMS)}, "
                             f"not {carry!r}")
        in_signed = _check_bool(name, "in_signed", in_signed)
        multiply = _check_bool(name, "multiply", multiply)
        w_width = signed_width(int(weights.min()), int(weights.max()))
        if multiply:
            _check_multiply(name, planes, in_bits, in_signed, w_width)
        acc_range = accumulator_range(weights, bias, in_bits, in_signed)
        v_lo, v_hi = (int(v) for v in requant_shift(np.array(acc_range), shift))
        return _with_lut_memories(cls(
            name=name, weights=weights, bias=bias, in_bits=in_bits, shift=shift,
            out_bits=out_bits, pe=pe, simd=simd, planes=planes, carry=carry,
            credits=bool(credits), in_signed=in_signed, w_width=w_width,
            b_width=signed_width(min(0, int(bias.min())), max(0, int(bias.max()))),
            acc_range=acc_range, acc_width=signed_width(*acc_range),
            v_width=signed_width(v_lo, v_hi),
            banked_weights=_check_bool(name, "banked_weights", banked_weights),
            multiply=multiply,
        ), lut_memories)

    n_out = property(lambda self: self.weights.shape[0])
    n_in = property(lambda self: self.weights.shape[1])
    nf = property(lambda self: self.n_out // self.pe, doc="Output folds: N_out / pe.")
    sf = property(lambda self: self.n_in // self.simd, doc="Input words a fold: N_in / simd.")
    passes = property(lambda self: self.in_bits // self.planes,
                      doc="Cycles per input word: in_bits / planes.")
    fused = property(lambda self: self.carry == "ecp5" and self.simd > 1 and not self.multiply,
                     doc="The ECP5 carry form is used (it needs two inputs to pair; products "
                         "by multipliers have no gates to fold).")
    product_width = property(
        lambda self: self.w_width + self.in_bits + (not self.in_signed),
        doc="Signed width of one weight-times-input product (``multiply``).")
    out_width = property(
        lambda self: self.out_bits if self.out_bits is not None else self.v_width,
        doc="Width of one output (unsigned spike word, or signed raw value).",
    )

    @property
    def tree_depth(self) -> int:
        """Registered adder-tree levels: the simd gated weights of each plane, then the planes
        (the ECP5 carry form registers its gated operands one level before the tree). With
        ``multiply``: the registered products, then the simd products' tree."""
        if self.multiply:
            return 1 + tree_levels(self.simd)
        return max(1, tree_levels(self.simd) + tree_levels(self.planes)) + self.fused

    @property
    def tail(self) -> int:
        """Cycles from an output fold's last input word to its result leaving the unit: fetch,
        operand register, tree, Horner register, accumulator, and with credits the FIFO."""
        return 2 + self.tree_depth + (self.passes > 1) + self.credits

    @property
    def result_fifo_depth(self) -> int:
        """Results the engine may have in flight or queued: an output fold starts only with a
        free place for its result (a credit), so the pipeline never stalls and needs no clock
        enable. Enough places that the credits never hold the schedule back while the output
        is ready: the folds that fit in a fold's issue-to-release time, plus one. 0 without
        credits."""
        if not self.credits:
            return 0
        t = self.sf * self.passes
        return -(-(t + self.tail + 3) // t) + 1

    @property
    def cycles(self) -> int:
        """Cycles per input vector: ``(N_out / pe) * (N_in / simd) * passes``."""
        return self.nf * self.sf * self.passes

    @property
    def latency(self) -> int:
        """Cycles from the first input word of a vector to its first output word (no stall):
        ``SF`` input words (``P`` passes each), then :attr:`tail`, then the AMOS unit's
        ``K + 2``."""
        unit_latency, _ = _relu_unit_figures(self.out_bits, self.v_width, self.pe)
        return self.sf * self.passes + self.tail + unit_latency

    @property
    def weight_column_bits(self) -> int:
        """Bits per column of the weight memory: the ECP5's unbanked width for its depth
        (:func:`~amos_hw.lib.bram.unbanked_column_bits`), 0 for one memory (and for weights
        kept out of block RAM). A weight ROM deeper than one block of its cheapest form
        (ResNet8 K = 10 at the ``ecp5-85f`` folding: ``block2`` 's 1,152-word ROMs in rows of
        512 x 36 blocks) had a multiplexer between the blocks and the operand register ``w_r``,
        and the blocks read without their output register: the critical path of a K = 10
        ECP5-85F build at 100 MHz (88.39 MHz, 5.83 ns of block clock-to-out). In columns that
        each fill one block, ``w_r`` reads the blocks directly and becomes their output
        register (:mod:`boards.outreg`), for a few blocks more (12 and 22 become 15 and 29).
        With ``banked_weights`` (set by :func:`amos_hw.lut_memories.assign_lut_memories` when a
        design's blocks exceed its device) the ROM is one memory again, as Yosys banks it."""
        if self.banked_weights or "weights" in self.lut_memories:
            return 0
        return unbanked_column_bits(mem_depth(self.nf * self.sf),
                                    self.pe * self.simd * self.w_width)

    @property
    def memories(self) -> tuple:
        """The memories the engine builds, as :class:`~amos_hw.lib.bram.MemShape`."""
        mems = [MemShape("weights", mem_depth(self.nf * self.sf),
                         self.pe * self.simd * self.w_width, rom=True,
                         column_bits=self.weight_column_bits),
                MemShape("biases", mem_depth(self.nf), self.pe * self.b_width, rom=True)]
        if self.nf > 1:
            mems.append(MemShape("inputs", mem_depth(self.sf), self.simd * self.in_bits))
        if self.credits and self.result_fifo_depth > 1:  # SyncFIFOBuffered: depth - 1 words
            mems.append(MemShape("results", self.result_fifo_depth - 1,
                                 self.pe * self.acc_width))
        return mark_lut(mems, self.lut_memories)

    @property
    def memory_bits(self) -> int:
        """Bits of the weight, bias and input-buffer memories."""
        bits = mem_depth(self.nf * self.sf) * self.pe * self.simd * self.w_width
        bits += mem_depth(self.nf) * self.pe * self.b_width
        if self.nf > 1:
            bits += mem_depth(self.sf) * self.simd * self.in_bits
        return bits

    @property
    def flip_flops(self) -> int:
        """Flip-flops: input register, product and adder-tree pipeline registers, accumulators,
        result registers, control, AMOS units."""
        pe, simd, planes, ww = self.pe, self.simd, self.planes, self.w_width
        lg = max(0, math.ceil(math.log2(simd)))
        ff = simd * self.in_bits + 2 * pe * self.acc_width
        if self.multiply:  # registered products, then their registered tree
            pw = self.product_width
            ff += pe * simd * pw + pe * max(0, simd - 1) * (pw + lg // 2 + 1)
        else:
            # the registered tree: per plane about simd registers of the weight width (the
            # levels halve), then the plane-combining levels
            ff += pe * planes * simd * (ww + lg // 2 + 1)
            ff += pe * planes * (ww + planes + lg)
        ff += pe * simd * ww + simd * self.in_bits  # stage R
        if self.fused:  # odd weights registered gated per plane, even ones and spikes delayed
            ff += pe * (simd // 2) * ww * (planes - 1)
            ff += pe * (simd - simd // 2) * ww
            ff += simd * planes
        ff += 4 * pe * self.b_width
        if self.credits:
            ff += self.result_fifo_depth * pe * self.acc_width  # the result FIFO
        ff += 2 * max(1, math.ceil(math.log2(self.nf * self.sf + 1))) + 8
        if self.passes > 1:  # Horner register, pass counter, stage-H control
            ff += pe * (ww + self.in_bits + 1 + math.ceil(math.log2(simd + 1))) + 8
        _, unit_ff = _relu_unit_figures(self.out_bits, self.v_width, pe)
        return ff + unit_ff

    @property
    def luts(self) -> int:
        """LUT4 estimate: spike gates, the registered adder tree, accumulators, units, and the
        shallow ROMs that synthesis builds from LUTs.

        One LUT4 per spike gate bit (each plane gates each weight; on ECP5 the carry chain does
        not absorb the gate), one per adder bit of the tree (every level is registered, so each
        adder is its own carry chain: per plane ``simd - 1`` adders of the weight width, then
        ``planes - 1`` adders combining the planes), two per accumulator bit (adder and the bias
        multiplexer); the ReLU unit is a comparison and a subtraction per stage. A ROM of at
        most :data:`LUT_ROM_DEPTH` words becomes logic (about ``5/4 * ceil(depth/16)`` LUT4 per
        bit); deeper ones go to block RAM. Calibrated on one synthesis (Yosys 0.70
        ``synth_ecp5``, ``pe=2, simd=16, in_bits=10``, 144 inputs, 16 outputs, ECP5-85F):
        8,654 LUT4 measured (``python -m amos_hw.engines.synth_probe --in-bits 10 --wrap --pe 2
        --simd 16``). With ``carry="ecp5"`` the gates cost no LUT4 of their own (6,175 measured,
        ``--carry ecp5``), only one shared reset-enable LUT4 per odd input and plane.
        Two's-complement inputs (``in_signed``) subtract the sign plane instead of adding it:
        bit-parallel that is the plane adder's subtraction (no LUT4 more); with several passes
        the sign plane's sum is negated on a word's first pass only, a multiplexed negation
        (two LUT4 per bit).
        """
        pe, simd, planes, ww = self.pe, self.simd, self.planes, self.w_width
        lg = max(0, math.ceil(math.log2(simd)))
        # time-serial (one plane a cycle): the spike gates the weight on its way into the adder
        # tree and costs no LUT of its own (measured: synth_probe, docs/architecture.md)
        serial = planes == 1 and self.passes > 1
        if self.multiply:  # the products' tree; the products themselves: multiplier_luts
            per_pe = (simd - 1) * (self.product_width + lg) + simd * self.product_luts
        else:
            # fused: the gates are in the carry cells and the flip-flop resets (below)
            per_pe = 0 if serial or self.fused else simd * planes * ww
            per_pe += planes * (simd - 1) * (ww + lg)
            per_pe += (planes - 1) * (ww + planes + lg)
        per_pe = per_pe * 6 // 5  # fitted to the probe: odd-width levels, feed-through LUTs
        per_pe += 2 * self.acc_width
        if self.passes > 1:  # the Horner adder
            per_pe += 2 * (ww + self.in_bits + math.ceil(math.log2(simd + 1)))
            if self.in_signed:  # the sign plane's sum negated on a word's first pass only
                per_pe += 2 * (ww + lg + 1)
        if self.out_bits is not None:
            per_pe += 2 * (self.out_bits + 1) * self.v_width
        rom = 0
        for depth, width in ((self.nf * self.sf, pe * simd * ww), (self.nf, pe * self.b_width)):
            if depth <= LUT_ROM_DEPTH:
                rom += width * math.ceil(depth / 16) * 5 // 4
        # picking the pass's planes out of each held input word: a P:1 multiplexer per bit
        pick = simd * planes * ((self.passes - 1 + 2) // 3) if self.passes > 1 else 0
        if self.fused:
            # one reset-enable LUT per odd input and plane (shared by the pe outputs); an odd
            # simd leaves one input ungated by the carry cells
            pick += (simd // 2) * planes
            pick += pe * (simd % 2) * planes * ww
        return pe * per_pe + rom + pick + 40

    @property
    def product_luts(self) -> int:
        """LUT4 of one product built from logic (``multiply`` where the family has no DSP
        blocks): the gates and the plane adders of the bit-parallel form, ``w_width *
        in_bits + (in_bits - 1) * (w_width + in_bits)``; 0 without ``multiply``."""
        if not self.multiply:
            return 0
        ww, kin = self.w_width, self.in_bits
        return ww * kin + (kin - 1) * (ww + kin)

    @property
    def multipliers(self) -> int:
        """Variable products a DSP block each (``multiply``: ``pe * simd``), else 0."""
        return self.pe * self.simd if self.multiply else 0

    def figures(self) -> Figures:
        """The engine's :class:`Figures`; with ``multiply`` its products are
        ``multipliers``, their LUT4 (:attr:`product_luts` each, in ``luts``) the
        ``multiplier_luts`` a DSP family saves (:func:`amos_hw.cost.layer_rows`)."""
        saved = self.pe * (self.simd * self.product_luts * 6 // 5)
        return Figures(cycles=self.cycles, latency=self.latency, luts=self.luts,
                       flip_flops=self.flip_flops, memory_bits=self.memory_bits,
                       memories=self.memories, out_width=self.out_width,
                       multipliers=self.multipliers, multiplier_luts=saved)


# -- the sliding window and the convolution ------------------------------------------------------


@dataclass(frozen=True)
class WindowParams:
    """The checked arguments of a :class:`~amos_hw.engines.window.SlidingWindow` and its
    figures. Build it with :meth:`check`."""

    name: str
    height: int
    width: int
    channels: int
    kernel: int
    stride: int
    padding: int
    simd: int
    bits: int
    fifo_rows: int = 0

    @classmethod
    def check(cls, *, height, width, channels, kernel, stride, padding, simd, bits,
              name="conv", fifo_rows=0) -> WindowParams:
        """Check the window's arguments, raising as its constructor does."""
        _check_name(name)
        height, width, channels, kernel, stride, simd, bits = (
            _pos(name, what, value)
            for what, value in (("height", height), ("width", width), ("channels", channels),
                                ("kernel", kernel), ("stride", stride), ("simd", simd),
                                ("bits", bits)))
        padding = _nonneg(name, "padding", padding)
        if padding >= kernel:
            raise ValueError(f"{name}: padding must be less than kernel={kernel}, not {padding}")
        if channels % simd:
            raise ValueError(f"{name}: simd must divide the {channels} input channels, not {simd}")
        if out_size(height, kernel, stride, padding) < 1 or \
                out_size(width, kernel, stride, padding) < 1:
            raise ValueError(
                f"{name}: a {kernel}x{kernel} window with padding {padding} does not fit a "
                f"{height}x{width} image"
            )
        fifo_rows = _nonneg(name, "fifo_rows", fifo_rows)
        if fifo_rows and not is_pointwise(kernel, stride, padding):
            raise ValueError(f"{name}: fifo_rows is for a pointwise window (1x1, stride 1, no "
                             f"padding), not a {kernel}x{kernel} one of stride {stride}")
        return cls(name=name, height=height, width=width, channels=channels, kernel=kernel,
                   stride=stride, padding=padding, simd=simd, bits=bits, fifo_rows=fifo_rows)

    cf = property(lambda self: self.channels // self.simd, doc="Words per pixel.")
    out_height = property(
        lambda self: out_size(self.height, self.kernel, self.stride, self.padding))
    out_width = property(
        lambda self: out_size(self.width, self.kernel, self.stride, self.padding))
    rows = property(
        lambda self: line_buffer_rows(self.height, self.kernel, self.stride, self.padding),
        doc="Image rows in the line buffer (none in the pointwise form).")
    words_per_window = property(lambda self: self.kernel * self.kernel * self.cf)
    pointwise = property(lambda self: is_pointwise(self.kernel, self.stride, self.padding),
                         doc="A FIFO of :attr:`fifo_words` words, no line buffer "
                             "(:func:`is_pointwise`).")
    fifo_words = property(lambda self: pointwise_fifo_words(self.cf, self.width, self.fifo_rows),
                          doc="The pointwise form's FIFO: words its memory holds.")

    @property
    def latency(self) -> int:
        """Cycles from an image's first input word to its first output word (input never
        idle): :func:`window_first_words` and two (the line buffer's read and the output
        register behind it), one in the pointwise form (its ``SyncFIFOBuffered`` passes its
        first word on after two cycles)."""
        first = window_first_words(self.height, self.width, self.cf, self.kernel, self.stride,
                                   self.padding)
        return first + (1 if self.pointwise else 2)

    @property
    def memories(self) -> tuple:
        """The line buffer, or the pointwise FIFO's memory (a ``SyncFIFOBuffered`` of
        ``fifo_words + 1``: its output register holds the last word), as
        :class:`~amos_hw.lib.bram.MemShape`."""
        if self.pointwise:
            return (MemShape("fifo", self.fifo_words, self.simd * self.bits),)
        return (MemShape("lines", self.rows * self.width * self.cf, self.simd * self.bits),)

    @property
    def memory_bits(self) -> int:
        """Bits of the line buffer (or of the pointwise FIFO)."""
        return sum(mem.bits for mem in self.memories)

    @property
    def flip_flops(self) -> int:
        """Counters, address registers and the output stage (the pointwise FIFO: its two
        pointers, its level and its output register)."""
        if self.pointwise:
            a = max(1, math.ceil(math.log2(self.fifo_words + 2)))
            return 3 * a + self.simd * self.bits + 2
        a = max(1, math.ceil(math.log2(self.rows * self.width * self.cf + 1)))
        span = max(1, math.ceil(math.log2(max(self.height, self.width) + 2 * self.kernel)))
        # five address-wide registers: the write address and column, the two ring bases, the
        # registered read address
        return 5 * a + 8 * span + 6 + self.simd * self.bits  # and the output register

    @property
    def luts(self) -> int:
        """LUT4 estimate: address adders and comparisons, the padding zero mux (the pointwise
        FIFO: its pointer and level arithmetic, the output register's mux)."""
        if self.pointwise:
            a = max(1, math.ceil(math.log2(self.fifo_words + 2)))
            return 6 * a + self.simd * self.bits + 8
        a = max(1, math.ceil(math.log2(self.rows * self.width * self.cf + 1)))
        return 8 * a + self.simd * self.bits + 60


@dataclass(frozen=True, eq=False)
class ConvParams:
    """The checked arguments of a :class:`~amos_hw.engines.conv.ConvEngine`: its window, its
    matrix-vector unit (a dense engine with credits over the ``(C_out, k*k*C_in)`` weights) and
    the engine's figures. Build it with :meth:`check`."""

    name: str
    weights: np.ndarray  # (C_out, k, k, C_in) int64, read-only
    window: WindowParams
    mvu: DenseParams

    @classmethod
    def check(cls, weights, bias, *, height, width, stride=1, padding=0, in_bits, shift,
              out_bits, pe=1, simd=1, planes=None, name="conv", carry="generic",
              in_signed=False, fifo_rows=0, lut_memories=(),
              banked_weights=False, multiply=False) -> ConvParams:
        """Check the engine's arguments, raising as its constructor does."""
        _check_name(name)
        weights = _int_array(weights, "weights", 4, name)
        c_out, k, k2, c_in = weights.shape
        if k != k2:
            raise ValueError(f"{name}: weights must be (C_out, k, k, C_in), not {weights.shape}")
        simd = _pos(name, "simd", simd)
        if c_in % simd:
            raise ValueError(f"{name}: simd must divide the {c_in} input channels, not {simd}")
        mvu = DenseParams.check(weights.reshape(c_out, k * k * c_in), bias, in_bits=in_bits,
                                shift=shift, out_bits=out_bits, pe=pe, simd=simd, planes=planes,
                                name=name, carry=carry, credits=True, in_signed=in_signed,
                                lut_memories=lut_memories, banked_weights=banked_weights,
                                multiply=multiply)
        window = WindowParams.check(height=height, width=width, channels=c_in, kernel=k,
                                    stride=stride, padding=padding, simd=simd, bits=in_bits,
                                    name=name, fifo_rows=fifo_rows)
        return cls(name=name, weights=weights, window=window, mvu=mvu)

    in_shape = property(
        lambda self: (self.window.height, self.window.width, self.window.channels))
    out_shape = property(
        lambda self: (self.window.out_height, self.window.out_width, self.weights.shape[0]))
    in_signed = property(lambda self: self.mvu.in_signed,
                         doc="The inputs are two's-complement words (DenseParams.in_signed).")

    @property
    def cycles(self) -> int:
        """Cycles per image: the larger of the compute time and the input time."""
        w = self.window
        compute = w.out_height * w.out_width * self.mvu.cycles
        return max(compute, w.height * w.width * w.channels // w.simd)

    @property
    def latency(self) -> int:
        """Cycles from an image's first input word to its first output word (the window, the
        skid buffer between them, the matrix-vector unit)."""
        return self.window.latency + SkidBuffer.latency + self.mvu.latency

    @property
    def memories(self) -> tuple:
        return self.window.memories + self.mvu.memories

    @property
    def memory_bits(self) -> int:
        return self.window.memory_bits + self.mvu.memory_bits

    @property
    def flip_flops(self) -> int:
        skid = SkidBuffer.flip_flops_for(self.window.simd * self.window.bits)
        return self.window.flip_flops + skid + self.mvu.flip_flops

    @property
    def luts(self) -> int:
        return self.window.luts + self.mvu.luts

    def figures(self) -> Figures:
        """The engine's :class:`Figures` (the products form's multipliers are the
        matrix-vector unit's)."""
        mvu = self.mvu.figures()
        return Figures(cycles=self.cycles, latency=self.latency, luts=self.luts,
                       flip_flops=self.flip_flops, memory_bits=self.memory_bits,
                       memories=self.memories, out_width=self.mvu.out_width,
                       multipliers=mvu.multipliers, multiplier_luts=mvu.multiplier_luts)


# -- windowed per-channel engines: max / average pooling, depthwise convolution -----------------


def _reducer_counters(window: WindowParams) -> int:
    """Flip-flops of the reducer's window-word counter (``k*k*CF`` words) and its flags."""
    words = window.words_per_window
    return max(1, math.ceil(math.log2(words + 1))) + 4


@dataclass(frozen=True)
class PoolParams:
    """The checked arguments of a :class:`~amos_hw.engines.pool.MaxPoolEngine` (``op="max"``)
    or :class:`~amos_hw.engines.pool.AvgPoolEngine` (``op="avg"``) and their figures: a sliding
    window, a skid buffer and a per-channel reducer. Build it with :meth:`check`."""

    name: str
    op: str
    window: WindowParams
    in_bits: int
    lanes: int

    @classmethod
    def check(cls, *, op, height, width, channels, kernel, stride=1, padding=0, in_bits,
              lanes=1, name="pool") -> PoolParams:
        """Check the engine's arguments, raising as its constructor does."""
        _check_name(name)
        if op not in ("max", "avg"):
            raise ValueError(f"{name}: op must be 'max' or 'avg', not {op!r}")
        in_bits = _pos(name, "in_bits", in_bits, MAX_IN_BITS)
        lanes = _pos(name, "lanes", lanes)
        window = WindowParams.check(height=height, width=width, channels=channels,
                                    kernel=kernel, stride=stride, padding=padding, simd=lanes,
                                    bits=in_bits, name=name)
        return cls(name=name, op=op, window=window, in_bits=in_bits, lanes=lanes)

    in_shape = property(
        lambda self: (self.window.height, self.window.width, self.window.channels))
    out_shape = property(
        lambda self: (self.window.out_height, self.window.out_width, self.window.channels))

    @property
    def out_width(self) -> int:
        """Bits of an output: the input's for a maximum, ``in_bits + ceil(log2(k*k))`` for a
        window sum (its exact bound ``k*k*(2**in_bits - 1)`` fits)."""
        k2 = self.window.kernel ** 2
        return self.in_bits if self.op == "max" else self.in_bits + math.ceil(math.log2(k2))

    @property
    def cycles(self) -> int:
        """Cycles per image: the window's words (``Ho*Wo*k*k*C/lanes``, one a cycle) or the
        input's (``H*W*C/lanes``), the larger."""
        w = self.window
        return max(w.out_height * w.out_width * w.words_per_window, w.height * w.width * w.cf)

    @property
    def latency(self) -> int:
        """Cycles from an image's first input word to its first output word: the window, the
        skid buffer, the first channel group's ``k*k`` window words and the reducer's two
        stages."""
        w = self.window
        return w.latency + SkidBuffer.latency + (w.kernel ** 2 - 1) * w.cf + 2

    @property
    def memories(self) -> tuple:
        """The line buffer, and the ring of running results when it is a memory
        (:func:`~amos_hw.lib.ring.in_memory`)."""
        return self.window.memories + ring_memories(self.window.cf,
                                                    self.lanes * self.out_width, "accs")

    @property
    def memory_bits(self) -> int:
        """Bits of :attr:`memories`."""
        return sum(mem.bits for mem in self.memories)

    @property
    def flip_flops(self) -> int:
        """The window, its skid buffer, the input register, the ring of ``C/lanes`` running
        results (:func:`~amos_hw.lib.ring.ring_flip_flops`), the output register and the
        counters."""
        w, width = self.window, self.lanes * self.out_width
        ff = w.flip_flops + SkidBuffer.flip_flops_for(self.lanes * self.in_bits)
        ff += self.lanes * self.in_bits + ring_flip_flops(w.cf, width) + width
        return ff + _reducer_counters(w)

    @property
    def luts(self) -> int:
        """The window, and per lane a comparator and multiplexer (max) or an adder and the
        first-tap multiplexer (sum) of the output width."""
        return self.window.luts + self.lanes * 2 * self.out_width + 20

    def figures(self) -> Figures:
        """The engine's :class:`Figures`."""
        return Figures(cycles=self.cycles, latency=self.latency, luts=self.luts,
                       flip_flops=self.flip_flops, memory_bits=self.memory_bits,
                       memories=self.memories, out_width=self.out_width)


@dataclass(frozen=True, eq=False)
class DepthwiseParams:
    """The checked arguments of a :class:`~amos_hw.engines.depthwise.DepthwiseConvEngine`, the
    widths they give and its figures: a sliding window, a skid buffer, per channel a
    spike-gated multiply-accumulate into a ring of accumulators, the requantisation and the
    ReLU AMOS unit. Build it with :meth:`check`.

    With ``in_signed`` the inputs are ``in_bits``-bit two's-complement words (a trained unit's
    ``y``, :func:`input_range`): the accumulator is sized for that range
    (:func:`accumulator_range` with ``in_signed``); cycles, latency and the other formulas are
    those of unsigned inputs (the sign plane's gated weight is subtracted in the product's
    adder tree instead of added)."""

    name: str
    weights: np.ndarray  # (C, k, k, 1) int64, read-only
    bias: np.ndarray  # (C,) int64, read-only
    window: WindowParams
    in_bits: int
    shift: int
    out_bits: int | None
    lanes: int
    in_signed: bool  # the inputs are two's-complement words (the sign plane weighs negative)
    w_width: int
    b_width: int
    acc_range: tuple
    acc_width: int
    v_width: int
    lut_memories: tuple = ()  # memories kept out of block RAM (lib.bram.style_attrs)

    @classmethod
    def check(cls, weights, bias, *, height, width, stride=1, padding=0, in_bits, shift,
              out_bits, lanes=1, name="dwconv", in_signed=False,
              lut_memories=()) -> DepthwiseParams:
        """Check the engine's arguments, raising as its constructor does."""
        _check_name(name)
        weights = _int_array(weights, "weights", 4, name)
        c, k, k2, one = weights.shape
        if k != k2 or one != 1:
            raise ValueError(f"{name}: weights must be (C, k, k, 1), not {weights.shape}")
        bias, in_bits, shift, out_bits = _check_unit_layer(weights, bias, c, in_bits, shift,
                                                           out_bits, name)
        lanes = _pos(name, "lanes", lanes)
        window = WindowParams.check(height=height, width=width, channels=c, kernel=k,
                                    stride=stride, padding=padding, simd=lanes, bits=in_bits,
                                    name=name)
        in_signed = _check_bool(name, "in_signed", in_signed)
        acc_range = accumulator_range(weights.reshape(c, k * k), bias, in_bits, in_signed)
        v_lo, v_hi = (int(v) for v in requant_shift(np.array(acc_range), shift))
        return _with_lut_memories(cls(
            name=name, weights=weights, bias=bias, window=window, in_bits=in_bits, shift=shift,
            out_bits=out_bits, lanes=lanes, in_signed=in_signed,
            w_width=signed_width(int(weights.min()), int(weights.max())),
            b_width=signed_width(min(0, int(bias.min())), max(0, int(bias.max()))),
            acc_range=acc_range, acc_width=signed_width(*acc_range),
            v_width=signed_width(v_lo, v_hi)), lut_memories)

    in_shape = property(
        lambda self: (self.window.height, self.window.width, self.window.channels))
    out_shape = property(
        lambda self: (self.window.out_height, self.window.out_width, self.window.channels))
    out_width = property(
        lambda self: self.out_bits if self.out_bits is not None else self.v_width,
        doc="Width of one output (unsigned spike word, or signed raw value).")
    #: Weight words: one per window word (``k*k*C/lanes``), ``lanes`` weights each.
    weight_words = property(lambda self: self.window.words_per_window)

    @property
    def cycles(self) -> int:
        """Cycles per image, as :attr:`PoolParams.cycles`: one window word a cycle."""
        w = self.window
        return max(w.out_height * w.out_width * w.words_per_window, w.height * w.width * w.cf)

    @property
    def latency(self) -> int:
        """Cycles from an image's first input word to its first output word: the window, the
        skid buffer, the first channel group's window words, three stages (input and weight,
        product, accumulator) and the AMOS unit's ``K + 2``."""
        w = self.window
        unit_latency, _ = _relu_unit_figures(self.out_bits, self.v_width, self.lanes)
        return w.latency + SkidBuffer.latency + (w.kernel ** 2 - 1) * w.cf + 3 + unit_latency

    @property
    def memories(self) -> tuple:
        """The line buffer, the weight ROM, the bias ROM and, when it is a memory
        (:func:`~amos_hw.lib.ring.in_memory`), the ring of accumulators."""
        cf = self.window.cf
        return mark_lut(self.window.memories + (
            MemShape("weights", mem_depth(self.weight_words), self.lanes * self.w_width,
                     rom=True),
            MemShape("biases", mem_depth(cf), self.lanes * self.b_width, rom=True),
            *ring_memories(cf, self.lanes * self.acc_width, "accs")), self.lut_memories)

    @property
    def memory_bits(self) -> int:
        """Bits of :attr:`memories`."""
        return sum(mem.bits for mem in self.memories)

    @property
    def flip_flops(self) -> int:
        """The window and its skid buffer, the input register, the product, bias and
        result registers, the ring of ``C/lanes`` accumulators
        (:func:`~amos_hw.lib.ring.ring_flip_flops`), the counters and the AMOS unit."""
        w, lanes = self.window, self.lanes
        ff = w.flip_flops + SkidBuffer.flip_flops_for(lanes * self.in_bits)
        ff += lanes * (self.in_bits + self.w_width + self.in_bits + 2 * self.b_width)
        ff += ring_flip_flops(w.cf, lanes * self.acc_width) + lanes * self.acc_width
        ff += 3 * _reducer_counters(w)
        _, unit_ff = _relu_unit_figures(self.out_bits, self.v_width, lanes)
        return ff + unit_ff

    @property
    def luts(self) -> int:
        """The window, and per lane the spike-gated product (one LUT4 per gate bit and per
        adder bit), the accumulator with its bias multiplexer, the ReLU unit; shallow ROMs as
        logic."""
        lanes, ww, b = self.lanes, self.w_width, self.in_bits
        per_lane = b * ww + (b - 1) * (ww + b)  # gates, then the shifted-weight adders
        per_lane = per_lane * 6 // 5 + 2 * self.acc_width
        if self.out_bits is not None:
            per_lane += 2 * (self.out_bits + 1) * self.v_width
        rom = 0
        for depth, width in ((self.weight_words, lanes * ww),
                             (self.window.cf, lanes * self.b_width)):
            if depth <= LUT_ROM_DEPTH:
                rom += width * math.ceil(depth / 16) * 5 // 4
        return self.window.luts + lanes * per_lane + rom + 30

    def figures(self) -> Figures:
        """The engine's :class:`Figures`."""
        return Figures(cycles=self.cycles, latency=self.latency, luts=self.luts,
                       flip_flops=self.flip_flops, memory_bits=self.memory_bits,
                       memories=self.memories, out_width=self.out_width)


# -- global average pooling ----------------------------------------------------------------------


@dataclass(frozen=True)
class GapParams:
    """The checked arguments of a :class:`~amos_hw.engines.gap.GlobalAvgPoolEngine` and its
    figures. Build it with :meth:`check`."""

    name: str
    height: int
    width: int
    channels: int
    in_bits: int
    lanes: int
    in_signed: bool = False
    lut_memories: tuple = ()  # memories kept out of block RAM (lib.bram.style_attrs)

    @classmethod
    def check(cls, *, height, width, channels, in_bits, lanes=1, name="gap",
              in_signed=False, lut_memories=()) -> GapParams:
        """Check the engine's arguments, raising as its constructor does."""
        _check_name(name)
        height, width, channels, lanes = (
            _pos(name, what, value)
            for what, value in (("height", height), ("width", width), ("channels", channels),
                                ("lanes", lanes)))
        in_bits = _pos(name, "in_bits", in_bits, MAX_IN_BITS)
        if channels % lanes:
            raise ValueError(f"{name}: lanes must divide the {channels} channels, not {lanes}")
        in_signed = _check_bool(name, "in_signed", in_signed)
        return _with_lut_memories(cls(name=name, height=height, width=width, channels=channels,
                                      in_bits=in_bits, lanes=lanes, in_signed=in_signed),
                                  lut_memories)

    words = property(lambda self: self.channels // self.lanes, doc="Words per pixel.")
    out_signed = property(lambda self: self.in_signed,
                          doc="The sums are two's-complement words (when the inputs are).")

    @property
    def sum_range(self) -> tuple[int, int]:
        """Exact range of a sum: ``H*W`` times the input range (:func:`input_range`), both ends
        reached (every input at that end)."""
        lo, hi = input_range(self.in_bits, self.in_signed)
        n = self.height * self.width
        return n * lo, n * hi

    @property
    def sum_bits(self) -> int:
        """Width of a sum: unsigned, the exact bound ``H*W*(2**in_bits - 1)``; with
        ``in_signed`` the signed width of :attr:`sum_range`, ``H*W*[-2**(in_bits-1),
        2**(in_bits-1) - 1]``."""
        if self.in_signed:
            return signed_width(*self.sum_range)
        return (self.height * self.width * (2**self.in_bits - 1)).bit_length()

    @property
    def cycles(self) -> int:
        """Cycles per image: one input word per cycle."""
        return self.height * self.width * self.words

    @property
    def latency(self) -> int:
        """Cycles from the first input word to the first output word."""
        return (self.height * self.width - 1) * self.words + 1

    @property
    def memories(self) -> tuple:
        """The ring of running sums when it is a memory (:func:`~amos_hw.lib.ring.in_memory`),
        else none."""
        return mark_lut(ring_memories(self.words, self.lanes * self.sum_bits, "sums"),
                        self.lut_memories)

    @property
    def memory_bits(self) -> int:
        """Bits of :attr:`memories`."""
        return sum(mem.bits for mem in self.memories)

    @property
    def flip_flops(self) -> int:
        """The ring of running sums (:func:`~amos_hw.lib.ring.ring_flip_flops`), the output
        register and the counters."""
        ctr = max(1, math.ceil(math.log2(self.height * self.width * self.words + 1)))
        width = self.lanes * self.sum_bits
        return ring_flip_flops(self.words, width) + width + ctr + 2

    @property
    def luts(self) -> int:
        """LUT4 estimate: one adder of ``sum_bits`` per lane, counters."""
        return self.lanes * 2 * self.sum_bits + 20

    def figures(self) -> Figures:
        """The engine's :class:`Figures`."""
        return Figures(cycles=self.cycles, latency=self.latency, luts=self.luts,
                       flip_flops=self.flip_flops, memory_bits=self.memory_bits,
                       memories=self.memories, out_width=self.sum_bits)


# -- residual add --------------------------------------------------------------------------------


def add_sum_range(main_width: int, skip_bits: int, skip_signed: bool,
                  skip_shift: int, main_shift: int = 0) -> tuple[int, int]:
    """Range of ``(main << main_shift) + (skip << skip_shift)`` over the residual add's ports:
    ``main`` a signed ``main_width``-bit accumulator, ``skip`` an unsigned ``skip_bits``-bit
    spike word or, with ``skip_signed``, a two's-complement ``skip_bits``-bit value (a
    projection conv's accumulator or a trained unit's word)."""
    m_lo, m_hi = -(2 ** (main_width - 1)) << main_shift, (2 ** (main_width - 1) - 1) << main_shift
    if skip_signed:
        s_lo, s_hi = -(2 ** (skip_bits - 1)), 2 ** (skip_bits - 1) - 1
    else:
        s_lo, s_hi = 0, 2**skip_bits - 1
    return m_lo + (s_lo << skip_shift), m_hi + (s_hi << skip_shift)


def add_v_width(main_width: int, skip_bits: int, skip_signed: bool, skip_shift: int,
                shift: int, main_shift: int = 0) -> int:
    """Signed width of ``v = (sum + 2**(shift-1)) >> shift`` (``shift = 0``: the sum itself)
    over :func:`add_sum_range`: the raw add engine's output element (``out_bits=None``)."""
    lo, hi = add_sum_range(main_width, skip_bits, skip_signed, skip_shift, main_shift)
    v_lo, v_hi = (int(v) for v in requant_shift(np.array([lo, hi]), shift))
    return signed_width(v_lo, v_hi)


@dataclass(frozen=True)
class AddParams:
    """The checked arguments of a :class:`~amos_hw.engines.residual.ResidualAddEngine`, the
    widths they give and the engine's figures. Build it with :meth:`check`."""

    name: str
    lanes: int
    words_per_image: int
    main_width: int
    skip_bits: int
    skip_shift: int
    shift: int
    out_bits: int | None
    skip_depth: int
    skip_signed: bool
    main_shift: int = 0

    @classmethod
    def check(cls, *, lanes, words_per_image, main_width, skip_bits, skip_shift, shift,
              out_bits, skip_depth, skip_signed=False, main_shift=0,
              name="add") -> AddParams:
        """Check the engine's arguments, raising as its constructor does."""
        _check_name(name)
        lanes = _pos(name, "lanes", lanes)
        words_per_image = _pos(name, "words_per_image", words_per_image)
        main_width = _pos(name, "main_width", main_width, 64)
        skip_bits = _pos(name, "skip_bits", skip_bits, 64)
        skip_shift = _nonneg(name, "skip_shift", skip_shift, 30)
        main_shift = _nonneg(name, "main_shift", main_shift, 30)
        shift = _nonneg(name, "shift", shift, 62)
        if out_bits is not None:
            out_bits = _pos(name, "out_bits", out_bits, 16)
        skip_depth = _pos(name, "skip_depth", skip_depth)
        if not isinstance(skip_signed, bool):
            raise ValueError(f"{name}: skip_signed must be a bool, not {skip_signed!r}")
        return cls(name=name, lanes=lanes, words_per_image=words_per_image,
                   main_width=main_width, skip_bits=skip_bits, skip_shift=skip_shift,
                   shift=shift, out_bits=out_bits, skip_depth=skip_depth,
                   skip_signed=skip_signed, main_shift=main_shift)

    @property
    def sum_range(self) -> tuple[int, int]:
        """Range of aligned main + aligned skip (:func:`add_sum_range`)."""
        return add_sum_range(self.main_width, self.skip_bits, self.skip_signed, self.skip_shift,
                             self.main_shift)

    sum_width = property(lambda self: signed_width(*self.sum_range),
                         doc="Width of main + aligned skip (signed).")

    @property
    def v_width(self) -> int:
        """Signed width of a requantised sum (:func:`add_v_width`)."""
        return add_v_width(self.main_width, self.skip_bits, self.skip_signed, self.skip_shift,
                           self.shift, self.main_shift)

    out_width = property(
        lambda self: self.out_bits if self.out_bits is not None else self.v_width)

    @property
    def cycles(self) -> int:
        """Cycles per image: one word per cycle."""
        return self.words_per_image

    @property
    def latency(self) -> int:
        """Cycles from the first main word (its skip word already queued) to the first output."""
        unit_latency, _ = _relu_unit_figures(self.out_bits, self.v_width, self.lanes)
        return 1 + unit_latency

    @property
    def skip_column_bits(self) -> int:
        """Bits per column of the skip FIFO's memory (:class:`~amos_hw.lib.bram_fifo.BramFifo`):
        the ECP5's unbanked width for its depth (:func:`~amos_hw.lib.bram.unbanked_column_bits`),
        0 for one memory. A deep skip FIFO in depth banks of 2,048 x 9 blocks had a
        multiplexer between the blocks and the stage register behind them, the critical path
        of a K = 6 ECP5-85F build at 100 MHz (99.97 MHz); in columns the stage register reads
        the blocks directly and becomes their output register (:mod:`boards.outreg`)."""
        if self.skip_depth < 2:
            return 0
        return unbanked_column_bits(self.skip_depth - 1, self.lanes * self.skip_bits)

    @property
    def memories(self) -> tuple:
        """The skip FIFO and the register queue behind it (each holding ``depth - 1`` words in
        its memory, the skip FIFO's in columns of :attr:`skip_column_bits`), as
        :class:`~amos_hw.lib.bram.MemShape`."""
        width = self.lanes * self.skip_bits
        return tuple(MemShape(name, depth - 1, width, column_bits=cb)
                     for name, depth, cb in (("skip_fifo", self.skip_depth, self.skip_column_bits),
                                             ("skip_regs", SKIP_REGS, 0))
                     if depth > 1)

    @property
    def memory_bits(self) -> int:
        """Bits of the skip FIFO."""
        return self.skip_depth * self.lanes * self.skip_bits

    @property
    def flip_flops(self) -> int:
        word = self.lanes * self.skip_bits
        ff = self.lanes * self.sum_width + 2 * max(1, math.ceil(math.log2(self.skip_depth + 1)))
        ff += word + 4  # the buffered FIFO's output register
        ff += SKIP_REGS * word + 4  # the register queue behind it
        ff += word + 1  # the stage register between the two
        _, unit_ff = _relu_unit_figures(self.out_bits, self.v_width, self.lanes)
        return ff + unit_ff

    @property
    def luts(self) -> int:
        per_lane = self.sum_width + self.v_width
        if self.out_bits is not None:
            per_lane += 2 * (self.out_bits + 1) * self.v_width
        return self.lanes * per_lane + 30

    def figures(self) -> Figures:
        """The engine's :class:`Figures`."""
        return Figures(cycles=self.cycles, latency=self.latency, luts=self.luts,
                       flip_flops=self.flip_flops, memory_bits=self.memory_bits,
                       memories=self.memories, out_width=self.out_width)
