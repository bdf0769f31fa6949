# amaranth: UnusedElaboratable=no
"""Fast tier: the assembled network (NetworkTop) in the Amaranth simulator, bit for bit against
python_ref.snn, plus the glue blocks (broadcast, lane adapter, result collector)."""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment, unsigned
from amaranth.lib import data

from amos_hw.flow import build_network, run_flow
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from amos_hw.passes.common import FlowConfig
from amos_hw.top import Broadcast, LaneAdapter, NetworkTop, ResultCollector
from python_ref import ir, snn
from python_ref.data import load_digits
from rtl_tests.network import tiny_resnet


def pixel_beats(images):
    beats = []
    for img in images:
        flat = np.asarray(img).ravel()
        for k, v in enumerate(flat):
            beats.append({"data": int(v), "first": int(k == 0), "last": int(k == flat.size - 1)})
    return beats


def simulate(top: NetworkTop, images, *, idle=0.0, backpressure=0.0, seed=0,
             max_cycles=400_000):
    got = []
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)

    async def producer(ctx):
        await stream_put_many(ctx, top.pixels, pixel_beats(images), rng=rng_in, idle=idle)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, top.result, len(images), rng=rng_out,
                                         backpressure=backpressure))

    run_simulation(top, producer, consumer, max_cycles=max_cycles)
    logits = np.array([[int(v) for v in r.logits] for r in got], np.int64)
    cls = np.array([int(r.cls) for r in got], np.int64)
    return logits, cls


def result_cycles(top: NetworkTop, images, max_cycles=400_000):
    """Cycle of every result beat (input always offered, output always ready)."""
    beats = pixel_beats(images)
    outs = []

    async def tb(ctx):
        ctx.set(top.result.ready, 1)
        n = cycle = 0
        while len(outs) < len(images):
            if n < len(beats):
                ctx.set(top.pixels.payload, beats[n])
                ctx.set(top.pixels.valid, 1)
            else:
                ctx.set(top.pixels.valid, 0)
            _, _, iv, ir, ov = await ctx.tick().sample(top.pixels.valid, top.pixels.ready,
                                                       top.result.valid)
            if iv and ir:
                n += 1
            if ov:
                outs.append(cycle)
            cycle += 1

    run_simulation(top, tb, max_cycles=max_cycles)
    return outs


@pytest.fixture(scope="module")
def digits():
    ctx = run_flow(FlowConfig(model="digits", quiet=True, stop_after="memory"))
    x, _ = load_digits("test")
    return ctx, x


@pytest.mark.parametrize("par", [None, {"act1": {"pe": 4, "simd": 8}, "fc": {"pe": 5, "simd": 4}},
                                 {"act1": {"pe": 8, "simd": 1}, "fc": {"pe": 2, "simd": 16}},
                                 {"act1": {"pe": 4, "simd": 8, "planes": 2},
                                  "fc": {"pe": 5, "simd": 4, "planes": 1}}])
def test_digits_bit_exact(digits, par):
    ctx0, x = digits
    top = build_network("digits", parallelism=par)
    images = x[:4]
    ref = snn.run(ctx0.graph, images)
    logits, cls = simulate(top, images, idle=0.2, backpressure=0.3, seed=3)
    assert (logits == ref.logits).all()
    assert (cls == ref.classes).all()


@pytest.mark.parametrize("par,cycles", [
    ({"act1": {"pe": 2, "simd": 2}, "fc": {"pe": 1, "simd": 4}}, 543),
    (None, 2221),
    ({"act1": {"pe": 8, "simd": 8}, "fc": {"pe": 10, "simd": 4}}, 81),
])
def test_digits_cycles_per_image(digits, par, cycles):
    """Measured intervals between result beats equal the plan's cycles per image. The numbers
    are worked out by hand: 543 = 15 folds of 32 + the first fold stretched to 63 cycles by the
    pixel bytes gathered two at a time; 2221 is the plan's own count (estimate.pipeline_ii: fc's
    first fold reading act1's outputs as they come, then its other folds), which this test
    checks against the simulation; 81 = act1's first fold stretched to 57 cycles by the pixel
    bytes gathered eight at a time + 3 folds of 8."""
    _, x = digits
    top = build_network("digits", parallelism=par)
    assert top.cycles_per_image == cycles
    outs = result_cycles(top, x[:4])
    assert [b - a for a, b in zip(outs, outs[1:], strict=False)] == [top.cycles_per_image] * 3


@pytest.mark.parametrize("par", [
    {"act1": {"pe": 2, "simd": 2, "planes": 1}, "fc": {"pe": 1, "simd": 4, "planes": 2}},
    {"act1": {"pe": 8, "simd": 8, "planes": 4}, "fc": {"pe": 10, "simd": 4, "planes": 1}},
    {"act1": {"pe": 8, "simd": 16}, "fc": {"pe": 2, "simd": 16, "planes": 1}},
    {"act1": {"pe": 4, "simd": 8}, "fc": {"pe": 1, "simd": 2, "planes": 1}},
    {"act1": {"pe": 4, "simd": 16, "planes": 1}, "fc": {"pe": 10, "simd": 32}},
])
def test_digits_cycles_per_image_planes(digits, par):
    """Time-serial layers (``planes``): the measured intervals between result beats equal the
    plan's cycles per image (:func:`amos_hw.cost.pipeline_ii`), dense-to-dense hold
    included."""
    _, x = digits
    top = build_network("digits", parallelism=par)
    outs = result_cycles(top, x[:4])
    assert [b - a for a, b in zip(outs, outs[1:], strict=False)] == [top.cycles_per_image] * 3


def test_inexact_serial_folding_is_refused():
    """fc time-serial behind a gathering adapter (act1 pe 8 -> fc simd 16), slower than act1
    and stretched by it: measured 100 cycles per image where the model says 106, so the
    generator refuses the folding instead of reporting a wrong figure."""
    from amos_hw.passes.common import FlowError

    with pytest.raises(FlowError, match="layer 'fc': a time-serial dense layer"):
        build_network("digits", parallelism={"act1": {"pe": 8, "simd": 8},
                                             "fc": {"pe": 2, "simd": 16, "planes": 1}})


def test_build_network_interface():
    top = build_network("digits")
    assert top.input_shape == (8, 8, 1)
    assert top.num_classes == 10
    assert top.cycles_per_image == 2221
    assert top.logit_width == top.engines["fc"].out_width
    assert top.latency_cycles > top.cycles_per_image  # fc waits for all of act1's outputs
    assert set(top.signature.members) == {"pixels", "result", "frame_errors"}
    Fragment.get(top, None)  # elaborates (a built top must be used)


@pytest.mark.parametrize("a,b", [(4, 2), (2, 4), (3, 1), (1, 3), (6, 1)])
def test_lane_adapter(a, b):
    dut = LaneAdapter(unsigned(5), a, b)
    vals = list(range(24))
    words = [vals[k:k + a] for k in range(0, 24, a)]
    got = []

    async def prod(ctx):
        await stream_put_many(ctx, dut.i, words, rng=random.Random(1), idle=0.3)

    async def cons(ctx):
        got.extend(await stream_get_many(ctx, dut.o, 24 // b, rng=random.Random(2),
                                         backpressure=0.3))

    run_simulation(dut, prod, cons, max_cycles=2000)
    assert [int(v) for w in got for v in w] == vals


def test_lane_adapter_messages():
    with pytest.raises(ValueError, match="in_lanes must be a positive integer, not 0"):
        LaneAdapter(unsigned(4), 0, 1)
    with pytest.raises(ValueError, match="one of in_lanes=2 and out_lanes=3 must divide"):
        LaneAdapter(unsigned(4), 2, 3)


def test_broadcast():
    dut = Broadcast(data.ArrayLayout(unsigned(8), 1), 3)
    words = [[v] for v in range(30)]
    got = [[], [], []]

    async def prod(ctx):
        await stream_put_many(ctx, dut.i, words, rng=random.Random(1), idle=0.2)

    def cons(k):
        async def tb(ctx):
            got[k].extend(await stream_get_many(ctx, dut.o[k], 30, rng=random.Random(5 + k),
                                                backpressure=0.5))
        return tb

    run_simulation(dut, prod, cons(0), cons(1), cons(2), max_cycles=5000)
    for k in range(3):
        assert [int(w[0]) for w in got[k]] == list(range(30))


def test_broadcast_message():
    with pytest.raises(ValueError, match="n must be an integer of at least 2, not 1"):
        Broadcast(unsigned(4), 1)


def test_result_collector_argmax_ties():
    dut = ResultCollector(6, 4, 2)
    images = [[3, -5, 3, 1], [-2, -2, -7, -2], [0, 1, 2, 3]]
    words = [img[k:k + 2] for img in images for k in (0, 2)]
    got = []

    async def prod(ctx):
        await stream_put_many(ctx, dut.i, words, rng=random.Random(1), idle=0.3)

    async def cons(ctx):
        got.extend(await stream_get_many(ctx, dut.o, 3, rng=random.Random(2), backpressure=0.4))

    run_simulation(dut, prod, cons, max_cycles=2000)
    assert [[int(v) for v in r.logits] for r in got] == images
    assert [int(r.cls) for r in got] == [0, 0, 3]


def test_result_collector_messages():
    with pytest.raises(ValueError, match="pe must divide the 10 classes, not 3"):
        ResultCollector(8, 10, 3)
    with pytest.raises(ValueError, match=r"num_classes must be 1..16 \(cls is 4 bits\), not 17"):
        ResultCollector(8, 17, 1)



TINY_FOLDINGS = [
    None,
    # lane adapters of every kind: gather (stem pe 2 -> b0.c1 simd 4), split (b0.c2 pe 4 ->
    # add lanes 2), via the gcd (b1.c1 pe 4 -> b1.c2 simd 8 is a gather; b0.a2 lanes 2 -> b1.sc
    # simd 4), a gap with lanes, logits two a word
    {"stem.act": {"pe": 2, "simd": 3}, "b0.a1": {"pe": 4, "simd": 4},
     "b0.c2": {"pe": 4, "simd": 2}, "b0.a2": {"lanes": 2}, "b1.a1": {"pe": 4, "simd": 2},
     "b1.c2": {"pe": 8, "simd": 8}, "b1.sc": {"pe": 8, "simd": 4}, "b1.a2": {"lanes": 4},
     "gap": {"lanes": 2}, "fc": {"pe": 3, "simd": 8}},
    # the products form (multiply) on the stem's pixels, a spike-word conv and the logits
    {"stem.act": {"pe": 4, "simd": 1, "multiply": True}, "b0.a1": {"pe": 1, "simd": 4},
     "b0.c2": {"pe": 2, "simd": 4}, "b0.a2": {"lanes": 4}, "b1.a1": {"pe": 8, "simd": 1},
     "b1.c2": {"pe": 1, "simd": 8}, "b1.sc": {"pe": 2, "simd": 1, "multiply": True},
     "b1.a2": {"lanes": 1}, "gap": {"lanes": 8}, "fc": {"pe": 1, "simd": 2, "multiply": True}},
    # time-serial convolutions and logits (planes), mixed with bit-parallel ones
    {"stem.act": {"pe": 2, "simd": 3, "planes": 1}, "b0.a1": {"pe": 4, "simd": 4, "planes": 2},
     "b0.c2": {"pe": 4, "simd": 2}, "b0.a2": {"lanes": 2}, "b1.a1": {"pe": 4, "simd": 2,
                                                                      "planes": 1},
     "b1.c2": {"pe": 8, "simd": 8, "planes": 1}, "b1.sc": {"pe": 8, "simd": 4, "planes": 2},
     "b1.a2": {"lanes": 4}, "gap": {"lanes": 2}, "fc": {"pe": 3, "simd": 8, "planes": 1}},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny_resnet"
    g = tiny_resnet(path)
    x = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    return path, g, x


@pytest.mark.parametrize("k", range(len(TINY_FOLDINGS)))
def test_tiny_resnet_bit_exact(tiny, k):
    """Identity and projection residual blocks, broadcasts, skip FIFOs, lane adapters, gap:
    random idle cycles and backpressure, logits and class == python_ref."""
    path, g, x = tiny
    top = build_network(path, parallelism=TINY_FOLDINGS[k])
    ref = snn.run(g, x)
    assert len(set(ref.logits[:, 0])) > 1  # the images give different logits
    logits, cls = simulate(top, x, idle=0.2, backpressure=0.3, seed=k, max_cycles=200_000)
    assert (logits == ref.logits).all()
    assert (cls == ref.classes).all()


@pytest.mark.parametrize("k", [3])  # the time-serial folding; one, for CI's time
def test_tiny_resnet_mixed_K_and_shifted_terms_bit_exact(tmp_path, k):
    """A per-layer K (``b1.a1`` at K = 3 between K = 4 layers) and both conv terms of the
    projection add shifted left, as the converter aligns terms whose scales lie apart
    (``python_ref.convert.ALIGN_BITS``): the add engine's main shift and the projection's skip
    shift, logits and class == python_ref (the shifts change no cycle: the cycles of this
    folding are checked by test_tiny_resnet_cycles_per_image)."""
    g = tiny_resnet(tmp_path / "t")
    node = g.index()
    node["b1.a1"]["unit"] = "r3"
    g.units["r3"] = {"kind": "relu", "K": 3}
    node["b1.add"]["lshift"] = [2, 1]
    node["b1.a2"]["rshift"] = [10]
    path = tmp_path / "mixed"
    ir.save(g, path)
    x = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    top = build_network(path, parallelism=TINY_FOLDINGS[k])
    add = next(lay for lay in top.plan.layers if lay.name == "b1.a2")
    assert (add.main_shift, add.skip_shift) == (2, 1)
    ref = snn.run(ir.load(path), x)
    assert len(set(ref.logits[:, 0])) > 1
    logits, cls = simulate(top, x, idle=0.2, backpressure=0.3, seed=k, max_cycles=200_000)
    assert (logits == ref.logits).all()
    assert (cls == ref.classes).all()


@pytest.mark.parametrize("k", [1, 3])
def test_tiny_resnet_cycles_per_image(tiny, k):
    path, _, x = tiny
    top = build_network(path, parallelism=TINY_FOLDINGS[k])
    outs = result_cycles(top, x, max_cycles=400_000)
    assert outs[2] - outs[1] == top.cycles_per_image


def test_ir_roundtrip_of_tiny(tiny):
    path, g, _ = tiny
    assert ir.load(path).name == "tiny_resnet"


def test_network_stays_aligned_after_a_broken_image(digits):
    """A short image (``last`` after 20 of 64 bytes) is zero-filled by the input framer: one result
    for it, equal to python_ref on the zero-filled image, and the next images come out right."""
    ctx0, x = digits
    top = build_network("digits")
    images = x[:3]
    flat = [np.asarray(img).ravel() for img in images]
    beats = [{"data": int(v), "first": int(k == 0), "last": int(k == 19)}
             for k, v in enumerate(flat[0][:20])]
    beats += pixel_beats(images[1:])
    padded = flat[0].copy()
    padded[20:] = 0
    ref = snn.run(ctx0.graph, np.stack([padded.reshape(images[0].shape), *images[1:]]))
    got, errors = [], {}

    async def producer(ctx):
        await stream_put_many(ctx, top.pixels, beats, rng=random.Random(1), idle=0.1)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, top.result, 3, rng=random.Random(2),
                                         backpressure=0.2))
        errors["n"] = ctx.get(top.frame_errors)

    run_simulation(top, producer, consumer, max_cycles=400_000)
    assert [[int(v) for v in r.logits] for r in got] == ref.logits.tolist()
    assert [int(r.cls) for r in got] == ref.classes.tolist()
    assert errors["n"] == 1
