"""Reusable gateware and its test helpers.

Every block here is an :class:`amaranth.lib.wiring.Component` that talks to its neighbours
through :mod:`amaranth.lib.stream`. :mod:`amos_hw.lib.sim` holds the Amaranth-simulator stream
helpers (``stream_put`` / ``stream_get`` with random idle cycles and backpressure) shared by the
fast test tier and by every block's tests.
"""
