# amaranth: UnusedElaboratable=no
"""Fast tier: the consuming engines on two's-complement input words (``in_signed=True``, the
output of a trained AMOS unit): dense, convolution and global average pooling in the Amaranth
simulator, bit for bit against python_ref.snn, with random input gaps and output stalls, the
measured cycles and latency equal to the figures, and the accumulator range by brute force.

An ``in_bits`` signed word ``x`` has the value ``-2**(in_bits-1) * x[in_bits-1] + sum_{b <
in_bits-1} 2**b * x[b]``; the references below are python_ref on those values.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring

from amos_hw.engines import dense as dense_module
from amos_hw.engines.carry import gated_pair_sum
from amos_hw.engines.conv import ConvEngine
from amos_hw.engines.dense import DenseEngine, accumulator_range, spike_product
from amos_hw.engines.figures import DenseParams, GapParams
from amos_hw.engines.gap import GlobalAvgPoolEngine
from amos_hw.engines.window import SlidingWindow
from amos_hw.lib.engine_sim import output_cycles, run_engine, to_words
from amos_hw.lib.sim import run_simulation
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift, signed_width


def signed_inputs(rng, shape, bits):
    """Random words of ``bits`` two's complement, the most negative value and -1 included."""
    a = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), shape)
    flat = a.reshape(-1)
    flat[0], flat[1], flat[-1] = -(2 ** (bits - 1)), -1, 2 ** (bits - 1) - 1
    flat[2::7] = -(2 ** (bits - 1))
    flat[3::11] = -1
    return a


def reference(acc, shift, out_bits):
    """Requantisation then the ReLU AMOS unit, or the raw value (python_ref)."""
    if out_bits is None:
        return requant_shift(acc, shift)
    return snn.requant_unit([acc], [shift], IntAmosUnit.relu(out_bits))[0]


# -- dense -----------------------------------------------------------------------------------


DENSE = {
    # name: (n_out, n_in, pe, simd, in_bits, planes, out_bits, shift, credits)
    "parallel_folded_relu": (6, 8, 2, 4, 6, None, 4, 6, False),
    "parallel_serial_raw": (4, 6, 1, 1, 6, None, None, 0, False),
    "parallel_credits_raw": (4, 6, 2, 3, 6, None, None, 2, True),
    "planes1_folded_relu": (6, 8, 2, 4, 6, 1, 4, 6, False),
    "planes1_serial_raw": (4, 6, 1, 1, 6, 1, None, 0, True),
    "planes2_folded_raw": (6, 12, 3, 3, 6, 2, None, 1, False),
    "planes2_credits_relu": (4, 8, 2, 2, 6, 2, 3, 5, True),
    "planes3_odd_simd": (4, 9, 4, 3, 6, 3, None, 0, False),
    "one_bit": (4, 6, 2, 2, 1, None, None, 0, False),
    # wider than 16 bits: a global pool's sums of unit outputs (MAX_IN_BITS = 24)
    "wide18_parallel_raw": (4, 6, 2, 3, 18, None, None, 0, False),
    "wide24_planes3_raw": (4, 6, 2, 2, 24, 3, None, 3, True),
}


def make_dense(cfg, seed, **kw):
    n_out, n_in, pe, simd, in_bits, planes, out_bits, shift, credits = cfg
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (n_out, n_in))
    b = rng.integers(-3000, 3001, n_out)
    dut = DenseEngine(w, b, in_bits=in_bits, shift=shift, out_bits=out_bits, pe=pe, simd=simd,
                      planes=planes, credits=credits, in_signed=True, **kw)
    return dut, rng


def run_dense(dut, a, seed=0):
    n = a.shape[0] * dut.n_out // dut.pe
    out = run_engine(dut, to_words(a, dut.simd), n, in_lanes=dut.simd, out_lanes=dut.pe,
                     seed=seed)
    return out.reshape(a.shape[0], dut.n_out)


@pytest.mark.parametrize("name", DENSE)
def test_dense_against_reference(name):
    dut, rng = make_dense(DENSE[name], seed=len(name))
    a = signed_inputs(rng, (7, dut.n_in), dut.in_bits)
    hw = run_dense(dut, a, seed=len(name))
    ref = reference(snn.dense(a, dut.weights, dut.bias), dut.shift, dut.out_bits)
    assert hw.tolist() == ref.tolist()
    assert hw.tolist() == dut.model(a).tolist()


def test_dense_sign_plane_alone():
    """Each input is the most negative word (only the sign plane spikes) or -1 (every plane):
    the value of the sign plane's spike is -2**(in_bits-1), not +2**(in_bits-1)."""
    w = np.array([[1, 2, -3, 127], [-127, 5, 0, 1]])
    b = np.array([0, 7])
    for planes in (None, 1, 2):
        dut = DenseEngine(w, b, in_bits=4, shift=0, out_bits=None, pe=1, simd=2, planes=planes,
                          in_signed=True)
        a = np.array([[-8, -8, -8, -8], [-1, -1, -1, -1], [-8, -1, 7, 0]])
        hw = run_dense(dut, a, seed=4)
        assert hw.tolist() == [[-8 * 127, -8 * -121 + 7], [-127, 121 + 7],
                               [-8 - 2 - 21, 127 * 8 - 5 + 7]]


@pytest.mark.parametrize("name", ["parallel_folded_relu", "parallel_credits_raw",
                                  "planes1_folded_relu", "planes2_credits_relu",
                                  "planes3_odd_simd"])
def test_dense_cycles_and_latency_exact(name):
    """Vectors back to back, no idle, no stall: the first output ``latency`` cycles after the
    first input, one vector every ``expected_cycles``; both as for unsigned inputs."""
    dut, rng = make_dense(DENSE[name], seed=1)
    images = 3
    a = signed_inputs(rng, (images, dut.n_in), dut.in_bits)
    per_image = dut.n_out // dut.pe
    ins, outs = output_cycles(dut, to_words(a, dut.simd), images * per_image)
    firsts = outs[::per_image]
    assert firsts[0] - ins[0] == dut.latency
    n_out, n_in, pe, simd, in_bits, planes, *_ = DENSE[name]
    cycles = (n_out // pe) * (n_in // simd) * (in_bits // (planes or in_bits))
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * (images - 1) == \
        [cycles] * (images - 1)
    twin = DenseEngine.figures(dut.weights, dut.bias, in_bits=dut.in_bits, shift=dut.shift,
                               out_bits=dut.out_bits, pe=dut.pe, simd=dut.simd,
                               planes=dut.planes, credits=dut.credits)
    assert (twin.cycles, twin.latency) == (dut.expected_cycles, dut.latency)


@pytest.mark.parametrize("planes", [None, 1, 2])
def test_dense_worst_case_reaches_both_ends(planes):
    """Per output, the inputs that maximise and minimise it (the positive end where the weight
    has the sign, the negative end elsewhere): the outputs reach both ends of the signed
    accumulator range, which is as wide as it must be."""
    rng = np.random.default_rng(8)
    n_out, n_in, bits = 4, 6, 6
    w = rng.choice([-127, 127], size=(n_out, n_in))
    w[0], w[1] = 127, -127
    # the all-positive row starts at the smallest bias, the all-negative one at the largest:
    # their extremes take every input at its negative end, -32 (the sign plane alone)
    b = np.array([-(2**31), 2**31 - 1, 0, 12345])
    dut = DenseEngine(w, b, in_bits=bits, shift=0, out_bits=None, pe=2, simd=3, planes=planes,
                      in_signed=True)
    lo_a, hi_a = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    worst = []
    for k in range(n_out):
        worst.append(np.where(w[k] > 0, hi_a, lo_a))
        worst.append(np.where(w[k] > 0, lo_a, hi_a))
    a = np.array(worst)
    hw = run_dense(dut, a, seed=3)
    assert hw.tolist() == snn.dense(a, w, b).tolist()
    lo, hi = -(2**31) - 127 * 32 * n_in, 2**31 - 1 + 127 * 32 * n_in
    assert (hw.min(), hw.max()) == (lo, hi) == dut.acc_range
    assert dut.acc_width == signed_width(lo, hi) == 33


def test_dense_signed_port_shapes():
    dut, _ = make_dense(DENSE["parallel_folded_relu"], seed=0)
    assert dut.in_signed is True
    assert dut.i.payload.shape().elem_shape == signed(6)
    assert dut.o.payload.shape().elem_shape == unsigned(4)
    plain = DenseEngine(dut.weights, dut.bias, in_bits=6, shift=6, out_bits=4, pe=2, simd=4)
    assert plain.in_signed is False
    assert plain.i.payload.shape().elem_shape == unsigned(6)


def test_dense_model_and_parameter_checks():
    dut, _ = make_dense(DENSE["parallel_serial_raw"], seed=0)
    dut.model(np.full((1, 6), -32))
    with pytest.raises(ValueError, match=r"^dense: inputs must lie in -32\.\.31$"):
        dut.model(np.full((1, 6), 32))
    with pytest.raises(ValueError, match=r"^dense: inputs must lie in -32\.\.31$"):
        dut.model(np.full((1, 6), -33))
    with pytest.raises(ValueError, match=r"^fc: in_signed must be a bool, not 'yes'$"):
        DenseEngine(np.ones((2, 2), int), [0, 0], in_bits=4, shift=0, out_bits=None,
                    name="fc", in_signed="yes")
    with pytest.raises(ValueError, match=r"^c1: in_signed must be a bool, not 1$"):
        ConvEngine.figures(np.ones((2, 1, 1, 2), int), [0, 0], height=2, width=2, in_bits=4,
                           shift=0, out_bits=None, name="c1", in_signed=1)
    with pytest.raises(ValueError, match=r"^g: in_signed must be a bool, not None$"):
        GapParams.check(height=2, width=2, channels=2, in_bits=4, name="g", in_signed=None)


def test_dense_figures_of_signed_engine():
    """The figures match the built engine's properties; the raw output is as wide as the
    signed range needs; unsigned figures are unchanged by the new keyword's default."""
    dut, _ = make_dense(DENSE["planes2_folded_raw"], seed=2)
    args = dict(in_bits=6, shift=1, out_bits=None, pe=3, simd=3, planes=2)
    fig = DenseEngine.figures(dut.weights, dut.bias, in_signed=True, **args)
    assert (fig.cycles, fig.latency, fig.luts, fig.flip_flops, fig.memory_bits, fig.out_width) \
        == (dut.expected_cycles, dut.latency, dut.luts, dut.flip_flops, dut.memory_bits,
            dut.out_width)
    v_lo, v_hi = (int(v) for v in requant_shift(np.array(dut.acc_range), 1))
    assert fig.out_width == signed_width(v_lo, v_hi)
    unsigned_default = DenseEngine.figures(dut.weights, dut.bias, **args)
    assert DenseEngine.figures(dut.weights, dut.bias, in_signed=False, **args) == \
        unsigned_default
    assert unsigned_default.cycles == fig.cycles and unsigned_default.latency == fig.latency


def test_spike_product_signed_exhaustive():
    """:func:`spike_product` with ``signed``: ``w * a`` for every 4-bit word ``a`` and a few
    weights, ``a`` read as two's complement."""
    bits = 4
    cases = [(w, a) for w in (-127, -5, 0, 1, 99, 127) for a in range(2**bits)]
    w_s, a_s = Signal(signed(8)), Signal(bits)
    out = Signal(signed(16))
    m = Module()
    m.d.sync += out.eq(spike_product(w_s, a_s, bits, signed=True))
    got = []

    async def tb(ctx):
        for w, a in cases:
            ctx.set(w_s, w)
            ctx.set(a_s, a)
            await ctx.tick()
            got.append(ctx.get(out))

    run_simulation(m, tb)
    assert got == [w * (a - 2**bits if a >= 2 ** (bits - 1) else a) for w, a in cases]


# -- accumulator range by brute force ---------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("in_signed", [False, True])
def test_accumulator_range_brute_force(seed, in_signed):
    """Every input vector of a small layer enumerated: the smallest and largest partial sum
    (the bias-free word sums included) are the function's range."""
    rng = np.random.default_rng(seed)
    n_out, n_in = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    bits = int(rng.integers(1, 4))
    w = rng.integers(-6, 7, (n_out, n_in))
    b = rng.integers(-40, 41, n_out)
    values = range(-(2 ** (bits - 1)), 2 ** (bits - 1)) if in_signed else range(2**bits)
    sums = []
    for a in itertools.product(values, repeat=n_in):
        for k in range(n_out):
            prefix = np.cumsum([0] + [int(w[k, i]) * a[i] for i in range(n_in)])
            sums.extend(int(v) for v in prefix)
            sums.extend(int(b[k]) + int(v) for v in prefix)
    assert accumulator_range(w, b, bits, in_signed=in_signed) == (min(sums), max(sums))


def test_accumulator_range_unsigned_unchanged():
    """The default keeps the unsigned range: ``[sum_{w<0} w*amax, sum_{w>0} w*amax]``."""
    w = np.array([[3, -2, 0], [-1, -1, 5]])
    assert accumulator_range(w, [10, -4], 3) == (-4 - 14, 35)
    # signed, -4..3: row 0 spans 3*-4 - 2*3 = -18 .. 3*3 + 2*4 = 17, row 1 -6 - 20 .. 8 + 15
    assert accumulator_range(w, [10, -4], 3, in_signed=True) == (-4 - 26, 10 + 17)


# -- the ECP5 carry form ----------------------------------------------------------------------


@pytest.mark.parametrize("planes", [None, 2])
def test_dense_ecp5_form_pipeline(monkeypatch, planes):
    """``carry="ecp5"`` with signed inputs: its pipeline (stage G, the flip-flop-gated odd
    weights, the sign plane's pass flag beside the deeper tree) in the Amaranth simulator, the
    CCU2C pair adder replaced by its generic equal (the Amaranth simulator cannot run the
    primitive; ``rtl_tests/test_engine_signed.py`` runs the CCU2C model)."""
    def generic(m, za, a, t, *, form, name):
        assert form == "ecp5"
        return gated_pair_sum(m, za, a, t, form="generic", name=name)

    monkeypatch.setattr(dense_module, "gated_pair_sum", generic)
    cfg = (4, 12, 2, 4, 6, planes, None, 0, False)
    dut, rng = make_dense(cfg, seed=11, carry="ecp5")
    assert dut.params.fused
    a = signed_inputs(rng, (5, 12), 6)
    hw = run_dense(dut, a, seed=6)
    assert hw.tolist() == snn.dense(a, dut.weights, dut.bias).tolist()
    ins, outs = output_cycles(dut, to_words(a[:3], dut.simd), 3 * 2)
    assert outs[0] - ins[0] == dut.latency
    assert np.diff(outs[::2]).tolist() == [dut.expected_cycles] * 2


# -- convolution ------------------------------------------------------------------------------


CONV = {
    # name: (H, W, C_in, C_out, k, stride, padding, pe, simd, in_bits, planes, out_bits, shift)
    "3x3s1p1_relu": (5, 6, 2, 4, 3, 1, 1, 2, 1, 4, None, 4, 7),
    "3x3s1p1_raw_planes1": (4, 5, 2, 2, 3, 1, 1, 1, 2, 4, 1, None, 0),
    "3x3s2p1_raw": (6, 5, 4, 2, 3, 2, 1, 1, 2, 5, None, None, 3),
    "3x3s2p1_relu_planes2": (7, 6, 2, 4, 3, 2, 1, 2, 2, 6, 2, 3, 8),
    "3x3s2p0_raw": (7, 5, 2, 4, 3, 2, 0, 4, 2, 4, None, None, 0),
}


def make_conv(cfg, seed):
    H, W, cin, cout, k, s, p, pe, simd, bits, planes, out_bits, shift = cfg
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (cout, k, k, cin))
    b = rng.integers(-1000, 1001, cout)
    dut = ConvEngine(w, b, height=H, width=W, stride=s, padding=p, in_bits=bits, shift=shift,
                     out_bits=out_bits, pe=pe, simd=simd, planes=planes, in_signed=True)
    return dut, rng


def conv_words(dut, images):
    ho, wo, co = dut.out_shape
    return images * ho * wo * co // dut.pe


@pytest.mark.parametrize("name", CONV)
def test_conv_against_reference(name):
    dut, rng = make_conv(CONV[name], seed=len(name))
    a = signed_inputs(rng, (2,) + dut.in_shape, dut.in_bits)
    hw = run_engine(dut, to_words(a, dut.simd), conv_words(dut, 2), in_lanes=dut.simd,
                    out_lanes=dut.pe, seed=len(name) + 1)
    acc = snn.conv2d(a, dut.weights, dut.bias, dut.stride, dut.padding)
    assert hw.tolist() == reference(acc, dut.shift, dut.out_bits).ravel().tolist()
    assert hw.tolist() == dut.model(a).ravel().tolist()


def test_conv_padding_is_value_zero():
    """Every input at the most negative word, 3x3 with padding 1: the border outputs see zeros
    (the all-zero word), not the sign-extended or the most negative value. The test can tell:
    padding with -2**(b-1) would change every border output."""
    dut, _ = make_conv((4, 5, 2, 2, 3, 1, 1, 1, 2, 4, None, None, 0), seed=5)
    a = np.full((1,) + dut.in_shape, -8)
    hw = run_engine(dut, to_words(a, dut.simd), conv_words(dut, 1), in_lanes=dut.simd,
                    out_lanes=dut.pe, seed=2)
    ref = snn.conv2d(a, dut.weights, dut.bias, 1, 1)
    assert hw.tolist() == ref.ravel().tolist()
    padded_wrong = np.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-8)
    wrong = snn.conv2d(padded_wrong, dut.weights, dut.bias, 1, 0)
    border = np.ones(ref.shape[1:3], bool)
    border[1:-1, 1:-1] = False
    assert (wrong[0][border] != ref[0][border]).all()
    assert (wrong[0][~border] == ref[0][~border]).all()


@pytest.mark.parametrize("name", ["3x3s1p1_relu", "3x3s2p1_relu_planes2", "3x3s2p0_raw"])
def test_conv_cycles_and_latency_exact(name):
    dut, rng = make_conv(CONV[name], seed=3)
    images = 3
    a = signed_inputs(rng, (images,) + dut.in_shape, dut.in_bits)
    n = conv_words(dut, images)
    ins, outs = output_cycles(dut, to_words(a, dut.simd), n)
    firsts = outs[:: n // images]
    assert firsts[0] - ins[0] == dut.latency
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * (images - 1)
    H, W, cin, cout, k, s, p, pe, simd, bits, planes, *_ = CONV[name]
    ho, wo, _ = dut.out_shape
    compute = ho * wo * (cout // pe) * (k * k * cin // simd) * (bits // (planes or bits))
    assert dut.expected_cycles == max(compute, H * W * cin // simd)


def test_conv_ports_and_window_signed():
    dut, _ = make_conv(CONV["3x3s1p1_relu"], seed=0)
    assert dut.in_signed and dut.params.in_signed
    assert dut.i.payload.shape().elem_shape == signed(4)
    win = SlidingWindow(height=4, width=4, channels=2, kernel=3, stride=1, padding=1, simd=1,
                        bits=4, signed=True)
    assert win.signed and win.i.payload.shape().elem_shape == signed(4)
    assert win.o.payload.shape().elem_shape == signed(4)
    with pytest.raises(ValueError, match=r"^w: signed must be a bool, not 'no'$"):
        SlidingWindow(height=4, width=4, channels=2, kernel=3, stride=1, padding=1, simd=1,
                      bits=4, name="w", signed="no")
    with pytest.raises(ValueError, match=r"^conv: inputs must lie in -8\.\.7$"):
        dut.model(np.full((1,) + dut.in_shape, 8))
    H, W, cin, cout, k, s, p, pe, simd, bits, planes, out_bits, shift = CONV["3x3s1p1_relu"]
    fig = ConvEngine.figures(dut.weights, dut.bias, height=H, width=W, stride=s, padding=p,
                             in_bits=bits, shift=shift, out_bits=out_bits, pe=pe, simd=simd,
                             planes=planes, in_signed=True)
    assert (fig.cycles, fig.latency, fig.luts, fig.flip_flops, fig.memory_bits, fig.out_width) \
        == (dut.expected_cycles, dut.latency, dut.luts, dut.flip_flops, dut.memory_bits,
            dut.out_width)


# -- global average pooling, then dense -------------------------------------------------------


class GapDense(wiring.Component):
    """A signed gap engine streaming into a signed dense engine (as the network top wires
    them): the ports must connect."""

    def __init__(self, gap: GlobalAvgPoolEngine, fc: DenseEngine):
        self.gap, self.fc = gap, fc
        super().__init__({"i": gap.signature.members["i"], "o": fc.signature.members["o"]})

    def elaborate(self, platform):
        m = Module()
        m.submodules.gap, m.submodules.fc = self.gap, self.fc
        wiring.connect(m, wiring.flipped(self.i), self.gap.i)
        wiring.connect(m, self.gap.o, self.fc.i)
        wiring.connect(m, self.fc.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize(("lanes", "planes", "out_bits"), [(2, None, None), (1, 1, 4),
                                                           (4, 3, None)])
def test_gap_then_dense(lanes, planes, out_bits):
    H, W, C, bits, classes = 3, 4, 4, 5, 4
    gap = GlobalAvgPoolEngine(height=H, width=W, channels=C, in_bits=bits, lanes=lanes,
                              in_signed=True)
    assert gap.out_signed and gap.in_signed
    lo, hi = H * W * -16, H * W * 15
    assert gap.sum_range == (lo, hi)
    assert gap.out_width == gap.sum_bits == signed_width(lo, hi) == 9
    assert gap.o.payload.shape().elem_shape == signed(9)
    rng = np.random.default_rng(lanes)
    w = rng.integers(-127, 128, (classes, C))
    b = rng.integers(-5000, 5001, classes)
    fc = DenseEngine(w, b, in_bits=gap.out_width, shift=4, out_bits=out_bits, pe=1, simd=lanes,
                     planes=planes, in_signed=gap.out_signed, name="fc")
    dut = GapDense(gap, fc)
    a = signed_inputs(rng, (4, H, W, C), bits)
    a[1] = -16  # every sum at its most negative
    a[2] = 15  # and at its largest
    hw = run_engine(dut, to_words(a, lanes), 4 * classes, in_lanes=lanes, out_lanes=1, seed=9)
    sums = snn.gap(a)
    assert sums[1].tolist() == [lo] * C and sums[2].tolist() == [hi] * C
    ref = reference(snn.dense(sums, w, b), 4, out_bits)
    assert hw.tolist() == ref.ravel().tolist()


def test_gap_signed_sums_and_cycles():
    """The sums alone, at both ends of their range, and the gap's cycles and latency."""
    H, W, C, bits, lanes = 2, 3, 4, 3, 2
    dut = GlobalAvgPoolEngine(height=H, width=W, channels=C, in_bits=bits, lanes=lanes,
                              in_signed=True)
    rng = np.random.default_rng(4)
    a = signed_inputs(rng, (4, H, W, C), bits)
    a[0], a[3] = -4, 3
    hw = run_engine(dut, to_words(a, lanes), 4 * C // lanes, in_lanes=lanes, out_lanes=lanes,
                    seed=1)
    assert hw.tolist() == snn.gap(a).ravel().tolist() == dut.model(a).ravel().tolist()
    assert hw[:C].tolist() == [-24] * C and dut.sum_bits == signed_width(-24, 18) == 6
    ins, outs = output_cycles(dut, to_words(a[:3], lanes), 3 * C // lanes)
    firsts = outs[:: C // lanes]
    assert firsts[0] - ins[0] == dut.latency == (H * W - 1) * (C // lanes) + 1
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * 2 == [H * W * C // lanes] * 2
    fig = GlobalAvgPoolEngine.figures(height=H, width=W, channels=C, in_bits=bits, lanes=lanes,
                                      in_signed=True)
    assert (fig.out_width, fig.flip_flops, fig.luts) == (6, dut.flip_flops, dut.luts)
    with pytest.raises(ValueError, match=r"^gap: inputs must lie in -4\.\.3$"):
        dut.model(np.full((1, H, W, C), 4))
    unsigned_gap = GapParams.check(height=H, width=W, channels=C, in_bits=bits, lanes=lanes)
    assert unsigned_gap.sum_bits == 6 and not unsigned_gap.out_signed  # 6 * 7 = 42


def test_dense_params_carry_in_signed():
    p = DenseParams.check(np.array([[1, -1]]), [0], in_bits=3, shift=0, out_bits=None,
                          in_signed=True)
    assert p.in_signed and p.acc_range == (-4 - 3, 3 + 4)
