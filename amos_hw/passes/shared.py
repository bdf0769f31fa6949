"""The generator's steps for the shared-engine architecture (``--architecture shared``).

Same step names as the layer-pipelined flow, so ``--stop-after`` and the saved intermediates
work alike:

=============== ===========================================================================
``infer``       lower the description to instructions (:func:`amos_hw.shared.program.lower`)
``parallelism`` fixed: :data:`~amos_hw.shared.program.LANES` output channels at a time
``memory``      place weights and maps in the word memory (:func:`~amos_hw.shared.program
                .layout`); on the iCE40 UP5K the four SPRAM blocks (16,384 words)
``estimate``    exact cycles per instruction, LUT4 / FF / memory estimates
``assemble``    build the :class:`~amos_hw.shared.engine.SharedNetwork`
=============== ===========================================================================
"""
from __future__ import annotations

from amos_hw.devices import clock_mhz, device
from amos_hw.lib.bram import FAMILIES, block_count, bram_budget, margin_note
from amos_hw.lib.spiflash import reader_timing
from amos_hw.passes.common import BudgetError, FlowContext, FlowError
from amos_hw.shared.engine import SPRAM_WORDS, SharedNetwork, memories
from amos_hw.shared.program import LANES, WORD_BITS, ProgramError, cycles, layout, lower
from python_ref import ir

__all__ = ["STEPS", "estimate_luts"]


def infer(ctx: FlowContext) -> dict:
    try:
        ir.validate(ctx.graph)
        ctx.program = lower(ctx.graph)
    except (ir.IRError, ProgramError) as e:
        raise FlowError(f"model {ctx.model_name!r} (shared engine): {e}") from None
    p = ctx.program
    return {"architecture": "shared", "instructions": [i.name for i in p.instrs],
            "act_bits": p.act_bits}


def parallelism(ctx: FlowContext) -> dict:
    cfg = ctx.config
    if cfg.parallelism is not None:
        raise FlowError("--parallelism folds the layer-pipelined engines; the shared engine "
                        f"computes {LANES} output channels at a time (leave it out, or use "
                        f"--architecture pipelined)")
    return {"architecture": "shared", "lanes": LANES}


def memory(ctx: FlowContext) -> dict:
    cfg = ctx.config
    limit = SPRAM_WORDS if cfg.board == "ice40-up5k" else None
    try:
        layout(ctx.program, max_depth=limit,
               weights="stream" if cfg.weights == "flash" else "memory")
    except ProgramError as e:
        raise BudgetError(f"{ctx.model_name} does not fit {cfg.board} (shared engine): "
                          f"{e}") from None
    ctx.plan = {"architecture": "shared", **ctx.program.summary()}
    if cfg.weights == "flash":
        ctx.plan["weights"] = "flash"
        ctx.plan["flash"] = {"bytes": ctx.program.weight_words * WORD_BITS // 8,
                             "fifo_words": FLASH_FIFO_WORDS, "clock_divider": 2 * FLASH_DIV}
    return ctx.plan


#: The flash reader's FIFO (words it may fetch ahead) and clock: ``sync / (2 * FLASH_DIV)``.
FLASH_FIFO_WORDS = 512
FLASH_DIV = 1


def stream_timing(cfg):
    """The weight stream's timing for ``cfg`` (None when the weights are in memory)."""
    return reader_timing(FLASH_DIV, FLASH_FIFO_WORDS) if cfg.weights == "flash" else None


def flash_network(program, offset: int = 0):
    """The shared engine on ``program`` (laid out with ``weights="stream"``) reading its weights
    from byte ``offset`` of an SPI flash, with the generator's reader settings."""
    return SharedNetwork(program, weights="flash", flash_offset=offset, flash_div=FLASH_DIV,
                         flash_depth=FLASH_FIFO_WORDS)


#: Measured iCE40 LUT4s of the ResNet8 shared engine in its iCEBreaker top, host link and PLL
#: included (3,975, DSP lanes; ``python -m boards.bench --board icebreaker --model resnet8
#: --clock-mhz 19.5``, docs/results/boards/icebreaker_resnet8_pll19p5mhz.json) over the
#: component formula below (2,024): the formula leaves out the host link and undercounts the
#: multiplexers of the walker and the tables.
LUT_CALIBRATION = 3975 / 2024
#: The same for the ECP5 form: LUT lanes (no DSP), the flash reader, the ULX3S top (7,931
#: LUT4: ``python -m boards.bench --board ulx3s-25f --model resnet8``,
#: docs/results/boards/ulx3s-25f_resnet8.json).
LUT_CALIBRATION_ECP5 = 7931 / 2024


def estimate_luts(p, family: str = "ice40") -> dict:
    """LUT4 / FF estimate of the engine, from its widths.

    Per lane: one adder per spike bit over the shifted int8 weight and the accumulator adder;
    plus the slot multiplexer, the FIFO, the walker's address adders, the AMOS unit's K
    stages and the instruction table (one LUT per table bit); the sum scaled by
    :data:`LUT_CALIBRATION`, fitted to the one synthesis there is (ResNet8 on the UP5K, with
    the board's host link, which the generator's own design does not have).
    """
    A, acc, S = p.act_bits, p.acc_width, p.slots
    lane = A * (8 + A) // 2 + acc
    table_bits = 40 * 16
    luts = (LANES * lane + S * A * 2 + 3 * (WORD_BITS + 24) // 2 + 12 * 20
            + (A + 2) * (acc - 4) + table_bits // 2)
    ff = (LANES * acc + 3 * (WORD_BITS + 24) + 20 * 17 + (A + 2) * (acc - 4) + LANES * A
          + 2 * WORD_BITS)
    cal = LUT_CALIBRATION_ECP5 if family == "ecp5" else LUT_CALIBRATION
    return {"est_lut4": round(luts * cal), "est_ff": int(ff)}


def estimate(ctx: FlowContext) -> dict:
    cfg, p = ctx.config, ctx.program
    clock = clock_mhz(cfg)
    total, rows = cycles(p, detail=True, stream=stream_timing(cfg))
    family = device(cfg.board)["family"] if cfg.board is not None else "ice40"
    res = estimate_luts(p, family)
    cache_bits = p.cache_depth * LANES * 8
    bias_bits = len(p.bias_table) * max(p.bias_width, 2)
    main_bits = p.depth * WORD_BITS
    if cfg.weights == "flash":  # the reader's FIFO (the words are in the flash)
        cache_bits += FLASH_FIFO_WORDS * WORD_BITS
    spram = cfg.board == "ice40-up5k"
    layers = [{"name": n, "cycles": c, "share": round(c / total, 4)} for n, c in rows]
    report = {
        "model": ctx.model_name, "model_sha256": ctx.model_hash, "architecture": "shared",
        "neurons": ctx.graph.neurons(), "time_steps": ctx.graph.time_steps(),
        "cycles_per_image": total, "latency_cycles": total, "layers": layers,
        "clock_mhz": clock, "images_per_s": round(clock * 1e6 / total, 3),
        "bottleneck": max(rows, key=lambda r: r[1])[0],
        **res, "est_bram_bits": cache_bits + bias_bits + (0 if spram else main_bits),
        "est_bram_blocks": block_count(
            memories(p, spram=spram,
                     flash_depth=FLASH_FIFO_WORDS if cfg.weights == "flash" else None), family),
        "est_spram_bits": main_bits if spram else 0, "est_dsp": 0,
        "memory_words": p.depth, "weight_words": p.weight_words, "lanes": LANES,
    }
    if cfg.weights == "flash":
        report["weights"] = "flash"
        report["flash_bytes"] = p.weight_words * WORD_BITS // 8
    if cfg.why:
        report["architecture_why"] = cfg.why
    if cfg.board is not None:
        dev = device(cfg.board)
        misses = []
        fill = cfg.lut_fill if cfg.lut_fill is not None else 0.8
        if res["est_lut4"] > dev["lut4"] * fill:
            misses.append(f"needs about {res['est_lut4']} LUT4, budget "
                          f"{int(dev['lut4'] * fill)} ({fill:.0%} of {dev['lut4']})")
        blocks, budget = report["est_bram_blocks"], bram_budget(family, dev["bram_blocks"])
        if blocks > budget:
            misses.append(f"needs about {blocks} {FAMILIES[family]['block']} block RAMs, the "
                          f"device has {dev['bram_blocks']}{margin_note(family)}")
        report["board"] = {"name": dev["name"], "fits": not misses, "lut4": dev["lut4"],
                           "bram_bits": dev["bram_bits"], "bram_blocks": dev["bram_blocks"],
                           "dsp": dev["dsp"]}
        if misses:
            raise BudgetError(f"{ctx.model_name} does not fit {dev['name']} (shared engine): "
                              + "; ".join(misses) + (f"; and {cfg.why}" if cfg.why else ""))
    if cfg.target_fps is not None and report["images_per_s"] < cfg.target_fps:
        raise BudgetError(f"the shared engine makes {report['images_per_s']:g} images/s at "
                          f"{clock:g} MHz, below --target-fps {cfg.target_fps:g}; the slowest "
                          f"instruction is {report['bottleneck']!r}")
    ctx.report = report
    return report


def assemble(ctx: FlowContext) -> dict:
    try:
        top = (flash_network(ctx.program) if ctx.config.weights == "flash"
               else SharedNetwork(ctx.program))
    except (TypeError, ValueError) as e:
        raise FlowError(f"model {ctx.model_name!r}: assembly failed: {e}") from None
    ctx.top = top
    return {"top": "SharedNetwork", "input_shape": list(top.input_shape),
            "num_classes": top.num_classes, "logit_width": top.logit_width,
            "cycles_per_image": top.cycles_per_image}


STEPS = {"infer": infer, "parallelism": parallelism, "memory": memory, "estimate": estimate,
         "assemble": assemble}
