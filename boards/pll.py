"""The ECP5 PLL (``EHXPLLL``) and the iCE40 PLL (``SB_PLL40_PAD`` / ``SB_PLL40_CORE``): the
design's clock from the board oscillator.

Without a PLL a bitstream runs at the oscillator's frequency (25 MHz on the ULX3S, 12 MHz on the
iCEBreaker) whatever its Fmax; ``--clock-mhz F`` puts a PLL between the oscillator and the
``sync`` domain, at the highest frequency the PLL can make that is not above ``F``; nextpnr times
the design at it.

:func:`ecp5_pll_params` searches the dividers the way Project Trellis's ``ecppll`` does: phase
detector ``fin / CLKI_DIV`` in 3.125..400 MHz, output ``fpfd * CLKFB_DIV``, VCO
``fout * CLKOP_DIV`` in 400..800 MHz; among those, the output closest to ``F`` from below.

:func:`ice40_pll_params` searches them the way Project IceStorm's ``icepll`` does (``SIMPLE``
feedback): phase detector ``fin / (DIVR + 1)`` in 10..133 MHz, VCO ``fpfd * (DIVF + 1)`` in
533..1066 MHz, output ``fvco / 2**DIVQ`` in 16..275 MHz; among those, the output closest to ``F``
from below (``icepll`` takes the closest from either side), the first in ``icepll``'s order on a
tie; ``FILTER_RANGE`` follows from the phase detector frequency as in ``icepll``.
"""
from __future__ import annotations

from fractions import Fraction

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["PllError", "ecp5_pll_params", "Ecp5Pll", "ice40_pll_params", "Ice40Pll"]

PFD_MHZ = (3.125, 400.0)
VCO_MHZ = (400.0, 800.0)
OUT_MHZ = (3.125, 400.0)

ICE40_IN_MHZ = (10.0, 133.0)
ICE40_PFD_MHZ = (10.0, 133.0)
ICE40_VCO_MHZ = (533.0, 1066.0)
ICE40_OUT_MHZ = (16.0, 275.0)
#: ``(device, package)`` -> the pins that are a PLL's own pad (``SB_PLL40_PAD`` only there).
ICE40_PLL_PADS = {("iCE40UP5K", "SG48"): {"35"}}


class PllError(ValueError):
    """A clock the PLL (ECP5 or iCE40) cannot make."""


def ecp5_pll_params(fin_mhz: float, fout_mhz: float) -> dict:
    """Dividers for ``fin_mhz`` -> at most ``fout_mhz``; ``fout`` is the exact result (MHz).

    Raises :class:`PllError` naming the range when no divider set reaches ``fout_mhz`` or below
    within the PLL's limits."""
    if not OUT_MHZ[0] <= fout_mhz <= OUT_MHZ[1]:
        raise PllError(f"the ECP5 PLL makes {OUT_MHZ[0]}..{OUT_MHZ[1]:g} MHz, not {fout_mhz:g}")
    fin = Fraction(fin_mhz).limit_denominator(1000)
    best = None
    for ref in range(1, 129):
        pfd = fin / ref
        if not PFD_MHZ[0] <= pfd <= PFD_MHZ[1]:
            continue
        for fb in range(1, 81):
            fout = pfd * fb
            if fout > fout_mhz or fout < OUT_MHZ[0]:
                continue
            lo = max(1, -(-VCO_MHZ[0] // fout))  # ceil
            hi = min(128, VCO_MHZ[1] // fout)
            if lo > hi:
                continue
            div = min(range(int(lo), int(hi) + 1), key=lambda d: abs(fout * d - 600))
            vco = fout * div
            key = (fout, -abs(vco - 600))  # closest from below, then a mid-range VCO
            if best is None or key > best[0]:
                best = (key, dict(CLKI_DIV=ref, CLKFB_DIV=fb, CLKOP_DIV=div,
                                  CLKOP_CPHASE=(div - 1) // 2, fout=float(fout),
                                  vco=float(vco)))
    if best is None:
        raise PllError(f"no ECP5 PLL setting makes {fout_mhz:g} MHz or just below from "
                       f"{fin_mhz:g} MHz")
    return best[1]


class _Pll(Elaboratable):
    """What both PLLs share: the dividers for ``fin_mhz -> fout_mhz`` (``params``, from the
    family's search), the made clock ``fout_hz`` and the domain to drive."""

    _search = None  # the family's divider search

    def __init__(self, fin_mhz: float, fout_mhz: float, domain: ClockDomain):
        self.params = type(self)._search(fin_mhz, fout_mhz)
        self.fin_mhz = fin_mhz
        self.fout_hz = round(self.params["fout"] * 1e6)
        self.domain = domain


class Ecp5Pll(_Pll):
    """Drive a clock domain (defined by the parent) from an ``EHXPLLL`` fed by the board's
    default clock.

    The design is held in reset until the PLL locks, through the ECP5's global set/reset:
    ``LOCK`` synchronised to the PLL clock by two flip-flops drives an ``SGSR``, as Amaranth's
    own ECP5 ``sync`` domain does with its reset. So the domain must be reset-less: a fabric
    reset (a ``ResetSynchronizer`` on the domain) reaches every flip-flop of the design over
    general routing, 48,000 of them in ResNet8 on the 85F, and nextpnr never finished routing
    such a build (the PLL builds of sessions 2 to 5). nextpnr derives the timing constraint of
    the PLL's output from the oscillator pin's.

    Parameters
    ----------
    fin_mhz, fout_mhz : float
        Oscillator frequency and the requested clock (the PLL makes the nearest at or below).
    domain : amaranth.hdl.ClockDomain
        The domain to drive (``sync`` in :class:`boards.top.BoardTop`), reset-less.
    """

    _search = staticmethod(ecp5_pll_params)

    def __init__(self, fin_mhz: float, fout_mhz: float, domain: ClockDomain):
        if domain.rst is not None:
            raise ValueError(f"the ECP5 PLL resets its domain through the global set/reset: "
                             f"domain {domain.name!r} must be reset-less")
        super().__init__(fin_mhz, fout_mhz, domain)

    def elaborate(self, platform):
        m = Module()
        clk_pin = platform.request(platform.default_clk, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_pin)
        cd = self.domain
        locked = Signal()
        p = self.params
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.fin_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{p['fout']:.6f}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
            p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=p["CLKFB_DIV"],
            i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, o_CLKOP=cd.clk, i_CLKFB=cd.clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked,
        )
        # LOCK into the PLL clock's domain, then the global set/reset (active low); the two
        # flip-flops are outside the GSR and start at 0 (PUR), so the design waits for the lock
        gsr0, gsr1 = Signal(), Signal()
        m.submodules += [
            Instance("FD1S3AX", p_GSR="DISABLED", i_CK=cd.clk, i_D=locked, o_Q=gsr0),
            Instance("FD1S3AX", p_GSR="DISABLED", i_CK=cd.clk, i_D=gsr0, o_Q=gsr1),
            Instance("SGSR", i_CLK=cd.clk, i_GSR=gsr1),
        ]
        # no constraint on cd.clk here: its name does not survive synthesis, and nextpnr derives
        # the output's constraint from the oscillator pin's and the dividers ("Derived frequency
        # constraint of ... MHz"), which the build log shows
        return m


def ice40_filter_range(pfd_mhz: float) -> int:
    """The loop filter setting for a phase detector frequency, as ``icepll`` computes it."""
    for limit, value in ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5)):
        if pfd_mhz < limit:
            return value
    return 6


def ice40_pll_params(fin_mhz: float, fout_mhz: float) -> dict:
    """``SB_PLL40`` dividers (``SIMPLE`` feedback) for ``fin_mhz`` -> at most ``fout_mhz``;
    ``fout`` is the exact result and ``vco`` the VCO frequency (MHz).

    Raises :class:`PllError` naming the range when the input or the request lies outside the
    PLL's, or no divider set reaches ``fout_mhz`` or below within its limits."""
    if not ICE40_IN_MHZ[0] <= fin_mhz <= ICE40_IN_MHZ[1]:
        raise PllError(f"the iCE40 PLL takes {ICE40_IN_MHZ[0]:g}..{ICE40_IN_MHZ[1]:g} MHz in, "
                       f"not {fin_mhz:g}")
    if not ICE40_OUT_MHZ[0] <= fout_mhz <= ICE40_OUT_MHZ[1]:
        raise PllError(f"the iCE40 PLL makes {ICE40_OUT_MHZ[0]:g}..{ICE40_OUT_MHZ[1]:g} MHz, "
                       f"not {fout_mhz:g}")
    fin = Fraction(fin_mhz).limit_denominator(1000)
    want = Fraction(fout_mhz).limit_denominator(1000)
    best = None
    for divr in range(16):
        pfd = fin / (divr + 1)
        if not ICE40_PFD_MHZ[0] <= pfd <= ICE40_PFD_MHZ[1]:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not ICE40_VCO_MHZ[0] <= vco <= ICE40_VCO_MHZ[1]:
                continue
            for divq in range(1, 7):
                fout = vco / 2 ** divq
                if fout > want or fout < ICE40_OUT_MHZ[0]:
                    continue
                if best is None or fout > best["fout"]:  # the first of equals, as icepll
                    best = dict(DIVR=divr, DIVF=divf, DIVQ=divq,
                                FILTER_RANGE=ice40_filter_range(pfd), fout=fout, vco=vco)
    if best is None:
        raise PllError(f"no iCE40 PLL setting makes {fout_mhz:g} MHz or just below from "
                       f"{fin_mhz:g} MHz")
    return best | {"fout": float(best["fout"]), "vco": float(best["vco"])}


class Ice40Pll(_Pll):
    """Drive a clock domain (defined by the parent) from an iCE40 PLL fed by the board's default
    clock.

    Where the oscillator's pin is a PLL's own pad (:data:`ICE40_PLL_PADS`: pin 35 of the UP5K
    SG48, the iCEBreaker's 12 MHz) the PLL must be ``SB_PLL40_PAD`` on the raw pin (nextpnr
    refuses an ``SB_IO`` there); elsewhere (the HX8K breakout's J3 is no PLL pad, and nextpnr
    refuses ``SB_PLL40_PAD`` on it) ``SB_PLL40_CORE`` is fed from the pin through an input
    buffer. ``SIMPLE`` feedback; the output leaves on ``PLLOUTGLOBAL``, a global clock network.
    The domain's reset is held until the PLL locks (and released synchronously). nextpnr derives
    the timing constraint of the PLL's output from the oscillator pin's.

    Parameters
    ----------
    fin_mhz, fout_mhz : float
        Oscillator frequency and the requested clock (the PLL makes the nearest at or below).
    domain : amaranth.hdl.ClockDomain
        The domain to drive (``sync`` in :class:`boards.top.BoardTop`).
    """

    _search = staticmethod(ice40_pll_params)

    def __init__(self, fin_mhz: float, fout_mhz: float, domain: ClockDomain):
        super().__init__(fin_mhz, fout_mhz, domain)
        self.primitive = None  # "SB_PLL40_PAD" or "SB_PLL40_CORE", once elaborated

    def elaborate(self, platform):
        m = Module()
        res = platform.lookup(platform.default_clk, 0)
        pins = set(res.ios[0].names)
        on_pad = bool(pins & ICE40_PLL_PADS.get((platform.device, platform.package), set()))
        clk_pin = platform.request(platform.default_clk, dir="-")
        if on_pad:
            self.primitive = "SB_PLL40_PAD"
            ref = {"io_PACKAGEPIN": clk_pin.io}
        else:
            self.primitive = "SB_PLL40_CORE"
            m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_pin)
            ref = {"i_REFERENCECLK": clk_buf.i}
        cd = self.domain
        locked = Signal()
        p = self.params
        m.submodules.pll = Instance(
            self.primitive,
            p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
            p_DIVR=p["DIVR"], p_DIVF=p["DIVF"], p_DIVQ=p["DIVQ"],
            p_FILTER_RANGE=p["FILTER_RANGE"],
            i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=cd.clk, o_LOCK=locked, **ref,
        )
        m.submodules.rst_sync = ResetSynchronizer(~locked, domain=cd.name)
        # as on the ECP5, no constraint on cd.clk: nextpnr derives it from the oscillator pin's
        # ("Derived frequency constraint of ... MHz for net ..." in the build log)
        return m
