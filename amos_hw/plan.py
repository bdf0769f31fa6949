"""The typed layer plan: a converted description lowered once into hardware layers.

:func:`lower` turns a validated description (:mod:`python_ref.ir`) into a :class:`NetworkPlan`,
a list of :class:`Layer` objects, one per engine of the layer-pipelined design and one per
instruction group of the shared engine (:mod:`amos_hw.shared.program` reads the same plan):

* :class:`ConvLayer` / :class:`DenseLayer`: a ``conv`` / ``dense`` op fused with its only
  consumer when that is a ReLU ``amos`` op (the engine requantises by ``shift`` and emits
  ``K``-bit spike words, ``out_bits = K``), or *raw* (``out_bits = None``, ``shift = 0``) when it
  feeds ``add`` ops or is the network output: the engine then emits signed accumulators;
* :class:`AddLayer`: an ``add`` fused with the ReLU ``amos`` op after it. Its *main* input is
  the raw convolution on the longer path (more AMOS layers before it), the other the *skip*
  (spike words, a raw projection conv, or a trained unit's two's-complement words). Before a
  trained one-input unit (the signed identity after a linear MBConv block) it is raw instead
  (``out_bits = None``): it emits ``v = requant_shift(main + (skip << lshift), S)``, ``S`` the
  unit's ``rshift``, and a :class:`UnitLayer` applies the unit;
* :class:`PoolLayer`: ``gap``, the per-channel sums (the next dense layer's inputs);
* :class:`UnitLayer`: a trained one-input AMOS unit (an ``amos`` op whose unit is of kind
  ``amos``: swish, sigmoid, the signed identity, ...) applied value by value to the raw
  requantised output of the ``conv`` / ``dense`` / ``add`` before it (that layer is then raw
  with ``shift`` = the op's ``rshift``).
  Its output ``y = sum_i d_i z_i`` is a two's-complement word (``out_bits = out_width``,
  ``out_signed``) that the next ``conv``, ``dense`` or ``gap`` reads bit-serially like a ReLU
  spike word, its most significant plane weighing ``-2**(out_bits-1)`` (``in_signed``);
* :class:`GateLayer`: the squeeze-and-excitation gate, a two-input ``amos`` op ``[x, g]``
  (a two-input trained unit, ``g`` one value a channel broadcast over the map ``x``): every
  map value and its channel's gate through the unit, ``y`` out as a two's-complement word;
* :class:`WindowLayer` s, per-channel ops over sliding windows: :class:`MaxPoolLayer`
  (``maxpool``, spike words out), :class:`AvgPoolLayer` (``avgpool``, window sums out) and
  :class:`DepthwiseLayer` (a ``conv`` with ``groups`` = its input channels, fused with its ReLU
  ``amos`` op or raw, as :class:`ConvLayer`).

Every layer states its stream widths (``in_bits``, ``out_width``, ``out_signed``) from the
description alone, the way the engines derive them, so the plan is complete before any engine
exists. What no architecture can build (an ``amos`` op that is not fused, a unit kind without
hardware, a raw accumulator feeding a layer that needs spikes) is refused here, naming the
layer; what one architecture's engines cannot build (a stride, a width) is checked by that
architecture's steps.

The folding (``pe`` / ``simd`` / ``planes``, or ``lanes``) is set later by the ``parallelism``
step (:meth:`Layer.fold`); :meth:`NetworkPlan.as_dict` gives the JSON form written into the
step intermediates and ``manifest.json``.

Adding an op means: one :class:`Layer` subclass here (its shapes, widths and folding fields),
one engine in :mod:`amos_hw.engines`, one cost function in :mod:`amos_hw.cost`
(``docs/CONTRIBUTING.md``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import ClassVar

import numpy as np

from amos_hw.engines.figures import accumulator_range, add_v_width
from amos_hw.engines.gate_params import GateParams
from amos_hw.engines.unit_params import UnitParams, is_identity
from python_ref import ir
from python_ref.quant import requant_shift, signed_width

__all__ = ["PlanError", "Layer", "ConvLayer", "DenseLayer", "PoolLayer", "AddLayer",
           "UnitLayer", "GateLayer", "WindowLayer", "MaxPoolLayer", "AvgPoolLayer",
           "DepthwiseLayer", "NetworkPlan", "lower", "INPUT"]

#: The name by which layers refer to the network input (the pixel stream).
INPUT = "input"


class PlanError(ValueError):
    """A description the plan cannot express; the message names the layer."""


def _err(name, msg) -> PlanError:
    return PlanError(f"layer {name!r}: {msg}")


@dataclass
class Layer:
    """What every hardware layer states.

    Parameters
    ----------
    name : str
        The layer's name: the description op whose output it produces (the fused ``amos`` op's
        for a fused layer).
    ir_nodes : list of str
        The description ops it implements.
    inputs : list of str
        Producing layers (``"input"`` for the pixels); for :class:`AddLayer`, main then skip.
    out_bits : int or None
        ``K`` of the spike words it emits, or ``None`` for raw values (accumulators, sums).
    out_signed : bool
        Whether its output elements are signed.
    out_width : int
        Bits of one output element.
    out_shape : list of int
        ``[H, W, C]`` or ``[N]``.
    depth : int
        AMOS layers from the input up to and including this one.
    cycles : int or None
        Cycles per image of its engine at its folding (set by :meth:`fold`).
    lut_memories : tuple of str
        Its engine's memories kept out of block RAM, in LUT RAM or logic (set by
        :func:`amos_hw.lut_memories.assign_lut_memories`; empty: the synthesis tool chooses).
    """

    kind: ClassVar[str] = ""
    #: The folding fields this kind takes (``--parallelism``).
    FOLD_FIELDS: ClassVar[tuple[str, ...]] = ("lanes",)
    #: Folding fields a user may add (``--parallelism``); absent means False.
    OPTIONAL_FOLD_FIELDS: ClassVar[tuple[str, ...]] = ()

    name: str
    ir_nodes: list
    inputs: list
    out_bits: int | None
    out_signed: bool
    out_width: int
    out_shape: list
    depth: int
    cycles: int | None = field(default=None, kw_only=True)
    lut_memories: tuple = field(default=(), kw_only=True)

    @property
    def folded(self) -> bool:
        return self.cycles is not None

    def default_folding(self) -> dict:
        return {f: 1 for f in self.FOLD_FIELDS}

    def folding(self) -> dict:
        """The folding fields and their values."""
        return {f: getattr(self, f) for f in self.FOLD_FIELDS}

    def fold(self, folding: dict, cycles: int) -> None:
        """Set the folding (already checked) and the cycles per image it gives."""
        for f in self.FOLD_FIELDS:
            setattr(self, f, folding[f])
        self.cycles = cycles

    @property
    def in_lanes(self) -> int:
        raise NotImplementedError

    @property
    def out_lanes(self) -> int:
        raise NotImplementedError

    def _fields(self) -> dict:
        return {}

    def _folded_fields(self) -> dict:
        return {}

    def as_dict(self) -> dict:
        """JSON form (the generator's step intermediates and ``manifest.json``)."""
        d = {"name": self.name, "kind": self.kind, "ir_nodes": list(self.ir_nodes),
             "inputs": list(self.inputs), "out_bits": self.out_bits,
             "out_signed": self.out_signed, "out_width": self.out_width,
             "out_shape": list(self.out_shape), "depth": self.depth, **self._fields()}
        if self.folded:
            d.update(self._folded_fields(), in_lanes=self.in_lanes, out_lanes=self.out_lanes,
                     cycles=self.cycles)
            if self.lut_memories:
                d["lut_memories"] = list(self.lut_memories)
        return d


@dataclass
class _MatrixLayer(Layer):
    """A ``conv`` or ``dense`` layer: spike words in, a matrix-vector product, requantised
    spikes or raw accumulators out."""

    FOLD_FIELDS: ClassVar[tuple[str, ...]] = ("pe", "simd", "planes")
    OPTIONAL_FOLD_FIELDS: ClassVar[tuple[str, ...]] = ("multiply",)

    weight: str = ""  # key of the weight array in the description
    bias: str | None = None  # key of the bias array, None for no bias (zeros)
    in_bits: int = 0
    shift: int = 0
    carry: str | None = None  # the matrix-vector units' carry form (set by parallelism)
    in_signed: bool = False  # input words are two's complement (a trained unit's output)
    pe: int = 1
    simd: int = 1
    planes: int | None = None  # spike planes per cycle (default: in_bits, bit-parallel)
    # the weight ROM as one memory, not in columns (set by lut_memories.assign_lut_memories)
    banked_weights: bool = False
    # the products form: a multiplier (DSP block) per weight and input word (the folding's
    # optional "multiply"; amos_hw.engines.dense.DenseEngine)
    multiply: bool = False

    @property
    def n_outputs(self) -> int:
        raise NotImplementedError

    @property
    def n_inputs(self) -> int:
        raise NotImplementedError

    @property
    def passes(self) -> int:
        """Cycles the engine spends on one input word: ``in_bits / planes``."""
        return self.in_bits // (self.planes or self.in_bits)

    def default_folding(self) -> dict:
        return {"pe": 1, "simd": 1, "planes": self.in_bits}

    def folding(self) -> dict:
        """``pe``, ``simd``, ``planes``, and ``multiply: True`` for the products form."""
        d = super().folding()
        if self.multiply:
            d["multiply"] = True
        return d

    def fold(self, folding: dict, cycles: int) -> None:
        super().fold(folding, cycles)
        self.multiply = bool(folding.get("multiply", False))

    @property
    def in_lanes(self) -> int:
        return self.simd

    @property
    def out_lanes(self) -> int:
        return self.pe

    def weights(self, arrays) -> np.ndarray:
        return np.asarray(arrays[self.weight], dtype=np.int64)

    def biases(self, arrays) -> np.ndarray:
        if self.bias is None:
            return np.zeros(self.n_outputs, np.int64)
        return np.asarray(arrays[self.bias], dtype=np.int64)

    def _fields(self) -> dict:
        d = {"weight": self.weight, "bias": self.bias, "in_bits": self.in_bits,
             "shift": self.shift}
        if self.carry is not None:
            d["carry"] = self.carry
        if self.in_signed:
            d["in_signed"] = True
        return d

    def _folded_fields(self) -> dict:
        d = self.folding()
        if self.banked_weights:
            d["banked_weights"] = True
        return d


@dataclass
class ConvLayer(_MatrixLayer):
    """A convolution (``kernel`` x ``kernel``, square, the same ``padding`` on all sides) over an
    ``height`` x ``width`` x ``c_in`` map of spike words."""

    kind: ClassVar[str] = "conv"

    height: int = 0
    width: int = 0
    c_in: int = 0
    c_out: int = 0
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    # a pointwise window's FIFO in rows (amos_hw.buffers.assign_window_fifos); 0: two pixels
    fifo_rows: int = 0

    @property
    def n_outputs(self) -> int:
        return self.c_out

    @property
    def n_inputs(self) -> int:
        return self.c_in

    def _fields(self) -> dict:
        return {**super()._fields(), "height": self.height, "width": self.width,
                "c_in": self.c_in, "c_out": self.c_out, "kernel": self.kernel,
                "stride": self.stride, "padding": self.padding}

    def _folded_fields(self) -> dict:
        return {**super()._folded_fields(),
                **({"fifo_rows": self.fifo_rows} if self.fifo_rows else {})}


@dataclass
class DenseLayer(_MatrixLayer):
    """A fully connected layer over ``n_in`` values (spike words or pooled sums)."""

    kind: ClassVar[str] = "dense"

    n_in: int = 0
    n_out: int = 0

    @property
    def n_outputs(self) -> int:
        return self.n_out

    @property
    def n_inputs(self) -> int:
        return self.n_in

    def _fields(self) -> dict:
        return {**super()._fields(), "n_in": self.n_in, "n_out": self.n_out}


@dataclass
class PoolLayer(Layer):
    """Global average pooling as per-channel sums over an ``height`` x ``width`` map (the
    division is folded into the next layer's scale)."""

    kind: ClassVar[str] = "gap"

    height: int = 0
    width: int = 0
    channels: int = 0
    in_bits: int = 0
    lanes: int = 1
    in_signed: bool = False  # two's-complement input words: signed sums out

    @property
    def in_lanes(self) -> int:
        return self.lanes

    @property
    def out_lanes(self) -> int:
        return self.lanes

    def _fields(self) -> dict:
        d = {"height": self.height, "width": self.width, "channels": self.channels,
             "in_bits": self.in_bits}
        if self.in_signed:
            d["in_signed"] = True
        return d

    def _folded_fields(self) -> dict:
        return {"lanes": self.lanes}


class _SerialFolding:
    """The folding of a layer with trained AMOS units (:class:`UnitLayer`, :class:`GateLayer`):
    ``{"lanes": n}``, ``n`` pipelined units (one value each a cycle), or ``{"serial": n,
    "depth": D}``, ``n`` time-serial units, one a lane, one word every ``K`` cycles
    (:class:`~amos_hw.engines.unit.SerialLanes`). Fields ``lanes``, ``serial`` (0: pipelined),
    ``depth_serial``; ``serial_ok``, ``lane_lut4`` and ``serial_lut4`` are set by
    :func:`lower` from the unit's arrays (whether it may be serial, not being the signed
    identity, a clamp; the engine's LUT4 with one pipelined lane and with one serial unit at
    its default ``D``), which :func:`amos_hw.folding.choose_for_target` compares."""

    #: ``lanes``; or ``serial``, optionally with ``depth``.
    FOLD_FIELDS: ClassVar[tuple[str, ...]] = ("lanes", "serial", "depth")

    def default_folding(self) -> dict:
        return {"lanes": 1}

    def folding(self) -> dict:
        """``{"lanes": n}``, or ``{"serial": n, "depth": D}`` for the serial form."""
        if self.serial:
            return {"serial": self.serial, "depth": self.depth_serial}
        return {"lanes": self.lanes}

    def fold(self, folding: dict, cycles: int) -> None:
        """Set the folding (already checked: ``lanes``, or ``serial`` and ``depth``)."""
        self.serial = int(folding.get("serial", 0))
        self.lanes = self.serial or int(folding["lanes"])
        self.depth_serial = int(folding.get("depth", 0)) if self.serial else 0
        self.cycles = cycles

    def _serial_fields(self) -> dict:
        return {"serial": self.serial, "depth": self.depth_serial} if self.serial else {}


@dataclass
class UnitLayer(_SerialFolding, Layer):
    """A trained one-input AMOS unit applied to each raw value ``v`` (``in_width`` signed bits)
    of the layer before it, ``lanes`` values a cycle over the last axis (``channels``): the
    unit's neurons fire as :class:`python_ref.quant.IntAmosUnit` says (``v`` saturated to its
    ``in_range`` first) and ``y = sum_i d_i z_i`` leaves as an ``out_width``-bit
    two's-complement word (``out_bits == out_width``, ``out_signed``). Folded as
    :class:`_SerialFolding` says; a serial one has an input FIFO of ``buffer`` words
    (:func:`amos_hw.folding.serial_buffer`)."""

    kind: ClassVar[str] = "unit"

    unit: str = ""  # the unit library's entry
    spec: dict = field(default_factory=dict)  # that entry (python_ref.ir.make_unit reads it)
    channels: int = 1
    in_width: int = 0
    K: int = 0
    lanes: int = 1
    serial: int = 0  # 0: pipelined; n: n serial units (lanes == n)
    depth_serial: int = 0  # D of the serial units (serial form only)
    buffer: int = 0  # words of the serial units' input FIFO (set by folding.apply)
    serial_ok: bool = True
    lane_lut4: int = 0
    serial_lut4: int = 0

    @property
    def in_lanes(self) -> int:
        return self.lanes

    @property
    def out_lanes(self) -> int:
        return self.lanes

    @property
    def elements(self) -> int:
        """Values per image."""
        return math.prod(self.out_shape)

    def fold(self, folding: dict, cycles: int) -> None:
        super().fold(folding, cycles)
        self.buffer = 0  # folding.apply sets it

    def _fields(self) -> dict:
        return {"unit": self.unit, "K": self.K, "channels": self.channels,
                "in_width": self.in_width}

    def _folded_fields(self) -> dict:
        extra = {"buffer": self.buffer} if self.serial else {}
        return {"lanes": self.lanes, **self._serial_fields(), **extra}


def _unit_costs(unit, in_width: int) -> dict:
    """:class:`UnitLayer`'s ``serial_ok``, ``lane_lut4`` and ``serial_lut4`` for ``unit`` on an
    ``in_width``-bit port (zero costs where the engine would refuse the port: the generator
    reports that later, naming the layer)."""
    try:
        lane = UnitParams.check(unit, in_width=in_width).luts
        ok = not is_identity(unit)
        ser = UnitParams.check(unit, in_width=in_width, serial=1).luts if ok else 0
    except (TypeError, ValueError):
        return {"serial_ok": not is_identity(unit), "lane_lut4": 0, "serial_lut4": 0}
    return {"serial_ok": ok, "lane_lut4": lane, "serial_lut4": ser}


def _gate_costs(unit, elements: int, kw: dict) -> dict:
    """:class:`GateLayer`'s ``lane_lut4`` and ``serial_lut4`` (GateParams; zero where the
    engine would refuse: the generator reports that later, naming the layer)."""
    kw = {**kw, "shifts": tuple(kw["shifts"]), "elements": elements}
    try:
        lane = GateParams.check(unit, **kw).luts
        ser = GateParams.check(unit, serial=1, **kw).luts
    except (TypeError, ValueError):
        return {"lane_lut4": 0, "serial_lut4": 0}
    return {"lane_lut4": lane, "serial_lut4": ser}


@dataclass
class GateLayer(_SerialFolding, Layer):
    """The squeeze-and-excitation gate: a two-input ``amos`` op ``[x, g]`` whose ``g`` (one
    value a channel, ``(channels,)``) is broadcast over the map ``x``: ``y[..., c] = sum_i d_i
    z_i(v1, v2)`` with ``v1 = requant_shift(x[..., c], shifts[0])`` and ``v2 =
    requant_shift(g[c], shifts[1])``, each saturated to the unit's ``in_range`` /
    ``in2_range`` (:class:`python_ref.quant.IntAmosUnit` with two inputs). ``inputs`` are the
    map's producer then the gate's (the engine's ports ``i`` and ``skip``); ``x_width`` /
    ``g_width`` are their element widths, two's complement when ``x_signed`` / ``g_signed``
    (a trained unit's ``y``). The output is a two's-complement word like a
    :class:`UnitLayer`'s (``out_bits == out_width``, ``out_signed``); ``lanes`` values a word on
    both inputs and the output. Folded as :class:`_SerialFolding` says."""

    kind: ClassVar[str] = "gate"

    unit: str = ""  # the unit library's entry (two inputs)
    spec: dict = field(default_factory=dict)  # that entry (python_ref.ir.make_unit reads it)
    channels: int = 1
    x_width: int = 0
    x_signed: bool = True
    g_width: int = 0
    g_signed: bool = True
    shifts: list = field(default_factory=lambda: [0, 0])  # the op's rshift [S1, S2]
    K: int = 0
    lanes: int = 1
    serial: int = 0  # 0: pipelined; n: n serial units (lanes == n)
    depth_serial: int = 0  # D of the serial units (serial form only)
    serial_ok: bool = True
    lane_lut4: int = 0
    serial_lut4: int = 0
    map_words: int = 0  # words of the map memory (amos_hw.buffers); 0: two maps

    @property
    def in_lanes(self) -> int:
        return self.lanes

    @property
    def out_lanes(self) -> int:
        return self.lanes

    @property
    def skip_lanes(self) -> int:
        """Lanes of the gate vector's stream (the engine's ``skip`` port)."""
        return self.lanes

    @property
    def elements(self) -> int:
        """Values of one map."""
        return math.prod(self.out_shape)

    def _fields(self) -> dict:
        return {"unit": self.unit, "K": self.K, "channels": self.channels,
                "x_width": self.x_width, "x_signed": self.x_signed, "g_width": self.g_width,
                "g_signed": self.g_signed, "shifts": list(self.shifts)}

    def _folded_fields(self) -> dict:
        return {"lanes": self.lanes, "skip_lanes": self.skip_lanes, **self._serial_fields(),
                **({"map_words": self.map_words} if self.map_words else {})}


@dataclass
class WindowLayer(Layer):
    """A per-channel op over the ``kernel`` x ``kernel`` windows (``stride``, ``padding`` zeros
    on all sides) of an ``height`` x ``width`` x ``channels`` map of ``in_bits``-bit unsigned
    values: a sliding window and a reducer, ``lanes`` channels a cycle (``pe = simd = lanes``).
    """

    height: int = 0
    width: int = 0
    channels: int = 0
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    in_bits: int = 0
    lanes: int = 1

    @property
    def in_lanes(self) -> int:
        return self.lanes

    @property
    def out_lanes(self) -> int:
        return self.lanes

    def _fields(self) -> dict:
        return {"height": self.height, "width": self.width, "channels": self.channels,
                "kernel": self.kernel, "stride": self.stride, "padding": self.padding,
                "in_bits": self.in_bits}

    def _folded_fields(self) -> dict:
        return {"lanes": self.lanes}


@dataclass
class MaxPoolLayer(WindowLayer):
    """Max pooling of spike words: the output is a spike word of the same ``K``."""

    kind: ClassVar[str] = "maxpool"


@dataclass
class AvgPoolLayer(WindowLayer):
    """Average pooling as window sums of ``in_bits + ceil(log2(kernel**2))`` bits (the
    division is folded into the next layer's weights)."""

    kind: ClassVar[str] = "avgpool"


@dataclass
class DepthwiseLayer(WindowLayer):
    """A depthwise convolution (``groups`` = channels, weights ``(C, k, k, 1)``) fused with its
    ReLU ``amos`` op (``out_bits = K``, requantised by ``shift``), or raw (``out_bits = None``)
    like :class:`ConvLayer`: before a trained unit (an MBConv block's swish) ``shift`` is the
    unit's ``rshift`` and the :class:`UnitLayer` after it reads ``v = (acc + 2**(shift-1)) >>
    shift`` (``out_width`` its exact signed width); feeding an add ``shift = 0``. With
    ``in_signed`` its inputs are a trained unit's two's-complement words (``in_bits`` wide,
    the most significant bit weighing ``-2**(in_bits-1)``)."""

    kind: ClassVar[str] = "dwconv"

    weight: str = ""
    bias: str | None = None
    shift: int = 0
    in_signed: bool = False  # input words are two's complement (a trained unit's output)

    def weights(self, arrays) -> np.ndarray:
        return np.asarray(arrays[self.weight], dtype=np.int64)

    def biases(self, arrays) -> np.ndarray:
        if self.bias is None:
            return np.zeros(self.channels, np.int64)
        return np.asarray(arrays[self.bias], dtype=np.int64)

    def _fields(self) -> dict:
        d = {**super()._fields(), "weight": self.weight, "bias": self.bias,
             "shift": self.shift}
        if self.in_signed:
            d["in_signed"] = True
        return d


@dataclass
class AddLayer(Layer):
    """A residual add: ``main << main_shift`` (a raw convolution's accumulators; the shift 0
    unless the converter aligned the terms' scales) plus ``skip <<
    skip_shift`` (``skip_bits`` wide, two's complement when ``skip_signed``: a raw projection
    conv or a trained unit's words), requantised by ``shift``. Fused with its ReLU AMOS unit
    (named after that ``amos`` op) it emits ``K`` spikes (``out_bits = K``); raw (named after
    the ``add``, ``out_bits = None``) it emits ``v = (sum + 2**(shift-1)) >> shift``, signed,
    ``out_width`` bits (:func:`amos_hw.engines.figures.add_v_width`), for the trained unit's
    :class:`UnitLayer` after it."""

    kind: ClassVar[str] = "add"

    main_width: int = 0
    skip_bits: int = 0
    skip_signed: bool = False
    skip_shift: int = 0
    main_shift: int = 0
    shift: int = 0
    height: int = 0
    width: int = 0
    channels: int = 0
    lanes: int = 1
    skip_depth: int | None = None  # words of the skip FIFO (set by the memory step)
    main_index: int = 0  # position of the main input among the description's add inputs

    @property
    def in_lanes(self) -> int:
        return self.lanes

    @property
    def out_lanes(self) -> int:
        return self.lanes

    @property
    def skip_lanes(self) -> int:
        return self.lanes

    @property
    def words_per_image(self) -> int:
        return math.prod(self.out_shape) // self.lanes

    def _fields(self) -> dict:
        d = {"main_width": self.main_width, "skip_bits": self.skip_bits,
             "skip_signed": self.skip_signed, "skip_shift": self.skip_shift,
             "shift": self.shift, "height": self.height, "width": self.width,
             "channels": self.channels}
        if self.main_shift:
            d["main_shift"] = self.main_shift
        if self.skip_depth is not None:
            d["skip_depth"] = self.skip_depth
        return d

    def _folded_fields(self) -> dict:
        return {"lanes": self.lanes, "skip_lanes": self.skip_lanes,
                "words_per_image": self.words_per_image}


@dataclass
class NetworkPlan:
    """The hardware layers of a network, in order, and what the steps add to them.

    Parameters
    ----------
    name : str
        The model's name.
    input_shape : list of int
        ``[H, W, C]`` of the pixel input.
    input_bits : int
        Bits per pixel value.
    input_tensor : str
        The description's name of the input.
    num_classes : int
        Elements of the network output.
    output : str
        The layer producing the output.
    layers : list of Layer
    neurons, time_steps : int
        Of the description (:meth:`python_ref.ir.Graph.neurons`, ``time_steps``).
    """

    name: str
    input_shape: list
    input_bits: int
    input_tensor: str
    num_classes: int
    output: str
    layers: list
    neurons: int
    time_steps: int
    parallelism: str | None = None  # how the folding was chosen (set by parallelism)
    latency_cycles: int | None = None  # set by the estimate step
    cycles_per_image: int | None = None

    @property
    def input_elements(self) -> int:
        return math.prod(self.input_shape)

    def layer(self, name: str) -> Layer:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(name)

    def by_name(self) -> dict:
        return {lay.name: lay for lay in self.layers}

    @property
    def output_layer(self) -> Layer:
        return self.layer(self.output)

    def image_buffered(self, lay: Layer) -> bool:
        """Whether ``lay`` is a dense layer fed by a layer that emits a map row by row (a
        convolution, a window op or an add): the assembly puts a whole-image buffer
        (:class:`amos_hw.engines.image_buffer.ImageBuffer`) in front of it, so that its first
        output fold does not wait on, and stall, that producer. A global average pool emits
        its sums in a burst, ``lanes`` a cycle during its last pixel: a dense layer that reads
        fewer elements a cycle (``simd / passes``, a bit-serial one) gets the buffer too, or
        the pool, and the layers before it, would stall on every image (a MobileNet measured
        34,241 cycles per image against 32,768 reported)."""
        if not isinstance(lay, DenseLayer) or lay.inputs[0] == INPUT:
            return False
        src = self.layer(lay.inputs[0])
        while isinstance(src, UnitLayer) and src.inputs[0] != INPUT:  # passes its input on
            src = self.layer(src.inputs[0])
        if isinstance(src, PoolLayer):
            return min(Fraction(src.out_lanes), self.peak_rate(src.inputs[0])) > Fraction(
                lay.simd, lay.passes)
        return isinstance(src, (ConvLayer, WindowLayer, AddLayer))

    def peak_rate(self, src: str) -> Fraction:
        """The most elements a cycle that the layer ``src`` (or the input) emits while it runs
        at full pace: a convolution ``pe`` every ``sf * passes`` cycles (``sf = k*k*C_in /
        simd``), a dense layer ``pe`` every ``sf * passes``, a window op ``lanes`` every
        ``k*k`` cycles, an add or a global average pool ``lanes`` a cycle, or its inputs' pace
        when that is lower (an add waits on both, a pool's sums leave as its last pixel
        arrives), a gate ``lanes`` a cycle (it reads a stored map), the input one element a
        cycle."""
        if src == INPUT:
            return Fraction(1)
        lay = self.layer(src)
        if isinstance(lay, ConvLayer):
            sf = lay.kernel ** 2 * lay.c_in // lay.simd
            return Fraction(lay.pe, sf * lay.passes)
        if isinstance(lay, DenseLayer):
            return Fraction(lay.pe, lay.n_in // lay.simd * lay.passes)
        if isinstance(lay, WindowLayer):
            return Fraction(lay.out_lanes, lay.kernel ** 2)
        if isinstance(lay, GateLayer):  # reads a stored map out, one word a cycle
            return Fraction(lay.out_lanes)
        return min([Fraction(lay.out_lanes), *map(self.peak_rate, lay.inputs)])

    def source_width(self, src: str) -> tuple[int, int]:
        """Lanes and element width of the stream a layer reads from ``src``."""
        if src == INPUT:
            return 1, self.input_bits
        lay = self.layer(src)
        return lay.out_lanes, lay.out_width

    def as_dict(self) -> dict:
        d = {"name": self.name, "input": {"shape": list(self.input_shape),
                                          "bits": self.input_bits,
                                          "elements": self.input_elements},
             "num_classes": self.num_classes, "output": self.output,
             "layers": [lay.as_dict() for lay in self.layers], "neurons": self.neurons,
             "time_steps": self.time_steps}
        for key in ("parallelism", "latency_cycles", "cycles_per_image"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d


# --- lowering -------------------------------------------------------------------------------

def _is_trained(g, node) -> bool:
    """Whether ``node`` is a one-input ``amos`` op with a trained (kind ``amos``) unit."""
    return (node["op"] == "amos" and len(node["inputs"]) == 1
            and g.units.get(node["unit"], {}).get("kind") == "amos"
            and not g.units[node["unit"]].get("c2"))


def _relu_K(g, node) -> int:
    spec = g.units.get(node["unit"], {})
    kind = spec.get("kind")
    if len(node["inputs"]) != 1:
        raise _err(node["name"], "a two-input amos op has no hardware reading a conv's or "
                                 "dense's accumulators; the gate engine reads spike words or "
                                 "trained units' outputs")
    if kind != "relu":
        raise _err(node["name"], f"unit {node['unit']!r} of kind {kind!r} cannot be fused "
                                 f"here: a trained unit follows a conv or dense layer only")
    return int(spec["K"])


def _raw_width(w2d, bias, in_bits, shift: int = 0, in_signed: bool = False) -> int:
    """Signed width of ``(acc + 2**(shift-1)) >> shift`` over the exact accumulator range."""
    kw = {"in_signed": True} if in_signed else {}
    lo, hi = accumulator_range(w2d, bias, in_bits, **kw)
    v_lo, v_hi = (int(v) for v in requant_shift(np.array([lo, hi]), shift))
    return signed_width(v_lo, v_hi)


class _Lowering:
    """One pass over the description's nodes, building the plan's layers."""

    def __init__(self, g):
        self.g = g
        self.info = ir.validate(g)
        self.nodes = g.index()
        self.consumers: dict[str, list] = {n["name"]: [] for n in g.nodes}
        for n in g.nodes:
            for i in n.get("inputs", []):
                self.consumers[i].append(self.nodes[n["name"]])
        self.depth: dict[str, int] = {}
        for n in g.nodes:
            d = max((self.depth[i] for i in n.get("inputs", [])), default=0)
            self.depth[n["name"]] = d + (n["op"] == "amos")
        inp = g.nodes[0]
        self.input = inp
        self.layers: list[Layer] = []
        #: description tensor -> (producing layer name, out_width, raw, kind, signed words):
        #: raw = signed accumulators (no spike words); signed words = two's-complement words
        self.produced: dict[str, tuple] = {inp["name"]: (INPUT, int(inp["bits"]), False, None,
                                                          False)}
        self.fused: set[str] = set()

    def spikes_from(self, name, src_tensor):
        src = self.produced[src_tensor]
        if src[2]:
            raise _err(name, f"its input {src_tensor!r} is a raw accumulator; the engines need "
                             f"spike words (a ReLU amos op in between)")
        return src

    def unsigned_from(self, name, op, src_tensor):
        """:meth:`spikes_from` for the engines that take unsigned spike words only."""
        src = self.spikes_from(name, src_tensor)
        if src[4]:
            raise _err(name, f"its input {src_tensor!r} is a trained unit's signed output; "
                             f"the {op} engine takes unsigned (ReLU) spike words only")
        return src

    def _emit(self, layer: Layer, *tensors) -> None:
        self.layers.append(layer)
        raw = layer.out_signed and layer.out_bits is None and not isinstance(layer, PoolLayer)
        for t in tensors:
            self.produced[t] = (layer.name, layer.out_width, raw, layer.kind, layer.out_signed)

    def matrix(self, n) -> None:
        g, name, op = self.g, n["name"], n["op"]
        cons = self.consumers[name]
        src = self.spikes_from(name, n["inputs"][0])
        w = np.asarray(g.arrays[n["weight"]], dtype=np.int64)
        bkey = n.get("bias") or None
        b = np.asarray(g.arrays[bkey], np.int64) if bkey else np.zeros(w.shape[0], np.int64)
        w2d = w.reshape(w.shape[0], -1)
        in_bits, in_signed = src[1], src[4]
        follow = cons[0] if len(cons) == 1 else None
        if follow is not None and _is_trained(g, follow):
            # raw, requantised by the unit's shift; the UnitLayer (self.unit) applies the unit
            out_name, out_bits, shift = name, None, int(follow["rshift"][0])
            out_signed, out_width = True, _raw_width(w2d, b, in_bits, shift, in_signed)
        elif follow is not None and follow["op"] == "amos":
            K = _relu_K(g, follow)
            out_name, shift = follow["name"], int(follow["rshift"][0])
            self.fused.add(out_name)
            out_bits, out_signed, out_width = K, False, K
        elif (cons and all(c["op"] == "add" for c in cons)) or (not cons
                                                               and name in g.outputs):
            out_name, out_bits, shift = name, None, 0
            out_signed, out_width = True, _raw_width(w2d, b, in_bits, 0, in_signed)
        else:
            raise _err(name, f"its output feeds {[c['name'] for c in cons]}; the engines "
                             f"need a {op} followed by one ReLU amos op, add ops, or a "
                             f"network output")
        common = {"name": out_name, "ir_nodes": [name] + ([out_name] if out_name != name
                                                          else []),
                  "inputs": [src[0]], "out_bits": out_bits, "out_signed": out_signed,
                  "out_width": out_width, "out_shape": list(self.info[out_name]["shape"]),
                  "depth": self.depth[out_name], "weight": n["weight"], "bias": bkey,
                  "in_bits": in_bits, "shift": shift}
        if in_signed:
            common["in_signed"] = True
        if op == "conv" and ir.conv_groups(n) > 1:
            H, W, C = self.info[n["inputs"][0]]["shape"]
            layer = DepthwiseLayer(**common, height=H, width=W, channels=C, kernel=n["kernel"],
                                   stride=n["stride"], padding=n["padding"])
        elif op == "conv":
            H, W, C = self.info[n["inputs"][0]]["shape"]
            layer = ConvLayer(**common, height=H, width=W, c_in=C, c_out=w.shape[0],
                              kernel=n["kernel"], stride=n["stride"], padding=n["padding"])
        else:
            layer = DenseLayer(**common, n_in=w2d.shape[1], n_out=w.shape[0])
        self._emit(layer, *dict.fromkeys([out_name, name]))

    def add(self, n) -> None:
        """A residual add and the one ``amos`` op after it: fused with a ReLU (``K`` spike
        words out), or raw before a trained one-input unit (an identity unit after a linear
        block): the add then emits ``v = requant_shift((main << lshift_m) + (skip <<
        lshift_s), S)``, ``S`` the unit's ``rshift``, and the :class:`UnitLayer` of
        :meth:`unit` applies the unit, as after a raw conv. The skip may be spike words, a raw
        projection conv or a trained unit's two's-complement words (``skip_signed``)."""
        name = n["name"]
        cons = self.consumers[name]
        if len(n["inputs"]) != 2:
            raise _err(name, f"the residual add engine takes 2 inputs, not {len(n['inputs'])}")
        if len(cons) != 1 or cons[0]["op"] != "amos" or len(cons[0]["inputs"]) != 1:
            raise _err(name, "the residual add engine needs one one-input amos op after the "
                             "add (a ReLU, or a trained unit such as the identity)")
        follow = cons[0]
        raw = _is_trained(self.g, follow)
        K = None if raw else _relu_K(self.g, follow)
        srcs = [self.produced[i] for i in n["inputs"]]
        by_name = {lay.name: lay for lay in self.layers}
        mains = [k for k, s in enumerate(srcs) if s[0] != INPUT and s[2] and s[3] == "conv"]
        if not mains:
            what = ", ".join(f"{i!r} ({self._describe(s)})"
                             for i, s in zip(n["inputs"], srcs, strict=True))
            raise _err(name, f"the residual add engine needs a raw convolution on one input "
                             f"(the block's last conv); its inputs are {what}")
        mk = max(mains, key=lambda k: (by_name[srcs[k][0]].depth, k))
        sk = 1 - mk
        main, skip = srcs[mk], srcs[sk]
        shape = list(self.info[name]["shape"])
        shift = int(follow["rshift"][0])
        common = {"inputs": [main[0], skip[0]], "out_shape": shape, "main_width": main[1],
                  "skip_bits": skip[1], "skip_signed": bool(skip[2] or skip[4]),
                  "skip_shift": int(n["lshift"][sk]), "main_shift": int(n["lshift"][mk]),
                  "shift": shift, "height": shape[0],
                  "width": shape[1], "channels": shape[2], "main_index": mk}
        if raw:  # signed v out; the trained unit after it is a UnitLayer of its own
            width = add_v_width(main[1], skip[1], common["skip_signed"],
                                 common["skip_shift"], shift, common["main_shift"])
            layer = AddLayer(name=name, ir_nodes=[name], out_bits=None, out_signed=True,
                             out_width=width, depth=self.depth[name], **common)
            self._emit(layer, name)
            return
        self.fused.add(follow["name"])
        layer = AddLayer(name=follow["name"], ir_nodes=[name, follow["name"]], out_bits=K,
                         out_signed=False, out_width=K, depth=self.depth[follow["name"]],
                         **common)
        self._emit(layer, name, follow["name"])

    @staticmethod
    def _describe(src) -> str:
        """What a produced tensor is, for the add's messages."""
        if src[0] == INPUT:
            return "the pixel input"
        if src[2]:
            return f"raw {src[3]} {src[0]!r}"
        if src[4]:
            return f"two's-complement words of {src[3]} {src[0]!r}"
        return f"spike words of {src[3]} {src[0]!r}"

    def gap(self, n) -> None:
        name = n["name"]
        src = self.spikes_from(name, n["inputs"][0])
        H, W, C = self.info[n["inputs"][0]]["shape"]
        K, in_signed = src[1], src[4]
        if in_signed:  # sums of two's-complement words
            sum_bits = signed_width(-H * W * 2 ** (K - 1), H * W * (2 ** (K - 1) - 1))
        else:
            sum_bits = (H * W * (2**K - 1)).bit_length()
        self._emit(PoolLayer(name=name, ir_nodes=[name], inputs=[src[0]], out_bits=None,
                             out_signed=in_signed, out_width=sum_bits, out_shape=[C],
                             depth=self.depth[name], height=H, width=W, channels=C,
                             in_bits=K, in_signed=in_signed), name)

    def window_pool(self, n) -> None:
        """A ``maxpool`` (spike words of its input's ``K`` out) or ``avgpool`` (window sums of
        ``in_bits + ceil(log2(kernel**2))`` bits out)."""
        name, op = n["name"], n["op"]
        src = self.unsigned_from(name, op, n["inputs"][0])
        H, W, C = self.info[n["inputs"][0]]["shape"]
        in_bits, k = src[1], n["kernel"]
        if op == "maxpool":
            cls, out_bits, out_width = MaxPoolLayer, in_bits, in_bits
        else:
            cls, out_bits = AvgPoolLayer, None
            out_width = in_bits + math.ceil(math.log2(k * k))
        self._emit(cls(name=name, ir_nodes=[name], inputs=[src[0]], out_bits=out_bits,
                       out_signed=False, out_width=out_width,
                       out_shape=list(self.info[name]["shape"]), depth=self.depth[name],
                       height=H, width=W, channels=C, kernel=k, stride=n["stride"],
                       padding=n["padding"], in_bits=in_bits), name)

    def unit(self, n) -> None:
        """A trained one-input unit after the raw conv, dense layer or add that feeds only
        it (requantised by the unit's ``rshift`` there)."""
        name, src_t = n["name"], n["inputs"][0]
        src = self.produced.get(src_t)
        node = self.nodes[src_t]
        if src is None or node["op"] not in ("conv", "dense", "add") or not src[2]:
            raise _err(name, f"a trained unit must directly follow a conv, dense layer or add; "
                             f"it follows {node['op']} {src_t!r}")
        unit = ir.make_unit(n["unit"], self.g.units[n["unit"]], self.g.arrays)
        lo = int(np.clip(unit.d, None, 0).sum())
        hi = int(np.clip(unit.d, 0, None).sum())
        width = signed_width(lo, hi)
        shape = list(self.info[name]["shape"])
        self._emit(UnitLayer(name=name, ir_nodes=[name], inputs=[src[0]], out_bits=width,
                             out_signed=True, out_width=width, out_shape=shape,
                             depth=self.depth[name], unit=n["unit"],
                             spec=dict(self.g.units[n["unit"]]), channels=shape[-1],
                             in_width=src[1], K=unit.K, **_unit_costs(unit, src[1])), name)

    def gate(self, n) -> None:
        """A two-input ``amos`` op ``[x, g]``, the squeeze-and-excitation gate: ``x`` a map (or
        vector) of spike words or a trained unit's words, ``g`` one such word a channel."""
        name, (x_t, g_t) = n["name"], n["inputs"]
        spec = self.g.units[n["unit"]]
        if spec.get("kind") != "amos":
            raise _err(name, f"unit {n['unit']!r} of kind {spec.get('kind')!r} has no "
                             f"two-input engine; the gate engine runs a trained two-input unit")
        xs = list(self.info[x_t]["shape"])
        gs = list(self.info[g_t]["shape"])
        if gs != xs[-1:]:
            raise _err(name, f"the gate engine broadcasts g = {g_t!r} of shape ({xs[-1]},) "
                             f"over the map x = {x_t!r}; g of shape {gs} (an elementwise "
                             f"two-input unit) has no engine")
        src_x, src_g = self.spikes_from(name, x_t), self.spikes_from(name, g_t)
        unit = ir.make_unit(n["unit"], spec, self.g.arrays)
        width = signed_width(int(np.clip(unit.d, None, 0).sum()),
                             int(np.clip(unit.d, 0, None).sum()))
        kw = {"channels": xs[-1], "x_width": src_x[1], "x_signed": bool(src_x[4]),
              "g_width": src_g[1], "g_signed": bool(src_g[4]),
              "shifts": [int(v) for v in n["rshift"]]}
        self._emit(GateLayer(name=name, ir_nodes=[name], inputs=[src_x[0], src_g[0]],
                             out_bits=width, out_signed=True, out_width=width, out_shape=xs,
                             depth=self.depth[name], unit=n["unit"], spec=dict(spec), K=unit.K,
                             **kw, **_gate_costs(unit, math.prod(xs), kw)), name)

    def run(self) -> NetworkPlan:
        g = self.g
        for n in g.nodes[1:]:
            op = n["op"]
            if op in ("conv", "dense"):
                self.matrix(n)
            elif op == "add":
                self.add(n)
            elif op == "gap":
                self.gap(n)
            elif op in ("maxpool", "avgpool"):
                self.window_pool(n)
            elif op == "amos" and len(n["inputs"]) == 2:
                self.gate(n)
            elif op == "amos":
                if n["name"] not in self.fused and _is_trained(g, n):
                    self.unit(n)
                elif n["name"] not in self.fused:
                    src = self.nodes[n["inputs"][0]]
                    raise _err(n["name"], f"an amos op must directly follow a conv, dense or "
                                          f"add (the engines fuse them); it follows "
                                          f"{src['op']} {src['name']!r}")
            else:  # validate() knows every op; an op without an engine
                raise _err(n["name"], f"op {op!r} has no engine")
        out_t = g.outputs[0]
        out_layer = self.produced[out_t][0]
        shape = ([] if out_layer == INPUT
                 else next(lay.out_shape for lay in self.layers if lay.name == out_layer))
        return NetworkPlan(name=g.name, input_shape=list(self.input["shape"]),
                           input_bits=int(self.input["bits"]),
                           input_tensor=self.input["name"], num_classes=math.prod(shape),
                           output=out_layer, layers=self.layers, neurons=g.neurons(),
                           time_steps=g.time_steps())


def lower(g) -> NetworkPlan:
    """The plan of a description (see the module docstring).

    Raises
    ------
    PlanError
        A pattern without hardware, naming the layer; or the description is invalid
        (:class:`python_ref.ir.IRError`'s message).
    """
    try:
        return _Lowering(g).run()
    except ir.IRError as e:
        raise PlanError(str(e)) from None
