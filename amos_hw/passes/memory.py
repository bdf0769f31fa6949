"""Step ``memory``: size the skip FIFOs of residual adds and list every layer's memories.

A residual block's input is broadcast to its main path (one or two convolutions) and to its skip
path (directly, or through a 1x1 projection convolution); the add engine takes one word of each
at a time, so the skip words wait in a FIFO while the main path works. Each convolution's line
buffer lets it read ahead of its output by at most its :func:`~amos_hw.engines.window
.line_buffer_rows` rows, so the skip path can run ahead of the main path by at most the sum of
those rows over the main path, plus two rows of pipeline slack; the FIFO holds that many rows of
the add's stream (a smaller FIFO would stall the broadcast and deadlock the block). The
projection case counts its rows at the add's (output) resolution, which over-provisions.

Memories: the engines keep weights, biases, line buffers, input buffers and FIFOs in
:class:`amaranth.lib.memory.Memory`; all of them are counted as block RAM bits
(``bram_bits``), the register rings of the pooling engine as flip-flops.
"""
from __future__ import annotations

from amos_hw.engines.window import line_buffer_rows
from amos_hw.passes.common import FlowContext, FlowError

__all__ = ["memory", "assign"]

SLACK_ROWS = 2
SLACK_WORDS = 16


def _skip_depth(plan: dict, spec: dict) -> tuple[int, int]:
    by_name = {s["name"]: s for s in plan["layers"]}
    main = by_name[spec["inputs"][0]]
    skip_src = spec["inputs"][1]
    fork = skip_src
    if skip_src in by_name and by_name[skip_src]["kind"] == "conv" \
            and by_name[skip_src]["out_signed"]:
        fork = by_name[skip_src]["inputs"][0]  # the projection reads the block input
    rows = 0
    cur = main
    for _ in range(len(plan["layers"]) + 1):
        if cur["kind"] == "conv":
            rows += line_buffer_rows(cur["height"], cur["kernel"], cur["stride"],
                                     cur["padding"])
        src = cur["inputs"][0]
        if src == fork:
            break
        if src not in by_name:
            raise FlowError(f"layer {spec['name']!r}: the main path does not lead back to the "
                            f"skip input {skip_src!r}")
        cur = by_name[src]
    else:  # pragma: no cover - a plan is a DAG
        raise FlowError(f"layer {spec['name']!r}: cannot trace the main path")
    rows += SLACK_ROWS
    row_words = spec["width"] * spec["channels"] // spec["lanes"]
    return rows * row_words + SLACK_WORDS, rows


def assign(plan: dict) -> dict:
    """Set ``skip_depth`` of every add layer; return a summary."""
    out = {}
    for spec in plan["layers"]:
        if spec["kind"] == "add":
            depth, rows = _skip_depth(plan, spec)
            spec["skip_depth"] = depth
            out[spec["name"]] = {"skip_depth_words": depth, "skip_rows": rows,
                                 "skip_bits": depth * spec["lanes"] * spec["skip_bits"]}
    return out


def memory(ctx: FlowContext) -> dict:
    fifos = assign(ctx.plan)
    from amos_hw.passes.estimate import layer_estimates

    mems = {e["name"]: {"bram_bits": e["est_bram_bits"]}
            for e in layer_estimates(ctx.plan, ctx.graph.arrays)}
    for name, f in fifos.items():
        mems[name].update(f)
    return {"layers": mems}
