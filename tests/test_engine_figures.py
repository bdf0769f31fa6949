# amaranth: UnusedElaboratable=no
"""Engine figures from parameters alone (:mod:`amos_hw.engines.figures`): each engine's static
``figures(...)`` builds no Amaranth object, equals the constructed engine's properties, and
refuses bad parameters with the constructor's own error.

The engines built here only to read their properties are never elaborated (hence the linter
pragma on the first line); the simulations in ``test_engines_*.py`` check the formulas.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest
from amaranth.hdl import Elaboratable

from amos_hw.engines import ConvEngine, DenseEngine, GlobalAvgPoolEngine, ResidualAddEngine
from amos_hw.engines.dense import _pack
from amos_hw.engines.figures import (
    Figures,
    WindowParams,
    line_buffer_rows,
    out_size,
    tree_levels,
)
from amos_hw.engines.window import SlidingWindow
from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.bram import MemShape
from python_ref.quant import IntAmosUnit


def _dense_args(seed, n_out, n_in, **kw):
    rng = np.random.default_rng(seed)
    return (rng.integers(-127, 128, (n_out, n_in)), rng.integers(-3000, 3001, n_out)), kw


def _conv_args(seed, c_out, k, c_in, **kw):
    rng = np.random.default_rng(seed)
    return (rng.integers(-127, 128, (c_out, k, k, c_in)), rng.integers(-3000, 3001, c_out)), kw


#: id: (engine class, positional arguments, keyword arguments)
CASES = {
    "dense_folded": (DenseEngine, *_dense_args(1, 6, 8, in_bits=4, shift=6, out_bits=4, pe=2,
                                               simd=4)),
    "dense_raw_serial": (DenseEngine, *_dense_args(2, 4, 6, in_bits=3, shift=0, out_bits=None)),
    "dense_credits_parallel": (DenseEngine, *_dense_args(3, 3, 3, in_bits=4, shift=4,
                                                         out_bits=3, pe=3, simd=3,
                                                         credits=True)),
    "dense_one_plane": (DenseEngine, *_dense_args(4, 8, 16, in_bits=4, shift=3, out_bits=2,
                                                  pe=4, simd=2, planes=1)),
    "dense_two_planes_credits": (DenseEngine, *_dense_args(5, 8, 16, in_bits=4, shift=3,
                                                           out_bits=4, pe=2, simd=4, planes=2,
                                                           credits=True)),
    "dense_ecp5_odd_simd": (DenseEngine, *_dense_args(6, 4, 12, in_bits=4, shift=5, out_bits=4,
                                                      pe=2, simd=3, carry="ecp5")),
    "dense_ecp5_planes": (DenseEngine, *_dense_args(7, 4, 16, in_bits=4, shift=5, out_bits=4,
                                                    pe=2, simd=4, carry="ecp5", planes=2,
                                                    credits=True)),
    "dense_wide_rom": (DenseEngine, *_dense_args(8, 10, 640, in_bits=12, shift=2,
                                                 out_bits=None, pe=1, simd=4, name="fc")),
    "conv_3x3": (ConvEngine, *_conv_args(1, 4, 3, 2, height=6, width=5, stride=1, padding=1,
                                         in_bits=4, shift=6, out_bits=4, pe=2, simd=2)),
    "conv_stride2_raw_planes": (ConvEngine, *_conv_args(2, 4, 3, 4, height=8, width=8, stride=2,
                                                        padding=1, in_bits=4, shift=0,
                                                        out_bits=None, pe=1, simd=4, planes=2)),
    "conv_1x1_ecp5": (ConvEngine, *_conv_args(3, 2, 1, 4, height=4, width=4, stride=2,
                                              padding=0, in_bits=3, shift=2, out_bits=3, pe=2,
                                              simd=2, carry="ecp5")),
    "conv_valid_defaults": (ConvEngine, *_conv_args(4, 2, 2, 1, height=3, width=3, in_bits=2,
                                                    shift=1, out_bits=2)),
    "conv_resnet8_stem": (ConvEngine, *_conv_args(5, 16, 3, 3, height=32, width=32, stride=1,
                                                  padding=1, in_bits=8, shift=8, out_bits=4,
                                                  pe=4, simd=3, name="stem")),
    "gap_lanes": (GlobalAvgPoolEngine, (), {"height": 2, "width": 3, "channels": 4,
                                            "in_bits": 4, "lanes": 2}),
    "gap_defaults": (GlobalAvgPoolEngine, (), {"height": 8, "width": 8, "channels": 8,
                                               "in_bits": 3}),
    "add_relu": (ResidualAddEngine, (), {"lanes": 2, "words_per_image": 8, "main_width": 12,
                                         "skip_bits": 4, "skip_shift": 2, "shift": 4,
                                         "out_bits": 4, "skip_depth": 16}),
    "add_projection_raw": (ResidualAddEngine, (), {"lanes": 1, "words_per_image": 4,
                                                   "main_width": 10, "skip_bits": 9,
                                                   "skip_shift": 0, "shift": 0, "out_bits": None,
                                                   "skip_depth": 1, "skip_signed": True}),
    "add_wide": (ResidualAddEngine, (), {"lanes": 4, "words_per_image": 64, "main_width": 20,
                                         "skip_bits": 20, "skip_shift": 3, "shift": 8,
                                         "out_bits": 4, "skip_depth": 200, "skip_signed": True}),
}


@pytest.fixture
def built(monkeypatch):
    """The classes of every Elaboratable constructed while the test runs."""
    made = []
    original = Elaboratable.__new__

    def counting(cls, *args, **kwargs):
        made.append(cls)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Elaboratable, "__new__", counting)
    return made


def _properties(engine) -> Figures:
    return Figures(cycles=engine.expected_cycles, latency=engine.latency, luts=engine.luts,
                   flip_flops=engine.flip_flops, memory_bits=engine.memory_bits,
                   memories=tuple(engine.memories), out_width=engine.out_width)


@pytest.mark.parametrize("case", CASES)
def test_figures_build_nothing(case, built):
    cls, args, kwargs = CASES[case]
    fig = cls.figures(*args, **kwargs)
    assert isinstance(fig, Figures)
    assert built == []
    assert all(isinstance(m, MemShape) for m in fig.memories)
    assert min(fig.cycles, fig.latency, fig.luts, fig.flip_flops, fig.out_width) > 0


@pytest.mark.parametrize("case", CASES)
def test_figures_are_the_engine_properties(case, built):
    cls, args, kwargs = CASES[case]
    fig = cls.figures(*args, **kwargs)
    engine = cls(*args, **kwargs)
    assert _properties(engine) == fig
    # the constructor builds the engine alone: its window, matrix-vector unit and AMOS unit
    # are built when it is elaborated
    assert built == [cls]


def test_the_widths_the_generator_reads():
    """``out_width`` is the raw accumulator's width for a raw, unshifted convolution (the
    residual add's ``main_width``) and the sum's width for pooling (the next dense layer's
    ``in_bits``)."""
    cls, args, kwargs = CASES["conv_stride2_raw_planes"]
    assert cls.figures(*args, **kwargs).out_width == cls(*args, **kwargs).acc_width
    cls, args, kwargs = CASES["gap_lanes"]
    assert cls.figures(*args, **kwargs).out_width == cls(*args, **kwargs).sum_bits


def test_figures_signatures_match_the_constructors():
    for cls in (ConvEngine, DenseEngine, GlobalAvgPoolEngine, ResidualAddEngine):
        ctor = inspect.signature(cls.__init__).parameters
        static = inspect.signature(cls.figures).parameters
        assert [(p.name, p.kind, p.default) for p in list(ctor.values())[1:]] == \
            [(p.name, p.kind, p.default) for p in static.values()], cls.__name__


# -- bad parameters: the same error from the figures and from the constructor -------------------

W, B = np.ones((4, 6), np.int64), np.zeros(4, np.int64)
DENSE = {"in_bits": 4, "shift": 2, "out_bits": 4, "pe": 2, "simd": 3, "name": "fc1"}
W4, B2 = np.ones((2, 3, 3, 4), np.int64), np.zeros(2, np.int64)
CONV = {"height": 6, "width": 6, "stride": 1, "padding": 1, "in_bits": 4, "shift": 3,
        "out_bits": 4, "pe": 1, "simd": 2, "name": "c1"}
GAP = {"height": 2, "width": 2, "channels": 4, "in_bits": 4, "lanes": 2, "name": "g"}
ADD = {"lanes": 2, "words_per_image": 4, "main_width": 12, "skip_bits": 4, "skip_shift": 2,
       "shift": 3, "out_bits": 4, "skip_depth": 8, "name": "r"}

BAD = [
    (DenseEngine, (W * 128, B), DENSE, {}),
    (DenseEngine, (W.astype(float), B), DENSE, {}),
    (DenseEngine, (W, B[:3]), DENSE, {}),
    (DenseEngine, (W, B), DENSE, {"in_bits": 25}),
    (DenseEngine, (W, B), DENSE, {"shift": -1}),
    (DenseEngine, (W, B), DENSE, {"pe": 3}),
    (DenseEngine, (W, B), DENSE, {"planes": 3}),
    (DenseEngine, (W, B), DENSE, {"carry": "ice40"}),
    (DenseEngine, (W, B), DENSE, {"name": ""}),
    (ConvEngine, (W4[:, :2], B2), CONV, {}),
    (ConvEngine, (W4, B2), CONV, {"simd": 3}),
    (ConvEngine, (W4, B2), CONV, {"padding": 3}),
    (ConvEngine, (W4, B2), CONV, {"height": 2, "padding": 0}),
    (ConvEngine, (W4, B2), CONV, {"pe": 4}),
    (ConvEngine, (W4, B2), CONV, {"stride": np.int64(0)}),
    (GlobalAvgPoolEngine, (), GAP, {"width": "2"}),
    (GlobalAvgPoolEngine, (), GAP, {"lanes": 3}),
    (GlobalAvgPoolEngine, (), GAP, {"in_bits": 25}),
    (ResidualAddEngine, (), ADD, {"main_width": 65}),
    (ResidualAddEngine, (), ADD, {"skip_shift": 31}),
    (ResidualAddEngine, (), ADD, {"skip_signed": 1}),
    (ResidualAddEngine, (), ADD, {"out_bits": 0}),
]


@pytest.mark.parametrize(("cls", "args", "ok", "bad"), BAD,
                         ids=[f"{c.__name__}-{i}" for i, (c, *_) in enumerate(BAD)])
def test_bad_parameters_same_error(cls, args, ok, bad, built):
    kwargs = {**ok, **bad}
    with pytest.raises((TypeError, ValueError)) as static:
        cls.figures(*args, **kwargs)
    assert built == []  # refused before anything is built
    with pytest.raises((TypeError, ValueError)) as ctor:
        cls(*args, **kwargs)
    assert type(static.value) is type(ctor.value)
    assert str(static.value) == str(ctor.value)


# -- sub-blocks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("geometry", [
    (6, 5, 4, 3, 1, 1, 2, 4), (7, 7, 2, 3, 2, 0, 1, 3), (32, 32, 16, 3, 2, 1, 16, 4),
    (4, 4, 4, 1, 2, 0, 2, 2),
])
def test_window_figures_are_the_window_properties(geometry, built):
    h, w, c, k, s, p, simd, bits = geometry
    kw = {"height": h, "width": w, "channels": c, "kernel": k, "stride": s, "padding": p,
          "simd": simd, "bits": bits}
    params = WindowParams.check(**kw)
    assert built == []
    window = SlidingWindow(**kw)
    assert (params.latency, params.luts, params.flip_flops, params.memory_bits,
            params.memories, params.rows, params.out_height, params.out_width) == \
        (window.latency, window.luts, window.flip_flops, window.memory_bits,
         tuple(window.memories), window.rows, window.out_height, window.out_width)
    assert params.rows == line_buffer_rows(h, k, s, p)
    assert (params.out_height, params.out_width) == (out_size(h, k, s, p), out_size(w, k, s, p))


@pytest.mark.parametrize(("K", "in_width", "lanes"), [(4, 10, 1), (4, 10, 4), (1, 3, 2),
                                                      (10, 24, 3)])
def test_amos_unit_figures_without_a_unit(K, in_width, lanes, built):
    unit = IntAmosUnit.relu(K)
    ff = AmosUnit.flip_flops_for(unit, in_width, lanes=lanes)
    assert AmosUnit.latency_for(unit) == K + 2
    assert built == []
    hw = AmosUnit(unit, in_width, lanes=lanes)
    assert (hw.flip_flops, hw.latency) == (ff, K + 2)


def test_amos_unit_figures_refuse_as_the_unit_does(built):
    for kwargs in ({"in_width": 65}, {"in_width": 8, "lanes": 0}):
        built.clear()
        with pytest.raises(ValueError) as static:
            AmosUnit.flip_flops_for(IntAmosUnit.relu(4), **kwargs)
        assert built == []
        with pytest.raises(ValueError) as ctor:
            AmosUnit(IntAmosUnit.relu(4), **kwargs)
        assert str(static.value) == str(ctor.value)


def test_weight_word_packing():
    """A memory word holds its values two's complement, ``width`` bits each, the first in the
    low bits."""
    assert _pack([1, -1, 3], 4) == 0x3F1
    assert _pack([-128, 127], 8) == 0x7F80
    assert _pack([], 8) == 0


def test_tree_levels():
    assert [tree_levels(n) for n in (1, 2, 3, 4, 5, 16, 17)] == [0, 1, 2, 2, 3, 4, 5]
