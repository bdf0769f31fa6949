"""The native UART bench of ``host classify --sim`` (boards.native_uart) on bad input: a frames
file cut short, a frame the board never answers (the watchdog), a top it cannot drive; and the
answers it returns, decoded here, against the integer reference (the iCEBreaker's digits top,
whose build test_board_host.py shares)."""
import os

import pytest

from amos_hw.backend.verilog import to_verilog
from amos_hw.lib import hostproto as hp
from boards import native_uart as nu
from boards import sim
from python_ref import ir, snn
from python_ref.data import load_digits


@pytest.fixture(scope="module")
def digits_bench(tmp_path_factory):
    if "verilator" not in os.environ.get("SIM", "verilator"):
        pytest.skip("SIM does not name verilator; the UART bench is Verilator's")
    top = sim.board_top("icebreaker", "digits")
    root = tmp_path_factory.mktemp("uart")
    return top, nu.build_uart_bench(to_verilog(top, sim.TOPLEVEL), toplevel=sim.TOPLEVEL,
                                    root=root), root


def test_answers_are_the_boards(digits_bench):
    """INFO, then two images: the answers decode to the top's INFO and to python_ref's
    classes and logits; a result's round trip covers the image's bytes on the line."""
    top, bench, root = digits_bench
    x, _ = load_digits("test")
    frames = [hp.encode_frame(hp.CMD_INFO)] + [hp.encode_frame(hp.CMD_CLASSIFY, x[k].tobytes())
                                               for k in (3, 4)]
    answers = nu.run_frames(bench, frames, top.divisor, root / "run")
    info = hp.FrameDecoder().feed(answers[0][0])[0]
    assert (info.cmd, info.payload) == (hp.RSP_INFO, top.info.to_payload())
    ref = snn.run(ir.load("python_ref/zoo/digits.json"), x[[3, 4]])
    for k, (raw, cycles) in enumerate(answers[1:]):
        (f,) = hp.FrameDecoder().feed(raw)
        res = hp.Result.from_payload(f.payload, 10, top.info.logit_bytes)
        assert (res.cls, list(res.logits)) == (ref.classes[k], ref.logits[k].tolist())
        assert cycles > 10 * top.divisor * (64 + 6)  # the frame's bytes, 10 bits each


def test_a_frame_without_an_answer_fires_the_watchdog(digits_bench):
    """An unknown command is dropped silently by the board: no answer comes."""
    top, bench, root = digits_bench
    with pytest.raises(nu.UartBenchError,
                       match=r"watchdog: no answer to frame 1 of 2 within 20000 cycles"):
        nu.run_frames(bench, [hp.encode_frame(hp.CMD_INFO), hp.encode_frame(0x77, b"x")],
                      top.divisor, root / "dog", watchdog=20_000)


def test_a_truncated_frames_file_is_refused(digits_bench, tmp_path):
    top, bench, _ = digits_bench
    src = tmp_path / "frames.bin"
    nu.write_frames(src, [hp.encode_frame(hp.CMD_INFO), bytes(10)], top.divisor)
    src.write_bytes(src.read_bytes()[:-3])
    with pytest.raises(nu.UartBenchError) as e:
        nu.run_file(bench, src, tmp_path / "out.txt")
    assert str(e.value).endswith(f"uart_bench: error: frames file {src} is truncated: frame 1 "
                                 f"announces 10 bytes, 7 are left")
    assert not (tmp_path / "out.txt").exists() or "done" not in (tmp_path / "out.txt").read_text()


def test_a_cut_output_is_refused(tmp_path):
    out = tmp_path / "answers.txt"
    out.write_text("0 10 900 a55a\n")
    with pytest.raises(nu.UartBenchError, match=r"no 'done' line; the bench run was cut short"):
        nu.read_answers(out, 2)
    out.write_text("0 10 900 a55a\ndone 2 1000\n")
    with pytest.raises(nu.UartBenchError, match=r"expected 2 answer lines, the file has 1"):
        nu.read_answers(out, 2)


def test_a_top_without_a_uart_is_refused(tmp_path):
    verilog = "module net(clk, rst, pixels__valid);\nendmodule\n"
    with pytest.raises(nu.UartBenchError, match=r"net has no port\(s\) rx, tx: the UART bench "
                                                r"drives a board top's rx and tx"):
        nu.build_uart_bench(verilog, toplevel="net", root=tmp_path)
    flash = "module b(clk, rst, rx, tx, flash__cs_n);\nendmodule\n"
    with pytest.raises(nu.UartBenchError, match=r"reads its weights from an SPI flash"):
        nu.build_uart_bench(flash, toplevel="b", root=tmp_path)
