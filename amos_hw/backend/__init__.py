"""Back ends: Verilog emission (:mod:`amos_hw.backend.verilog`)."""
