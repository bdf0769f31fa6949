"""The shared engine's instruction table and its phase register.

Every per-instruction number the engine needs (shapes, bases, strides, shifts) is a constant
array indexed by the program counter :attr:`InstrTable.pc`; :class:`Control` holds the phase
the engine is in and the two counters several phases share.
"""
from __future__ import annotations

from amaranth.hdl import Array, Const, Signal, signed, unsigned

from amos_hw.shared.arith import uwidth
from amos_hw.shared.program import LANES, Program
from python_ref.quant import signed_width

__all__ = ["InstrTable", "Control", "MAX_SOURCES", "INPUT", "FILL", "START", "RUN", "EPI",
           "NEXT"]

#: Sources an instruction may have (a convolution and a skip input, or two convolutions).
MAX_SOURCES = 2

#: The engine's phases (values of :attr:`Control.state`): take an image (and weight bytes);
#: fill the weight cache for a group; start a position; walk its taps; requantise and write
#: back; step to the next position, group or instruction.
INPUT, FILL, START, RUN, EPI, NEXT = range(6)


class Control:
    """The engine's phase register and the counters several phases share.

    Attributes
    ----------
    state : Signal
        The phase (:data:`INPUT` ... :data:`NEXT`).
    e : Signal
        The step counter of the FILL (weight words) and EPI (lanes) phases.
    wptr : Signal
        The address of the current group's first weight word.
    """

    def __init__(self, p: Program, K: int):
        self.state = Signal(range(6))
        self.e = Signal(range(max(p.cache_depth, 4 + K + 2 * LANES) + 2))
        self.wptr = Signal(range(p.depth + 1))


class InstrTable:
    """The program's instructions as constant tables selected by the program counter.

    Each attribute other than :attr:`pc` is a value: the current instruction's entry.
    :attr:`sources` holds, for each of the :data:`MAX_SOURCES` source positions, a dict of the
    source's entries (zero where an instruction has fewer sources).

    Parameters
    ----------
    p : Program
        A laid-out program.
    """

    def __init__(self, p: Program):
        self.program = p
        ins = p.instrs
        self.pc = Signal(range(max(len(ins), 2)))
        self.groups = self.field([i.groups for i in ins])
        self.taps = self.field([i.taps for i in ins])
        self.bbase = self.field([i.bbase for i in ins])
        self.obase = self.field([i.obase for i in ins])
        self.out_h = self.field([i.out_shape[0] for i in ins])
        self.out_w = self.field([i.out_shape[1] for i in ins])
        #: words of one output position
        self.out_words = self.field([p.words_per_pos(i.out_shape[2]) for i in ins])
        self.out_c = self.field([i.out_shape[2] for i in ins])
        self.logits = self.field([i.mode == "logits" for i in ins])
        self.shift = self.field([i.shift for i in ins])
        #: half of the requantising shift's divisor (round half up), 0 without a shift
        self.rounding = self.field([(1 << (i.shift - 1)) if i.shift else 0 for i in ins])
        self.n_sources = self.field([len(i.sources) for i in ins])
        self.sources = [self._source(k) for k in range(MAX_SOURCES)]

    def field(self, values, signed_: bool = False):
        """A constant table of ``values`` (one per instruction), read at :attr:`pc`: unsigned
        unless ``signed_`` or a value is negative."""
        vals = [int(v) for v in values]
        if signed_ or min(vals) < 0:
            shape = signed(max(signed_width(min(vals + [0]), max(vals + [0])), 2))
        else:
            shape = unsigned(uwidth(max(vals + [1])))
        return Array(Const(v, shape) for v in vals)[self.pc]

    def _source(self, k: int) -> dict:
        """The entries of source ``k``: its kind and map shape, its taps and their walk (row,
        step and origin addresses, relative to its map), its weight-cache offset, the skip's
        shift and address offset from the output map."""
        p = self.program

        def col(fn, signed_=False):
            return self.field([fn(i.sources[k], i) if k < len(i.sources) else 0
                               for i in p.instrs], signed_)

        def cw(s):
            return p.words_per_pos(s.shape[2])

        return {
            "skip": col(lambda s, i: s.kind == "skip"),
            "wrap": col(lambda s, i: s.wrap),
            "H": col(lambda s, i: s.shape[0]),
            "W": col(lambda s, i: s.shape[1]),
            "C": col(lambda s, i: s.shape[2]),
            "cw": col(lambda s, i: cw(s)),
            "last_slots": col(lambda s, i: s.shape[2] - (cw(s) - 1) * p.slots),
            "kh": col(lambda s, i: s.kernel[0]),
            "kw": col(lambda s, i: s.kernel[1]),
            "row": col(lambda s, i: s.shape[1] * cw(s)),
            "step_x": col(lambda s, i: s.stride * cw(s)),
            "step_y": col(lambda s, i: s.stride * s.shape[1] * cw(s)),
            "stride": col(lambda s, i: s.stride),
            "pad": col(lambda s, i: s.pad),
            "origin": col(lambda s, i: i.src_base[k] - (s.pad * s.shape[1] + s.pad) * cw(s),
                          signed_=True),
            "coff": col(lambda s, i: s.coff),
            "lshift": col(lambda s, i: s.lshift),
            "delta": col(lambda s, i: i.src_base[k] - i.obase, signed_=True),
        }
