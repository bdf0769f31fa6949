"""The cost model: cycles, latency and resource estimates of a folded plan, before synthesis.

Everything here is a function of a :class:`~amos_hw.plan.NetworkPlan` (with its folding and
memories assigned) and the description's arrays; nothing builds or elaborates gateware. Per
layer the figures are the engines' own formulas (``figures`` of each engine class, read through
:func:`amos_hw.layer_engines.engine_figures`); only the serial AMOS units multiply: on a
family of :data:`DSP_FAMILIES` their products are ``est_dsp`` DSP blocks.
The glue that :class:`~amos_hw.top.NetworkTop` adds (skid buffers, broadcasts, lane adapters,
the result collector) is one more entry.

* ``cycles_per_image``: the steady-state initiation interval of the layer pipeline, the largest
  of the layers' cycles and of the pixel input (one byte per cycle), :func:`pipeline_ii`;
* ``latency_cycles``: an estimate of the first pixel to result time of an image entering an
  empty pipeline (:func:`latency`): every layer starts when the part of its input it needs
  first has arrived at its producer's rate (the slower of the producer's own rate and its
  input's), then adds its engine's latency. The measured value is in
  ``docs/results/rtl_<model>.json``.
"""
from __future__ import annotations

import math

from amos_hw.devices import LUT_FILL
from amos_hw.engines.figures import window_first_words
from amos_hw.engines.gate_params import GATE_LATENCY_EXTRA
from amos_hw.engines.image_buffer import ImageBuffer
from amos_hw.errors import FlowError
from amos_hw.layer_engines import engine_figures
from amos_hw.lib.bram import BLOCK_MARGIN, FAMILIES, block_count, bram_budget, lut_cost
from amos_hw.lib.skid import SkidBuffer
from amos_hw.plan import (
    INPUT,
    AddLayer,
    ConvLayer,
    DenseLayer,
    GateLayer,
    Layer,
    NetworkPlan,
    PoolLayer,
    UnitLayer,
    WindowLayer,
)

__all__ = ["DSP_FAMILIES", "layer_cycles", "pipeline_ii", "inexact_layers", "layer_rows",
           "glue", "latency", "gate_delays", "gate_backlog", "totals", "check"]


def layer_cycles(lay: Layer, folding: dict) -> int:
    """Cycles per image of a layer's engine at a folding (the engines' ``expected_cycles``)."""
    if isinstance(lay, ConvLayer):
        ho, wo, _ = lay.out_shape
        sf = lay.kernel ** 2 * lay.c_in // folding["simd"]
        passes = lay.in_bits // folding.get("planes", lay.in_bits)
        compute = ho * wo * (lay.c_out // folding["pe"]) * sf * passes
        return max(compute, lay.height * lay.width * lay.c_in // folding["simd"])
    if isinstance(lay, DenseLayer):
        passes = lay.in_bits // folding.get("planes", lay.in_bits)
        return (lay.n_out // folding["pe"]) * (lay.n_in // folding["simd"]) * passes
    if isinstance(lay, PoolLayer):
        return lay.height * lay.width * lay.channels // folding["lanes"]
    if isinstance(lay, (UnitLayer, GateLayer)) and "serial" in folding:  # a word per K cycles
        return math.prod(lay.out_shape) // folding["serial"] * lay.K
    if isinstance(lay, (AddLayer, UnitLayer, GateLayer)):
        return math.prod(lay.out_shape) // folding["lanes"]
    if isinstance(lay, WindowLayer):  # one window word a cycle, or the input's words
        ho, wo, _ = lay.out_shape
        words = lay.kernel ** 2 * lay.channels // folding["lanes"]
        return max(ho * wo * words, lay.height * lay.width * lay.channels // folding["lanes"])
    raise ValueError(f"layer {lay.name!r}: no cycle model for kind {lay.kind!r}")


def _adapt_span(span: float, d: float, have: int, want: int) -> tuple[float, float]:
    """Span (first to last word, cycles) and word interval after a lane adapter."""
    if have == want:
        return span, d
    if want > have:  # gather: every n-th word leaves
        n = want // have if want % have == 0 else want // math.gcd(have, want)
        return max(0.0, span - (n - 1) * d), n * d
    n = have // want if have % want == 0 else have // math.gcd(have, want)
    return span + (n - 1), max(1.0, d / n)


def pipeline_ii(plan: NetworkPlan) -> tuple[int, dict]:
    """Steady-state cycles per image of the whole pipeline, and each layer's share.

    Convolutions, pooling and adds decouple their input (line buffer, ring, FIFO): a layer takes
    its engine's cycles. A dense engine reads its input only during its first output fold, so
    that fold lasts as long as its input takes to arrive (the span from the first to the last
    input word of an image: pixel bytes gathered into ``simd``-wide words, or a previous dense
    layer's outputs, one every ``sf`` cycles); it then needs ``(nf - 1) * sf`` cycles for the
    other folds: ``max(nf * sf, span + 1 + (nf - 1) * sf)``. When that makes it slower than a
    dense producer that feeds it directly, the producer holds its first output of the next
    image in its AMOS unit and computes on until its next result needs the unit: the consumer's
    first fold then shrinks by up to ``sf_p - (K_p + 2)`` cycles.
    """
    span: dict[str, tuple[float, float, int]] = {INPUT: (plan.input_elements - 1.0, 1.0, 1)}
    by_name = plan.by_name()
    ii = {}
    for lay in plan.layers:
        s_in, d_in, lanes = span[lay.inputs[0]]
        s_in, d_in = _adapt_span(s_in, d_in, lanes, lay.in_lanes)
        if isinstance(lay, DenseLayer):
            P = lay.passes
            sf = lay.n_in // lay.simd * P  # cycles of one output fold
            nf = lay.n_out // lay.pe
            # behind an image buffer the first fold reads a complete image, one word a cycle
            f0 = sf if plan.image_buffered(lay) else max(sf, int(round(s_in)) + P)
            busy = f0 + (nf - 1) * sf
            src = by_name.get(lay.inputs[0])
            if (isinstance(src, DenseLayer) and src.out_bits is not None
                    and src.out_lanes == lay.in_lanes and busy > ii[src.name]):
                sf_p = src.n_in // src.simd * src.passes
                busy -= min(busy - ii[src.name], max(0, sf_p - (src.out_bits + 2)))
            ii[lay.name] = max(nf * sf, busy)
            span[lay.name] = ((nf - 1) * sf, float(sf), lay.out_lanes)
        elif isinstance(lay, UnitLayer):  # value by value, at its input's pace
            ii[lay.name] = lay.cycles
            if lay.serial:  # a word every K cycles at most
                words = lay.elements // lay.lanes
                d = max(float(lay.K), d_in)
                span[lay.name] = (max(s_in, (words - 1) * d), d, lay.out_lanes)
            else:
                span[lay.name] = (s_in, max(1.0, d_in), lay.out_lanes)
        elif isinstance(lay, PoolLayer):
            ii[lay.name] = lay.cycles
            words = lay.channels // lay.lanes
            span[lay.name] = ((words - 1) * max(1.0, d_in), max(1.0, d_in), lay.out_lanes)
        else:
            ii[lay.name] = lay.cycles
            words = math.prod(lay.out_shape) // lay.out_lanes
            d = lay.cycles / words
            span[lay.name] = ((words - 1) * d, d, lay.out_lanes)
    return max([plan.input_elements, *ii.values()]), ii


def inexact_layers(plan: NetworkPlan) -> list[str]:
    """Dense layers whose cycles :func:`pipeline_ii` cannot state exactly: time-serial
    (``planes < in_bits``), fed by a dense layer through a gathering lane adapter (producer
    ``pe`` < consumer ``simd``), slower than that producer, with a first fold stretched by the
    producer's pace. The producer then runs ahead into the adapter and the first fold shrinks by
    an amount that depends on the adapter's fill; the generator refuses such foldings rather
    than report a wrong figure."""
    by_name = plan.by_name()
    _, per = pipeline_ii(plan)
    out = []
    for lay in plan.layers:
        src = by_name.get(lay.inputs[0])
        if (not isinstance(lay, DenseLayer) or lay.passes == 1
                or not isinstance(src, DenseLayer) or src.out_lanes >= lay.in_lanes):
            continue
        nf, sf = lay.n_out // lay.pe, lay.n_in // lay.simd * lay.passes
        if per[lay.name] > per[src.name] and per[lay.name] > nf * sf:
            out.append(lay.name)
    return out


#: Families whose synthesis (Yosys's default ``synth_ecp5``) maps a variable product to a DSP
#: block (``MULT18X18D``): on the ECP5-85F build of effnet_cifar the 27 one-input serial units
#: and the 4 gates' two products each took 31 of them, as counted.
DSP_FAMILIES = ("ecp5",)


def layer_rows(plan: NetworkPlan, arrays: dict, family: str | None = None) -> list[dict]:
    """One dict per layer: folding, cycles, latency and resource estimates; with an FPGA
    ``family`` (``ecp5``, ``ice40``) also the block RAMs its memories take there
    (``est_bram_blocks``, :mod:`amos_hw.lib.bram`) and, on a family of
    :data:`DSP_FAMILIES`, the serial units' products on DSP blocks (``est_dsp``, their LUT
    multipliers out of ``est_lut4``)."""
    rows = []
    for lay in plan.layers:
        try:
            fig = engine_figures(lay, arrays)
        except (TypeError, ValueError) as e:
            raise FlowError(f"layer {lay.name!r}: the engine refuses it: {e}") from None
        if fig.cycles != lay.cycles:  # the plan's formula must be the engine's
            raise FlowError(f"layer {lay.name!r}: planned {lay.cycles} cycles, the engine "
                            f"states {fig.cycles}")
        mems, luts, ffs, bits = fig.memories, fig.luts, fig.flip_flops, fig.memory_bits
        if plan.image_buffered(lay):  # its image buffer (amos_hw.top) counts with it
            words, width = lay.n_in // lay.simd, lay.simd * lay.in_bits
            buf = ImageBuffer.memory_for(width, words)
            mems, bits = (*mems, buf), bits + buf.depth * buf.width
            luts += ImageBuffer.luts_for(width, words)
            ffs += ImageBuffer.flip_flops_for(width, words)
        for mem in mems:  # out of block RAM (amos_hw.lut_memories): LUT4s and a read register
            if mem.in_lut:
                luts += lut_cost(mem, family or "ecp5")
                ffs, bits = ffs + mem.width, bits - mem.bits
        dsp = 0
        if family in DSP_FAMILIES and fig.multipliers:  # Yosys maps them to DSP blocks
            dsp, luts = fig.multipliers, luts - fig.multiplier_luts
        rows.append({"name": lay.name, "kind": lay.kind, **lay.folding(),
                     "cycles_per_image": fig.cycles, "latency_cycles": fig.latency,
                     "est_lut4": luts, "est_ff": ffs, "est_bram_bits": bits, "est_dsp": dsp})
        if family is not None:
            rows[-1]["est_bram_blocks"] = block_count(mems, family)
    return rows


def glue(plan: NetworkPlan) -> dict:
    """Skid buffers, broadcasts, lane adapters and the result collector."""
    lut = ff = 0
    users: dict[str, int] = {}
    for lay in plan.layers:
        lanes_in = [lay.in_lanes, getattr(lay, "skip_lanes", 0)]
        for src, want in zip(lay.inputs, lanes_in, strict=False):
            users[src] = users.get(src, 0) + 1
            have, width = plan.source_width(src)
            if have != want:
                bits = (max(have, want) + min(have, want)) * width
                ff += bits + 8
                lut += bits + 16
    feeds_dense = {lay.inputs[0] for lay in plan.layers if isinstance(lay, DenseLayer)}
    for src in users:  # the SkidBuffers of NetworkTop: two words and control
        if src == INPUT:
            bits = plan.input_bits
        elif src not in feeds_dense:
            lanes, width = plan.source_width(src)
            bits = lanes * width
        else:
            continue
        ff += SkidBuffer.flip_flops_for(bits)
        lut += SkidBuffer.luts_for(bits)
    ff += sum(n + 1 for n in users.values() if n > 1)
    lut += sum(2 * n for n in users.values() if n > 1)
    out = plan.output_layer
    ff += 2 * plan.num_classes * out.out_width + 8
    lut += plan.num_classes * out.out_width * 2 + 16
    return {"name": "glue", "kind": "glue", "est_lut4": lut, "est_ff": ff, "est_bram_bits": 0,
            "est_dsp": 0}


def _arrival(need: int, rate: float, burst: int | None) -> float:
    """Cycles from a stream's first element to its ``need``-th: ``need / rate`` for a stream
    that arrives evenly; for one that arrives a row (``burst`` elements) at a time (a window
    op's output, or an op fed by one), the start of the row that holds it."""
    if burst is None:
        return need / rate
    return (need - 1) // burst * burst / rate


def latency(plan: NetworkPlan, rows: list[dict]) -> int:
    """Estimated first-pixel-to-result cycles through an empty pipeline (module docstring).

    A window op (:class:`~amos_hw.plan.WindowLayer`) emits an output row in a burst once the
    input rows it needs are in, so its output (and what a conv, a window op or an add makes of
    it) is counted as arriving row by row."""
    t, _ = _arrivals(plan, rows)
    t0, rate = t[plan.output]
    out = plan.output_layer
    words = plan.num_classes // out.out_lanes
    return int(math.ceil(t0 + (words - 1) * out.out_lanes / rate + 1))


def gate_delays(plan: NetworkPlan, rows: list[dict]) -> dict:
    """Gate layer -> estimated cycles from its map's last element to its gate vector's last
    (the squeeze path's delay, :func:`latency`'s arrival model). The gate engine's interval is
    exact while that stays below one image interval (``docs/architecture.md``)."""
    return _gate_delays(plan, *_arrivals(plan, rows))


def _gate_delays(plan: NetworkPlan, t: dict, burst: dict) -> dict:
    """:func:`gate_delays` from the arrivals of :func:`_arrivals`."""
    out = {}
    for lay in plan.layers:
        if isinstance(lay, GateLayer):
            (tx, rx), (tg, rg) = t[lay.inputs[0]], t[lay.inputs[1]]
            last_x = tx + _arrival(math.prod(lay.out_shape), rx, burst.get(lay.inputs[0]))
            last_g = tg + _arrival(lay.channels, rg, burst.get(lay.inputs[1]))
            out[lay.name] = int(math.ceil(last_g - last_x))
    return out


def gate_backlog(plan: NetworkPlan, rows: list[dict]) -> dict:
    """Gate layer -> estimated words of the next map its memory must hold beside one map, the
    larger of two needs:

    * the map's producer never waits: the words of image ``n + 1`` that arrive (its first one
      interval after image ``n``'s, at its producer's average rate; a row-burst producer's
      with one row ahead, the row coming at once) less the words of image ``n`` read out (from
      :data:`~amos_hw.engines.gate_params.GATE_LATENCY_EXTRA` cycles after its gate's last
      word, one word a cycle, every ``K`` cycles in the serial form), at the most;
    * the gate's reads follow at ``r`` words a cycle (one a cycle, every ``K`` in the serial
      form, or slower where the gate's reader takes ``cycles`` an image: ``words / cycles``);
      the producer may wait, but image ``n + 1``'s gate comes a squeeze-path delay
      (``gate_delay_cycles``) after its map is complete, so the reads wait for it unless the map
      is complete that long before image ``n`` is read out. The reads may wait ``slack =
      interval - words / r`` cycles an image without slowing the pipeline: the words read in
      the rest of the delay, ``r * max(0, delay - slack)``.

    The map memory holds one map and this backlog (:func:`amos_hw.buffers.assign_gate_buffers`).
    """
    t, burst = _arrivals(plan, rows)
    interval, per_layer = pipeline_ii(plan)
    delays = _gate_delays(plan, t, burst)
    out = {}
    for lay in plan.layers:
        if not isinstance(lay, GateLayer):
            continue
        words = lay.elements // lay.lanes
        tx, rx = t[lay.inputs[0]]
        b = burst.get(lay.inputs[0])
        last_x = tx + _arrival(lay.elements, rx, b)
        start = tx + interval  # the next map's first word
        rate = min(1.0, rx / lay.lanes)  # words a cycle, on average
        ahead = 0.0 if b is None else b / lay.lanes  # a row burst comes at once
        read = last_x + delays[lay.name] + GATE_LATENCY_EXTRA
        q = 1.0 / lay.K if lay.serial else 1.0

        def held(at, start=start, rate=rate, ahead=ahead, read=read, q=q, words=words):
            came = min(words, max(0.0, (at - start) * rate + ahead) if at >= start else 0.0)
            return came - min(words, max(0.0, (at - read) * q))

        readers = [per_layer[r.name] for r in plan.layers if lay.name in r.inputs]
        r = min(q, words / max(readers, default=1))  # the reads' pace, words a cycle
        slack = max(0.0, interval - words / r)  # cycles an image the reader may wait
        slow = r * max(0.0, delays[lay.name] - slack)
        out[lay.name] = max(0.0, slow, *(held(at) for at in (
            start, start + max(0.0, words - ahead) / rate, read, read + words / q)))
    return out


def _arrivals(plan: NetworkPlan, rows: list[dict]) -> tuple[dict, dict]:
    """Tensor -> (time of its first element, elements per cycle it then arrives at), and the
    tensors that arrive row by row -> elements per row."""
    row = {r["name"]: r for r in rows}
    # tensor -> (time of its first element, elements per cycle it then arrives at)
    t = {INPUT: (0.0, 1.0)}
    burst: dict[str, int] = {}  # tensors that arrive row by row -> elements per row
    for lay in plan.layers:
        name = lay.name
        t0, rate = t[lay.inputs[0]]
        b = burst.get(lay.inputs[0])
        out_elems = math.prod(lay.out_shape)
        if isinstance(lay, (ConvLayer, WindowLayer)):
            c_in = lay.c_in if isinstance(lay, ConvLayer) else lay.channels
            need = lay.in_lanes * window_first_words(lay.height, lay.width, c_in // lay.in_lanes,
                                                     lay.kernel, lay.stride, lay.padding)
            in_elems = lay.height * lay.width * c_in
            mvu = row[name]["latency_cycles"] - (need // lay.in_lanes + 1)
            start = t0 + max(_arrival(need, rate, b), need / lay.in_lanes)
        elif isinstance(lay, DenseLayer):
            need = lay.n_in
            in_elems = need
            per_cycle = lay.simd / lay.passes
            mvu = row[name]["latency_cycles"] - int(need / per_cycle)
            if plan.image_buffered(lay):  # reads the image once it is all in
                start = t0 + _arrival(need, rate, b) + ImageBuffer.latency + need / per_cycle
            else:
                start = t0 + max(_arrival(need, rate, b), need / per_cycle)
        elif isinstance(lay, PoolLayer):
            in_elems = lay.height * lay.width * lay.channels
            need = in_elems - lay.channels + lay.lanes
            mvu = 1
            start = t0 + max(_arrival(need, rate, b), need / lay.lanes) - 1
        elif isinstance(lay, UnitLayer):
            in_elems = out_elems
            mvu = row[name]["latency_cycles"]
            start = t0
        elif isinstance(lay, GateLayer):
            # the engine reads an image once its map and its whole gate vector are in; its
            # latency counts from the later of the two last words (GateParams.latency)
            ts, rate_g = t[lay.inputs[1]]
            in_elems = out_elems
            mvu = row[name]["latency_cycles"]
            start = max(t0 + _arrival(in_elems, rate, b),
                        ts + _arrival(lay.channels, rate_g, burst.get(lay.inputs[1])))
        else:
            ts, _ = t[lay.inputs[1]]
            in_elems = out_elems
            mvu = row[name]["latency_cycles"]
            start = max(t0, ts)
        own = out_elems / lay.cycles
        first = start + mvu
        # a convolution or a window op streams at its input's pace; dense and global pooling
        # start once all of their input is in, then run at their own pace
        streams = isinstance(lay, (ConvLayer, WindowLayer, AddLayer, UnitLayer))
        t[name] = (first, min(own, rate * out_elems / in_elems) if streams else own)
        if streams and (isinstance(lay, WindowLayer) or b is not None):
            burst[name] = math.prod(lay.out_shape[1:])
    return t, burst


def totals(plan: NetworkPlan, arrays: dict, clock: float, family: str | None = None) -> dict:
    """Per-layer rows (plus glue) and the totals for a plan with folding and memory assigned;
    with an FPGA ``family`` also the block RAMs (``est_bram_blocks``)."""
    rows = layer_rows(plan, arrays, family)
    g = glue(plan)
    ii, per_layer = pipeline_ii(plan)
    for r in rows:
        r["engine_cycles"] = r["cycles_per_image"]
        r["cycles_per_image"] = per_layer[r["name"]]
        r["images_per_s"] = round(clock * 1e6 / r["cycles_per_image"], 3)
    total = {k: sum(r[k] for r in rows) + g[k]
             for k in ("est_lut4", "est_ff", "est_bram_bits", "est_dsp")}
    if family is not None:
        total["est_bram_blocks"] = sum(r["est_bram_blocks"] for r in rows)
    extra = {"gate_delay_cycles": gates} if (gates := gate_delays(plan, rows)) else {}
    return {"layers": rows, "glue": g, "cycles_per_image": ii,
            "latency_cycles": latency(plan, rows), **extra, **total, "clock_mhz": clock,
            "images_per_s": round(clock * 1e6 / ii, 3),
            "bottleneck": ("pixel input" if ii == plan.input_elements
                           else max(rows, key=lambda r: r["cycles_per_image"])["name"])}


def check(tot: dict, dev: dict) -> tuple[bool, str]:
    """Whether the totals of :func:`totals` fit a device (:func:`amos_hw.devices.device`);
    otherwise by how much each budget is missed and which layer dominates."""
    misses = []
    usable = int(dev["lut4"] * LUT_FILL)
    # the ECP5 carry form moves the spike gates into flip-flops: the FFs can outgrow the LUTs
    for key, budget, unit in (("est_lut4", usable, "LUT4"),
                              ("est_ff", int(dev["ff"] * LUT_FILL), "flip-flops"),
                              ("est_dsp", dev["dsp"], "DSP blocks"),
                              ("est_bram_blocks", bram_budget(dev["family"], dev["bram_blocks"]),
                               f"{FAMILIES[dev['family']]['block']} block RAMs")):
        need = tot[key]
        if need > budget:
            top = max(tot["layers"], key=lambda r: r[key])
            what = (f"of {dev[{'est_lut4': 'lut4', 'est_ff': 'ff'}[key]]} ({LUT_FILL:.0%} "
                    f"usable)" if key in ("est_lut4", "est_ff")
                    else f"(the device's {dev['bram_blocks']} and {BLOCK_MARGIN[dev['family']]:.0%}"
                         f" for the count erring full)" if budget > dev["bram_blocks"] else "")
            misses.append(f"needs {need} {unit}, budget {budget} {what}".rstrip()
                          + f": over by {need - budget} ({100 * (need - budget) / budget:.0f}%"
                          f"), layer {top['name']!r} dominates with {top[key]}")
    return (not misses), "; ".join(misses)
