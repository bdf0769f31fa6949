"""Several independent components as one top level, for one Verilog build that tests them all.

Verilator's C++ build dominates the slow test tier (seconds per design), so the RTL tests put
every configuration of a block into one :class:`Bank` and build it once per simulator.
"""
from __future__ import annotations

import re

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

__all__ = ["Bank"]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")


class Bank(wiring.Component):
    """Expose every port ``p`` of every component ``name`` as ``{name}_{p}``.

    Stream ports stay streams (``relu4_i__valid``, ``relu4_i__payload``, ...); plain ports are
    wired straight through. The components do not interact.

    Parameters
    ----------
    components : dict of str to wiring.Component
        Names must be alphanumeric (they become Verilog port prefixes).
    """

    def __init__(self, components: dict):
        if not isinstance(components, dict) or not components:
            raise ValueError("components must be a non-empty dict of name -> Component")
        members = {}
        for name, comp in components.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise ValueError(f"component name must be alphanumeric, not {name!r}")
            if not isinstance(comp, wiring.Component):
                raise TypeError(f"component {name!r} must be a wiring.Component, not {comp!r}")
            for port, member in comp.signature.members.items():
                members[f"{name}_{port}"] = member
        self._components = dict(components)
        super().__init__(members)

    @property
    def components(self) -> dict:
        """The components, by name."""
        return dict(self._components)

    def elaborate(self, platform):
        m = Module()
        for name, comp in self._components.items():
            m.submodules[name] = comp
            for port, member in comp.signature.members.items():
                outer, inner = getattr(self, f"{name}_{port}"), getattr(comp, port)
                if member.is_signature:
                    wiring.connect(m, wiring.flipped(outer), inner)
                elif member.flow == Out:
                    m.d.comb += outer.eq(inner)
                else:
                    m.d.comb += inner.eq(outer)
        return m
