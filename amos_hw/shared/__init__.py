"""The shared-engine architecture: one engine runs every layer in turn (the iCE40 UP5K form).

:mod:`~amos_hw.shared.program` lowers a description to instructions, lays out the word memory
and counts cycles exactly; :mod:`~amos_hw.shared.engine` is the hardware. See
docs/architecture.md, "The shared engine".
"""
