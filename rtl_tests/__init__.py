"""Slow tier: cocotb tests on emitted Verilog, run on Icarus and Verilator (see harness.py)."""
