"""The shared-engine architecture's program: one engine runs every layer in turn.

A converted description is lowered to a short list of *instructions*, one per stored
activation map (and one for the logits). Each instruction computes, for every output
position and every group of :data:`LANES` output channels, an accumulator that is the sum of
its *sources* plus the bias:

* a ``conv`` source: a convolution over a stored map (a ``dense`` layer is a convolution whose
  kernel covers the whole map; a ``dense`` after ``gap`` is one whose weights do not depend on
  the position, ``wrap``, which equals the pooled sum exactly in integers);
* a ``skip`` source: the stored activation at the output position, shifted left (an identity
  shortcut ``add`` input).

Then either the requantising shift and the ReLU AMOS unit (``mode="act"``, written back to a
stored map) or nothing (``mode="logits"``, streamed out).

Everything lives in one memory of 64-bit words (:func:`layout`): first the weights, eight int8
output-channel lanes to a word in the order the engine reads them (instruction, group,
source, tap), then the activation maps, ``slots`` activations to a word, channel-minor
(``word = base + (y*W + x)*words_per_pos + c // slots``). Maps are placed by liveness; a
residual block's output overwrites its identity skip input in place (the engine reads the skip
value of a position before it writes that position). For ResNet8 at K = 10 this is 15,862
words: the four SPRAM blocks of an iCE40 UP5K hold 16,384.

:func:`execute` runs a program on that memory image word by word in numpy (the executable
specification of the engine's data layout); :func:`cycles` is the engine's exact cycle count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from amos_hw.plan import (
    INPUT,
    AddLayer,
    ConvLayer,
    DenseLayer,
    NetworkPlan,
    PlanError,
    PoolLayer,
    UnitLayer,
    WindowLayer,
)
from amos_hw.plan import lower as plan_lower
from python_ref import ir, snn
from python_ref.quant import relu_int, requant_shift, signed_width

__all__ = ["LANES", "WORD_BITS", "ProgramError", "Source", "Instr", "Program", "lower",
           "layout", "execute", "cycles", "pack_input", "StreamTiming"]

#: Output channels computed at once (one int8 weight lane each): one 64-bit weight word.
LANES = 8
#: Width of a word of the main memory (4 SPRAM blocks of 16 bits side by side).
WORD_BITS = 64


class ProgramError(ValueError):
    """A description the shared engine cannot run; the message names the layer."""


@dataclass
class Source:
    kind: str  # "conv" or "skip"
    tensor: str  # the stored map it reads
    shape: tuple  # (H, W, C) of that map
    kernel: tuple = (1, 1)
    stride: int = 1
    pad: int = 0
    wrap: bool = False  # weights indexed by channel only (dense after gap)
    lshift: int = 0  # skip only
    weight: np.ndarray | None = None  # (out, taps) int, conv only
    coff: int = 0  # offset of its taps in the weight cache

    @property
    def taps(self) -> int:
        """Weight words per group (cache entries)."""
        return self.shape[2] if self.wrap else self.kernel[0] * self.kernel[1] * self.shape[2]


@dataclass
class Instr:
    name: str  # the description layer whose output this is
    out: str | None  # stored map written (None for logits)
    out_shape: tuple  # (Ho, Wo, Co)
    sources: list
    bias: np.ndarray
    mode: str  # "act" or "logits"
    shift: int = 0
    K: int = 0
    # filled by layout()
    wbase: int = 0
    bbase: int = 0
    obase: int = 0
    src_base: list = field(default_factory=list)
    acc_range: tuple = (0, 0)

    @property
    def groups(self) -> int:
        return -(-self.out_shape[2] // LANES)

    @property
    def taps(self) -> int:
        return sum(s.taps for s in self.sources if s.kind == "conv")


@dataclass
class Program:
    name: str
    input_shape: tuple
    input_bits: int
    instrs: list
    act_bits: int  # slot width
    num_classes: int
    maps: dict = field(default_factory=dict)  # tensor -> (base, words, shape)
    weight_words: int = 0
    depth: int = 0
    image: np.ndarray | None = None  # uint64 weight words
    bias_table: np.ndarray | None = None
    #: ``"memory"``: the weights are the first words of the main memory; ``"stream"``: they
    #: arrive in read order from outside (an SPI flash, :mod:`amos_hw.lib.spiflash`) and the
    #: main memory holds the activation maps only, from address 0
    weights: str = "memory"

    def weight_bytes(self) -> bytes:
        """The weight image as the ``load`` port and ``CMD_LOAD`` take it: each 64-bit word
        little-endian, in address order."""
        return b"".join(int(w).to_bytes(8, "little") for w in self.image.tolist())

    @property
    def slots(self) -> int:
        return WORD_BITS // self.act_bits

    def words_per_pos(self, C: int) -> int:
        return -(-C // self.slots)

    @property
    def cache_depth(self) -> int:
        return max(i.taps for i in self.instrs)

    @property
    def acc_width(self) -> int:
        lo = min(i.acc_range[0] for i in self.instrs)
        hi = max(i.acc_range[1] for i in self.instrs)
        return signed_width(lo, hi)

    @property
    def bias_width(self) -> int:
        b = self.bias_table
        return signed_width(int(b.min(initial=0)), int(b.max(initial=0)))

    def summary(self) -> dict:
        return {
            "lanes": LANES, "word_bits": WORD_BITS, "act_bits": self.act_bits,
            "slots": self.slots, "weight_words": self.weight_words, "depth": self.depth,
            "cache_depth": self.cache_depth, "acc_width": self.acc_width,
            "bias_entries": len(self.bias_table),
            "maps": {k: {"base": b, "words": n, "shape": list(s)}
                     for k, (b, n, s) in self.maps.items()},
            "instructions": [{
                "name": i.name, "out": i.out, "out_shape": list(i.out_shape), "mode": i.mode,
                "groups": i.groups, "taps": i.taps,
                "sources": [{"kind": s.kind, "tensor": s.tensor, "kernel": list(s.kernel),
                             "stride": s.stride, "pad": s.pad, "wrap": s.wrap,
                             "lshift": s.lshift} for s in i.sources]}
                for i in self.instrs],
        }


def _err(name, msg) -> ProgramError:
    return ProgramError(f"layer {name!r}: {msg}")


def lower(g: ir.Graph) -> Program:
    """Lower a validated description to instructions (no addresses yet), through the typed
    plan (:func:`amos_hw.plan.lower`, the same lowering the layer-pipelined generator uses).

    Raises
    ------
    ProgramError
        A pattern the shared engine has no instruction for, naming the layer.
    """
    try:
        plan = plan_lower(g)
    except PlanError as e:
        raise ProgramError(str(e)) from None
    return _Instructions(plan, g.arrays).program()


def _as_map(shape) -> tuple:
    s = tuple(shape)
    return s if len(s) == 3 else (1, 1, s[0])


class _Instructions:
    """The shared engine's instructions of a plan: one per ReLU AMOS layer (a fused conv or
    dense, or a residual add), one for the logits."""

    def __init__(self, plan: NetworkPlan, arrays):
        self.plan, self.arrays = plan, arrays
        self.by_name = plan.by_name()
        self.users: dict[str, int] = {}
        for lay in plan.layers:
            for src in lay.inputs:
                self.users[src] = self.users.get(src, 0) + 1
        self.stored = {INPUT}
        self.act_bits = plan.input_bits

    @staticmethod
    def tensor(src: str) -> str:
        """The name of the stored map a layer reads: its producing layer's, ``"input"`` for
        the pixels (whatever the description calls them)."""
        return src

    def shape(self, src: str) -> tuple:
        if src == INPUT:
            return _as_map(self.plan.input_shape)
        return _as_map(self.by_name[src].out_shape)

    def conv_source(self, lay) -> Source:
        name, src = lay.ir_nodes[0], lay.inputs[0]
        w = lay.weights(self.arrays)
        prod = self.by_name.get(src)
        if isinstance(lay, ConvLayer):
            if isinstance(prod, PoolLayer):
                raise _err(name, "a conv after gap has no shared-engine instruction")
            if src not in self.stored:
                raise _err(name, f"its input {src!r} is not a stored activation map "
                                 f"(the shared engine convolves ReLU AMOS outputs or the input)")
            k = lay.kernel
            return Source("conv", self.tensor(src), self.shape(src), (k, k), lay.stride,
                          lay.padding, weight=w.reshape(w.shape[0], -1))
        if isinstance(prod, PoolLayer):
            inner = prod.inputs[0]
            if inner not in self.stored or self.users[src] != 1:
                raise _err(name, "a dense after gap needs the gap's input stored and the gap "
                                 "used only by it")
            H, W, C = self.shape(inner)
            return Source("conv", self.tensor(inner), (H, W, C), (H, W), 1, 0, wrap=True,
                          weight=w)
        if src not in self.stored:
            raise _err(name, f"its input {src!r} is not a stored activation map")
        H, W, C = self.shape(src)
        return Source("conv", self.tensor(src), (H, W, C), (H, W), 1, 0, weight=w)

    def add_sources(self, lay: AddLayer) -> tuple[list, np.ndarray]:
        add = lay.ir_nodes[0]
        Co = lay.channels
        order = [(lay.inputs[0], lay.main_shift), (lay.inputs[1], lay.skip_shift)]
        if lay.main_index == 1:
            order.reverse()
        sources, bias = [], np.zeros(Co, np.int64)
        for t, ls in order:
            prod = self.by_name.get(t)
            if (isinstance(prod, (ConvLayer, DenseLayer)) and prod.out_bits is None
                    and self.users[t] == 1):
                if int(ls) != 0:
                    raise _err(add, f"a convolution input ({t!r}) shifted left by {ls} has no "
                                    f"shared-engine instruction")
                sources.append(self.conv_source(prod))
                bias = bias + prod.biases(self.arrays)
            elif t in self.stored:
                if self.shape(t) != _as_map(lay.out_shape):
                    raise _err(add, f"skip input {self.tensor(t)!r} has shape {self.shape(t)}")
                sources.append(Source("skip", self.tensor(t), self.shape(t), lshift=int(ls)))
            else:
                raise _err(add, f"input {t!r} is neither a convolution used only here nor a "
                                f"stored activation map")
        if sum(s.kind == "skip" for s in sources) > 1:
            raise _err(add, "more than one skip input")
        return sources, bias

    def act(self, lay) -> Instr:
        if isinstance(lay, AddLayer):
            sources, bias = self.add_sources(lay)
        else:
            sources, bias = [self.conv_source(lay)], lay.biases(self.arrays)
        out_shape = _as_map(lay.out_shape)
        self.stored.add(lay.name)
        self.act_bits = max(self.act_bits, lay.out_bits)
        return Instr(lay.name, lay.name, out_shape, sources, bias, "act", shift=lay.shift,
                     K=lay.out_bits)

    def logits(self) -> Instr:
        out = None if self.plan.output == INPUT else self.plan.output_layer
        if not isinstance(out, (ConvLayer, DenseLayer)) or out.out_bits is not None:
            op = "input" if out is None else ("amos" if out.out_bits is not None else out.kind)
            raise _err(self.plan.output, f"the logits must come from a conv or dense layer, "
                                         f"not {op!r}")
        src = self.conv_source(out)
        osh = _as_map(out.out_shape)
        if osh[0] * osh[1] != 1:
            raise _err(out.name, f"the logits must be a vector, not a {osh} map")
        if osh[2] > 16:
            raise _err(out.name, f"{osh[2]} classes; the result port takes at most 16")
        return Instr(out.name, None, osh, [src], out.biases(self.arrays), "logits")

    def program(self) -> Program:
        for lay in self.plan.layers:
            if isinstance(lay, (WindowLayer, UnitLayer)):
                what = "a trained AMOS unit" if isinstance(lay, UnitLayer) else f"op {lay.kind!r}"
                raise _err(lay.ir_nodes[0], f"{what} has no shared-engine instruction "
                                            f"(the layer-pipelined architecture builds it)")
        instrs = [self.act(lay) for lay in self.plan.layers if lay.out_bits is not None]
        instrs.append(self.logits())
        if self.act_bits > WORD_BITS // 2:
            raise ProgramError(f"activations of {self.act_bits} bits do not fit two to a word")
        plan = self.plan
        return Program(plan.name, tuple(plan.input_shape), plan.input_bits, instrs,
                       self.act_bits, instrs[-1].out_shape[2])


def _acc_range(p: Program, ins: Instr) -> tuple[int, int]:
    """Exact bounds of every partial sum the engine forms (bias added last)."""
    hi_act = (1 << p.act_bits) - 1
    lo = hi = 0
    for s in ins.sources:
        if s.kind == "conv":
            w = s.weight
            if s.wrap:
                pos = s.shape[0] * s.shape[1]
                lo += int(np.minimum(w, 0).sum(1).min()) * hi_act * pos
                hi += int(np.maximum(w, 0).sum(1).max()) * hi_act * pos
            else:
                lo += int(np.minimum(w, 0).sum(1).min()) * hi_act
                hi += int(np.maximum(w, 0).sum(1).max()) * hi_act
        else:
            hi += hi_act << s.lshift
    b = ins.bias
    return lo + min(0, int(b.min())), hi + max(0, int(b.max()))


def _weight_words(p: Program) -> list[int]:
    """The weight words in read order (instruction, group, source, tap), eight int8 output
    channel lanes a word; sets each instruction's ``wbase`` and each source's ``coff``."""
    words = []
    for ins in p.instrs:
        ins.wbase = len(words)
        off = 0
        for s in ins.sources:
            if s.kind == "conv":
                s.coff = off
                off += s.taps
        for grp in range(ins.groups):
            for s in ins.sources:
                if s.kind != "conv":
                    continue
                w = np.zeros((LANES, s.taps), np.int64)
                rows = s.weight[grp * LANES: (grp + 1) * LANES]
                w[: len(rows)] = rows
                for t in range(s.taps):
                    word = 0
                    for lane in range(LANES):
                        word |= (int(w[lane, t]) & 0xFF) << (8 * lane)
                    words.append(word)
    return words


def _bias_table(p: Program) -> np.ndarray:
    """Every instruction's biases, padded to whole groups; sets ``bbase`` and ``acc_range``."""
    bias = []
    for ins in p.instrs:
        ins.bbase = len(bias)
        b = np.zeros(ins.groups * LANES, np.int64)
        b[: len(ins.bias)] = ins.bias
        bias.extend(int(v) for v in b)
        ins.acc_range = _acc_range(p, ins)
    return np.array(bias, dtype=np.int64)


def _liveness(p: Program) -> tuple[dict, dict]:
    """Each stored map's [producer, last consumer] in instruction order, and its (words,
    shape)."""
    life = {"input": [-1, -1]}
    sizes = {"input": (math.prod(p.input_shape[:2]) * p.words_per_pos(p.input_shape[2]),
                       p.input_shape)}
    for k, ins in enumerate(p.instrs):
        for s in ins.sources:
            life[s.tensor][1] = k
        if ins.out is not None:
            life[ins.out] = [k, k]
            Ho, Wo, Co = ins.out_shape
            sizes[ins.out] = (Ho * Wo * p.words_per_pos(Co), ins.out_shape)
    return life, sizes


def _roots(p: Program, life: dict, sizes: dict) -> dict:
    """Map -> the map whose words it occupies: a residual block's output overwrites its
    identity skip input when that is the skip's last use and the sizes agree."""
    inplace = {}  # output map -> the skip map it overwrites
    for k, ins in enumerate(p.instrs):
        for s in ins.sources:
            if (s.kind == "skip" and life[s.tensor][1] == k and ins.out is not None
                    and sizes[s.tensor][0] == sizes[ins.out][0]):
                inplace[ins.out] = s.tensor
    root = {}
    for t in life:
        r = t
        while r in inplace:
            r = inplace[r]
        root[t] = r
    return root


def _first_fit(span: dict, sizes: dict, base0: int) -> dict:
    """Addresses of the maps: largest first, then by birth, first fit in address order among
    the maps alive at the same time."""
    placed: dict[str, tuple[int, int]] = {}
    for t in sorted(span, key=lambda t: (-sizes[t][0], span[t][0])):
        n = sizes[t][0]
        a0, a1 = span[t]
        busy = sorted((placed[u][0], placed[u][0] + placed[u][1]) for u in placed
                      if not (span[u][1] < a0 or a1 < span[u][0]))
        addr = base0
        for lo, hi in busy:
            if addr + n <= lo:
                break
            addr = max(addr, hi)
        placed[t] = (addr, n)
    return placed


def _place_maps(p: Program, base0: int) -> None:
    """Place the activation maps by liveness from word ``base0``; set ``maps``, ``depth`` and
    every instruction's map addresses."""
    life, sizes = _liveness(p)
    root = _roots(p, life, sizes)
    span: dict[str, list] = {}
    for t, (a0, a1) in life.items():
        r = span.setdefault(root[t], [a0, a1])
        r[0], r[1] = min(r[0], a0), max(r[1], a1)
    placed = _first_fit(span, sizes, base0)
    order = ["input"] + [i.out for i in p.instrs if i.out is not None]
    p.maps = {t: (placed[root[t]][0], sizes[t][0], sizes[t][1]) for t in order}
    p.depth = max([base0] + [b + n for b, n in placed.values()])
    for ins in p.instrs:
        ins.obase = p.maps[ins.out][0] if ins.out is not None else 0
        ins.src_base = [p.maps[s.tensor][0] for s in ins.sources]


def layout(p: Program, max_depth: int | None = None, weights: str = "memory") -> Program:
    """Place weights and maps in the word memory; build the weight image and bias table.

    ``weights="stream"`` leaves the weights out of the memory (they are read once per image,
    in address order, from a stream; :attr:`Program.image` is still their image): the maps
    start at word 0 and ``max_depth`` limits the maps alone.
    """
    if weights not in ("memory", "stream"):
        raise ValueError(f"weights must be 'memory' or 'stream', not {weights!r}")
    p.weights = weights
    words = _weight_words(p)
    p.weight_words = len(words)
    p.image = np.array(words, dtype=np.uint64)
    p.bias_table = _bias_table(p)
    _place_maps(p, p.weight_words if weights == "memory" else 0)
    if max_depth is not None and p.depth > max_depth:
        peak = max(p.instrs, key=lambda i: i.taps)
        if weights == "stream":
            raise ProgramError(
                f"the live activation maps need {p.depth} words of {WORD_BITS} bits, more than "
                f"the {max_depth} available (over by {p.depth - max_depth})")
        raise ProgramError(
            f"the weights ({p.weight_words} words) and the live activation maps need "
            f"{p.depth} words of {WORD_BITS} bits, more than the {max_depth} available "
            f"(over by {p.depth - max_depth}); the largest weight block is {peak.name!r}")
    return p


def pack_input(p: Program, x: np.ndarray) -> list[tuple[int, int]]:
    """The (address, word) writes of one image (H, W, C) of unsigned pixels."""
    H, W, C = p.input_shape
    base = p.maps["input"][0]
    cw = p.words_per_pos(C)
    flat = np.asarray(x, dtype=np.int64).reshape(H * W, C)
    out = []
    for pos in range(H * W):
        for wi in range(cw):
            word = 0
            for s in range(p.slots):
                c = wi * p.slots + s
                if c < C:
                    word |= int(flat[pos, c]) << (p.act_bits * s)
            out.append((base + pos * cw + wi, word))
    return out


def _read_map(p: Program, mem: list, tensor: str) -> np.ndarray:
    base, _, (H, W, C) = p.maps[tensor]
    cw = p.words_per_pos(C)
    mask = (1 << p.act_bits) - 1
    a = np.zeros((H, W, C), np.int64)
    for pos in range(H * W):
        for c in range(C):
            word = mem[base + pos * cw + c // p.slots]
            a[pos // W, pos % W, c] = (word >> (p.act_bits * (c % p.slots))) & mask
    return a


def _write_map(p: Program, mem: list, ins: Instr, y: np.ndarray) -> None:
    Ho, Wo, Co = ins.out_shape
    cw = p.words_per_pos(Co)
    mask = (1 << p.act_bits) - 1
    for pos in range(Ho * Wo):
        for c in range(Co):
            a = ins.obase + pos * cw + c // p.slots
            sh = p.act_bits * (c % p.slots)
            mem[a] = (mem[a] & ~(mask << sh)) | (int(y[pos // Wo, pos % Wo, c]) << sh)


def execute(p: Program, x: np.ndarray) -> np.ndarray:
    """Run one image through the program on a word-level memory image; return the logits.

    Every read and write goes through the packed 64-bit words at the addresses the engine
    uses, so a layout error (an overlap, a wrong stride, a bad in-place write) changes the
    result; the arithmetic is :mod:`python_ref.snn`'s.
    """
    mem = [0] * p.depth
    if p.weights == "memory":
        for a, w in enumerate(p.image.tolist()):
            mem[a] = int(w)
    for a, w in pack_input(p, x):
        mem[a] = w
    for ins in p.instrs:
        Ho, Wo, Co = ins.out_shape
        acc = np.zeros((Ho, Wo, Co), np.int64) + ins.bias
        for s in ins.sources:
            a = _read_map(p, mem, s.tensor)
            if s.kind == "skip":
                acc += a << s.lshift
            elif s.wrap:
                acc += (s.weight @ a.reshape(-1, a.shape[2]).sum(0)).reshape(1, 1, -1)
            else:
                kh, kw = s.kernel
                w4 = s.weight.reshape(Co, kh, kw, s.shape[2])
                if kh == kw:
                    acc += snn.conv2d(a[None], w4, None, s.stride, s.pad)[0]
                else:  # a dense over a non-square map
                    acc += (s.weight @ a.reshape(-1)).reshape(1, 1, -1)
        if ins.mode == "logits":
            return acc.reshape(-1)
        _write_map(p, mem, ins, relu_int(requant_shift(acc, ins.shift), ins.K))
    raise AssertionError("a program ends with its logits instruction")


def _steps(p: Program, ins: Instr, oy: int, ox: int, n_lanes: int) -> tuple:
    """The walker's steps at one output position: per step the slots of the word it fetches,
    or 0 for a tap outside the map (see engine.py)."""
    S = p.slots
    out = []
    for s in ins.sources:
        if s.kind == "skip":
            out += [1] * n_lanes
            continue
        H, W, C = s.shape
        cw = p.words_per_pos(C)
        words = [S] * (cw - 1) + [C - (cw - 1) * S]
        kh, kw = s.kernel
        for ky in range(kh):
            for kx in range(kw):
                iy, ix = oy * s.stride - s.pad + ky, ox * s.stride - s.pad + kx
                if s.wrap or (0 <= iy < H and 0 <= ix < W):
                    out += words
                else:
                    out.append(0)
    return tuple(out)


_RUN_MEMO: dict = {}


def run_cycles(steps: tuple, fifo_depth: int = 3) -> int:
    """Cycles of the engine's RUN state for one position: a cycle-by-cycle model of the
    walker, the one-cycle memory read, the word FIFO and the lane register (engine.py)."""
    key = (steps, fifo_depth)
    if key in _RUN_MEMO:
        return _RUN_MEMO[key]
    i, wdone, inflight, fifo, kbeat, valid_r = 0, not steps, None, [], 0, False
    cyc = 0
    while True:
        cyc += 1
        if wdone and inflight is None and not fifo and not valid_r:
            break
        credit = len(fifo) + (inflight is not None) < fifo_depth
        issue, wdone_next = None, wdone
        if not wdone and credit:
            if steps[i]:
                issue = steps[i]
            i += 1
            wdone_next = i == len(steps)
        beat = bool(fifo)
        pop = beat and kbeat == fifo[0] - 1
        valid_r = beat
        if pop:
            fifo.pop(0)
            kbeat = 0
        elif beat:
            kbeat += 1
        if inflight is not None:
            fifo.append(inflight)
        inflight, wdone = issue, wdone_next
    _RUN_MEMO[key] = cyc
    return cyc


@dataclass(frozen=True)
class StreamTiming:
    """When the words of a weight stream arrive (:class:`amos_hw.lib.spiflash.SpiFlashReader`).

    The reader starts the cycle the engine takes an image's last input byte. It clocks
    ``header_slots`` bit slots of command, address and dummy bits, then one 64-slot word after
    another, each slot ``2 * div`` cycles (the flash clock is the engine's over ``2 * div``),
    and never runs more than ``depth`` words ahead of the engine. A word is pushed into the
    reader's FIFO in its last cycle and can be taken two cycles later.
    """
    div: int = 1
    depth: int = 512
    header_slots: int = 40

    def __post_init__(self):
        for name in ("div", "depth", "header_slots"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"StreamTiming.{name} must be a positive integer, not {v!r}")

    @property
    def word_cycles(self) -> int:
        return WORD_BITS * 2 * self.div


def _group_rest(p: Program, ins: Instr, grp: int) -> int:
    """Cycles of one group after its weight-cache fill: per output position one cycle to
    start, the RUN cycles, the epilogue and one cycle to step the position."""
    Ho, Wo, Co = ins.out_shape
    n = min(LANES, Co - grp * LANES)
    epi = (4 + ins.K + 2 * n) if ins.mode == "act" else 1 + n
    return sum(1 + run_cycles(_steps(p, ins, oy, ox, n)) + epi + 1
               for oy in range(Ho) for ox in range(Wo))


def _stream_fills(p: Program, timing: StreamTiming, groups: list) -> list:
    """The fill cycles of every group when the weights come from a stream: the reader and the
    engine's FILL state stepped word by word (cycles counted from the image's first byte)."""
    H, W, C = p.input_shape
    t0 = H * W * C - 1  # the cycle the last byte is taken: the reader's start
    D, wc = timing.depth, timing.word_cycles
    taken: list[int] = []  # cycle each word is taken by the engine
    push = t0 + 2 * timing.div * timing.header_slots  # "previous push": the header's last cycle
    start = t0 + 1  # the first group's FILL
    fills = []
    for taps, rest in groups:
        last = None
        for _ in range(taps):
            j = len(taken)
            s = push + 1 if j < D else max(push + 1, taken[j - D] + 2)
            push = s + wc - 1
            last = max(push + 2, start if last is None else last + 1)
            taken.append(last)
        fill = 1 if last is None else last + 2 - start
        fills.append(fill)
        start += fill + rest
    return fills


def cycles(p: Program, detail: bool = False, stream: StreamTiming | None = None):
    """The engine's cycles per image, exactly (equal to the simulated interval in the tests).

    Per image: one cycle per input byte; per instruction and group a weight-cache fill of
    ``taps + 1`` cycles; per output position and group: one cycle to start, the RUN cycles
    (:func:`run_cycles`: one beat per activation of an in-bounds tap, one cycle per tap outside
    the map that the FIFO does not hide, the pipeline's fill and drain), the epilogue
    (``4 + K + 2n`` cycles for ``n`` lanes through the AMOS unit and the read-modify-write, or
    ``1 + n`` for logits) and one cycle to step the position.

    ``stream``: the weights come from a stream with this timing (``weights="stream"``); a
    fill then lasts until its last word has arrived, and no less than ``taps + 1`` cycles.
    """
    H, W, C = p.input_shape
    rows = [("input", H * W * C)]
    groups, names = [], []
    for ins in p.instrs:
        for grp in range(ins.groups):
            groups.append((ins.taps, _group_rest(p, ins, grp)))
            names.append(ins.name)
    if stream is None:
        fills = [taps + 1 for taps, _ in groups]
    else:
        fills = _stream_fills(p, stream, groups)
    per: dict[str, int] = {}
    for name, (_, rest), fill in zip(names, groups, fills, strict=True):
        per[name] = per.get(name, 0) + fill + rest
    rows += [(i.name, per[i.name]) for i in p.instrs]
    n = sum(r[1] for r in rows)
    return (n, rows) if detail else n
