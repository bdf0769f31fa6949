"""Step ``estimate``: cycles, latency and resources per layer and in total, before synthesis
(:func:`amos_hw.cost.totals`), and the device check when a board is given."""
from __future__ import annotations

from amos_hw import cost
from amos_hw.devices import clock_mhz, device, family
from amos_hw.passes.common import BudgetError, FlowContext

__all__ = ["estimate"]


def estimate(ctx: FlowContext) -> dict:
    cfg, plan = ctx.config, ctx.plan
    clock = clock_mhz(cfg)
    tot = cost.totals(plan, ctx.graph.arrays, clock, family(cfg.board))
    plan.latency_cycles = tot["latency_cycles"]
    plan.cycles_per_image = tot["cycles_per_image"]
    report = {"model": ctx.model_name, "model_sha256": ctx.model_hash,
              "neurons": plan.neurons, "time_steps": plan.time_steps,
              "parallelism": plan.parallelism, **tot}
    if cfg.board is not None:
        dev = device(cfg.board)
        ok, why = cost.check(tot, dev)
        report["board"] = {"name": dev["name"], "fits": ok, "lut4": dev["lut4"],
                           "bram_bits": dev["bram_bits"], "bram_blocks": dev["bram_blocks"],
                           "dsp": dev["dsp"]}
        if not ok:
            raise BudgetError(f"{ctx.model_name} does not fit {dev['name']}: {why}")
    ctx.report = report
    return report
