"""Spike-gated pair adders, generic or on the ECP5 carry chain with the gate inside the LUT4.

A first adder-tree level adds two spike-gated weights, ``(za ? a : 0) + (zb ? b : 0)``. Written as
plain Amaranth, Yosys maps each gate bit to a LUT4 of its own and the sum to a ``CCU2C`` carry
chain whose LUT4s compute only ``x ^ y``. The ECP5 carry cell's LUT4 has a free input, though:
with ``C = za`` it computes ``(a & za) ^ t``, so the gate of ``a`` costs nothing.
:func:`gated_pair_sum` instantiates that chain in its ``ecp5`` form; the other operand ``t`` comes
in gated already (the :class:`~amos_hw.engines.dense.DenseEngine` gates it with a flip-flop's
synchronous reset). The LUT's truth table is :data:`CCU2C_GATED_INIT`.

ECP5 ``CCU2C`` (Lattice FPGA Libraries Reference; Yosys ``ecp5/ccu2c_sim.vh``): per half,
``S = LUT4(A, B, C, D) ^ CIN`` and ``COUT = LUT4 ? CIN : LUT2(A, B)``, the LUT2 being the LUT4's
``INIT[3:0]``. For a sum the LUT4 must be the propagate ``p = x ^ y`` and the LUT2 a generate that
matters only when ``p = 0``, where ``x = y``: ``g = y`` is right. With ``A = a``, ``B = t``,
``C = za``, ``D = 1``: ``p = (A & C) ^ B`` and ``g = B``.
"""
from __future__ import annotations

from amaranth.hdl import Const, Instance, Mux, Signal, signed

__all__ = ["CARRY_FORMS", "CCU2C_GATED_INIT", "ccu2c_gated_init", "default_form",
           "gated_pair_sum"]

#: the forms :func:`gated_pair_sum` builds
CARRY_FORMS = ("generic", "ecp5")


def default_form(family: str | None) -> str:
    """The carry form for an FPGA family: ``ecp5`` on an ECP5, ``generic`` elsewhere (and for
    no target at all)."""
    return "ecp5" if family == "ecp5" else "generic"


def ccu2c_gated_init() -> int:
    """The 16-bit LUT4 ``INIT`` of one gated-add half: bit ``k`` is the LUT's value at
    ``A = k[0], B = k[1], C = k[2], D = k[3]``; ``D = 1``: ``(A & C) ^ B``; ``D = 0``: ``B``
    (only ``INIT[3:0]``, the generate LUT2, is used there)."""
    init = 0
    for k in range(16):
        a, b, c, d = (k >> 0) & 1, (k >> 1) & 1, (k >> 2) & 1, (k >> 3) & 1
        init |= (((a & c) ^ b) if d else b) << k
    return init


#: ``0x6CCC``
CCU2C_GATED_INIT = ccu2c_gated_init()


def gated_pair_sum(m, za, a, t, *, form: str = "generic", name: str = "gp"):
    """``(za ? a : 0) + t`` for signed ``a``, ``t`` and one-bit ``za``, as a signed value one bit
    wider than the wider operand. ``form="ecp5"`` builds it from ``CCU2C``
    cells with ``a``'s gate inside the carry cells' LUT4s (needs an ECP5 target, or a simulation
    model of ``CCU2C``)."""
    if form not in CARRY_FORMS:
        raise ValueError(f"carry form must be one of {', '.join(CARRY_FORMS)}, not {form!r}")
    if form == "generic":
        return Mux(za, a, 0) + t
    n = max(len(a), len(t)) + 1
    n2 = n + (n & 1)
    tx = Signal(signed(n2), name=f"{name}_t")
    m.d.comb += tx.eq(t)
    ax = Signal(signed(n2), name=f"{name}_a")
    m.d.comb += ax.eq(a)
    s = Signal(n2, name=f"{name}_s")
    cin = Signal(name=f"{name}_c0")  # the chain's carry in: 0 (nextpnr ties it off)
    for j in range(n2 // 2):
        co = Signal(name=f"{name}_c{j + 1}")
        m.submodules[f"{name}_cc{j}"] = Instance(
            "CCU2C",
            p_INIT0=Const(CCU2C_GATED_INIT, 16), p_INIT1=Const(CCU2C_GATED_INIT, 16),
            p_INJECT1_0="NO", p_INJECT1_1="NO",
            i_CIN=cin,
            i_A0=ax[2 * j], i_B0=tx[2 * j], i_C0=za, i_D0=1,
            i_A1=ax[2 * j + 1], i_B1=tx[2 * j + 1], i_C1=za, i_D1=1,
            o_S0=s[2 * j], o_S1=s[2 * j + 1], o_COUT=co)
        cin = co
    out = Signal(signed(n), name=f"{name}_sum")
    m.d.comb += out.eq(s[:n].as_signed())
    return out
