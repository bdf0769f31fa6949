"""The shared-engine architecture: one engine runs every layer in turn (the iCE40 UP5K form).

:mod:`~amos_hw.shared.program` lowers a description to instructions, lays out the word memory
and counts cycles exactly; :mod:`~amos_hw.shared.engine` is the hardware
(:class:`~amos_hw.shared.engine.SharedNetwork`, and its figures as functions of the program),
built from :mod:`~amos_hw.shared.table`, :mod:`~amos_hw.shared.walker`,
:mod:`~amos_hw.shared.fetch`, :mod:`~amos_hw.shared.lanes`, :mod:`~amos_hw.shared.epilogue`,
:mod:`~amos_hw.shared.inputs` and :mod:`~amos_hw.shared.memory`. See docs/architecture.md,
"The shared engine".
"""
