"""Dense (fully connected) engine: a matrix-vector unit fed by AMOS spikes, with PE x SIMD folding.

The same matrix-vector unit computes a convolution once a window generator has turned the image
into im2col vectors (:mod:`amos_hw.engines.conv`).
"""
from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from amos_hw.engines.carry import CARRY_FORMS, gated_pair_sum
from amos_hw.lib.amos_unit import AmosUnit
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift, signed_width

__all__ = [
    "DenseEngine",
    "accumulator_range",
    "counter",
    "mem_depth",
    "spike_product",
    "tree_sum",
]

WEIGHT_LIMIT = 127  # int8, symmetric (docs/integer_semantics.md)
BIAS_LIMIT = 2**31  # int32
#: ROMs up to this depth are built from LUTs by synthesis (see DenseEngine.luts).
LUT_ROM_DEPTH = 64


def _pos_int(value, what: str, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{what} must be at most {hi}, not {value!r}")
    return int(value)


def _nonneg_int(value, what: str, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, not {value!r}")
    if value > hi:
        raise ValueError(f"{what} must be at most {hi}, not {value!r}")
    return int(value)


def _int_array(value, what: str, ndim: int, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: {what} must hold integers, not {arr.dtype}")
    if arr.ndim != ndim or arr.size == 0:
        raise ValueError(
            f"{name}: {what} must be a non-empty {ndim}-D array, not shape {arr.shape}"
        )
    return arr.astype(np.int64)


def counter(n: int, name: str) -> Signal:
    """A counter for ``0..n-1``, at least one bit wide (a zero-width signal becomes a ``[-1:0]``
    vector in Verilog, which lint rejects)."""
    return Signal(range(max(n, 2)), name=name)


def mem_depth(n: int) -> int:
    """Memory depth for ``n`` words, at least 2 (a depth-1 memory has a zero-width address)."""
    return max(n, 2)


def accumulator_range(weights, bias, in_bits: int) -> tuple[int, int]:
    """Exact range of every partial sum ``bias_k + sum_{i in prefix} w_ki * a_i``.

    With ``0 <= a_i <= 2**in_bits - 1`` a partial sum over any subset of inputs lies in
    ``[bias_k + sum_{w<0} w*amax, bias_k + sum_{w>0} w*amax]`` and both ends are reached (the
    worst-case inputs: ``amax`` where ``w`` has the sign, 0 elsewhere). The accumulator is as wide
    as the union over all outputs ``k`` (and the bias-free partial sums) needs, no wider.

    Parameters
    ----------
    weights : (N_out, N_in) int array
    bias : (N_out,) int array
    in_bits : int

    Returns
    -------
    (int, int)
        Inclusive range.
    """
    amax = 2**in_bits - 1
    w = np.asarray(weights, dtype=object)
    b = np.asarray(bias, dtype=object)
    pos = (np.where(w > 0, w, 0) * amax).sum(axis=1)
    neg = (np.where(w < 0, w, 0) * amax).sum(axis=1)
    lo = min(int(v) for v in np.minimum(b, 0) + neg)
    hi = max(int(v) for v in np.maximum(b, 0) + pos)
    return lo, hi


def _levels(n: int) -> int:
    """Levels of a binary tree over ``n`` leaves."""
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def registered_tree(m, values, en, name: str):
    """A balanced binary adder tree with a register after every level (enabled by ``en``):
    each level is one plain adder per pair, which synthesis maps to a carry chain (an ECP5
    ``CCU2C``, an iCE40 ``SB_CARRY``) instead of merging the whole tree into a LUT network.
    Returns the root (a register, or the only value when there is one) and the levels."""
    values = list(values)
    level = 0
    while len(values) > 1:
        values = [registered(m, values[i] + values[i + 1] if i + 1 < len(values) else values[i],
                             en, f"{name}_l{level}_{i // 2}")
                  for i in range(0, len(values), 2)]
        level += 1
    return values[0], level


def registered(m, value, en, name: str):
    """``value`` through a register enabled by ``en`` (one adder-tree level's output)."""
    r = Signal(value.shape(), name=name)
    with m.If(en):
        m.d.sync += r.eq(value)
    return r


def tree_sum(values):
    """Balanced adder tree (Amaranth's ``+`` widens, so no level can overflow)."""
    values = list(values)
    if not values:
        return Const(0, signed(2))
    while len(values) > 1:
        values = [
            values[i] + values[i + 1] if i + 1 < len(values) else values[i]
            for i in range(0, len(values), 2)
        ]
    return values[0]


def spike_product(w, a, bits: int):
    """``w * a`` as spike-gated shifted weights: ``sum_t z_t * (w << (bits-1-t))``.

    ``a`` is the spike word of a ReLU AMOS unit (bit ``bits-1-t`` is the spike at time step
    ``t``), so the product needs no multiplier: each spike gates a shifted copy of the weight.
    """
    return tree_sum(Mux(a[b], w.shift_left(b), 0) for b in range(bits))


class DenseEngine(wiring.Component):
    """Fully connected layer on AMOS spikes, folded over ``pe`` outputs and ``simd`` inputs.

    The engine computes, for each input vector ``a`` (``N_in`` activations, each the ``in_bits``
    spike word of a ReLU AMOS unit), ``acc = W a + bias``, ``v = (acc + 2**(S-1)) >> S`` and
    then either the ReLU AMOS unit's spikes ``clamp(v, 0, 2**out_bits - 1)`` or, with
    ``out_bits=None``, the raw ``v`` (logits).

    Schedule: bit-parallel over the spike lane. Each cycle it takes ``simd`` spike words and, for
    ``pe`` outputs at once, adds the weights shifted by each spike's time step
    (:func:`spike_product`; no multiplier, no DSP). One output fold (``pe`` outputs) takes
    ``SF = N_in / simd`` cycles and an input vector ``NF * SF`` cycles (``NF = N_out / pe``).
    The inputs stream in during the first output fold and are kept in a buffer memory for the
    others. Weights (``pe * simd`` per word, ``NF * SF`` words) and biases live in
    :class:`amaranth.lib.memory.Memory` initialised from the integers.

    With ``planes < in_bits`` the spike lane is taken ``planes`` time steps per cycle instead,
    most significant first (``planes=1``: one spike plane per cycle, the SNN's own time-serial
    order): each input word is held for ``P = in_bits / planes`` passes, every pass adds the
    weights gated by ``planes`` spikes, and a Horner register ``h = (h << planes) + dot`` folds
    the passes before the accumulation. A lane then costs a ``planes``-row product instead of an
    ``in_bits``-row one, for ``P`` times the cycles.

    Throughput: one input vector every :attr:`expected_cycles` cycles when the input is always
    valid and the output always ready. Latency: :attr:`latency` cycles from the first input word
    of a vector to the first output word.

    Parameters
    ----------
    weights : (N_out, N_in) array of int
        ``-127..127`` (int8, symmetric).
    bias : (N_out,) array of int
        int32, at the accumulator's scale.
    in_bits : int
        Spikes per input activation (``K`` of the AMOS unit before), 1..16.
    shift : int
        Requantisation shift ``S``, 0..62.
    out_bits : int or None
        ``K`` of the ReLU AMOS unit after the layer (1..16), or ``None`` for raw outputs.
    pe : int
        Outputs computed in parallel; must divide ``N_out``.
    simd : int
        Inputs consumed in parallel; must divide ``N_in``.
    planes : int or None
        Spike planes (time steps) per cycle; must divide ``in_bits``. ``None``: all of them
        (bit-parallel).
    name : str
        Layer name for error messages.
    carry : {"generic", "ecp5"}
        How a plane's first adder level adds its spike-gated weights in pairs
        ``(z0 ? w0 : 0) + (z1 ? w1 : 0)``. ``"generic"``: plain Amaranth (portable; synthesis
        gives every gate bit a LUT4 of its own). ``"ecp5"``: the odd input's weight is
        registered once per plane with the spike as the flip-flop's synchronous reset (the
        ECP5 FF's LSR, so no LUT4), and the even input's gate goes into the LUT4s of the
        ``CCU2C`` carry cells that add the pair (:func:`amos_hw.engines.carry.gated_pair_sum`).
        Same results, same cycles; about 29 % fewer LUT4s and 21 % more flip-flops on the
        probe. The Verilog then instantiates ``CCU2C``: it needs an ECP5 target or a simulation
        model (``boards/sim_models/CCU2C.v``).
    credits : bool
        ``False``: backpressure stalls the whole pipeline (one clock enable on every register).
        ``True``: the datapath runs free and the results queue in a small FIFO
        (:attr:`result_fifo_depth`) before the AMOS unit; an output fold starts only when its
        result has a place there (a credit), so a downstream ``ready`` reaches a counter
        instead of thousands of clock enables. Same results; one cycle more latency; the
        same interval when the output is always ready (under backpressure the engine can run
        up to the FIFO's depth of results ahead, so a stalled pipeline of them may move
        faster than the stalling one). The convolution engine uses it.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(in_bits), simd)))``
        Input words, ``simd`` activations each, in input order.
    o : ``Out(stream.Signature(ArrayLayout(unsigned(out_bits) or signed(out_width), pe)))``
        Output words, ``pe`` outputs each, in output order.
    spike_count : ``Out(32)``
        Spikes the output AMOS units emitted (0 when ``out_bits`` is None).
    """

    def __init__(self, weights, bias, *, in_bits, shift, out_bits, pe=1, simd=1, planes=None,
                 name="dense", carry="generic", credits=False):
        self._MustUse__silence = True  # a constructor that raises must not also warn "unused"
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, not {name!r}")
        weights = _int_array(weights, "weights", 2, name)
        n_out, n_in = weights.shape
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
        in_bits = _pos_int(in_bits, f"{name}: in_bits", 16)
        shift = _nonneg_int(shift, f"{name}: shift", 62)
        if out_bits is not None:
            out_bits = _pos_int(out_bits, f"{name}: out_bits", 16)
        pe = _pos_int(pe, f"{name}: pe")
        simd = _pos_int(simd, f"{name}: simd")
        if n_out % pe:
            raise ValueError(f"{name}: pe must divide the {n_out} outputs, not {pe}")
        if n_in % simd:
            raise ValueError(f"{name}: simd must divide the {n_in} inputs, not {simd}")
        planes = in_bits if planes is None else _pos_int(planes, f"{name}: planes", in_bits)
        if in_bits % planes:
            raise ValueError(f"{name}: planes must divide the {in_bits} spikes of an input "
                             f"(in_bits), not {planes}")

        if carry not in CARRY_FORMS:
            raise ValueError(f"{name}: carry must be one of {', '.join(CARRY_FORMS)}, "
                             f"not {carry!r}")
        self._carry = carry
        self._credits = bool(credits)
        self._name = name
        self._weights = weights
        self._weights.setflags(write=False)
        self._bias = bias
        self._bias.setflags(write=False)
        self._in_bits, self._shift, self._out_bits = in_bits, shift, out_bits
        self._pe, self._simd = pe, simd
        self._nf, self._sf = n_out // pe, n_in // simd
        self._planes, self._passes = planes, in_bits // planes
        # registered adder-tree levels: the simd gated weights of each plane, then the planes
        self._fused = carry == "ecp5" and simd > 1
        # (the ECP5 carry form registers its gated operands one level before the tree)
        self._tree_depth = max(1, _levels(simd) + _levels(planes)) + self._fused
        self._w_width = signed_width(int(weights.min()), int(weights.max()))
        self._b_width = signed_width(min(0, int(bias.min())), max(0, int(bias.max())))
        self._acc_range = accumulator_range(weights, bias, in_bits)
        self._acc_width = signed_width(*self._acc_range)
        v_lo, v_hi = (int(v) for v in requant_shift(np.array(self._acc_range), shift))
        self._v_width = signed_width(v_lo, v_hi)

        self._amos = None
        if out_bits is not None:
            self._amos = AmosUnit(IntAmosUnit.relu(out_bits), self._v_width, lanes=pe)
            out_shape = unsigned(out_bits)
        else:
            out_shape = signed(self._v_width)
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(unsigned(in_bits), simd))),
                "o": Out(stream.Signature(data.ArrayLayout(out_shape, pe))),
                "spike_count": Out(32),
            }
        )
        self._MustUse__silence = False

    # -- read-only properties ---------------------------------------------------------------
    name = property(lambda self: self._name)
    weights = property(lambda self: self._weights, doc="(N_out, N_in) int64, read-only.")
    bias = property(lambda self: self._bias, doc="(N_out,) int64, read-only.")
    n_in = property(lambda self: self._weights.shape[1])
    n_out = property(lambda self: self._weights.shape[0])
    in_bits = property(lambda self: self._in_bits)
    out_bits = property(lambda self: self._out_bits)
    shift = property(lambda self: self._shift)
    pe = property(lambda self: self._pe)
    simd = property(lambda self: self._simd)
    planes = property(lambda self: self._planes, doc="Spike planes per cycle.")
    carry = property(lambda self: self._carry, doc="``generic`` or ``ecp5``: see the class.")
    credits = property(lambda self: self._credits, doc="Free-running datapath: see the class.")
    passes = property(lambda self: self._passes, doc="Cycles per input word: in_bits / planes.")
    acc_range = property(
        lambda self: self._acc_range,
        doc="Exact range of every partial sum (see accumulator_range).",
    )
    acc_width = property(lambda self: self._acc_width, doc="Accumulator width (signed).")
    out_width = property(
        lambda self: self._out_bits if self._out_bits is not None else self._v_width,
        doc="Width of one output (unsigned spike word, or signed raw value).",
    )

    @property
    def expected_cycles(self) -> int:
        """Cycles per input vector: ``(N_out / pe) * (N_in / simd) * passes``."""
        return self._nf * self._sf * self._passes

    @property
    def latency(self) -> int:
        """Cycles from the first input word of a vector to its first output word (no stall):
        ``SF`` input words (``P`` passes each), then fetch, the operand register, the registered
        adder tree (``ceil(log2(simd)) + ceil(log2(planes))`` levels, at least one), the Horner
        register when ``P > 1``, accumulation into the result FIFO and its output register,
        then the AMOS unit's ``K + 2``."""
        return self._sf * self._passes + self._tail + (
            self._amos.latency if self._amos is not None else 0)

    @property
    def _tail(self) -> int:
        """Cycles from an output fold's last input word to its result leaving the unit: fetch,
        operand register, tree, Horner register, accumulator, and with credits the FIFO."""
        return 2 + self._tree_depth + (self._passes > 1) + self._credits

    @property
    def result_fifo_depth(self) -> int:
        """Results the engine may have in flight or queued: an output fold starts only with a
        free place for its result (a credit), so the pipeline never stalls and needs no clock
        enable. Enough places that the credits never hold the schedule back while the output
        is ready: the folds that fit in a fold's issue-to-release time, plus one. 0 without
        credits."""
        if not self._credits:
            return 0
        t = self._sf * self._passes
        return -(-(t + self._tail + 3) // t) + 1

    @property
    def memories(self) -> list:
        """The memories :meth:`elaborate` builds, as :class:`~amos_hw.lib.bram.MemShape`
        (the block RAM fit check counts their blocks)."""
        from amos_hw.lib.bram import MemShape

        mems = [MemShape("weights", mem_depth(self._nf * self._sf),
                         self._pe * self._simd * self._w_width, rom=True),
                MemShape("biases", mem_depth(self._nf), self._pe * self._b_width, rom=True)]
        if self._nf > 1:
            mems.append(MemShape("inputs", mem_depth(self._sf), self._simd * self._in_bits))
        if self._credits and self.result_fifo_depth > 1:  # SyncFIFOBuffered: depth - 1 words
            mems.append(MemShape("results", self.result_fifo_depth - 1,
                                 self._pe * self._acc_width))
        return mems

    @property
    def memory_bits(self) -> int:
        """Bits of the weight, bias and input-buffer memories."""
        bits = mem_depth(self._nf * self._sf) * self._pe * self._simd * self._w_width
        bits += mem_depth(self._nf) * self._pe * self._b_width
        if self._nf > 1:
            bits += mem_depth(self._sf) * self._simd * self._in_bits
        return bits

    @property
    def flip_flops(self) -> int:
        """Flip-flops: input register, product and adder-tree pipeline registers, accumulators,
        result registers, control, AMOS units."""
        lg = max(0, math.ceil(math.log2(self._simd)))
        ff = self._simd * self._in_bits + 2 * self._pe * self._acc_width
        # the registered tree: per plane about simd registers of the weight width (the levels
        # halve), then the plane-combining levels
        ff += self._pe * self._planes * self._simd * (self._w_width + lg // 2 + 1)
        ff += self._pe * self._planes * (self._w_width + self._planes + lg)
        ff += self._pe * self._simd * self._w_width + self._simd * self._in_bits  # stage R
        if self._fused:  # odd weights registered gated per plane, even ones and spikes delayed
            ff += self._pe * (self._simd // 2) * self._w_width * (self._planes - 1)
            ff += self._pe * (self._simd - self._simd // 2) * self._w_width
            ff += self._simd * self._planes
        ff += 4 * self._pe * self._b_width
        if self._credits:
            ff += self.result_fifo_depth * self._pe * self._acc_width  # the result FIFO
        ff += 2 * max(1, math.ceil(math.log2(self._nf * self._sf + 1))) + 8
        if self._passes > 1:  # Horner register, pass counter, stage-H control
            ff += self._pe * (self._w_width + self._in_bits + 1
                              + math.ceil(math.log2(self._simd + 1))) + 8
        if self._amos is not None:
            ff += self._amos.flip_flops
        return ff

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
        """
        lg = max(0, math.ceil(math.log2(self._simd)))
        # time-serial (one plane a cycle): the spike gates the weight on its way into the adder
        # tree and costs no LUT of its own (measured: synth_probe, docs/architecture.md)
        serial = self._planes == 1 and self._passes > 1
        per_pe = 0 if serial else self._simd * self._planes * self._w_width
        if self._fused:  # the gates are in the carry cells and the flip-flop resets (below)
            per_pe = 0
        per_pe += self._planes * (self._simd - 1) * (self._w_width + lg)
        per_pe += (self._planes - 1) * (self._w_width + self._planes + lg)
        per_pe = per_pe * 6 // 5  # fitted to the probe: odd-width levels, feed-through LUTs
        per_pe += 2 * self._acc_width
        if self._passes > 1:  # the Horner adder
            per_pe += 2 * (self._w_width + self._in_bits + math.ceil(math.log2(self._simd + 1)))
        if self._amos is not None:
            per_pe += 2 * (self._out_bits + 1) * self._v_width
        rom = 0
        for depth, width in ((self._nf * self._sf, self._pe * self._simd * self._w_width),
                             (self._nf, self._pe * self._b_width)):
            if depth <= LUT_ROM_DEPTH:
                rom += width * math.ceil(depth / 16) * 5 // 4
        # picking the pass's planes out of each held input word: a P:1 multiplexer per bit
        pick = self._simd * self._planes * ((self._passes - 1 + 2) // 3) if self._passes > 1 else 0
        if self._fused:
            # one reset-enable LUT per odd input and plane (shared by the pe outputs); an odd
            # simd leaves one input ungated by the carry cells
            pick += (self._simd // 2) * self._planes
            pick += self._pe * (self._simd % 2) * self._planes * self._w_width
        return self._pe * per_pe + rom + pick + 40

    def model(self, a):
        """Reference outputs for input vectors ``a`` (shape ``(..., N_in)``), int64.

        :func:`python_ref.snn.dense` then :func:`python_ref.snn.requant_unit` with the ReLU unit
        (or :func:`python_ref.quant.requant_shift` alone for raw outputs).
        """
        a = np.asarray(a, dtype=np.int64)
        if a.shape[-1:] != (self.n_in,):
            raise ValueError(f"{self._name}: input vectors must have {self.n_in} values")
        if a.size and (a.min() < 0 or a.max() > 2**self._in_bits - 1):
            raise ValueError(f"{self._name}: inputs must lie in 0..{2**self._in_bits - 1}")
        acc = snn.dense(a.reshape(-1, self.n_in), self._weights, self._bias)
        if self._out_bits is None:
            out = requant_shift(acc, self._shift)
        else:
            out, _ = snn.requant_unit([acc], [self._shift], IntAmosUnit.relu(self._out_bits))
        return out.reshape(a.shape[:-1] + (self.n_out,))

    # -- hardware ---------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        pe, simd, nf, sf = self._pe, self._simd, self._nf, self._sf
        wb, bb, kin = self._w_width, self._b_width, self._in_bits
        planes, passes = self._planes, self._passes

        def pack(values, width):
            word = 0
            for n, v in enumerate(values):
                word |= (int(v) & ((1 << width) - 1)) << (n * width)
            return word

        w_init = [
            pack(self._weights[f * pe:(f + 1) * pe, s * simd:(s + 1) * simd].ravel(), wb)
            for f in range(nf)
            for s in range(sf)
        ]
        b_init = [pack(self._bias[f * pe:(f + 1) * pe], bb) for f in range(nf)]
        m.submodules.weights = wmem = Memory(shape=unsigned(pe * simd * wb),
                                             depth=mem_depth(nf * sf), init=w_init)
        m.submodules.biases = bmem = Memory(shape=unsigned(pe * bb), depth=mem_depth(nf),
                                            init=b_init)
        w_rd = wmem.read_port()
        b_rd = bmem.read_port()

        # credits=True: the datapath never stalls (no clock enable on its thousands of
        # registers: a downstream `ready` used to fan out to all of them). Bubbles enter where
        # the issue stage waits: for an input word, or, at the start of an output fold, for a
        # free place in the result FIFO (credits: folds issued, results not yet taken).
        credits = self._credits
        en = Const(1, 1) if credits else Signal()  # without credits: the pipeline advances
        nf_ctr = counter(nf, "nf_ctr")
        sf_ctr = counter(sf, "sf_ctr")
        waddr = counter(nf * sf, "waddr")
        pass_ctr = counter(passes, "pass_ctr")  # stays 0 when bit-parallel
        from_stream = nf_ctr == 0
        take = from_stream & (pass_ctr == 0)  # a new input word from the stream this cycle
        room = Signal()
        fold_start = (sf_ctr == 0) & (pass_ctr == 0)
        if credits:
            F = self.result_fifo_depth
            m.submodules.results = rq = fifo.SyncFIFOBuffered(width=pe * self._acc_width,
                                                              depth=F)
            owed = Signal(range(F + 1))  # folds issued whose result has not left the FIFO
            m.d.comb += room.eq(~fold_start | (owed != F))
        else:
            m.d.comb += room.eq(en)
        go = Signal()
        m.d.comb += [
            go.eq(room & (~take | self.i.valid)),
            self.i.ready.eq(room & take),
            w_rd.en.eq(en),
            w_rd.addr.eq(waddr),
            b_rd.en.eq(en),
            b_rd.addr.eq(nf_ctr),
        ]
        step = go
        if passes > 1:
            step = go & (pass_ctr == passes - 1)
            with m.If(go):
                m.d.sync += pass_ctr.eq(Mux(pass_ctr == passes - 1, 0, pass_ctr + 1))
        with m.If(step):
            m.d.sync += waddr.eq(Mux(waddr == nf * sf - 1, 0, waddr + 1))
            with m.If(sf_ctr == sf - 1):
                m.d.sync += [sf_ctr.eq(0), nf_ctr.eq(Mux(nf_ctr == nf - 1, 0, nf_ctr + 1))]
            with m.Else():
                m.d.sync += sf_ctr.eq(sf_ctr + 1)

        # stage A: operands fetched (memory reads complete at the end of this cycle)
        valid_a = Signal()
        first_a = Signal()
        last_a = Signal()
        stream_a = Signal()
        pass_a = counter(passes, "pass_a")
        a_reg = Signal(simd * kin)
        with m.If(en):
            m.d.sync += [
                valid_a.eq(go),
                first_a.eq(sf_ctr == 0),
                last_a.eq(sf_ctr == sf - 1),
                stream_a.eq(from_stream),
                pass_a.eq(pass_ctr),
            ]
            with m.If(pass_ctr == 0):  # held through the passes of the word
                m.d.sync += a_reg.eq(self.i.payload.as_value())
        if nf > 1:
            m.submodules.inputs = buf = Memory(shape=unsigned(simd * kin), depth=mem_depth(sf),
                                               init=[])
            buf_wr = buf.write_port()
            buf_rd = buf.read_port()
            m.d.comb += [
                buf_wr.addr.eq(sf_ctr),
                buf_wr.data.eq(self.i.payload.as_value()),
                buf_wr.en.eq(self.i.valid & self.i.ready),  # ready only on a word's pass 0
                buf_rd.addr.eq(sf_ctr),
                buf_rd.en.eq(en),
            ]
            acts = Mux(stream_a, a_reg, buf_rd.data)
        else:
            acts = a_reg

        # stage R: the operands registered after the memories (the block-RAM clock-to-out and the
        # product logic were the critical path of every board build; on the ECP5 the weight
        # register is the DP16KD's own output register)
        w_r = Signal(pe * simd * wb, name="w_r")
        acts_r = Signal(simd * planes, name="acts_r")  # this pass's planes of each input
        if passes > 1:
            # pass j takes bits [kin - (j+1)*planes, kin - j*planes) of each word: MSB first
            sel = [Cat(*(acts.word_select(s, kin).word_select(passes - 1 - j, planes)
                         for s in range(simd))) for j in range(passes)]
            picked = Array(sel)[pass_a]
        else:
            picked = acts
        with m.If(en):
            m.d.sync += [w_r.eq(w_rd.data), acts_r.eq(picked)]
        # ECP5 form: every odd input's weight is registered gated, once per plane (a flip-flop
        # synchronous reset does the gate); the even input's gate is inside the carry cells
        # (stage G, one register level more: fed from the operand register, so that the
        # weight memory's output register stays where it was; the even inputs' weights and all
        # spikes are delayed alongside)
        t_r, gate_clear = {}, {}
        if self._fused:
            w_g = Signal(pe * simd * wb, name="w_g")
            acts_g = Signal(simd * planes, name="acts_g")
            with m.If(en):
                m.d.sync += [w_g.eq(w_r), acts_g.eq(acts_r)]
            for p in range(pe):
                for s in range(1, simd, 2):
                    w = w_r.word_select(p * simd + s, wb).as_signed()
                    for b in range(planes):
                        t = t_r[p, s, b] = Signal(signed(wb), name=f"t_{p}_{s}_{b}")
                        clear = gate_clear.setdefault((s, b), Signal(name=f"clear_{s}_{b}"))
                        # written reset-over-enable, the form of the ECP5 flip-flop's LSR
                        with m.If(clear):
                            m.d.sync += t.eq(0)
                        with m.Elif(en):
                            m.d.sync += t.eq(w)
            for (s, b), clear in gate_clear.items():
                m.d.comb += clear.eq(en & ~acts_r.word_select(s, planes)[b])
            w_r, acts_r = w_g, acts_g
        # stages T1..TD: the registered adder tree. Each plane of each input gates its weight;
        # per plane the simd gated weights add up (weights 8 bits wide: narrow adders), then the
        # planes add with their powers of two. Every level is registered, so each adder is its
        # own carry chain (merged into one adder network, the tree cost twice the LUTs).
        depth = self._tree_depth
        amax = 2**planes - 1  # one pass's planes
        w_lo, w_hi = int(self._weights.min()), int(self._weights.max())
        p_lo, p_hi = min(0, w_lo * amax), max(0, w_hi * amax)
        dot_shape = signed(signed_width(simd * p_lo, simd * p_hi))
        ctl = {stage: (Signal(name=f"valid_{stage}"), Signal(name=f"first_{stage}"),
                       Signal(name=f"last_{stage}"), Signal(pe * bb, name=f"bias_{stage}"),
                       Signal(name=f"pfirst_{stage}"), Signal(name=f"plast_{stage}"))
               for stage in ["r"] + [f"t{k}" for k in range(depth)]}
        with m.If(en):
            prev = (valid_a, first_a, last_a, b_rd.data, pass_a == 0, pass_a == passes - 1)
            for stage in ctl:
                m.d.sync += [reg.eq(src) for reg, src in zip(ctl[stage], prev, strict=True)]
                prev = ctl[stage]
        last_stage = f"t{depth - 1}"
        valid_t, first_t, last_t, bias_t, pfirst_t, plast_t = ctl[last_stage]
        if passes > 1:
            # stage H: the Horner register folds the passes of one input word; the word's sum
            # reaches the accumulator one cycle after its last pass
            full_lo, full_hi = min(0, w_lo * (2**kin - 1)), max(0, w_hi * (2**kin - 1))
            horner_shape = signed(signed_width(simd * full_lo, simd * full_hi))
            valid_h, first_h, last_h = Signal(), Signal(), Signal()
            bias_h = Signal(pe * bb)
            with m.If(en):
                m.d.sync += [valid_h.eq(valid_t & plast_t), first_h.eq(first_t),
                             last_h.eq(last_t), bias_h.eq(bias_t)]
            valid_t, first_t, last_t, bias_t = valid_h, first_h, last_h, bias_h
        acc = [Signal(signed(self._acc_width), name=f"acc_{p}") for p in range(pe)]
        if credits:
            m.d.comb += rq.w_en.eq(valid_t & last_t)
            m.d.sync += owed.eq(owed + (go & fold_start) - (rq.r_rdy & rq.r_en))
        else:
            res = [Signal(signed(self._acc_width), name=f"res_{p}") for p in range(pe)]
            valid_c = Signal()
            with m.If(en):
                m.d.sync += valid_c.eq(valid_t & last_t)
        for p in range(pe):
            ws = [w_r.word_select(p * simd + s, wb).as_signed() for s in range(simd)]
            plane_sums = []
            for b in range(planes):
                zs = [acts_r.word_select(s, planes)[b] for s in range(simd)]
                if not self._fused:
                    gated = [Mux(zs[s], ws[s], 0) for s in range(simd)]
                    root, _ = registered_tree(m, gated, en, f"pl_{p}_{b}")
                else:
                    # the first level: pair adders with one gate inside the carry cells
                    first = [registered(m, gated_pair_sum(m, zs[s], ws[s], t_r[p, s + 1, b],
                                                          form=self._carry,
                                                          name=f"gp_{p}_{b}_{s // 2}")
                                        if s + 1 < simd else Mux(zs[s], ws[s], 0),
                                        en, f"pl_{p}_{b}_l0_{s // 2}")
                             for s in range(0, simd, 2)]
                    root, _ = registered_tree(m, first, en, f"pl_{p}_{b}_up")
                plane_sums.append(root.shift_left(b) if b else root)
            root, used = registered_tree(m, plane_sums, en, f"dot_{p}")
            dot = Signal(dot_shape, name=f"dot_{p}")
            if _levels(simd) + _levels(planes) == 0:  # one input, one plane: one register
                with m.If(en):
                    m.d.sync += dot.eq(root)
            else:
                m.d.comb += dot.eq(root)
            word_sum = dot
            if passes > 1:
                word_sum = Signal(horner_shape, name=f"horner_{p}")
                with m.If(en & ctl[last_stage][0]):
                    m.d.sync += word_sum.eq(
                        Mux(ctl[last_stage][4], 0, word_sum.shift_left(planes)) + dot)
            bias = bias_t.word_select(p, bb).as_signed()
            total = Mux(first_t, bias, acc[p]) + word_sum
            with m.If(en & valid_t):
                m.d.sync += acc[p].eq(total)
                if not credits:
                    with m.If(last_t):
                        m.d.sync += res[p].eq(total)
            if credits:
                m.d.comb += rq.w_data.word_select(p, self._acc_width).eq(total)

        # stage C (the result register, or with credits the result FIFO's output register):
        # requantise, then the ReLU AMOS unit (or the raw value)
        if credits:
            res = [rq.r_data.word_select(p, self._acc_width).as_signed() for p in range(pe)]
            valid_c = rq.r_rdy
        S = self._shift
        v = [(r + (1 << (S - 1))) >> S if S else r for r in res]

        def take_when(ready):
            """With credits the result FIFO is read when the output side takes a result;
            without, the whole pipeline moves when the result register is free or taken."""
            return rq.r_en.eq(ready) if credits else en.eq(~valid_c | ready)

        if self._amos is not None:
            m.submodules.amos = amos = self._amos
            m.d.comb += [
                amos.i.valid.eq(valid_c),
                take_when(amos.i.ready),
                self.o.valid.eq(amos.o.valid),
                amos.o.ready.eq(self.o.ready),
                self.spike_count.eq(amos.spike_count),
            ]
            m.d.comb += [amos.i.payload.x[p].eq(v[p]) for p in range(pe)]
            m.d.comb += [self.o.payload[p].eq(amos.o.payload.z[p]) for p in range(pe)]
        else:
            m.d.comb += [
                self.o.valid.eq(valid_c),
                take_when(self.o.ready),
            ]
            m.d.comb += [self.o.payload[p].eq(v[p]) for p in range(pe)]
        return m
