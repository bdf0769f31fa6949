"""Fast tier: the shared engine's parts on their own (amos_hw.shared: table, walker, fetch, lanes,
epilogue) and its figures as functions of the program.

* the walker, driven through every instruction, group and position of a program, issues exactly
  the words :mod:`amos_hw.shared.program` lays out (addresses from the map layout, slots from
  its step model ``_steps``), in order, with the weight-cache address of each;
* the lanes accumulate gated adds or products and skip beats as numpy does, clear and shift;
* the result collector keeps the logits and their argmax (lowest index on ties);
* ``cycles_per_image``, ``latency_cycles`` and ``memories`` of the engine are functions of the
  program and the options, equal to the component's properties;
* the arguments are checked before the component exists: a failing call raises with a message
  naming the argument and leaves no unused elaboratable to warn about.
"""
from __future__ import annotations

import gc
import inspect
import random
import warnings

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Fragment, Module, Signal
from amaranth.lib import stream

from amos_hw.lib.sim import run_simulation
from amos_hw.lib.spiflash import reader_timing
from amos_hw.shared import engine as E
from amos_hw.shared import program as P
from amos_hw.shared.epilogue import ResultCollector
from amos_hw.shared.fetch import WordFifo
from amos_hw.shared.lanes import Lanes
from amos_hw.shared.table import FILL, INPUT, NEXT, RUN, START, Control, InstrTable
from amos_hw.shared.walker import Walker
from amos_hw.top import result_layout
from amos_hw.zoo import resolve
from python_ref import ir
from rtl_tests.network import tiny_resnet
from tests.test_shared import straddle_net


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    d = tmp_path_factory.mktemp("shared_parts")
    tiny_resnet(d / "tiny")
    return {"tiny": ir.load(d / "tiny"), "straddle": straddle_net(d / "straddle"),
            "digits": ir.load(resolve("digits"))}


# ----------------------------------------------------------------------------- walker

class WalkerBench(Elaboratable):
    """The walker with the phases that drive it and an always-free FIFO: INPUT -> FILL ->
    START -> RUN (until drained) -> NEXT, without the cache fill and the epilogue."""

    def __init__(self, p):
        self.table = InstrTable(p)
        self.ctl = Control(p, 1)
        self.walker = Walker(p, self.table)
        self.fifo = WordFifo(p)
        self.addr = Signal(range(max(p.depth, 2)))

    def elaborate(self, platform):
        m = Module()
        ctl, w, fifo = self.ctl, self.walker, self.fifo
        with m.If(ctl.state == INPUT):
            m.d.sync += [ctl.state.eq(FILL), *w.restart()]
        with m.If(ctl.state == FILL):
            m.d.sync += [ctl.state.eq(START), *w.first_position()]
        with m.If(ctl.state == START):
            m.d.sync += [*w.load(0), w.wdone.eq(0), ctl.state.eq(RUN)]
        w.issue(m, ctl.state == RUN, fifo, self.addr)
        fifo.track(m)
        with m.If(fifo.drained((ctl.state == RUN) & w.wdone)):
            m.d.sync += ctl.state.eq(NEXT)
        w.step(m, ctl)
        return m


def walk(p):
    """Run the bench through one image: per position (pc, g, oy, ox) the issued words as
    (addr, n, slot0, cbase, skip, lane, lshift)."""
    bench = WalkerBench(p)
    w, md = bench.walker, bench.fifo.issue_md
    out = {}

    async def tb(ctx):
        started, cur = False, None
        while True:
            await ctx.tick()
            state = ctx.get(bench.ctl.state)
            if state == INPUT and started:
                return
            started = True
            if state == START:
                cur = (ctx.get(bench.table.pc), ctx.get(w.g), ctx.get(w.oy), ctx.get(w.ox))
                out[cur] = []
            if ctx.get(bench.fifo.issue):
                d = ctx.get(md)
                out[cur].append((ctx.get(bench.addr), d.n, d.slot0, d.cbase, d.skip, d.lane,
                                 d.lshift))

    run_simulation(bench, tb, max_cycles=500_000)
    return out


def expected_words(p, ins, grp, oy, ox):
    """The words of one position, from the program's layout alone."""
    S = p.slots
    Ho, Wo, Co = ins.out_shape
    n_lanes = min(P.LANES, Co - grp * P.LANES)
    words = []
    for k, s in enumerate(ins.sources):
        base = ins.src_base[k]
        if s.kind == "skip":
            for lane in range(n_lanes):
                c = grp * P.LANES + lane
                addr = base + (oy * Wo + ox) * p.words_per_pos(Co) + c // S
                words.append((addr, 1, c % S, 0, 1, lane, s.lshift))
            continue
        H, W, C = s.shape
        cw = p.words_per_pos(C)
        kh, kw = s.kernel
        for t in range(kh * kw):
            iy, ix = oy * s.stride - s.pad + t // kw, ox * s.stride - s.pad + t % kw
            if not (0 <= iy < H and 0 <= ix < W):
                continue
            for wi in range(cw):
                n = S if wi < cw - 1 else C - (cw - 1) * S
                cbase = s.coff + (0 if s.wrap else t * C) + wi * S
                words.append((base + (iy * W + ix) * cw + wi, n, 0, cbase, 0, 0, 0))
    return words


@pytest.mark.parametrize("name", ["tiny", "straddle", "digits"])
def test_walker_issues_the_programs_words(graphs, name):
    p = P.layout(P.lower(graphs[name]))
    got = walk(p)
    want_keys = [(pc, grp, oy, ox) for pc, ins in enumerate(p.instrs)
                 for grp in range(ins.groups)
                 for oy in range(ins.out_shape[0]) for ox in range(ins.out_shape[1])]
    assert list(got) == want_keys  # every position once, in the engine's order
    for (pc, grp, oy, ox), words in got.items():
        ins = p.instrs[pc]
        n_lanes = min(P.LANES, ins.out_shape[2] - grp * P.LANES)
        assert words == expected_words(p, ins, grp, oy, ox), (ins.name, grp, oy, ox)
        # the slots of each word are the step model's (its zeros: taps outside the map)
        steps = P._steps(p, ins, oy, ox, n_lanes)
        assert [w[1] for w in words] == [s for s in steps if s]


# ----------------------------------------------------------------------------- lanes

@pytest.mark.parametrize("dsp", [False, True])
def test_lanes_accumulate_clear_and_shift(dsp):
    n, A, acc_w = 8, 10, 28
    dut = Lanes(n, A, acc_w, dsp)
    rng = random.Random(7)
    beats = []
    for _ in range(40):
        skip = rng.random() < 0.25
        beats.append((skip, rng.randrange(n), rng.randrange(0, 8),
                      rng.randrange(1 << A), [rng.randrange(-128, 128) for _ in range(n)]))
    want = np.zeros(n, np.int64)
    for skip, lane, lshift, act, ws in beats:
        if skip:
            want[lane] += act << lshift
        else:
            want += np.array(ws) * act
    got = []

    async def tb(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for skip, lane, lshift, act, ws in beats:
            ctx.set(dut.valid, 1)
            ctx.set(dut.skip, skip)
            ctx.set(dut.lane, lane)
            ctx.set(dut.lshift, lshift)
            ctx.set(dut.act, act)
            ctx.set(dut.weights, sum((w & 0xFF) << (8 * k) for k, w in enumerate(ws)))
            await ctx.tick()
        ctx.set(dut.valid, 0)
        for _ in range(n):
            got.append(ctx.get(dut.acc0))
            ctx.set(dut.shift, 1)
            await ctx.tick()
        ctx.set(dut.shift, 0)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        assert ctx.get(dut.acc0) == 0

    run_simulation(dut, tb)
    assert got == want.tolist()


# ----------------------------------------------------------------------------- result

class CollectorBench(Elaboratable):
    def __init__(self, width, ncls):
        self.rc = ResultCollector(width, ncls)
        self.result = stream.Signature(result_layout(width, ncls)).create()

    def elaborate(self, platform):
        m = Module()
        self.rc.build(m, self.result)
        return m


def test_result_collector_keeps_logits_and_first_argmax():
    ncls = 5
    bench = CollectorBench(12, ncls)
    rc = bench.rc
    images = [[3, -7, 9, 9, 1], [-5, -5, -6, -9, -5], [0, 0, 0, 0, 100]]
    got = []

    async def tb(ctx):
        for logits in images:
            for v in logits:
                ctx.set(rc.lg_in, v)
                ctx.set(rc.lg_take, 1)
                await ctx.tick()
            ctx.set(rc.lg_take, 0)
            assert ctx.get(bench.result.valid)
            r = ctx.get(bench.result.payload)
            got.append(([int(x) for x in r.logits], int(r.cls)))
            ctx.set(bench.result.ready, 1)
            await ctx.tick()
            ctx.set(bench.result.ready, 0)
            assert not ctx.get(bench.result.valid)

    run_simulation(bench, tb)
    assert got == [(x, int(np.argmax(x))) for x in images]


# ----------------------------------------------------------------------------- figures

def test_figures_are_functions_of_the_program(graphs):
    """No component is built: the cost model calls these with the program and the options."""
    p = P.layout(P.lower(graphs["tiny"]))
    ps = P.layout(P.lower(graphs["tiny"]), weights="stream")
    assert E.cycles_per_image(p) == E.latency_cycles(p) == P.cycles(p)
    assert E.stream_timing(p) is None
    assert E.cycles_per_image(p, flash_div=3) == P.cycles(p)  # no flash: no stream
    timing = reader_timing(2, 4)
    assert E.stream_timing(ps, flash_div=2, flash_depth=4) == timing
    assert (E.cycles_per_image(ps, flash_div=2, flash_depth=4)
            == E.latency_cycles(ps, flash_div=2, flash_depth=4)
            == P.cycles(ps, stream=timing) > P.cycles(p))
    assert E.cycles_per_image(ps) == P.cycles(ps, stream=reader_timing(1, 512))
    names = [(m.name, m.depth, m.width) for m in E.memories(p)]
    assert names == [("main", p.depth, 64), ("cache", max(p.cache_depth, 2), 64),
                     ("bias", len(p.bias_table), max(p.bias_width, 2))]
    assert [m.name for m in E.memories(ps, spram=True, flash_depth=4)] == [
        "cache", "bias", "flash_fifo"]


# ----------------------------------------------------------------------------- arguments

def test_check_arguments_takes_the_components_parameters():
    init = inspect.signature(E.SharedNetwork.__init__).parameters
    check = inspect.signature(E.check_arguments).parameters
    assert [(k, v.default) for k, v in list(init.items())[1:]] == [
        (k, v.default) for k, v in check.items()]


def test_bad_arguments_raise_before_the_component_exists(graphs):
    """The messages name the argument; nothing is left for Amaranth to warn about as unused
    (this file has no linter pragma: a warning would be recorded here, as the control's is)."""
    p = P.layout(P.lower(graphs["tiny"]))
    ps = P.layout(P.lower(graphs["tiny"]), weights="stream")
    bad = [
        (dict(program=p, flash_div=0), None),  # not checked with the weights in memory
        (dict(program="p"), (TypeError, "program must be an amos_hw.shared.program.Program, "
                                        "not str")),
        (dict(program=P.lower(graphs["tiny"])), (ValueError, "program 'tiny_resnet' is not "
                                                             "laid out")),
        (dict(program=ps, weights="flash", flash_div=0),
         (ValueError, "flash_div must be a positive integer, not 0")),
        (dict(program=ps, weights="flash", flash_depth=True),
         (ValueError, "flash_depth must be a positive integer, not True")),
        (dict(program=ps, weights="flash", flash_offset=-1),
         (ValueError, "SpiFlashReader: offset must be an integer >= 0, not -1")),
        (dict(program=p, spram=True), None),
    ]
    Fragment.get(Lanes(2, 2, 4, False), None)  # Amaranth warns only once it has elaborated
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unused = Lanes(2, 2, 4, False)  # the control: built, never elaborated
        del unused
        for kw, err in bad:
            if err is None:
                E.check_arguments(**kw)
                continue
            with pytest.raises(err[0], match=err[1]):
                E.check_arguments(**kw)
            program = kw.pop("program")
            with pytest.raises(err[0], match=err[1]):
                E.SharedNetwork(program, **kw)
        gc.collect()
    assert [w.category.__name__ for w in caught] == ["UnusedElaboratable"]
    assert "Lanes" in str(caught[0].message)


def test_bad_programs_are_named(graphs):
    p = P.layout(P.lower(graphs["straddle"]))
    p.instrs[1].K = 5
    with pytest.raises(ValueError, match=r"one AMOS unit; the layers use K = \[5, 10\]"):
        E.check_arguments(p)
    p = P.layout(P.lower(graphs["straddle"]))
    p.instrs[2].sources.append(p.instrs[2].sources[0])
    with pytest.raises(ValueError, match=f"instruction {p.instrs[2].name!r} has 3 sources; "
                                         f"the shared engine walks at most 2"):
        E.check_arguments(p)
    p = P.layout(P.lower(graphs["straddle"]))
    p.instrs[2].sources[1].lshift = 15
    with pytest.raises(ValueError, match="dsp_lanes: a skip shift above 14"):
        E.check_arguments(p, dsp_lanes=True)
