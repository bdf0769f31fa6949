"""amos_hw: trained neural networks to AMOS spiking hardware for small FPGAs.

The package holds the hardware side of the project: reusable Amaranth gateware (:mod:`amos_hw.lib`)
and the back end that turns a component into Verilog (:mod:`amos_hw.backend`). The integer
semantics that every block must match live in :mod:`python_ref`.
"""

__version__ = "0.1.0"
