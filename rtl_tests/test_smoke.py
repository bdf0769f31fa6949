"""Slow tier for the smoke block, and self-checks of the harness (it must report failures)."""
import pytest

from amos_hw.lib.smoke import PipelinedCompare
from rtl_tests.harness import RTLTestFailure, run_cocotb


def _run(sim, width, testcase, build_args=(), **params):
    dut = PipelinedCompare(width)
    params = {"width": width, "count": 150, "seed": width, "idle": 0.0, "backpressure": 0.0,
              "latency": dut.latency, **params}
    return run_cocotb(dut, toplevel=f"cmp{width}", test_module="rtl_tests.tb_smoke", sim=sim,
                      testcase=testcase, params=params, build_args=build_args)


@pytest.mark.parametrize("width, idle, backpressure", [(1, 0.3, 0.3), (8, 0.4, 0.5)])
def test_random_traffic(sim, width, idle, backpressure):
    _run(sim, width, "random_traffic", idle=idle, backpressure=backpressure)


def test_latency_and_full_throughput(sim):
    _run(sim, 8, "latency_full_throughput")


def test_harness_reports_a_failing_cocotb_test(sim):
    with pytest.raises(RTLTestFailure, match=r"1 of 1 cocotb test\(s\) failed"):
        _run(sim, 8, "random_traffic", invert=True, count=20)


def test_harness_reports_when_no_test_ran(sim):
    with pytest.raises(RTLTestFailure, match="no cocotb test ran"):
        _run(sim, 8, "no_such_test")


def test_harness_reports_a_module_that_does_not_import(sim):
    with pytest.raises(RTLTestFailure, match=r"rtl_tests\.tb_no_such_module on .*no results"):
        run_cocotb(PipelinedCompare(8), toplevel="cmp8", test_module="rtl_tests.tb_no_such_module",
                   sim=sim)


@pytest.mark.slow
def test_verilator_split_cpp_builds():
    """A design big enough for Verilator to split its C++ (here forced with --output-split) is
    compiled against a precompiled header; the PyPI wheel needs the harness's MAKEFLAGS fix for
    that (about 30 s of C++ on two cores, hence slow)."""
    _run("verilator", 8, "random_traffic", build_args=["--output-split", "200"],
         idle=0.2, backpressure=0.2)
