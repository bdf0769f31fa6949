"""`make lint`'s Verilator step: emitted designs lint clean, real faults do not."""
import pytest

from amos_hw.backend.lint import DESIGNS, lint_verilog, main, verilator_executable
from amos_hw.backend.verilog import to_verilog

pytestmark = pytest.mark.skipif(verilator_executable() is None,
                                reason="verilator not installed (make venv)")


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_registered_designs_are_clean(name, tmp_path):
    path = tmp_path / f"{name}.v"
    path.write_text(to_verilog(DESIGNS[name](), name))
    clean, output = lint_verilog(path, name)
    assert clean, output


def test_latch_and_blocking_assignment_are_reported(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text(
        "module bad(input wire clk, input wire a, input wire b, output reg y, output reg z);\n"
        "  always @* if (a) y = b;\n"
        "  always @(posedge clk) z = a;\n"
        "endmodule\n"
    )
    clean, output = lint_verilog(bad)
    assert not clean
    assert "%Warning-LATCH" in output and "%Warning-BLKSEQ" in output


def test_cli_exit_status(tmp_path, capsys):
    assert main([]) == 0
    assert main([str(tmp_path / "missing.v")]) == 1
    assert "missing.v: no such file" in capsys.readouterr().out
