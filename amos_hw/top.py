"""Network assembly: the layer engines of a converted model chained into one streaming top level.

:class:`NetworkTop` takes a *plan* (the hardware layer list that the generator's steps derive
from a description, :mod:`amos_hw.plan`) and the description's integer arrays, builds one engine
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

:func:`amos_hw.flow.build_network` runs the generator's steps up to the assembly and returns
the top level, for the board builds.
"""
from __future__ import annotations

import math

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.engines.image_buffer import ImageBuffer
from amos_hw.layer_engines import build_engine
from amos_hw.lib.checks import positive_int
from amos_hw.lib.framer import PIXEL_LAYOUT, PixelFramer
from amos_hw.lib.skid import SkidBuffer
from amos_hw.lib.spike_tally import (
    SPIKE_WIDTH,
    SpikeTally,
    spike_layers,
    spike_result_layout,
    tally_depth,
)
from amos_hw.plan import INPUT, DenseLayer, NetworkPlan

__all__ = [
    "PIXEL_LAYOUT",
    "Broadcast",
    "LaneAdapter",
    "NetworkTop",
    "ResultCollector",
    "result_layout",
]


def result_layout(width: int, num_classes: int) -> data.StructLayout:
    """Payload of the ``result`` stream: ``cls`` and ``num_classes`` signed logits."""
    return data.StructLayout({"cls": unsigned(4),
                              "logits": data.ArrayLayout(signed(width), num_classes)})


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
        positive_int("in_lanes", in_lanes)
        positive_int("out_lanes", out_lanes)
        if in_lanes % out_lanes and out_lanes % in_lanes:
            raise ValueError(f"one of in_lanes={in_lanes} and out_lanes={out_lanes} must "
                             f"divide the other")
        self._shape, self._a, self._b = shape, in_lanes, out_lanes
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(shape, in_lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(shape, out_lanes))),
        })

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
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"n must be an integer of at least 2, not {n!r}")
        self._n = n
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout)).array(n)})

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
        if num_classes % pe:
            raise ValueError(f"pe must divide the {num_classes} classes, not {pe}")
        if not 1 <= num_classes <= 16:
            raise ValueError(f"num_classes must be 1..16 (cls is 4 bits), not {num_classes}")
        self._w, self._n, self._pe = width, num_classes, pe
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(width), pe))),
            "o": Out(stream.Signature(result_layout(width, num_classes))),
        })

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
    plan : NetworkPlan
        The hardware plan (:mod:`amos_hw.plan`, with folding and memory assigned and the
        estimate's ``cycles_per_image`` / ``latency_cycles``).
    arrays : dict
        The description's integer arrays (weights, biases).
    spike_counts : bool
        Count each image's spikes (:class:`amos_hw.lib.spike_tally.SpikeTally`): ``result``
        gains ``spikes`` and the top the ``layer_spikes`` port; off by default.

    Members
    -------
    pixels : ``In(stream.Signature(PIXEL_LAYOUT))``
    result : ``Out(stream.Signature(result_layout(logit_width, num_classes)))``, with
        ``spike_counts`` also ``spikes`` (unsigned 32: the image's spikes in every AMOS layer)
    frame_errors : ``Out(unsigned(16))``, images repaired by the input framer (wrapping)
    layer_spikes : ``Out(ArrayLayout(unsigned(32), len(spike_layers)))``, with
        ``spike_counts`` only: the split of ``spikes`` per layer of :attr:`spike_layers`, valid
        with ``result.valid``
    """

    def __init__(self, plan: NetworkPlan, arrays: dict, *, spike_counts: bool = False):
        self._plan = plan
        self._layers = plan.layers
        self._spike_layers = spike_layers(self._layers) if spike_counts else ()
        if spike_counts and not self._spike_layers:
            raise ValueError("spike_counts: the network has no AMOS layer to count")
        self._engines = {lay.name: build_engine(lay, arrays) for lay in self._layers}
        out = self._engines[plan.output]
        self._logit_width = out.out_width
        self._num_classes = plan.num_classes
        self._input_shape = tuple(plan.input_shape)
        res = result_layout(self._logit_width, self._num_classes)
        members = {}
        if spike_counts:
            res = spike_result_layout(res, len(self._spike_layers))
            members["layer_spikes"] = Out(data.ArrayLayout(unsigned(SPIKE_WIDTH),
                                                           len(self._spike_layers)))
        super().__init__({
            "pixels": In(stream.Signature(PIXEL_LAYOUT)),
            "result": Out(stream.Signature(res)),
            "frame_errors": Out(unsigned(16)),
            **members,
        })

    plan = property(lambda self: self._plan, doc="The hardware plan (NetworkPlan).")
    engines = property(lambda self: dict(self._engines), doc="Layer name -> engine.")
    logit_width = property(lambda self: self._logit_width, doc="Signed width W of a logit.")
    num_classes = property(lambda self: self._num_classes)
    input_shape = property(lambda self: self._input_shape, doc="(H, W, C) of an image.")
    spike_layers = property(lambda self: tuple(s.name for s in self._spike_layers),
                            doc="The layers of ``layer_spikes`` (empty without spike counts).")

    @property
    def cycles_per_image(self) -> int:
        """Steady-state initiation interval (:func:`amos_hw.cost.pipeline_ii`): the slowest
        layer, or the pixel input at one byte per cycle."""
        return self._plan.cycles_per_image

    @property
    def latency_cycles(self) -> int:
        """Estimated cycles from an image's first pixel to its result beat, with no stall."""
        return self._plan.latency_cycles

    def _consumers(self) -> dict:
        consumers: dict[str, list] = {INPUT: []}
        for lay in self._layers:
            consumers.setdefault(lay.name, [])
            for port, src in zip(("i", "skip"), lay.inputs, strict=False):
                consumers[src].append((lay.name, port))
        return consumers

    def _sources(self, m, tally=None) -> dict:
        """The output stream of every producer, as (stream, element shape, lanes); the pixel
        input through its framer (and the spike tally's gate on the images in flight)."""
        sources = {}
        bits = self._plan.input_bits
        in_stream = stream.Signature(data.ArrayLayout(unsigned(bits), 1)).create(
            path=("pix",))
        n_bytes = math.prod(self._input_shape)
        m.submodules.framer = framer = PixelFramer(n_bytes)
        wiring.connect(m, wiring.flipped(self.pixels), framer.i)
        valid, ready = framer.o.valid, in_stream.ready
        if tally is not None:
            valid, ready = valid & tally.admit, ready & tally.admit
            m.d.comb += tally.pixel_taken.eq(in_stream.valid & in_stream.ready)
        m.d.comb += [
            in_stream.valid.eq(valid),
            in_stream.payload[0].eq(framer.o.payload),
            framer.o.ready.eq(ready),
            self.frame_errors.eq(framer.frame_errors),
        ]
        sources[INPUT] = (in_stream, unsigned(bits), 1)
        for lay in self._layers:
            eng = self._engines[lay.name]
            sources[lay.name] = (eng.o, elem_shape(lay.out_width, lay.out_signed),
                                 lay.out_lanes)
        return sources

    def _fan_out(self, m, consumers: dict, sources: dict) -> dict:
        """Register slice, then fan out: the stream end of every (consumer, port)."""
        dense = {lay.name for lay in self._layers if isinstance(lay, DenseLayer)}
        ends = {}
        for src, cons in consumers.items():
            port, shape, lanes = sources[src]
            if not cons:
                continue
            if src == INPUT or not any(d in dense for d, _ in cons):
                # a SkidBuffer after the input framer and after every engine: registered ready,
                # so a consumer's ready (a window's line-buffer state, a fork's AND of its
                # branches) never reaches into the producer's pipeline enable (the critical path
                # of the ECP5 builds). Not between two engines when the consumer is dense: it
                # reads its input only in its first fold, and the cycle model
                # (cost.pipeline_ii) counts that overlap without one.
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
        return ends

    def elaborate(self, platform):
        m = Module()
        consumers = self._consumers()
        for name, eng in self._engines.items():
            m.submodules[name.replace(".", "_")] = eng
        tally = None
        if self._spike_layers:
            m.submodules.spike_tally = tally = SpikeTally(
                result_layout(self._logit_width, self._num_classes), self._spike_layers,
                image_bytes=math.prod(self._input_shape),
                depth=tally_depth(self.latency_cycles, self.cycles_per_image))
        sources = self._sources(m, tally)
        ends = self._fan_out(m, consumers, sources)
        if self._plan.output not in consumers or consumers[self._plan.output]:
            raise ValueError("the output layer must not feed another layer")
        for lay in self._layers:
            eng = self._engines[lay.name]
            for dport in ("i", "skip")[: len(lay.inputs)]:
                o, shape, lanes, src = ends[(lay.name, dport)]
                want = lay.in_lanes if dport == "i" else lay.skip_lanes
                target = getattr(eng, dport)
                tag = f"{lay.name}_{dport}".replace(".", "_")
                o = self._adapt(m, o, shape, lanes, want, tag)
                if self._plan.image_buffered(lay):  # a dense layer fed by a map (or a pool)
                    buf = ImageBuffer(data.ArrayLayout(shape, want), lay.n_in // want)
                    m.submodules[f"image_buffer_{tag}"] = buf
                    wiring.connect(m, o, buf.i)
                    o = buf.o
                wiring.connect(m, o, target)
        out_lay = self._plan.output_layer
        out_eng = self._engines[out_lay.name]
        m.submodules.collect = coll = ResultCollector(self._logit_width, self._num_classes,
                                                      out_lay.out_lanes)
        wiring.connect(m, out_eng.o, coll.i)
        if tally is None:
            wiring.connect(m, coll.o, wiring.flipped(self.result))
            return m
        wiring.connect(m, coll.o, tally.i)
        wiring.connect(m, tally.o, wiring.flipped(self.result))
        m.d.comb += self.layer_spikes.eq(tally.layer_spikes)
        for k, s in enumerate(self._spike_layers):
            eng = self._engines[s.name]
            m.d.comb += [tally.counts[k].eq(eng.spike_count),
                         tally.taken[k].eq(eng.o.valid & eng.o.ready)]
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
