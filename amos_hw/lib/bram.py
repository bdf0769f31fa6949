"""How many block RAMs a design's memories take: the fit check counts blocks, not bits.

A memory of ``depth`` words of ``width`` bits fills whole blocks: on the ECP5 a DP16KD holds
16,384 x 1 up to 512 x 36 bits (the 36-bit form is the pseudo-dual-port PDPW16KD), on the iCE40
an SB_RAM40_4K holds 2,048 x 2 up to 256 x 16. A 72-word, 256-bit weight ROM is 18,432 bits,
exactly one DP16KD's worth, yet takes 8 of them (256 / 36 columns); counted in bits the
ECP5-85F's ResNet8 needed 1.07 Mbit (58 blocks' worth) and took 131 of the 208 DP16KD.

Each memory goes where Yosys's ``memory_libmap`` puts it, by the same kind of cost:

* **block RAM**: one form of the block for the whole memory, the one that needs the fewest
  blocks: ``ceil(width / w) * ceil(depth / d)`` (a 5,647 x 19 FIFO: 3 x 3 blocks of 2,048 x 9;
  mixing forms, 18 + 1 bits, would take 7, but Yosys does not mix them; the generator builds
  such a deep FIFO in columns that each fill one block instead, :attr:`MemShape.column_bits`,
  counted column by column); on the ECP5 a memory
  wider than 36 bits may also take whole 512 x 36 columns and one column of another form for
  the rest of its width, where that is fewer (a 1,152 x 256 ROM: 7 x 3 blocks and one 4,096 x
  4, 22 blocks, as Yosys placed it);
* **LUT RAM** (ECP5, written memories only): 16 x 4 bits a cell;
* **logic**: a ROM costs 1/16 of a unit per bit (Yosys's ``-logic-cost-rom`` default), a
  written memory 1 unit per bit, against :data:`BLOCK_COST` a block and :data:`LUTRAM_COST` a
  LUT RAM cell.

The costs are calibrated on the ECP5-85F ResNet8 build (Yosys 0.70 ``synth_ecp5``): a 72 x 48
weight ROM went to logic and a 72 x 256 one to 8 blocks, so a block costs between 108 and 144
units; 64 x 16 RAMs went to LUT RAM and 64 x 320 ones to 9 blocks; and on the effnet_cifar
build (:data:`LUTRAM_COST`).

Checked memory by memory against the placed designs (Yosys's RTLIL memories, the block cells
of the netlist per memory):

=====================================  =======  ======  =====================================
build                                  counted  placed  where they differ
=====================================  =======  ======  =====================================
ULX3S-85F ResNet8 (131 of 208)             132     131  the 1,152 x 128 weight ROM: 11 blocks
                                                        placed, 12 counted (before the 36-bit
                                                        columns' rule: 134, the x256 ROM 24)
ULX3S-45F ResNet8 (106 of 108)             109     106  the same two ROMs at 2,304 deep
ULX3S-85F effnet_cifar, random weights     214     214  none in the total (a 25,380 x 12 gate
(placement failed: 214 of 208)                          map 21 counted and placed)
the same, two-pixel pointwise FIFOs       207     206  (the per-memory split not compared;
(206 of 208, routed; that FIFO form                     the form was withdrawn, see
measured inexact since)                                 amos_hw.buffers.assign_window_fifos)
ULX3S-25F ResNet8, shared engine            33      30  the 6,144 x 64 main memory: 21 placed
iCEBreaker / HX8K digits, iCEBreaker         8 / 8  8 / 8 / 20  none
ResNet8                                    / 20
=====================================  =======  ======  =====================================

(Counted with the host link's image buffer, which the fit of a board build reserves:
``reserve_bram_blocks`` of :class:`amos_hw.passes.common.FlowConfig`.) So the count errs
full, by up to 3 blocks in these builds, or is exact: it never erred low, and the fit check
allows no margin over the device's blocks (:data:`BLOCK_MARGIN`, :func:`bram_budget`). Until
the ECP5-85F effnet_cifar build it allowed 3 % (the ResNet8 builds' over-count), which let
that design count 214 of 208 and fail placement; the ULX3S-45F ResNet8 that placed at 106 of
108 now counts over the device, so the 45F gets the next slower folding (294,912 cycles per
image instead of 147,456; its measured build's folding can be given with ``--parallelism``).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

__all__ = ["FAMILIES", "BLOCK_COST", "BLOCK_MARGIN", "LUTRAM_COST", "LUTRAM_CELL_LUTS",
           "MemShape", "blocks_for", "column_widths", "unbanked_column_bits", "placement",
           "block_count",
           "bram_budget", "margin_note", "style_attrs", "mark_lut", "check_lut_memories",
           "lut_cost"]

#: Per FPGA family: the (depth, width) forms of one block, the bits of a block, and whether
#: small written memories can go to LUT RAM.
FAMILIES = {
    "ecp5": {"forms": ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
             "block_bits": 18432, "block": "DP16KD", "lutram": True, "mix_last": True},
    "ice40": {"forms": ((2048, 2), (1024, 4), (512, 8), (256, 16)),
              "block_bits": 4096, "block": "SB_RAM40_4K", "lutram": False, "mix_last": False},
}
BLOCK_COST = 128
#: Share of a device's blocks the count may exceed and still pass the fit check: none (the
#: count errs full by up to 3 blocks on some ECP5 builds above and is exact on others).
BLOCK_MARGIN = {"ecp5": 0.0, "ice40": 0.0}
#: A LUT RAM cell's cost: the effnet_cifar build put 96 x 13, 95 x 20, 96 x 18 (24-30 cells)
#: and 64 x 52 (52 cells, against 2 blocks) RAMs in block RAM, where ResNet8's 64 x 16 and the
#: probes' 8 x 16 (16 and 4 cells) went to LUT RAM: more than 128 / 24 and less than 128 / 16.
#: Yosys's own LUT RAM cost was taken as 4 before that build (which then counted 206 blocks
#: and placed 211).
LUTRAM_COST = 6
#: LUT4 positions one ECP5 ``TRELLIS_DPR16X4`` (16 x 4 bits) takes: the two slices holding its
#: bits and the third slice of the PFU its write port uses (the ECP5 family data sheet,
#: "distributed RAM"; boards.build counts it so too).
LUTRAM_CELL_LUTS = 6
_LOGIC_COST_ROM = 1 / 16
_LOGIC_COST_RAM = 1.0


@dataclass(frozen=True)
class MemShape:
    """One memory of a design: ``depth`` words of ``width`` bits; ``rom``: never written;
    ``in_lut``: kept out of block RAM (:func:`style_attrs`); ``column_bits``: built as
    memories of that many bits side by side (:func:`unbanked_column_bits`), 0 for one memory."""
    name: str
    depth: int
    width: int
    rom: bool = False
    in_lut: bool = False
    column_bits: int = 0

    @property
    def bits(self) -> int:
        return self.depth * self.width

    @property
    def column_widths(self) -> tuple:
        """The widths of the memories it is built as (:func:`column_widths`)."""
        return column_widths(self.width, self.column_bits)


def column_widths(width: int, column_bits: int) -> tuple:
    """The widths of a ``width``-bit memory built in columns of ``column_bits``: ``(width,)``
    when ``column_bits`` is 0 or not narrower than ``width``, else full columns and a narrower
    last one for the rest (:class:`~amos_hw.lib.bram_fifo.BramFifo` builds them so)."""
    if not column_bits or column_bits >= width:
        return (width,)
    full, rest = divmod(width, column_bits)
    return (column_bits,) * full + ((rest,) if rest else ())


def _family(name: str) -> dict:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown FPGA family {name!r}; known: {', '.join(FAMILIES)}") from None


@functools.lru_cache(maxsize=4096)
def _blocks(depth: int, width: int, forms: tuple, mix: bool) -> int:
    if width <= 0 or depth <= 0:
        return 0
    one = min(math.ceil(width / w) * math.ceil(depth / d) for d, w in forms)
    # whole columns of the widest form and the rest of the width in one form of its own: how
    # Yosys placed the 1,152 x 256 ROM in 22 blocks, 7 columns of 512 x 36 in 3 rows and one
    # 4,096 x 4 for the last 4 bits (it mixes no other forms: a 25,380 x 12 RAM took 21 blocks
    # of 4,096 x 4, where 2,048 x 9 columns and a narrower rest would take 19)
    d, w = forms[-1]
    if mix and width > w and width % w:
        rest = min(math.ceil((width % w) / w2) * math.ceil(depth / d2) for d2, w2 in forms)
        one = min(one, width // w * math.ceil(depth / d) + rest)
    return one


def blocks_for(depth: int, width: int, family: str = "ecp5") -> int:
    """Blocks a ``depth`` x ``width`` memory takes when it is put in block RAM."""
    fam = _family(family)
    return _blocks(int(depth), int(width), fam["forms"], fam["mix_last"])


def unbanked_column_bits(depth: int, width: int, family: str = "ecp5") -> int:
    """Bits per column that keep a ``depth`` x ``width`` memory out of depth banks: the width
    of the widest block form at least ``depth`` deep, where a form less deep needs as few
    blocks or fewer; else 0 (one memory: one row of blocks is the cheapest form, or no form is
    that deep).

    Yosys puts a memory deeper than its chosen form's depth in banks of blocks and selects the
    bank's output with multiplexers behind the blocks' read ports (a 5,647 x 15 FIFO: 2 x 3
    blocks of 2,048 x 9, three-way multiplexers); then no flip-flop reads the block directly
    and the block's output register stays unused (:mod:`boards.outreg`). Columns of this many
    bits each fill one block of that form (a 5,647 x 15 FIFO: 8 columns of 8,192 x 2 blocks, 8
    blocks instead of 6)."""
    forms = _family(family)["forms"]
    unbanked = [w for d, w in forms if d >= depth]  # widths of the forms that hold it all
    banked = [math.ceil(width / w) * math.ceil(depth / d) for d, w in forms if d < depth]
    if not unbanked or not banked or min(math.ceil(width / w) for w in unbanked) < min(banked):
        return 0  # Yosys takes the one row of blocks, the cheaper form (or must bank)
    return max(unbanked)


def placement(mem: MemShape, family: str = "ecp5") -> tuple[str, int]:
    """Where synthesis puts ``mem``: ``("block", blocks)``, ``("lutram", cells)`` or
    ``("logic", 0)``, the cheapest by the module docstring's costs."""
    fam = _family(family)
    if mem.in_lut:  # its attribute forces the form (style_attrs)
        if fam["lutram"] and not mem.rom:
            return "lutram", _lutram_cells(mem)
        return "logic", 0
    blocks = sum(blocks_for(mem.depth, w, family) for w in mem.column_widths)
    # logic first: like memory_libmap, a RAM form must cost less than logic to be chosen
    options = [(mem.bits * (_LOGIC_COST_ROM if mem.rom else _LOGIC_COST_RAM), "logic", 0)]
    if fam["lutram"] and not mem.rom:
        cells = _lutram_cells(mem)
        options.append((cells * LUTRAM_COST, "lutram", cells))
    options.append((blocks * BLOCK_COST, "block", blocks))
    _, where, n = min(options, key=lambda o: o[0])
    return where, n


def block_count(mems, family: str = "ecp5") -> int:
    """Blocks of block RAM the memories ``mems`` take on ``family``."""
    total = 0
    for mem in mems:
        where, n = placement(mem, family)
        if where == "block":
            total += n
    return total


def margin_note(family: str) -> str:
    """``" (the count errs full by up to N%)"`` for a family with a :data:`BLOCK_MARGIN`, else
    ``""``: the tail of a "needs about N blocks, the device has M" message."""
    margin = BLOCK_MARGIN[family]
    return f" (the count errs full by up to {margin:.0%})" if margin else ""


def bram_budget(family: str, blocks: int) -> int:
    """Blocks a design's count may reach on a device of ``blocks`` blocks (:data:`BLOCK_MARGIN`)."""
    _family(family)
    return int(blocks) + math.ceil(int(blocks) * BLOCK_MARGIN[family])


def _lutram_cells(mem: MemShape) -> int:
    return math.ceil(mem.depth / 16) * math.ceil(mem.width / 4)


def style_attrs(name: str, rom: bool, lut_memories) -> dict:
    """The attributes of the engine's memory ``name``: none (Yosys chooses by cost) unless it is
    one of ``lut_memories``; then ``rom_style = "logic"`` for a ROM and ``ram_style =
    "distributed"`` for a written memory, which Yosys's ``memory_libmap`` obeys (LUT RAM on the
    ECP5; on the iCE40, which has none, the generator keeps only ROMs out of block RAM)."""
    if name not in lut_memories:
        return {}
    return {"rom_style": "logic"} if rom else {"ram_style": "distributed"}


def check_lut_memories(name: str, lut_memories, mems) -> tuple:
    """``lut_memories`` as a tuple of names of ``mems`` (an engine's memories); a ValueError
    naming the engine ``name`` for a name it has not."""
    if isinstance(lut_memories, str) or not hasattr(lut_memories, "__iter__"):
        raise ValueError(f"{name}: lut_memories must be a sequence of memory names, "
                         f"not {lut_memories!r}")
    out = tuple(lut_memories)
    have = {m.name for m in mems}
    for m in out:
        if m not in have:
            raise ValueError(f"{name}: lut_memories names {m!r}, not a memory of this engine "
                             f"(it has {', '.join(sorted(have)) or 'none'})")
    return out


def mark_lut(mems, lut_memories) -> tuple:
    """``mems`` with those named in ``lut_memories`` marked ``in_lut``."""
    return tuple(dataclasses.replace(m, in_lut=True) if m.name in lut_memories else m
                 for m in mems)


def lut_cost(mem: MemShape, family: str = "ecp5") -> int:
    """LUT4s ``mem`` takes out of block RAM (an estimate, in the LUT4 count of
    ``boards.build``). A ROM as logic: two LUT4s per 16 words and output bit and one more per
    bit. A written memory in LUT RAM (ECP5): its 16 x 4 cells, :data:`LUTRAM_CELL_LUTS` each,
    and a read multiplexer of one LUT4 per 16 words and bit. Calibrated with Yosys 0.70
    ``synth_ecp5`` on matrix-vector engines with and without the attribute
    (:func:`style_attrs`): a 320 x 13 bias ROM, one DP16KD, became 544 LUT4 (estimated 533);
    a 256 x 16 input buffer, one DP16KD, became 64 ``TRELLIS_DPR16X4`` and 225 LUT4, 609 in
    all (estimated 640)."""
    where, cells = placement(dataclasses.replace(mem, in_lut=True), family)
    per16 = math.ceil(mem.depth / 16)
    if where == "lutram":
        return cells * LUTRAM_CELL_LUTS + mem.width * per16
    return mem.width * (2 * per16 + 1)
