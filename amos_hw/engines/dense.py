"""Dense (fully connected) engine: a matrix-vector unit fed by AMOS spikes, with PE x SIMD folding.

The same matrix-vector unit computes a convolution once a window generator has turned the image
into im2col vectors (:mod:`amos_hw.engines.conv`). The engine's figures (cycles, latency,
resource estimates) are :class:`amos_hw.engines.figures.DenseParams`'s, which
:meth:`DenseEngine.figures` gives without building anything.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from amos_hw.engines.carry import gated_pair_sum
from amos_hw.engines.figures import (
    DenseParams,
    Figures,
    accumulator_range,
    input_range,
    mem_depth,
    tree_levels,
)
from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.bram import column_widths, style_attrs
from amos_hw.lib.bram_fifo import buffered_fifo
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


def counter(n: int, name: str) -> Signal:
    """A counter for ``0..n-1``, at least one bit wide (a zero-width signal becomes a ``[-1:0]``
    vector in Verilog, which lint rejects)."""
    return Signal(range(max(n, 2)), name=name)


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


def spike_product(w, a, bits: int, *, signed: bool = False):
    """``w * a`` as spike-gated shifted weights: ``sum_t z_t * (w << (bits-1-t))``.

    ``a`` is the spike word of a ReLU AMOS unit (bit ``bits-1-t`` is the spike at time step
    ``t``), so the product needs no multiplier: each spike gates a shifted copy of the weight.
    With ``signed``, ``a`` is a two's-complement word: its most significant bit weighs
    ``-2**(bits-1)``, so that spike gates the negated shifted weight,
    ``w * a = -z_0 * (w << (bits-1)) + sum_{t>0} z_t * (w << (bits-1-t))``.
    """
    return tree_sum(Mux(a[b], -w.shift_left(b) if signed and b == bits - 1 else w.shift_left(b),
                        0)
                    for b in range(bits))


class _ReadColumns:
    """A ROM built as memories of ``widths`` bits side by side, read as one: ``en`` and
    ``addr`` drive every column's synchronous read port, ``data`` is their words concatenated
    (the first column the least significant bits), as one memory's read port would give."""

    def __init__(self, m, name: str, widths, *, depth: int, init, attrs):
        self.en = Signal(name=f"{name}_en")
        self.addr = Signal(range(depth), name=f"{name}_addr")
        reads, lo = [], 0
        for i, bits in enumerate(widths):
            mask = (1 << bits) - 1
            mem = Memory(shape=unsigned(bits), depth=depth,
                         init=[(word >> lo) & mask for word in init], attrs=attrs)
            m.submodules[f"{name}_{i}"] = mem
            rd = mem.read_port()
            m.d.comb += [rd.en.eq(self.en), rd.addr.eq(self.addr)]
            reads.append(rd.data)
            lo += bits
        self.data = Cat(*reads)


class DenseEngine(wiring.Component):
    """Fully connected layer on AMOS spikes, folded over ``pe`` outputs and ``simd`` inputs.

    The engine computes, for each input vector ``a`` (``N_in`` activations, each the ``in_bits``
    spike word of a ReLU AMOS unit, or with ``in_signed`` an ``in_bits`` two's-complement word),
    ``acc = W a + bias``, ``v = (acc + 2**(S-1)) >> S`` and then either the ReLU AMOS unit's
    spikes ``clamp(v, 0, 2**out_bits - 1)`` or, with ``out_bits=None``, the raw ``v`` (logits).

    Signed inputs (``in_signed=True``, the output of a trained unit): a word's value is
    ``-2**(in_bits-1) * bit[in_bits-1] + sum_{b<in_bits-1} 2**b * bit[b]``, so the most
    significant plane (the first time step) gates the *negated* shifted weights: bit-parallel
    its plane sum is subtracted in the plane adder; with several passes (the sign plane being
    the first pass's most significant one) that plane's sum is negated on a word's first pass
    only, before the Horner register ``h = (h << planes) + dot``. Same cycles, same latency.

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
        Spikes per input activation (``K`` of the AMOS unit before), 1..16; with ``in_signed``
        the width of the two's-complement input word.
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
        model (``amos_hw/backend/sim_models/CCU2C.v``).
    credits : bool
        ``False``: backpressure stalls the whole pipeline (one clock enable on every register).
        ``True``: the datapath runs free and the results queue in a small FIFO
        (:attr:`result_fifo_depth`) before the AMOS unit; an output fold starts only when its
        result has a place there (a credit), so a downstream ``ready`` reaches a counter
        instead of thousands of clock enables. Same results; one cycle more latency; the
        same interval when the output is always ready (under backpressure the engine can run
        up to the FIFO's depth of results ahead, so a stalled pipeline of them may move
        faster than the stalling one). The convolution engine uses it.
    in_signed : bool
        ``False``: inputs ``0..2**in_bits - 1`` (ReLU spike words). ``True``: two's-complement
        inputs ``-2**(in_bits-1)..2**(in_bits-1) - 1``; the input lanes are then
        ``signed(in_bits)`` and the accumulator is sized for that range
        (:func:`~amos_hw.engines.figures.accumulator_range` with ``in_signed``).
    multiply : bool
        ``False``: spike-gated weights per plane, added in a tree (above). ``True`` (the
        products form): each lane multiplies its weight by the whole input word, ``w * a``
        (registered), and a registered tree adds the ``simd`` products; synthesis for a family
        with DSP blocks maps every product to one (an ECP5 ``MULT18X18D``: ``pe * simd`` of
        them), which pays where the input words are wide and few (the stem's 8-bit pixels).
        Needs ``planes = in_bits`` and operands of at most 18 signed bits. Same results,
        same cycles; the tree is ``1 + ceil(log2(simd))`` levels deep
        (:attr:`~amos_hw.engines.figures.DenseParams.tree_depth`), so the latency differs.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(in_bits) or signed(in_bits), simd)))``
        Input words, ``simd`` activations each, in input order (signed lanes with
        ``in_signed``).
    o : ``Out(stream.Signature(ArrayLayout(unsigned(out_bits) or signed(out_width), pe)))``
        Output words, ``pe`` outputs each, in output order.
    spike_count : ``Out(32)``
        Spikes the output AMOS units emitted (0 when ``out_bits`` is None).
    """

    def __init__(self, weights, bias, *, in_bits, shift, out_bits, pe=1, simd=1, planes=None,
                 name="dense", carry="generic", credits=False, in_signed=False,
                 lut_memories=(), banked_weights=False, multiply=False):
        p = DenseParams.check(weights, bias, in_bits=in_bits, shift=shift, out_bits=out_bits,
                              pe=pe, simd=simd, planes=planes, name=name, carry=carry,
                              credits=credits, in_signed=in_signed, lut_memories=lut_memories,
                              banked_weights=banked_weights, multiply=multiply)
        self._p = p
        out_shape = unsigned(p.out_bits) if p.out_bits is not None else signed(p.v_width)
        in_shape = signed(p.in_bits) if p.in_signed else unsigned(p.in_bits)
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(in_shape, p.simd))),
                "o": Out(stream.Signature(data.ArrayLayout(out_shape, p.pe))),
                "spike_count": Out(32),
            }
        )

    @staticmethod
    def figures(weights, bias, *, in_bits, shift, out_bits, pe=1, simd=1, planes=None,
                name="dense", carry="generic", credits=False, in_signed=False,
                lut_memories=(), banked_weights=False, multiply=False) -> Figures:
        """The figures of the engine these arguments would build, without building it: the
        constructor's arguments and checks (same errors), then
        :meth:`amos_hw.engines.figures.DenseParams.figures`."""
        return DenseParams.check(weights, bias, in_bits=in_bits, shift=shift, out_bits=out_bits,
                                 pe=pe, simd=simd, planes=planes, name=name, carry=carry,
                                 credits=credits, in_signed=in_signed,
                                 lut_memories=lut_memories,
                                 banked_weights=banked_weights, multiply=multiply).figures()

    # -- read-only properties ---------------------------------------------------------------
    params = property(lambda self: self._p, doc="The checked parameters (DenseParams).")
    name = property(lambda self: self._p.name)
    weights = property(lambda self: self._p.weights, doc="(N_out, N_in) int64, read-only.")
    bias = property(lambda self: self._p.bias, doc="(N_out,) int64, read-only.")
    n_in = property(lambda self: self._p.n_in)
    n_out = property(lambda self: self._p.n_out)
    in_bits = property(lambda self: self._p.in_bits)
    in_signed = property(lambda self: self._p.in_signed,
                         doc="The inputs are two's-complement words (see the class).")
    out_bits = property(lambda self: self._p.out_bits)
    shift = property(lambda self: self._p.shift)
    pe = property(lambda self: self._p.pe)
    simd = property(lambda self: self._p.simd)
    planes = property(lambda self: self._p.planes, doc="Spike planes per cycle.")
    carry = property(lambda self: self._p.carry, doc="``generic`` or ``ecp5``: see the class.")
    credits = property(lambda self: self._p.credits, doc="Free-running datapath: see the class.")
    multiply = property(lambda self: self._p.multiply, doc="The products form: see the class.")
    passes = property(lambda self: self._p.passes,
                      doc="Cycles per input word: in_bits / planes.")
    acc_range = property(
        lambda self: self._p.acc_range,
        doc="Exact range of every partial sum (see accumulator_range).",
    )
    acc_width = property(lambda self: self._p.acc_width, doc="Accumulator width (signed).")
    out_width = property(
        lambda self: self._p.out_width,
        doc="Width of one output (unsigned spike word, or signed raw value).",
    )
    result_fifo_depth = property(lambda self: self._p.result_fifo_depth,
                                 doc="Results queued before the AMOS unit with credits "
                                     "(DenseParams.result_fifo_depth); 0 without.")
    # the figures: DenseParams's formulas (see there)
    expected_cycles = property(lambda self: self._p.cycles,
                               doc="Cycles per input vector: ``NF * SF * passes``.")
    latency = property(lambda self: self._p.latency,
                       doc="Cycles from the first input word of a vector to its first output "
                           "word (no stall).")
    memories = property(lambda self: list(self._p.memories),
                        doc="The memories :meth:`elaborate` builds, as "
                            ":class:`~amos_hw.lib.bram.MemShape`.")
    memory_bits = property(lambda self: self._p.memory_bits,
                           doc="Bits of the weight, bias and input-buffer memories.")
    flip_flops = property(lambda self: self._p.flip_flops, doc="Flip-flop estimate.")
    luts = property(lambda self: self._p.luts, doc="LUT4 estimate.")

    def model(self, a):
        """Reference outputs for input vectors ``a`` (shape ``(..., N_in)``), int64.

        :func:`python_ref.snn.dense` then :func:`python_ref.snn.requant_unit` with the ReLU unit
        (or :func:`python_ref.quant.requant_shift` alone for raw outputs). The inputs must lie
        in :func:`~amos_hw.engines.figures.input_range` (``0..2**in_bits - 1``, or with
        ``in_signed`` ``-2**(in_bits-1)..2**(in_bits-1) - 1``).
        """
        p = self._p
        a = np.asarray(a, dtype=np.int64)
        if a.shape[-1:] != (p.n_in,):
            raise ValueError(f"{p.name}: input vectors must have {p.n_in} values")
        a_lo, a_hi = input_range(p.in_bits, p.in_signed)
        if a.size and (a.min() < a_lo or a.max() > a_hi):
            raise ValueError(f"{p.name}: inputs must lie in {a_lo}..{a_hi}")
        acc = snn.dense(a.reshape(-1, p.n_in), p.weights, p.bias)
        if p.out_bits is None:
            out = requant_shift(acc, p.shift)
        else:
            out, _ = snn.requant_unit([acc], [p.shift], IntAmosUnit.relu(p.out_bits))
        return out.reshape(a.shape[:-1] + (p.n_out,))

    # -- hardware ---------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        b = _Datapath(self, m)
        b.memories()
        b.issue()
        b.stage_a()
        b.stage_r()
        b.pipeline_control()
        b.accumulators()
        b.epilogue()
        return m


def _product_range(w_lo: int, w_hi: int, a_lo: int, a_hi: int) -> tuple[int, int]:
    """Range of ``w * a`` (and 0) for ``w`` in ``[w_lo, w_hi]`` and ``a`` in ``[a_lo, a_hi]``:
    the extremes are at the corners."""
    corners = [w * a for w in (w_lo, w_hi) for a in (a_lo, a_hi)]
    return min(0, *corners), max(0, *corners)


def _pack(values, width: int) -> int:
    """``values`` as one memory word, ``width`` bits each, the first in the low bits."""
    word = 0
    for n, v in enumerate(values):
        word |= (int(v) & ((1 << width) - 1)) << (n * width)
    return word


class _Datapath:
    """The hardware of one :class:`DenseEngine`, built stage by stage into ``m``:
    :meth:`memories`, :meth:`issue` (the fold counters and the credits), :meth:`stage_a`
    (operands fetched), :meth:`stage_r` (operands registered; stage G of the ECP5 carry form),
    :meth:`pipeline_control` (the control bits beside the adder tree, stage H), :meth:`accumulators`
    (the product trees and the accumulators, :meth:`lane` per output) and :meth:`epilogue`
    (requantisation and the AMOS unit). Each step reads the signals the earlier ones left as
    attributes; they run in this order, which is the order of the signals in the Verilog."""

    def __init__(self, engine: DenseEngine, m):
        self.eng, self.p, self.m = engine, engine.params, m

    def memories(self):
        """The weight and bias memories, initialised from the integers."""
        m, p = self.m, self.p
        pe, simd, nf, sf = p.pe, p.simd, p.nf, p.sf
        wb, bb = p.w_width, p.b_width
        w_init = [
            _pack(p.weights[f * pe:(f + 1) * pe, s * simd:(s + 1) * simd].ravel(), wb)
            for f in range(nf)
            for s in range(sf)
        ]
        b_init = [_pack(p.bias[f * pe:(f + 1) * pe], bb) for f in range(nf)]
        w_attrs = style_attrs("weights", True, p.lut_memories)
        widths = column_widths(pe * simd * wb, p.weight_column_bits)
        if len(widths) == 1:
            m.submodules.weights = wmem = Memory(shape=unsigned(pe * simd * wb),
                                                 depth=mem_depth(nf * sf), init=w_init,
                                                 attrs=w_attrs)
            w_rd = wmem.read_port()
        else:
            # columns that each fill one block (DenseParams.weight_column_bits): one address,
            # one enable, the words side by side
            w_rd = _ReadColumns(m, "weights", widths, depth=mem_depth(nf * sf), init=w_init,
                                attrs=w_attrs)
        m.submodules.biases = bmem = Memory(shape=unsigned(pe * bb), depth=mem_depth(nf),
                                            init=b_init,
                                            attrs=style_attrs("biases", True, p.lut_memories))
        b_rd = bmem.read_port()
        self.w_rd, self.b_rd = w_rd, b_rd

    def issue(self):
        """The issue stage: fold and pass counters, the input handshake, the credits."""
        m, p, eng = self.m, self.p, self.eng
        nf, sf, passes = p.nf, p.sf, p.passes
        # credits=True: the datapath never stalls (no clock enable on its thousands of
        # registers: a downstream `ready` used to fan out to all of them). Bubbles enter where
        # the issue stage waits: for an input word, or, at the start of an output fold, for a
        # free place in the result FIFO (credits: folds issued, results not yet taken).
        credits = p.credits
        en = Const(1, 1) if credits else Signal()  # without credits: the pipeline advances
        nf_ctr = counter(nf, "nf_ctr")
        sf_ctr = counter(sf, "sf_ctr")
        waddr = counter(nf * sf, "waddr")
        pass_ctr = counter(passes, "pass_ctr")  # stays 0 when bit-parallel
        # the counters' comparisons as registered flags, kept beside them (the issue logic of
        # the widest engines was the critical path of the ResNet8 builds: counter, compare,
        # handshake, counter enable)
        nf_zero = Signal(init=1, name="nf_zero")  # nf_ctr == 0
        sf_zero = Signal(init=1, name="sf_zero")  # sf_ctr == 0
        sf_last = Signal(init=int(sf == 1), name="sf_last")  # sf_ctr == sf - 1
        from_stream = nf_zero
        take = from_stream & (pass_ctr == 0)  # a new input word from the stream this cycle
        room = Signal()
        fold_start = sf_zero & (pass_ctr == 0)
        self.rq = self.owed = None
        if credits:
            F = p.result_fifo_depth
            m.submodules.results = rq = buffered_fifo(width=p.pe * p.acc_width, depth=F)
            owed = Signal(range(F + 1))  # folds issued whose result has not left the FIFO
            m.d.comb += room.eq(~fold_start | (owed != F))
            self.rq, self.owed = rq, owed
        else:
            m.d.comb += room.eq(en)
        go = Signal()
        # the bias memory reads one stage later than the weights, from its own copy of the
        # output fold (stage A): its data are ready in stage R, where the bias joins the
        # control pipeline; nf_ctr no longer reaches across the engine to the bias memory
        b_addr = counter(nf, "b_addr")
        with m.If(en):
            m.d.sync += b_addr.eq(nf_ctr)
        m.d.comb += [
            go.eq(room & (~take | eng.i.valid)),
            eng.i.ready.eq(room & take),
            self.w_rd.en.eq(en),
            self.w_rd.addr.eq(waddr),
            self.b_rd.en.eq(en),
            self.b_rd.addr.eq(b_addr),
        ]
        step = go
        if passes > 1:
            step = go & (pass_ctr == passes - 1)
            with m.If(go):
                m.d.sync += pass_ctr.eq(Mux(pass_ctr == passes - 1, 0, pass_ctr + 1))
        with m.If(step):
            m.d.sync += waddr.eq(Mux(waddr == nf * sf - 1, 0, waddr + 1))
            with m.If(sf_last):
                nf_next = Mux(nf_ctr == nf - 1, 0, nf_ctr + 1)
                m.d.sync += [sf_ctr.eq(0), sf_zero.eq(1), sf_last.eq(sf == 1),
                             nf_ctr.eq(nf_next), nf_zero.eq(nf_next == 0)]
            with m.Else():
                m.d.sync += [sf_ctr.eq(sf_ctr + 1), sf_zero.eq(0),
                             sf_last.eq(sf_ctr == max(sf - 2, 0))]
        self.en, self.go, self.fold_start = en, go, fold_start
        self.sf_ctr, self.pass_ctr, self.from_stream = sf_ctr, pass_ctr, from_stream
        self.sf_zero, self.sf_last = sf_zero, sf_last

    def stage_a(self):
        """Stage A: operands fetched (memory reads complete at the end of this cycle); the
        input word held through its passes, and buffered for the later output folds."""
        m, p, eng, en = self.m, self.p, self.eng, self.en
        simd, sf, kin, sf_ctr, pass_ctr = p.simd, p.sf, p.in_bits, self.sf_ctr, self.pass_ctr
        valid_a = Signal()
        first_a = Signal()
        last_a = Signal()
        stream_a = Signal()
        pass_a = counter(p.passes, "pass_a")
        a_reg = Signal(simd * kin)
        with m.If(en):
            m.d.sync += [
                valid_a.eq(self.go),
                first_a.eq(self.sf_zero),
                last_a.eq(self.sf_last),
                stream_a.eq(self.from_stream),
                pass_a.eq(pass_ctr),
            ]
            with m.If(pass_ctr == 0):  # held through the passes of the word
                m.d.sync += a_reg.eq(eng.i.payload.as_value())
        if p.nf > 1:
            m.submodules.inputs = buf = Memory(shape=unsigned(simd * kin), depth=mem_depth(sf),
                                               init=[],
                                               attrs=style_attrs("inputs", False,
                                                                 p.lut_memories))
            buf_wr = buf.write_port()
            buf_rd = buf.read_port()
            m.d.comb += [
                buf_wr.addr.eq(sf_ctr),
                buf_wr.data.eq(eng.i.payload.as_value()),
                buf_wr.en.eq(eng.i.valid & eng.i.ready),  # ready only on a word's pass 0
                buf_rd.addr.eq(sf_ctr),
                buf_rd.en.eq(en),
            ]
            acts = Mux(stream_a, a_reg, buf_rd.data)
        else:
            acts = a_reg
        self.valid_a, self.first_a, self.last_a, self.pass_a = valid_a, first_a, last_a, pass_a
        self.acts = acts

    def stage_r(self):
        """Stage R: the operands registered after the memories (the block-RAM clock-to-out and
        the product logic were the critical path of every board build; on the ECP5 the weight
        register is the DP16KD's own output register); then stage G of the ECP5 form."""
        m, p, en = self.m, self.p, self.en
        simd, kin, planes, passes = p.simd, p.in_bits, p.planes, p.passes
        w_r = Signal(p.pe * simd * p.w_width, name="w_r")
        acts_r = Signal(simd * planes, name="acts_r")  # this pass's planes of each input
        if passes > 1:
            # pass j takes bits [kin - (j+1)*planes, kin - j*planes) of each word: MSB first
            sel = [Cat(*(self.acts.word_select(s, kin).word_select(passes - 1 - j, planes)
                         for s in range(simd))) for j in range(passes)]
            picked = Array(sel)[self.pass_a]
        else:
            picked = self.acts
        with m.If(en):
            m.d.sync += [w_r.eq(self.w_rd.data), acts_r.eq(picked)]
        self.t_r = {}
        if p.fused:
            w_r, acts_r = self._stage_g(w_r, acts_r)
        self.w_r, self.acts_r = w_r, acts_r

    def _stage_g(self, w_r, acts_r):
        """ECP5 form: every odd input's weight is registered gated, once per plane (a flip-flop
        synchronous reset does the gate); the even input's gate is inside the carry cells
        (stage G, one register level more: fed from the operand register, so that the weight
        memory's output register stays where it was; the even inputs' weights and all spikes
        are delayed alongside). Returns the delayed weights and spikes."""
        m, p, en = self.m, self.p, self.en
        simd, planes, wb = p.simd, p.planes, p.w_width
        t_r, gate_clear = self.t_r, {}
        w_g = Signal(p.pe * simd * wb, name="w_g")
        acts_g = Signal(simd * planes, name="acts_g")
        with m.If(en):
            m.d.sync += [w_g.eq(w_r), acts_g.eq(acts_r)]
        for q in range(p.pe):
            for s in range(1, simd, 2):
                w = w_r.word_select(q * simd + s, wb).as_signed()
                for b in range(planes):
                    t = t_r[q, s, b] = Signal(signed(wb), name=f"t_{q}_{s}_{b}")
                    clear = gate_clear.setdefault((s, b), Signal(name=f"clear_{s}_{b}"))
                    # written reset-over-enable, the form of the ECP5 flip-flop's LSR
                    with m.If(clear):
                        m.d.sync += t.eq(0)
                    with m.Elif(en):
                        m.d.sync += t.eq(w)
        for (s, b), clear in gate_clear.items():
            m.d.comb += clear.eq(en & ~acts_r.word_select(s, planes)[b])
        return w_g, acts_g

    def pipeline_control(self):
        """The control bits that travel beside the adder tree (stages R, T1..TD), and stage
        H's when the passes of a word are folded by a Horner register."""
        m, p, en = self.m, self.p, self.en
        simd, planes, passes, kin = p.simd, p.planes, p.passes, p.in_bits
        # stages T1..TD: the registered adder tree. Each plane of each input gates its weight;
        # per plane the simd gated weights add up (weights 8 bits wide: narrow adders), then the
        # planes add with their powers of two. Every level is registered, so each adder is its
        # own carry chain (merged into one adder network, the tree cost twice the LUTs).
        depth = p.tree_depth
        # one pass's planes: 0..2**planes - 1; with signed inputs the first pass's top plane
        # is the sign plane, so a pass's value lies in -2**(planes-1)..2**planes - 1 (a
        # bit-parallel word: the two's-complement range)
        a_lo, a_hi = input_range(planes, p.in_signed)
        if passes > 1:
            a_hi = 2**planes - 1
        w_lo, w_hi = int(p.weights.min()), int(p.weights.max())
        p_lo, p_hi = _product_range(w_lo, w_hi, a_lo, a_hi)
        self.dot_shape = signed(signed_width(simd * p_lo, simd * p_hi))
        bb = p.b_width
        ctl = {stage: (Signal(name=f"valid_{stage}"), Signal(name=f"first_{stage}"),
                       Signal(name=f"last_{stage}"), Signal(p.pe * bb, name=f"bias_{stage}"),
                       Signal(name=f"pfirst_{stage}"), Signal(name=f"plast_{stage}"))
               for stage in ["r"] + [f"t{k}" for k in range(depth)]}
        with m.If(en):
            pass_a = self.pass_a
            prev = (self.valid_a, self.first_a, self.last_a, None, pass_a == 0,
                    pass_a == passes - 1)
            for stage in ctl:
                # the bias memory's output is already stage R's (its address was registered in
                # stage A): its register is the memory's own
                m.d.sync += [reg.eq(src) for reg, src in zip(ctl[stage], prev, strict=True)
                             if src is not None]
                prev = ctl[stage]
        m.d.comb += ctl["r"][3].eq(self.b_rd.data)
        self.ctl, self.ctl_last = ctl, ctl[f"t{depth - 1}"]
        valid_t, first_t, last_t, bias_t, pfirst_t, plast_t = self.ctl_last
        if passes > 1:
            # stage H: the Horner register folds the passes of one input word; the word's sum
            # reaches the accumulator one cycle after its last pass
            full_lo, full_hi = _product_range(w_lo, w_hi, *input_range(kin, p.in_signed))
            self.horner_shape = signed(signed_width(simd * full_lo, simd * full_hi))
            valid_h, first_h, last_h = Signal(), Signal(), Signal()
            bias_h = Signal(p.pe * bb)
            with m.If(en):
                m.d.sync += [valid_h.eq(valid_t & plast_t), first_h.eq(first_t),
                             last_h.eq(last_t), bias_h.eq(bias_t)]
            valid_t, first_t, last_t, bias_t = valid_h, first_h, last_h, bias_h
        self.valid_t, self.first_t, self.last_t, self.bias_t = valid_t, first_t, last_t, bias_t

    def accumulators(self):
        """The accumulators and the results (a result register, or the result FIFO with
        credits), and the product tree of every output (:meth:`lane`)."""
        m, p, en = self.m, self.p, self.en
        acc = [Signal(signed(p.acc_width), name=f"acc_{q}") for q in range(p.pe)]
        self.res = None
        if p.credits:
            rq = self.rq
            m.d.comb += rq.w_en.eq(self.valid_t & self.last_t)
            m.d.sync += self.owed.eq(self.owed + (self.go & self.fold_start)
                                     - (rq.r_rdy & rq.r_en))
        else:
            res = [Signal(signed(p.acc_width), name=f"res_{q}") for q in range(p.pe)]
            valid_c = Signal()
            with m.If(en):
                m.d.sync += valid_c.eq(self.valid_t & self.last_t)
            self.res, self.valid_c = res, valid_c
        for q in range(p.pe):
            word_sum = self.lane(q)
            bias = self.bias_t.word_select(q, p.b_width).as_signed()
            total = Mux(self.first_t, bias, acc[q]) + word_sum
            with m.If(en & self.valid_t):
                m.d.sync += acc[q].eq(total)
                if not p.credits:
                    with m.If(self.last_t):
                        m.d.sync += self.res[q].eq(total)
            if p.credits:
                m.d.comb += self.rq.w_data.word_select(q, p.acc_width).eq(total)

    def lane(self, q: int):
        """Output ``q``'s product: per plane the spike-gated weights through a registered
        adder tree, the planes added with their powers of two, and with several passes the
        Horner register; returns the input word's sum."""
        m, p, en = self.m, self.p, self.en
        simd, planes, wb = p.simd, p.planes, p.w_width
        w_r, acts_r = self.w_r, self.acts_r
        ws = [w_r.word_select(q * simd + s, wb).as_signed() for s in range(simd)]
        if p.multiply:
            return self._products(q, ws)
        plane_sums = []
        for b in range(planes):
            zs = [acts_r.word_select(s, planes)[b] for s in range(simd)]
            if not p.fused:
                gated = [Mux(zs[s], ws[s], 0) for s in range(simd)]
                root, levels = registered_tree(m, gated, en, f"pl_{q}_{b}")
            else:
                # the first level: pair adders with one gate inside the carry cells
                first = [registered(m, gated_pair_sum(m, zs[s], ws[s], self.t_r[q, s + 1, b],
                                                      form=p.carry,
                                                      name=f"gp_{q}_{b}_{s // 2}")
                                    if s + 1 < simd else Mux(zs[s], ws[s], 0),
                                    en, f"pl_{q}_{b}_l0_{s // 2}")
                         for s in range(0, simd, 2)]
                root, levels = registered_tree(m, first, en, f"pl_{q}_{b}_up")
                levels += 2  # stage G and the pair adders' register
            if p.in_signed and b == planes - 1:
                root = self._sign_plane(root, levels)
            plane_sums.append(root.shift_left(b) if b else root)
        root, _ = registered_tree(m, plane_sums, en, f"dot_{q}")
        dot = Signal(self.dot_shape, name=f"dot_{q}")
        if tree_levels(simd) + tree_levels(planes) == 0:  # one input, one plane: one register
            with m.If(en):
                m.d.sync += dot.eq(root)
        else:
            m.d.comb += dot.eq(root)
        if p.passes == 1:
            return dot
        word_sum = Signal(self.horner_shape, name=f"horner_{q}")
        valid_last, pfirst_last = self.ctl_last[0], self.ctl_last[4]
        with m.If(en & valid_last):
            m.d.sync += word_sum.eq(Mux(pfirst_last, 0, word_sum.shift_left(planes)) + dot)
        return word_sum

    def _products(self, q: int, ws):
        """Output ``q``'s dot product in the products form: every weight times its whole input
        word, registered (a multiplier each, a DSP block where the family has them), then the
        registered tree of the ``simd`` products (:attr:`DenseParams.tree_depth` levels in
        all)."""
        m, p, en = self.m, self.p, self.en
        kin = p.in_bits
        prods = []
        for s, w in enumerate(ws):
            a = self.acts_r.word_select(s, kin)  # unsigned, or the signed word's bits
            if p.in_signed:
                a = a.as_signed()
            prods.append(registered(m, w * a, en, f"prod_{q}_{s}"))
        root, _ = registered_tree(m, prods, en, f"dot_{q}")
        dot = Signal(self.dot_shape, name=f"dot_{q}")
        m.d.comb += dot.eq(root)
        return dot

    def _sign_plane(self, root, levels: int):
        """Two's-complement inputs: the sum of the most significant plane's gated weights,
        ``root`` (``levels`` registers after stage R), negated where that plane is the sign
        plane: always when bit-parallel, on a word's first pass only with several passes (the
        pass flag travels beside the tree, :meth:`pipeline_control`)."""
        if self.p.passes == 1:
            return -root
        first_pass = self.ctl["r" if levels == 0 else f"t{levels - 1}"][4]
        return Mux(first_pass, -root, root)

    def epilogue(self):
        """Stage C (the result register, or with credits the result FIFO's output register):
        requantise, then the ReLU AMOS unit (or the raw value)."""
        m, p, eng = self.m, self.p, self.eng
        pe, credits = p.pe, p.credits
        if credits:
            rq = self.rq
            res = [rq.r_data.word_select(q, p.acc_width).as_signed() for q in range(pe)]
            valid_c = rq.r_rdy
        else:
            res, valid_c = self.res, self.valid_c
        S = p.shift
        v = [(r + (1 << (S - 1))) >> S if S else r for r in res]

        def take_when(ready):
            """With credits the result FIFO is read when the output side takes a result;
            without, the whole pipeline moves when the result register is free or taken."""
            return rq.r_en.eq(ready) if credits else self.en.eq(~valid_c | ready)

        if p.out_bits is not None:
            m.submodules.amos = amos = AmosUnit(IntAmosUnit.relu(p.out_bits), p.v_width,
                                                lanes=pe)
            m.d.comb += [
                amos.i.valid.eq(valid_c),
                take_when(amos.i.ready),
                eng.o.valid.eq(amos.o.valid),
                amos.o.ready.eq(eng.o.ready),
                eng.spike_count.eq(amos.spike_count),
            ]
            m.d.comb += [amos.i.payload.x[q].eq(v[q]) for q in range(pe)]
            m.d.comb += [eng.o.payload[q].eq(amos.o.payload.z[q]) for q in range(pe)]
        else:
            m.d.comb += [
                eng.o.valid.eq(valid_c),
                take_when(eng.o.ready),
            ]
            m.d.comb += [eng.o.payload[q].eq(v[q]) for q in range(pe)]
