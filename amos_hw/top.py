"""Network assembly: the layer engines of a converted model chained into one streaming top level.

:class:`NetworkTop` takes a *plan* (the hardware layer list that the generator's steps derive
from a description, :mod:`amos_hw.flow`) and the description's integer arrays, builds one engine
per hardware layer (:mod:`amos_hw.engines`) and connects them with :func:`wiring.connect`,
adding lane adapters where a producer's ``pe`` differs from its consumer's ``simd`` and a
broadcast where a tensor feeds several layers (the two paths of a residual block).

The boundary is fixed (``docs/architecture.md``):

* ``pixels``: one 8-bit value per beat, the image in HWC order (RGB for CIFAR-10), ``first`` on
  its first byte and ``last`` on its last. A :class:`amos_hw.lib.framer.PixelFramer` checks the
  markers and repairs short and long images (zero-filled or cut), so the network stays aligned
  to whole images; ``frame_errors`` counts the repairs;
* ``result``: one beat per image: ``cls`` (argmax of the logits, lowest index on ties) and
  ``logits`` (``num_classes`` signed values of :attr:`NetworkTop.logit_width` bits).

:func:`build_network` runs the generator's steps up to the memory assignment and returns the
top level, for the board builds.
"""
from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.engines import ConvEngine, DenseEngine, GlobalAvgPoolEngine, ResidualAddEngine
from amos_hw.lib.framer import PIXEL_LAYOUT, PixelFramer
from amos_hw.lib.skid import SkidBuffer

__all__ = [
    "PIXEL_LAYOUT",
    "Broadcast",
    "LaneAdapter",
    "NetworkTop",
    "ResultCollector",
    "build_network",
    "make_engine",
    "result_layout",
    "silence",
]


def result_layout(width: int, num_classes: int) -> data.StructLayout:
    """Payload of the ``result`` stream: ``cls`` and ``num_classes`` signed logits."""
    return data.StructLayout({"cls": unsigned(4),
                              "logits": data.ArrayLayout(signed(width), num_classes)})


def silence(obj, _seen=None) -> None:
    """Mark an engine (and the elaboratables it holds) as deliberately unused.

    Engines are built to read their estimates (cycles, LUTs, memory bits) before any hardware is
    elaborated; Amaranth would otherwise warn when such an engine is garbage-collected.
    """
    from amaranth.hdl import Elaboratable

    seen = _seen if _seen is not None else set()
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, Elaboratable):
        obj._MustUse__silence = True
        for value in vars(obj).values():
            if isinstance(value, Elaboratable):
                silence(value, seen)
            elif isinstance(value, (list, tuple)):
                for v in value:
                    if isinstance(v, Elaboratable):
                        silence(v, seen)


def _weights(arrays: dict, key: str) -> np.ndarray:
    return np.asarray(arrays[key], dtype=np.int64)


def _bias(arrays: dict, key, n: int) -> np.ndarray:
    if key is None:
        return np.zeros(n, np.int64)
    return np.asarray(arrays[key], dtype=np.int64)


def make_engine(spec: dict, arrays: dict):
    """The engine of one hardware layer of a plan (see :mod:`amos_hw.passes.lower`)."""
    kind = spec["kind"]
    if kind == "conv":
        return ConvEngine(_weights(arrays, spec["weight"]),
                          _bias(arrays, spec.get("bias"), spec["c_out"]),
                          height=spec["height"], width=spec["width"], stride=spec["stride"],
                          padding=spec["padding"], in_bits=spec["in_bits"], shift=spec["shift"],
                          out_bits=spec["out_bits"], pe=spec["pe"], simd=spec["simd"],
                          planes=spec.get("planes"), name=spec["name"],
                          carry=spec.get("carry", "generic"))
    if kind == "dense":
        return DenseEngine(_weights(arrays, spec["weight"]),
                           _bias(arrays, spec.get("bias"), spec["n_out"]),
                           in_bits=spec["in_bits"], shift=spec["shift"],
                           out_bits=spec["out_bits"], pe=spec["pe"], simd=spec["simd"],
                           planes=spec.get("planes"), name=spec["name"],
                           carry=spec.get("carry", "generic"))
    if kind == "gap":
        return GlobalAvgPoolEngine(height=spec["height"], width=spec["width"],
                                   channels=spec["channels"], in_bits=spec["in_bits"],
                                   lanes=spec["lanes"], name=spec["name"])
    if kind == "add":
        return ResidualAddEngine(lanes=spec["lanes"], words_per_image=spec["words_per_image"],
                                 main_width=spec["main_width"], skip_bits=spec["skip_bits"],
                                 skip_shift=spec["skip_shift"], shift=spec["shift"],
                                 out_bits=spec["out_bits"], skip_depth=spec["skip_depth"],
                                 skip_signed=spec["skip_signed"], name=spec["name"])
    raise ValueError(f"layer {spec['name']!r}: no engine for kind {kind!r}")


def elem_shape(width: int, is_signed: bool):
    return signed(width) if is_signed else unsigned(width)


class LaneAdapter(wiring.Component):
    """Re-cut a stream of ``in_lanes``-element words into ``out_lanes``-element words.

    One of the two must divide the other. Splitting sends the pieces of a word on consecutive
    cycles; gathering collects pieces in a shift register and emits the full word from an output
    register. Either way one output word per cycle is possible and the element order is kept.

    Parameters
    ----------
    shape : amaranth shape
        One element.
    in_lanes, out_lanes : int
        Elements per input / output word.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(shape, in_lanes)))``
    o : ``Out(stream.Signature(ArrayLayout(shape, out_lanes)))``
    """

    def __init__(self, shape, in_lanes: int, out_lanes: int):
        self._MustUse__silence = True  # a constructor that raises must not also warn "unused"
        for what, v in (("in_lanes", in_lanes), ("out_lanes", out_lanes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{what} must be a positive integer, not {v!r}")
        if in_lanes % out_lanes and out_lanes % in_lanes:
            raise ValueError(f"one of in_lanes={in_lanes} and out_lanes={out_lanes} must "
                             f"divide the other")
        self._shape, self._a, self._b = shape, in_lanes, out_lanes
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(shape, in_lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(shape, out_lanes))),
        })
        self._MustUse__silence = False

    @property
    def flip_flops(self) -> int:
        width = data.ArrayLayout(self._shape, 1).size
        return (max(self._a, self._b) + (self._a if self._b > self._a else 0)) * width + 8

    def elaborate(self, platform):
        m = Module()
        a, b = self._a, self._b
        ew = data.ArrayLayout(self._shape, 1).size
        if a == b:
            wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
            return m
        i_xfer = self.i.valid & self.i.ready
        o_xfer = self.o.valid & self.o.ready
        if a > b:  # split
            n = a // b
            buf = Signal(a * ew)
            full = Signal()
            idx = Signal(range(n))
            last = idx == n - 1
            m.d.comb += [
                self.o.valid.eq(full),
                self.o.payload.as_value().eq(buf.word_select(idx, b * ew)),
                self.i.ready.eq(~full | (self.o.ready & last)),
            ]
            with m.If(o_xfer):
                m.d.sync += idx.eq(idx + 1)
                with m.If(last):
                    m.d.sync += full.eq(0)
            with m.If(i_xfer):
                m.d.sync += [buf.eq(self.i.payload.as_value()), full.eq(1), idx.eq(0)]
        else:  # gather
            n = b // a
            piece = a * ew
            acc = Signal((n - 1) * piece)
            cnt = Signal(range(n))
            out = Signal(b * ew)
            ovalid = Signal()
            m.d.comb += [
                self.o.valid.eq(ovalid),
                self.o.payload.as_value().eq(out),
                self.i.ready.eq(~ovalid | self.o.ready),
            ]
            with m.If(o_xfer):
                m.d.sync += ovalid.eq(0)
            with m.If(i_xfer):
                with m.If(cnt == n - 1):
                    m.d.sync += [out.eq(Cat(acc, self.i.payload.as_value())), ovalid.eq(1),
                                 cnt.eq(0)]
                with m.Else():
                    if n > 2:
                        m.d.sync += acc.eq(Cat(acc[piece:], self.i.payload.as_value()))
                    else:
                        m.d.sync += acc.eq(self.i.payload.as_value())
                    m.d.sync += cnt.eq(cnt + 1)
        return m


class Broadcast(wiring.Component):
    """Copy one stream to ``n`` consumers; each output takes every word exactly once.

    A word leaves the input once every output has taken it; an output that took it early waits
    (its ``valid`` drops) until the slowest one has. No buffering, no added latency.

    Members
    -------
    i : ``In(stream.Signature(layout))``
    o : ``Out(stream.Signature(layout)).array(n)``
    """

    def __init__(self, layout, n: int):
        self._MustUse__silence = True
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"n must be an integer of at least 2, not {n!r}")
        self._n = n
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout)).array(n)})
        self._MustUse__silence = False

    @property
    def flip_flops(self) -> int:
        return self._n

    def elaborate(self, platform):
        m = Module()
        done = [Signal(name=f"done_{k}") for k in range(self._n)]
        all_ok = Signal()
        m.d.comb += all_ok.eq(Cat(*[done[k] | self.o[k].ready
                                    for k in range(self._n)]).all())
        m.d.comb += self.i.ready.eq(all_ok)
        for k in range(self._n):
            m.d.comb += [
                self.o[k].valid.eq(self.i.valid & ~done[k]),
                self.o[k].payload.eq(self.i.payload),
            ]
            with m.If(self.i.valid & all_ok):
                m.d.sync += done[k].eq(0)
            with m.Elif(self.o[k].valid & self.o[k].ready):
                m.d.sync += done[k].eq(1)
        return m


class ResultCollector(wiring.Component):
    """Collect the logits of one image (``pe`` a word) into one ``result`` beat with the class.

    Throughput: one input word per cycle; the beat leaves the cycle after the last word.
    The class is the argmax of the logits, the lowest index on ties.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(signed(width), pe)))``
    o : ``Out(stream.Signature(result_layout(width, num_classes)))``
    """

    def __init__(self, width: int, num_classes: int, pe: int):
        self._MustUse__silence = True
        if num_classes % pe:
            raise ValueError(f"pe must divide the {num_classes} classes, not {pe}")
        if not 1 <= num_classes <= 16:
            raise ValueError(f"num_classes must be 1..16 (cls is 4 bits), not {num_classes}")
        self._w, self._n, self._pe = width, num_classes, pe
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(width), pe))),
            "o": Out(stream.Signature(result_layout(width, num_classes))),
        })
        self._MustUse__silence = False

    @property
    def flip_flops(self) -> int:
        return 2 * self._n * self._w + 8

    def elaborate(self, platform):
        m = Module()
        n, pe, w = self._n, self._pe, self._w
        words = n // pe
        regs = Signal(data.ArrayLayout(signed(w), n))
        cnt = Signal(range(words))
        ovalid = Signal()
        out = Signal(data.ArrayLayout(signed(w), n))
        i_xfer = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(~ovalid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += ovalid.eq(0)
        full = Cat(regs.as_value()[: (words - 1) * pe * w], self.i.payload.as_value())
        with m.If(i_xfer):
            with m.If(cnt == words - 1):
                m.d.sync += [out.as_value().eq(full), ovalid.eq(1), cnt.eq(0)]
            with m.Else():
                for k in range(words - 1):
                    with m.If(cnt == k):
                        m.d.sync += regs.as_value().word_select(k, pe * w).eq(
                            self.i.payload.as_value())
                m.d.sync += cnt.eq(cnt + 1)
        best = Signal(range(max(n, 2)))
        best_v = out[0]
        best_i = 0
        for k in range(1, n):
            take = out[k] > best_v
            best_i = Mux(take, k, best_i)
            best_v = Mux(take, out[k], best_v)
        m.d.comb += [
            best.eq(best_i),
            self.o.valid.eq(ovalid),
            self.o.payload.logits.eq(out),
            self.o.payload.cls.eq(best),
        ]
        return m


class NetworkTop(wiring.Component):
    """A converted network as one streaming component: pixels in, class and logits out.

    Every hardware layer of the plan is an engine; all of them run at once on consecutive images
    (layer pipelining), each folded by its ``pe`` / ``simd`` (or ``lanes``). A new image can
    enter every :attr:`cycles_per_image` cycles (the slowest engine, or the pixel input at one
    byte per cycle); :attr:`latency_cycles` is the estimated time from an image's first pixel to
    its result beat with no stall.

    Parameters
    ----------
    plan : dict
        The hardware plan (:mod:`amos_hw.passes.lower`, with parallelism and memory assigned).
    arrays : dict
        The description's integer arrays (weights, biases).

    Members
    -------
    pixels : ``In(stream.Signature(PIXEL_LAYOUT))``
    result : ``Out(stream.Signature(result_layout(logit_width, num_classes)))``
    frame_errors : ``Out(unsigned(16))``, images repaired by the input framer (wrapping)
    """

    def __init__(self, plan: dict, arrays: dict):
        self._plan = plan
        self._layers = plan["layers"]
        self._engines = {}
        for spec in self._layers:
            eng = make_engine(spec, arrays)
            silence(eng)  # elaborated by NetworkTop.elaborate, estimates read before
            self._engines[spec["name"]] = eng
        out = self._engines[plan["output"]]
        self._logit_width = out.out_width
        self._num_classes = plan["num_classes"]
        self._input_shape = tuple(plan["input"]["shape"])
        super().__init__({
            "pixels": In(stream.Signature(PIXEL_LAYOUT)),
            "result": Out(stream.Signature(result_layout(self._logit_width,
                                                         self._num_classes))),
            "frame_errors": Out(unsigned(16)),
        })

    plan = property(lambda self: self._plan, doc="The hardware plan (dict).")
    engines = property(lambda self: dict(self._engines), doc="Layer name -> engine.")
    logit_width = property(lambda self: self._logit_width, doc="Signed width W of a logit.")
    num_classes = property(lambda self: self._num_classes)
    input_shape = property(lambda self: self._input_shape, doc="(H, W, C) of an image.")

    @property
    def cycles_per_image(self) -> int:
        """Steady-state initiation interval (:func:`amos_hw.passes.estimate.pipeline_ii`): the
        slowest layer, or the pixel input at one byte per cycle."""
        return self._plan["cycles_per_image"]

    @property
    def latency_cycles(self) -> int:
        """Estimated cycles from an image's first pixel to its result beat, with no stall."""
        return self._plan["latency_cycles"]

    def elaborate(self, platform):
        m = Module()
        consumers: dict[str, list] = {"input": []}
        for spec in self._layers:
            consumers.setdefault(spec["name"], [])
            for port, src in zip(("i", "skip"), spec["inputs"], strict=False):
                consumers[src].append((spec["name"], port))
        for name, eng in self._engines.items():
            m.submodules[name.replace(".", "_")] = eng

        # the output stream of every producer, as (stream, element shape, lanes)
        sources = {}
        pix = self._plan["input"]
        in_stream = stream.Signature(data.ArrayLayout(unsigned(pix["bits"]), 1)).create(
            path=("pix",))
        n_bytes = math.prod(self._input_shape)
        m.submodules.framer = framer = PixelFramer(n_bytes)
        wiring.connect(m, wiring.flipped(self.pixels), framer.i)
        m.d.comb += [
            in_stream.valid.eq(framer.o.valid),
            in_stream.payload[0].eq(framer.o.payload),
            framer.o.ready.eq(in_stream.ready),
            self.frame_errors.eq(framer.frame_errors),
        ]
        sources["input"] = (in_stream, unsigned(pix["bits"]), 1)
        for spec in self._layers:
            eng = self._engines[spec["name"]]
            sources[spec["name"]] = (eng.o, elem_shape(spec["out_width"], spec["out_signed"]),
                                     spec["out_lanes"])

        # register slice, fan out, then adapt lanes, then connect
        kinds = {spec["name"]: spec["kind"] for spec in self._layers}
        ends = {}
        for src, cons in consumers.items():
            port, shape, lanes = sources[src]
            if not cons:
                continue
            if src == "input" or not any(kinds[d] == "dense" for d, _ in cons):
                # a SkidBuffer after the input framer and after every engine: registered ready,
                # so a consumer's ready (a window's line-buffer state, a fork's AND of its
                # branches) never reaches into the producer's pipeline enable (the critical path
                # of the ECP5 builds). Not between two engines when the consumer is dense: it
                # reads its input only in its first fold, and the cycle model
                # (estimate.pipeline_ii) counts that overlap without one.
                skid = SkidBuffer(data.ArrayLayout(shape, lanes))
                m.submodules[f"skid_{src.replace('.', '_')}"] = skid
                wiring.connect(m, port, skid.i)
                port = skid.o
            if len(cons) > 1:
                fork = Broadcast(data.ArrayLayout(shape, lanes), len(cons))
                m.submodules[f"fork_{src.replace('.', '_')}"] = fork
                wiring.connect(m, port, fork.i)
                outs = [fork.o[k] for k in range(len(cons))]
            else:
                outs = [port]
            for (dst, dport), o in zip(cons, outs, strict=True):
                ends[(dst, dport)] = (o, shape, lanes, src)
        if self._plan["output"] not in consumers or consumers[self._plan["output"]]:
            raise ValueError("the output layer must not feed another layer")
        for spec in self._layers:
            eng = self._engines[spec["name"]]
            for dport in ("i", "skip")[: len(spec["inputs"])]:
                o, shape, lanes, src = ends[(spec["name"], dport)]
                want = spec["in_lanes"] if dport == "i" else spec["skip_lanes"]
                target = getattr(eng, dport)
                tag = f"{spec['name']}_{dport}".replace(".", "_")
                o = self._adapt(m, o, shape, lanes, want, tag)
                wiring.connect(m, o, target)
        out_spec = next(s for s in self._layers if s["name"] == self._plan["output"])
        out_eng = self._engines[out_spec["name"]]
        m.submodules.collect = coll = ResultCollector(self._logit_width, self._num_classes,
                                                      out_spec["out_lanes"])
        wiring.connect(m, out_eng.o, coll.i)
        wiring.connect(m, coll.o, wiring.flipped(self.result))
        return m

    @staticmethod
    def _adapt(m, port, shape, have: int, want: int, tag: str):
        if have == want:
            return port
        steps = [want] if (have % want == 0 or want % have == 0) else [math.gcd(have, want),
                                                                        want]
        cur, lanes = port, have
        for k, nxt in enumerate(steps):
            ad = LaneAdapter(shape, lanes, nxt)
            m.submodules[f"lanes_{tag}_{k}"] = ad
            wiring.connect(m, cur, ad.i)
            cur, lanes = ad.o, nxt
        return cur


def build_network(model_name_or_path, parallelism=None, carry=None) -> NetworkTop:
    """Run the generator's steps up to the memory assignment and return the top level.

    Parameters
    ----------
    model_name_or_path : str or path
        A zoo name (``"resnet8"``, ``"digits"``) or the path of a converted description.
    parallelism : dict, str or None
        Per-layer folding (``{"layer": {"pe": 4, "simd": 2}}``, or a JSON file path / text), or
        ``None`` for the defaults (``amos_hw.passes.parallelism``).
    carry : str or None
        ``"generic"`` (default) or ``"ecp5"``: the matrix-vector units' first adder level on
        ECP5 carry cells (:mod:`amos_hw.engines.carry`).
    """
    from amos_hw.flow import FlowConfig, run_flow

    ctx = run_flow(FlowConfig(model=model_name_or_path, parallelism=parallelism, carry=carry,
                              stop_after="assemble", quiet=True))
    return ctx.top
