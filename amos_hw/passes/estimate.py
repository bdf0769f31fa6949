"""Step ``estimate``: cycles, latency and resources per layer and in total, before synthesis
(:func:`amos_hw.cost.totals`), and the device check when a board is given. With
``spike_counts`` the spike tally's figures (:meth:`amos_hw.lib.spike_tally.SpikeTally.figures`)
are added to the totals (``spike_tally`` in the report)."""
from __future__ import annotations

from amos_hw import cost
from amos_hw.devices import board_budget, clock_mhz, family
from amos_hw.lib.spike_tally import SpikeTally, spike_layers, tally_depth
from amos_hw.passes.common import BudgetError, FlowContext, FlowError

__all__ = ["estimate"]


def estimate(ctx: FlowContext) -> dict:
    cfg, plan = ctx.config, ctx.plan
    clock = clock_mhz(cfg)
    tot = cost.totals(plan, ctx.graph.arrays, clock, family(cfg.board))
    if cfg.spike_counts:
        _add_tally(tot, plan)
    for name, delay in tot.get("gate_delay_cycles", {}).items():
        if delay >= tot["cycles_per_image"]:
            raise FlowError(
                f"layer {name!r}: its gate vector arrives about {delay} cycles after the map's "
                f"last element (estimate), not within one image interval "
                f"({tot['cycles_per_image']} cycles): the gate engine would hold up the map's "
                f"producer and the reported interval would not be exact; fold the "
                f"squeeze-and-excitation layers (their dense engines) wider")
    plan.latency_cycles = tot["latency_cycles"]
    plan.cycles_per_image = tot["cycles_per_image"]
    report = {"model": ctx.model_name, "model_sha256": ctx.model_hash,
              "neurons": plan.neurons, "time_steps": plan.time_steps,
              "parallelism": plan.parallelism, **tot}
    if cfg.board is not None:
        dev = board_budget(cfg)
        ok, why = cost.check(tot, dev)
        report["board"] = {"name": dev["name"], "fits": ok, "lut4": dev["lut4"],
                           "bram_bits": dev["bram_bits"],
                           "bram_blocks": dev["bram_blocks"] + cfg.reserve_bram_blocks,
                           "dsp": dev["dsp"]}
        if cfg.reserve_bram_blocks:
            report["board"]["reserved_bram_blocks"] = cfg.reserve_bram_blocks
        if not ok:
            raise BudgetError(f"{ctx.model_name} does not fit {dev['name']}: {why}")
    ctx.report = report
    return report


def _add_tally(tot: dict, plan) -> None:
    """The spike tally's LUT4 / FF estimate into ``tot``."""
    layers = spike_layers(plan.layers)
    if not layers:
        raise FlowError(f"--spike-counts: model {plan.name!r} has no AMOS layer whose spikes "
                        f"could be counted")
    depth = tally_depth(tot["latency_cycles"], tot["cycles_per_image"])
    fig = SpikeTally.figures(layers, image_bytes=plan.input_elements, depth=depth)
    tot["spike_tally"] = {"layers": [s.name for s in layers], "depth": depth,
                          "est_lut4": fig["lut4"], "est_ff": fig["ff"]}
    tot["est_lut4"] += fig["lut4"]
    tot["est_ff"] += fig["ff"]
