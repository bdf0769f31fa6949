# amaranth: UnusedElaboratable=no
"""amos_hw.lib.hostlink: the host link's gateware in the Amaranth simulator, with garbage,
corrupted and truncated frames and a host that goes away (the protocol's Python side, which it
is checked against, is tested on its own in tests/test_hostproto.py).

The linter pragma above: the parameter checks construct links that raise in their constructor
and are never elaborated.

The network here is a small stand-in with the interface of ``amos_hw.top.NetworkTop`` (its
``model()`` below is independent of the host link), so the link is tested on its own.
"""
import random

import numpy as np
import pytest
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from amos_hw.lib import hostproto as hp
from amos_hw.lib.hostlink import HostLink, crc8_update, pixel_layout, result_layout
from amos_hw.lib.sim import run_simulation


class StandInNetwork(wiring.Component):
    """Tests only: ``logits[c] = sum of the pixels at indices k with k % classes == c, - 300``.

    Accepts a pixel on three cycles out of four, gives the result ``delay`` cycles after the last
    pixel and holds it until taken. With ``spikes`` it has spike counters
    (``spike_layers``) and its result beat carries ``spikes = 70000 + the pixels' sum``.
    """

    def __init__(self, input_shape=(4, 4, 1), num_classes=10, logit_width=12, delay=7,
                 spikes=False):
        self.spike_layers = ("stand-in",) if spikes else ()
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.logit_width = logit_width
        self.delay = delay
        n = input_shape[0] * input_shape[1] * input_shape[2]
        self.cycles_per_image = n * 4 // 3 + delay
        self.latency_cycles = self.cycles_per_image
        self.pixels_seen = 0
        super().__init__({
            "pixels": In(stream.Signature(pixel_layout())),
            "result": Out(stream.Signature(result_layout(logit_width, num_classes, spikes))),
        })

    @staticmethod
    def model(image, num_classes=10):
        flat = [int(v) for v in image]
        logits = [sum(flat[c::num_classes]) - 300 for c in range(num_classes)]
        return logits.index(max(logits)), logits

    def elaborate(self, platform):
        m = Module()
        nc = self.num_classes
        acc = [Signal(range(-300, 256 * 64), init=-300, name=f"acc{c}") for c in range(nc)]
        k = Signal(range(nc))
        phase = Signal(2)
        wait = Signal(range(self.delay + 1))
        m.d.sync += phase.eq(phase + 1)
        with m.FSM():
            with m.State("IN"):
                m.d.comb += self.pixels.ready.eq(phase != 3)
                with m.If(self.pixels.valid & self.pixels.ready):
                    for c in range(nc):
                        with m.If(k == c):
                            m.d.sync += acc[c].eq(acc[c] + self.pixels.payload.data)
                    m.d.sync += k.eq(0 if nc == 1 else (k + 1) % nc)
                    with m.If(self.pixels.payload.last):
                        m.d.sync += [wait.eq(self.delay), k.eq(0)]
                        m.next = "WAIT"
            with m.State("WAIT"):
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait == 0):
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.result.valid.eq(1)
                best_v, best_i = acc[0], 0
                for c in range(1, nc):
                    gt = acc[c] > best_v
                    best_i = Mux(gt, c, best_i)
                    best_v = Mux(gt, acc[c], best_v)
                m.d.comb += self.result.payload.cls.eq(best_i)
                for c in range(nc):
                    m.d.comb += self.result.payload.logits[c].eq(acc[c])
                if self.spike_layers:
                    m.d.comb += self.result.payload.spikes.eq(70000 + 300 * nc + sum(acc))
                with m.If(self.result.ready):
                    m.d.sync += [a.eq(-300) for a in acc]
                    m.next = "IN"
        return m


class LinkBench(wiring.Component):
    """HostLink + stand-in network, with the link's byte streams as ports."""

    def __init__(self, net, frame_timeout=200, registered_class=False):
        self.net = net
        self.registered_class = registered_class
        self.info = hp.Info(net.input_shape, net.num_classes, (net.logit_width + 7) // 8,
                            clk_hz=1_000_000, cycles_per_image=net.cycles_per_image,
                            latency_cycles=net.latency_cycles, baud=250_000, name="standin",
                            spike_counts=bool(getattr(net, "spike_layers", ())))
        self.frame_timeout = frame_timeout
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "pixel_beats": Out(16), "activity": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.net = net = self.net
        m.submodules.link = link = HostLink(self.info, logit_width=net.logit_width,
                                               frame_timeout=self.frame_timeout,
                                               registered_class=self.registered_class,
                                               load_port=hasattr(net, "load"))
        if hasattr(net, "load"):
            wiring.connect(m, link.load, net.load)
        wiring.connect(m, wiring.flipped(self.rx), link.rx)
        wiring.connect(m, link.tx, wiring.flipped(self.tx))
        wiring.connect(m, link.pixels, net.pixels)
        wiring.connect(m, net.result, link.result)
        with m.If(link.pixels.valid & link.pixels.ready):
            m.d.sync += self.pixel_beats.eq(self.pixel_beats + 1)
        m.d.comb += self.activity.eq(link.activity)
        return m


def run_link(script, *, shape=(4, 4, 1), frame_timeout=200, max_cycles=200_000, seed=0,
             registered_class=False, net=None):
    """Drive the link from ``script``: a list of ("send", bytes) / ("gap", cycles) /
    ("expect", count) steps. Bytes go in one every 3 to 7 cycles (a UART's pace); the board's
    output is collected throughout. Returns (bench, decoded frames, raw bytes)."""
    rng = random.Random(seed)
    dut = LinkBench(net if net is not None else StandInNetwork(shape),
                    frame_timeout=frame_timeout, registered_class=registered_class)
    out = bytearray()
    decoder = hp.FrameDecoder()
    frames = []

    async def host(ctx):
        for step, arg in script:
            if step == "send":
                for byte in arg:
                    ctx.set(dut.rx.payload, byte)
                    ctx.set(dut.rx.valid, 1)
                    await ctx.tick()
                    ctx.set(dut.rx.valid, 0)
                    await ctx.tick().repeat(rng.randint(2, 6))
            elif step == "gap":
                await ctx.tick().repeat(arg)
            elif step == "expect":
                while len(frames) < arg:
                    await ctx.tick()
        await ctx.tick().repeat(50)

    async def sink(ctx):
        # the UART transmitter's pace: ready one cycle in several
        while True:
            for _ in range(rng.randint(1, 4)):
                await ctx.tick()
            ctx.set(dut.tx.ready, 1)
            _, _, valid, byte = await ctx.tick().sample(dut.tx.valid, dut.tx.payload)
            ctx.set(dut.tx.ready, 0)
            if valid:
                out.append(byte)
                frames.extend(decoder.feed(bytes([byte])))

    run_simulation(dut, host, background=[sink], max_cycles=max_cycles)
    return dut, frames, bytes(out)


def classify_frame(image):
    return hp.encode_frame(hp.CMD_CLASSIFY, bytes(image))


def expect_result(frame, image, num_classes=10, logit_bytes=2):
    assert frame.cmd == hp.RSP_RESULT
    res = hp.Result.from_payload(frame.payload, num_classes, logit_bytes)
    cls, logits = StandInNetwork.model(image, num_classes)
    assert res.cls == cls
    assert list(res.logits) == logits
    assert res.cycles > 0
    return res


# --- gateware ------------------------------------------------------------------------------

IMAGE = [(i * 37 + 11) % 256 for i in range(16)]
IMAGE2 = [(i * 91 + 200) % 256 for i in range(16)]


@pytest.mark.parametrize("registered_class", [False, True])
def test_info_and_classify(registered_class):
    """Also with ``registered_class`` (the shared engine's link: the result is loaded
    straight into the frame when the transmitter is idle, the network's class is used)."""
    dut, frames, _ = run_link([
        ("send", hp.encode_frame(hp.CMD_INFO)), ("expect", 1),
        ("send", classify_frame(IMAGE)), ("expect", 2),
        ("send", hp.encode_frame(hp.CMD_INFO)),
        ("send", classify_frame(IMAGE2)), ("expect", 4),
    ], registered_class=registered_class)
    assert frames[0].cmd == hp.RSP_INFO
    assert hp.Info.from_payload(frames[0].payload) == dut.info
    expect_result(frames[1], IMAGE)
    assert frames[2].cmd == hp.RSP_INFO
    res = expect_result(frames[3], IMAGE2)
    # 16 pixels at 3 of 4 cycles, the stand-in's delay, the collector: a fixed small count
    assert 16 <= res.cycles <= 40


def test_result_with_spikes():
    """A network with spike counters: INFO says so, every RESULT ends with the image's
    spikes."""
    net = StandInNetwork(spikes=True)
    dut, frames, _ = run_link([
        ("send", hp.encode_frame(hp.CMD_INFO)), ("expect", 1),
        ("send", classify_frame(IMAGE)), ("expect", 2),
        ("send", classify_frame(IMAGE2)), ("expect", 3),
    ], net=net)
    info = hp.Info.from_payload(frames[0].payload)
    assert info.spike_counts and info == dut.info
    for frame, image in zip(frames[1:], (IMAGE, IMAGE2), strict=True):
        res = hp.Result.from_payload(frame.payload, 10, 2, spikes=True)
        cls, logits = StandInNetwork.model(image)
        assert (res.cls, list(res.logits)) == (cls, logits)
        assert res.spikes == 70000 + sum(image)


def test_spikes_need_the_argmax_link():
    info = hp.Info((4, 4, 1), 10, 2, 1_000_000, 30, 30, 250_000, "x", spike_counts=True)
    with pytest.raises(ValueError, match="^info.spike_counts: a network with a registered "
                                         "class \\(the shared engine\\) has no spike counters$"):
        HostLink(info, logit_width=12, frame_timeout=10, registered_class=True)


def test_garbage_before_and_between_frames():
    rng = random.Random(5)
    garbage = bytes(rng.randrange(256) for _ in range(60)) + b"\xa5\xa5\x5a\x77\xa5"
    _, frames, _ = run_link([
        ("send", garbage), ("gap", 300), ("send", classify_frame(IMAGE)), ("expect", 1),
        ("send", garbage), ("gap", 300), ("send", classify_frame(IMAGE2)), ("expect", 2),
    ])
    assert len(frames) == 2
    expect_result(frames[0], IMAGE)
    expect_result(frames[1], IMAGE2)


def test_truncated_frame_is_dropped():
    frame = classify_frame(IMAGE)
    dut, frames, _ = run_link([
        ("send", frame[:11]), ("gap", 400),            # host stalls mid-image past the timeout
        ("send", classify_frame(IMAGE2)), ("expect", 1),
        ("gap", 500),
    ])
    assert len(frames) == 1   # nothing for the truncated frame
    expect_result(frames[0], IMAGE2)


def test_truncated_header_is_dropped():
    _, frames, _ = run_link([
        ("send", b"\xa5\x5a\x02\x10"), ("gap", 400),
        ("send", classify_frame(IMAGE)), ("expect", 1),
    ])
    assert len(frames) == 1
    expect_result(frames[0], IMAGE)


def test_corrupted_frame_nak_and_network_untouched():
    bad = bytearray(classify_frame(IMAGE))
    bad[9] ^= 0x40
    dut, frames, _ = run_link([
        ("send", bytes(bad)), ("expect", 1),
        ("send", classify_frame(IMAGE)), ("expect", 2),
    ])
    assert frames[0] == hp.Frame(hp.RSP_NAK, bytes([hp.NAK_CRC]))
    expect_result(frames[1], IMAGE)   # the stand-in accumulates: a half-fed image would show


def test_wrong_length_nak():
    _, frames, _ = run_link([
        ("send", hp.encode_frame(hp.CMD_CLASSIFY, bytes(15))), ("expect", 1), ("gap", 400),
        ("send", hp.encode_frame(hp.CMD_INFO, b"\x00")), ("expect", 2), ("gap", 400),
        ("send", classify_frame(IMAGE)), ("expect", 3),
    ])
    assert frames[0] == hp.Frame(hp.RSP_NAK, bytes([hp.NAK_LENGTH]))
    assert frames[1] == hp.Frame(hp.RSP_NAK, bytes([hp.NAK_LENGTH]))
    expect_result(frames[2], IMAGE)


def test_unknown_command_is_ignored():
    _, frames, _ = run_link([
        ("send", hp.encode_frame(0x33, b"zz")), ("gap", 400),
        ("send", hp.encode_frame(hp.CMD_INFO)), ("expect", 1),
    ])
    assert [f.cmd for f in frames] == [hp.RSP_INFO]


def test_busy_while_image_in_flight():
    # the second image arrives back to back, before the first result has been taken
    _, frames, _ = run_link([
        ("send", classify_frame(IMAGE) + classify_frame(IMAGE2)), ("expect", 2),
        ("gap", 300), ("send", classify_frame(IMAGE2)), ("expect", 3),
    ])
    cmds = sorted(f.cmd for f in frames[:2])
    assert cmds == [hp.RSP_RESULT, hp.RSP_NAK]
    nak = next(f for f in frames[:2] if f.cmd == hp.RSP_NAK)
    assert nak.payload == bytes([hp.NAK_BUSY])
    expect_result(next(f for f in frames[:2] if f.cmd == hp.RSP_RESULT), IMAGE)
    expect_result(frames[2], IMAGE2)


def test_host_goes_away_and_a_new_one_comes():
    # the first host sends an image and leaves: its answer goes out to nobody (the sink still
    # drains the line like a UART does); then it half-sends another and vanishes; a new host
    # connects and is served normally
    _, frames, raw = run_link([
        ("send", classify_frame(IMAGE)), ("gap", 600),
        ("send", classify_frame(IMAGE2)[:7]), ("gap", 600),
        ("send", hp.encode_frame(hp.CMD_INFO)), ("expect", 2),
        ("send", classify_frame(IMAGE2)), ("expect", 3),
    ])
    expect_result(frames[0], IMAGE)
    assert frames[1].cmd == hp.RSP_INFO
    expect_result(frames[2], IMAGE2)


def test_activity_pulses():
    pulses = []

    dut = LinkBench(StandInNetwork())

    async def host(ctx):
        for byte in hp.encode_frame(hp.CMD_CLASSIFY, bytes(IMAGE)):
            ctx.set(dut.rx.payload, byte)
            ctx.set(dut.rx.valid, 1)
            await ctx.tick()
            ctx.set(dut.rx.valid, 0)
            await ctx.tick().repeat(3)
        ctx.set(dut.tx.ready, 1)
        for _ in range(400):
            _, _, act = await ctx.tick().sample(dut.activity)
            pulses.append(act)

    run_simulation(dut, host)
    # one pulse when the frame checked (seen at the last byte, before the loop) and one when
    # the result was taken
    assert sum(pulses) == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"logit_width": 0, "frame_timeout": 10}, "logit_width must be a positive integer of at most "
                                              "64, not 0"),
    ({"logit_width": 12, "frame_timeout": 0}, "frame_timeout must be a positive integer, not 0"),
    ({"logit_width": 20, "frame_timeout": 10}, "info.logit_bytes must be 3 for logit_width 20, "
                                               "not 2"),
])
def test_hostlink_parameter_checks(kwargs, message):
    info = hp.Info((4, 4, 1), 10, 2, 1_000_000, 30, 30, 250_000, "x")
    with pytest.raises(ValueError, match=f"^{message}$"):
        HostLink(info, **kwargs)


def test_hostlink_info_type_check():
    with pytest.raises(TypeError, match="^info must be an Info, not 3$"):
        HostLink(3, logit_width=8, frame_timeout=10)


class ConstNetwork(StandInNetwork):
    """Tests only: takes an image and answers fixed logits (and a wrong ``cls`` the link must
    not use)."""

    def __init__(self, logits):
        self.fixed = logits
        super().__init__(num_classes=len(logits))

    def elaborate(self, platform):
        m = Module()
        have = Signal()
        m.d.comb += [self.pixels.ready.eq(~have), self.result.valid.eq(have),
                     self.result.payload.cls.eq(15)]
        for i, v in enumerate(self.fixed):
            m.d.comb += self.result.payload.logits[i].eq(v)
        with m.If(self.pixels.valid & self.pixels.ready & self.pixels.payload.last):
            m.d.sync += have.eq(1)
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += have.eq(0)
        return m


@pytest.mark.parametrize("logits", [
    [-5, 7, 7, -100, 0, 3, 7, -2048, 2047, 2047],      # ties: lowest index
    [-9, -8, -7, -6, -5, -4, -3, -2, -1, -2048],       # all negative, max late
    [0] * 10,
    [-2048, -2048, -2048, 5],
])
def test_link_argmax(logits):
    dut = LinkBench(ConstNetwork(logits))
    decoder = hp.FrameDecoder()
    frames = []

    async def tb(ctx):
        for byte in classify_frame(IMAGE):
            ctx.set(dut.rx.payload, byte)
            ctx.set(dut.rx.valid, 1)
            await ctx.tick()
        ctx.set(dut.rx.valid, 0)
        ctx.set(dut.tx.ready, 1)
        while not frames:
            _, _, valid, byte = await ctx.tick().sample(dut.tx.valid, dut.tx.payload)
            if valid:
                frames.extend(decoder.feed(bytes([byte])))

    run_simulation(dut, tb)
    res = hp.Result.from_payload(frames[0].payload, len(logits), 2)
    assert list(res.logits) == logits
    assert res.cls == logits.index(max(logits))


# --- run-time weights (CMD_LOAD), with the real shared engine -----------------------------------

def test_load_weights_then_classify(tmp_path):
    """CMD_LOAD chunks carry the weight image into a SharedNetwork without initial contents;
    a corrupted chunk is NAKed; after a restart from the first chunk the board classifies
    bit-exactly (python_ref.snn); a network without the weights differs (see test_shared)."""
    from amos_hw.shared import program as P
    from amos_hw.shared.engine import SharedNetwork
    from python_ref import snn
    from tests.test_shared import straddle_net

    g = straddle_net(tmp_path / "s")
    p = P.layout(P.lower(g))
    net = SharedNetwork(p, preload=False)
    image = p.weight_bytes()
    chunks = hp.load_chunks(image, chunk=500)
    assert len(chunks) > 2 and chunks[0][0] == 1 and chunks[1][0] == 0
    x = np.random.default_rng(9).integers(0, 256, (6, 6, 5), dtype=np.uint8)
    bad = bytearray(hp.encode_frame(hp.CMD_LOAD, chunks[1]))
    bad[10] ^= 0xFF
    script = [("send", hp.encode_frame(hp.CMD_LOAD, chunks[0])), ("expect", 1),
              ("send", bytes(bad)), ("expect", 2)]
    for k, c in enumerate(chunks):
        script += [("send", hp.encode_frame(hp.CMD_LOAD, c)), ("expect", 3 + k)]
    script += [("send", classify_frame(x.tobytes())), ("expect", 3 + len(chunks))]

    dut, frames, _ = run_link(script, net=net, frame_timeout=400, registered_class=True,
                              max_cycles=800_000)
    assert frames[0].cmd == hp.RSP_LOADED
    assert int.from_bytes(frames[0].payload, "little") == len(chunks[0]) - 1
    assert (frames[1].cmd, frames[1].payload) == (hp.RSP_NAK, bytes([hp.NAK_CRC]))
    for k in range(len(chunks)):
        assert frames[2 + k].cmd == hp.RSP_LOADED
        assert int.from_bytes(frames[2 + k].payload, "little") == sum(
            len(c) - 1 for c in chunks[:k + 1])
    res = hp.Result.from_payload(frames[-1].payload, 11, (net.logit_width + 7) // 8)
    ref = snn.run(g, x[None])
    assert list(res.logits) == [int(v) for v in ref.logits[0]]
    assert res.cls == int(ref.classes[0])


def test_crc8_update_matches_crc8():
    """The gateware CRC step against the protocol's Python CRC, for every byte from a few
    starting values."""
    crc, byte, out = Signal(8), Signal(8), Signal(8)
    m = Module()
    m.d.comb += out.eq(crc8_update(crc, byte))
    sim = Simulator(m)

    async def tb(ctx):
        for start in (0x00, 0x01, 0x5A, 0xA5, 0xFF):
            for b in range(256):
                ctx.set(crc, start)
                ctx.set(byte, b)
                assert ctx.get(out) == hp.crc8(bytes([b]), start), (start, b)

    sim.add_testbench(tb)
    sim.run()
