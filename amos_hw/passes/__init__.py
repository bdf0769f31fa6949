"""The generator's steps, one module each, run in order by :mod:`amos_hw.flow`.

Each step is a function ``step(ctx) -> dict``: it reads and extends the
:class:`~amos_hw.passes.common.FlowContext` and returns a JSON-serialisable summary that the flow
saves as ``steps/<n>_<step>.json`` (the inspectable intermediate).
"""
