# amaranth: UnusedElaboratable=no
"""Fast tier: the windowed pooling engines (:mod:`amos_hw.engines.pool`, max and average
pooling) in the Amaranth simulator, bit for bit against python_ref.snn, with exact cycles and
latency, and their figures from parameters alone."""
from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.hdl import Fragment

from amos_hw.engines.figures import PoolParams
from amos_hw.engines.pool import AvgPoolEngine, MaxPoolEngine
from amos_hw.lib.engine_sim import output_cycles, run_engine, to_words
from python_ref import snn

ENGINES = {"max": (MaxPoolEngine, snn.maxpool2d), "avg": (AvgPoolEngine, snn.avgpool2d)}

CONFIGS = {
    # name: (H, W, C, kernel, stride, padding, lanes)
    "2x2s2": (6, 6, 4, 2, 2, 0, 2),
    "2x2s2_odd": (5, 7, 2, 2, 2, 0, 1),
    "3x3s2p1": (6, 5, 4, 3, 2, 1, 4),
    "3x3s1p1": (5, 5, 2, 3, 1, 1, 1),
    "3x3s1p0": (5, 4, 3, 3, 1, 0, 3),
    "1x1s1": (3, 4, 2, 1, 1, 0, 2),
    "1x1s2": (4, 5, 4, 1, 2, 0, 2),
}


def make(op, cfg, in_bits=4):
    H, W, C, k, s, p, lanes = cfg
    cls, _ = ENGINES[op]
    return cls(height=H, width=W, channels=C, kernel=k, stride=s, padding=p, in_bits=in_bits,
               lanes=lanes)


def reference(op, dut, a):
    return ENGINES[op][1](a, dut.kernel, dut.stride, dut.padding)


def n_out_words(dut, images):
    ho, wo, c = dut.out_shape
    return images * ho * wo * c // dut.lanes


@pytest.mark.parametrize("op", ENGINES)
@pytest.mark.parametrize("name", CONFIGS)
def test_random_against_reference(op, name):
    dut = make(op, CONFIGS[name])
    rng = np.random.default_rng(len(name))
    a = rng.integers(0, 16, (2,) + dut.in_shape)
    hw = run_engine(dut, to_words(a, dut.lanes), n_out_words(dut, 2), in_lanes=dut.lanes,
                    out_lanes=dut.lanes, seed=len(name) + len(op))
    ref = reference(op, dut, a)
    assert hw.tolist() == ref.ravel().tolist()
    assert hw.tolist() == dut.model(a).ravel().tolist()


@pytest.mark.parametrize("op", ENGINES)
@pytest.mark.parametrize("name", ["2x2s2", "3x3s2p1", "3x3s1p1", "1x1s2"])
def test_cycles_and_latency_exact(op, name):
    """Three images back to back, the input always offered and the output always ready: the
    first output word comes ``latency`` cycles after the first input word, and the images'
    first outputs ``expected_cycles`` apart (the window's words, or the input's)."""
    dut = make(op, CONFIGS[name])
    a = np.random.default_rng(3).integers(0, 16, (3,) + dut.in_shape)
    per_image = n_out_words(dut, 1)
    ins, outs = output_cycles(dut, to_words(a, dut.lanes), 3 * per_image)
    firsts = outs[::per_image]
    assert firsts[0] - ins[0] == dut.latency
    H, W, C, k, _, _, lanes = CONFIGS[name]
    ho, wo, _ = dut.out_shape
    cycles = max(ho * wo * k * k * C // lanes, H * W * C // lanes)
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * 2 == [cycles] * 2


def test_avgpool_worst_case_width():
    """All inputs at their largest: every 3x3 sum of the centre is 9 * 255, which needs the
    whole 8 + ceil(log2 9) = 12 bits."""
    dut = AvgPoolEngine(height=3, width=3, channels=2, kernel=3, stride=1, padding=1,
                        in_bits=8, lanes=2)
    assert dut.out_width == 12
    a = np.full((1, 3, 3, 2), 255)
    hw = run_engine(dut, to_words(a, 2), n_out_words(dut, 1), in_lanes=2, out_lanes=2, seed=2)
    assert hw.tolist() == snn.avgpool2d(a, 3, 1, 1).ravel().tolist()
    assert hw.max() == 9 * 255 and hw.min() == 4 * 255  # centre and corners (zero padding)


def test_maxpool_keeps_the_spike_word():
    dut = MaxPoolEngine(height=4, width=4, channels=1, kernel=2, stride=2, in_bits=10)
    assert dut.out_width == dut.in_bits == 10
    a = np.arange(16).reshape(1, 4, 4, 1) * 60 + 123  # up to 1023
    hw = run_engine(dut, to_words(a, 1), 4, in_lanes=1, out_lanes=1, seed=4)
    assert hw.tolist() == snn.maxpool2d(a, 2, 2).ravel().tolist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"height": 0}, "p: height must be a positive integer, not 0"),
        ({"channels": "4"}, "p: channels must be a positive integer, not '4'"),
        ({"kernel": 0}, "p: kernel must be a positive integer, not 0"),
        ({"stride": 0}, "p: stride must be a positive integer, not 0"),
        ({"padding": 2}, "p: padding must be less than kernel=2, not 2"),
        ({"padding": -1}, "p: padding must be a non-negative integer, not -1"),
        ({"lanes": 3}, "p: simd must divide the 4 input channels, not 3"),
        ({"lanes": 0}, "p: lanes must be a positive integer, not 0"),
        ({"in_bits": 25}, "p: in_bits must be a positive integer of at most 24, not 25"),
        ({"kernel": 5, "padding": 0}, "p: a 5x5 window with padding 0 does not fit a 4x4 image"),
    ],
)
@pytest.mark.parametrize("op", ENGINES)
def test_bad_parameters(op, kwargs, message):
    ok = {"height": 4, "width": 4, "channels": 4, "kernel": 2, "stride": 2, "padding": 0,
          "in_bits": 4, "lanes": 2}
    cls = ENGINES[op][0]
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        cls(**{**ok, **kwargs}, name="p")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        cls.figures(**{**ok, **kwargs}, name="p")


def test_bad_name_and_op():
    with pytest.raises(ValueError, match="^name must be a non-empty string, not ''$"):
        MaxPoolEngine(height=2, width=2, channels=1, kernel=2, in_bits=4, name="")
    with pytest.raises(ValueError, match="^p: op must be 'max' or 'avg', not 'min'$"):
        PoolParams.check(op="min", height=2, width=2, channels=1, kernel=2, in_bits=4,
                         name="p")


@pytest.mark.parametrize("op", ENGINES)
def test_model_checks_its_input(op):
    dut = make(op, CONFIGS["2x2s2"])
    with pytest.raises(ValueError, match=r"^(max|avg)pool: images must have shape "
                                         r"\(N, 6, 6, 4\)$"):
        dut.model(np.zeros((1, 6, 6, 3), np.int64))
    with pytest.raises(ValueError, match=r"^(max|avg)pool: inputs must lie in 0\.\.15$"):
        dut.model(np.full((1, 6, 6, 4), 16))


@pytest.mark.parametrize("op", ENGINES)
@pytest.mark.parametrize("name", ["2x2s2", "3x3s2p1"])
def test_figures_equal_the_engine(op, name):
    """``figures(...)`` (nothing built) equals the built engine's properties; the memories are
    the line buffer the elaborated design holds."""
    H, W, C, k, s, p, lanes = CONFIGS[name]
    kw = {"height": H, "width": W, "channels": C, "kernel": k, "stride": s, "padding": p,
          "in_bits": 4, "lanes": lanes}
    cls = ENGINES[op][0]
    fig = cls.figures(**kw)
    dut = cls(**kw)
    assert (fig.cycles, fig.latency, fig.luts, fig.flip_flops, fig.memory_bits,
            list(fig.memories), fig.out_width) == (
        dut.expected_cycles, dut.latency, dut.luts, dut.flip_flops, dut.memory_bits,
        dut.memories, dut.out_width)
    assert fig.memory_bits == dut.line_buffer_rows * W * C * 4 > 0
    assert fig.flip_flops > 0 and fig.luts > 0
    assert dut.pe == dut.simd == lanes
    Fragment.get(dut, None)
