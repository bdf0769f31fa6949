"""Which engine implements each kind of plan layer, and with which arguments.

One table for the two readers of a layer's engine: :mod:`amos_hw.cost` (the engine's figures,
computed from these arguments without building it) and :class:`amos_hw.top.NetworkTop` (the
engine itself). A new op adds its plan class and one entry here.
"""
from __future__ import annotations

from amos_hw.engines import (
    AvgPoolEngine,
    ConvEngine,
    DenseEngine,
    DepthwiseConvEngine,
    GateEngine,
    GlobalAvgPoolEngine,
    MaxPoolEngine,
    ResidualAddEngine,
    UnitEngine,
)
from amos_hw.plan import (
    AddLayer,
    AvgPoolLayer,
    ConvLayer,
    DenseLayer,
    DepthwiseLayer,
    GateLayer,
    Layer,
    MaxPoolLayer,
    PoolLayer,
    UnitLayer,
    WindowLayer,
)
from python_ref import ir

__all__ = ["engine_class", "engine_args", "build_engine", "engine_figures"]


def _signed(lay) -> dict:
    """``in_signed`` for an engine reading two's-complement words (absent otherwise, so the
    arguments, and the Verilog, of the unsigned engines stay as they were)."""
    return {"in_signed": True} if lay.in_signed else {}


def _lut(lay) -> dict:
    """``lut_memories`` when the layer keeps memories out of block RAM (absent otherwise, so
    the other engines' arguments, and Verilog, stay as they were)."""
    return {"lut_memories": tuple(lay.lut_memories)} if lay.lut_memories else {}


def _banked(lay) -> dict:
    """``banked_weights`` when the fit gave the layer's weight ROM back its banked form
    (absent otherwise, so that the arguments, and the Verilog, stay as they were)."""
    return {"banked_weights": True} if lay.banked_weights else {}


def _multiply(lay) -> dict:
    """``multiply`` for a layer in the products form (absent otherwise: the other engines'
    arguments, and Verilog, stay as they were)."""
    return {"multiply": True} if lay.multiply else {}


def _conv(lay: ConvLayer, arrays) -> tuple[tuple, dict]:
    return (lay.weights(arrays), lay.biases(arrays)), {
        "height": lay.height, "width": lay.width, "stride": lay.stride,
        "padding": lay.padding, "in_bits": lay.in_bits, "shift": lay.shift,
        "out_bits": lay.out_bits, "pe": lay.pe, "simd": lay.simd, "planes": lay.planes,
        "name": lay.name, "carry": lay.carry or "generic", **_signed(lay),
        **({"fifo_rows": lay.fifo_rows} if lay.fifo_rows else {}), **_lut(lay),
        **_banked(lay), **_multiply(lay)}


def _dense(lay: DenseLayer, arrays) -> tuple[tuple, dict]:
    return (lay.weights(arrays), lay.biases(arrays)), {
        "in_bits": lay.in_bits, "shift": lay.shift, "out_bits": lay.out_bits, "pe": lay.pe,
        "simd": lay.simd, "planes": lay.planes, "name": lay.name,
        "carry": lay.carry or "generic", **_signed(lay), **_lut(lay), **_banked(lay),
        **_multiply(lay)}


def _pool(lay: PoolLayer, arrays) -> tuple[tuple, dict]:
    return (), {"height": lay.height, "width": lay.width, "channels": lay.channels,
                "in_bits": lay.in_bits, "lanes": lay.lanes, "name": lay.name, **_signed(lay),
                **_lut(lay)}


def _unit(lay: UnitLayer, arrays) -> tuple[tuple, dict]:
    serial = ({"serial": lay.serial, "depth": lay.depth_serial, "buffer": lay.buffer}
              if lay.serial else {})
    return (ir.make_unit(lay.unit, lay.spec, arrays),), {
        "in_width": lay.in_width, "lanes": lay.lanes, "name": lay.name,
        "elements": lay.elements, **serial}


def _gate(lay: GateLayer, arrays) -> tuple[tuple, dict]:
    return (ir.make_unit(lay.unit, lay.spec, arrays),), {
        "channels": lay.channels, "elements": lay.elements, "x_width": lay.x_width,
        "g_width": lay.g_width, "shifts": tuple(lay.shifts), "lanes": lay.lanes,
        "x_signed": lay.x_signed, "g_signed": lay.g_signed, "name": lay.name,
        **({"serial": lay.serial, "depth": lay.depth_serial} if lay.serial else {}),
        **({"map_words": lay.map_words} if lay.map_words else {}), **_lut(lay)}


def _add(lay: AddLayer, arrays) -> tuple[tuple, dict]:
    return (), {"lanes": lay.lanes, "words_per_image": lay.words_per_image,
                "main_width": lay.main_width, "skip_bits": lay.skip_bits,
                "skip_shift": lay.skip_shift, "shift": lay.shift, "out_bits": lay.out_bits,
                "skip_depth": lay.skip_depth, "skip_signed": lay.skip_signed,
                "main_shift": lay.main_shift, "name": lay.name}


def _window_pool(lay: WindowLayer, arrays) -> tuple[tuple, dict]:
    return (), {"height": lay.height, "width": lay.width, "channels": lay.channels,
                "kernel": lay.kernel, "stride": lay.stride, "padding": lay.padding,
                "in_bits": lay.in_bits, "lanes": lay.lanes, "name": lay.name}


def _depthwise(lay: DepthwiseLayer, arrays) -> tuple[tuple, dict]:
    return (lay.weights(arrays), lay.biases(arrays)), {
        "height": lay.height, "width": lay.width, "stride": lay.stride,
        "padding": lay.padding, "in_bits": lay.in_bits, "shift": lay.shift,
        "out_bits": lay.out_bits, "lanes": lay.lanes, "name": lay.name, **_signed(lay),
        **_lut(lay)}


_ENGINES = {ConvLayer: (ConvEngine, _conv), DenseLayer: (DenseEngine, _dense),
            PoolLayer: (GlobalAvgPoolEngine, _pool), AddLayer: (ResidualAddEngine, _add),
            MaxPoolLayer: (MaxPoolEngine, _window_pool),
            AvgPoolLayer: (AvgPoolEngine, _window_pool),
            DepthwiseLayer: (DepthwiseConvEngine, _depthwise), UnitLayer: (UnitEngine, _unit),
            GateLayer: (GateEngine, _gate)}


def engine_class(lay: Layer):
    try:
        return _ENGINES[type(lay)][0]
    except KeyError:
        raise ValueError(f"layer {lay.name!r}: no engine for kind {lay.kind!r}") from None


def engine_args(lay: Layer, arrays) -> tuple[tuple, dict]:
    """Positional and keyword arguments of the layer's engine constructor."""
    engine_class(lay)
    return _ENGINES[type(lay)][1](lay, arrays)


def build_engine(lay: Layer, arrays):
    """The engine of a (folded, memory-assigned) layer."""
    args, kwargs = engine_args(lay, arrays)
    return engine_class(lay)(*args, **kwargs)


def engine_figures(lay: Layer, arrays):
    """The engine's figures (cycles, latency, LUT4, FF, memory bits, memories, output width)
    from its arguments, with no engine built (:meth:`figures` of each engine class)."""
    args, kwargs = engine_args(lay, arrays)
    return engine_class(lay).figures(*args, **kwargs)
