"""Sizing the skip FIFOs of residual adds and the map memories of gates (the generator's
``memory`` step).

A residual block's input is broadcast to its main path (one or two convolutions) and to its skip
path (directly, or through a 1x1 projection convolution); the add engine takes one word of each
at a time, so the skip words wait in a FIFO while the main path works. Each convolution's line
buffer lets it read ahead of its output by at most its :func:`~amos_hw.engines.window
.line_buffer_rows` rows (a pointwise convolution's FIFO two pixels, counted as whole rows:
:func:`~amos_hw.engines.figures.window_held_rows`), so the skip path can run ahead of the main
path by at most the sum of those rows over the main path, plus two rows of pipeline slack; the
FIFO holds that many rows of the add's stream (a smaller FIFO would stall the broadcast and
deadlock the block). A squeeze-and-excitation gate on the main path emits nothing before its
whole map is in, so there the FIFO holds at least the whole image (its height in rows) plus the
slack: the image's next rows then wait upstream while the gate waits for its gate vector. The
projection case counts its rows at the add's (output) resolution, which over-provisions.

A squeeze-and-excitation gate holds its map until the gate computed from that whole map comes
in; meanwhile the next map arrives. Its memory holds one map and the estimated backlog of the
next (:func:`amos_hw.cost.gate_backlog`) with a margin (:func:`gate_map_words`), at most two
maps. A smaller backlog than estimated costs no correctness: the map's producer waits.
"""
from __future__ import annotations

import math

from amos_hw import cost
from amos_hw.engines.figures import is_pointwise, window_held_rows
from amos_hw.errors import FlowError
from amos_hw.plan import AddLayer, ConvLayer, GateLayer, NetworkPlan, WindowLayer

__all__ = ["SLACK_ROWS", "SLACK_WORDS", "BACKLOG_MARGIN", "WINDOW_FIFO_ROWS", "skip_depth",
           "assign_window_fifos", "assign_skip_fifos", "gate_map_words", "assign_gate_buffers"]

SLACK_ROWS = 2
#: Rows of a pointwise convolution's window FIFO (the line buffer's it replaces).
WINDOW_FIFO_ROWS = 2
SLACK_WORDS = 16
#: The gate's backlog estimate is multiplied by this (and :data:`SLACK_WORDS` added).
BACKLOG_MARGIN = 1.25


def skip_depth(plan: NetworkPlan, lay: AddLayer) -> tuple[int, int]:
    """Words of ``lay``'s skip FIFO and the rows they hold."""
    by_name = plan.by_name()
    main = by_name[lay.inputs[0]]
    skip_src = lay.inputs[1]
    fork = skip_src
    if isinstance(by_name.get(skip_src), ConvLayer) and by_name[skip_src].out_signed:
        fork = by_name[skip_src].inputs[0]  # the projection reads the block input
    rows = 0
    whole = False  # a gate on the main path: it holds a whole map before its first output
    cur = main
    for _ in range(len(plan.layers) + 1):
        if isinstance(cur, (ConvLayer, WindowLayer)):  # a window op has the same line buffer
            rows += window_held_rows(cur.height, cur.width, cur.kernel, cur.stride,
                                     cur.padding, getattr(cur, "fifo_rows", 0))
        whole |= isinstance(cur, GateLayer)
        src = cur.inputs[0]
        if src == fork:
            break
        if src not in by_name:
            raise FlowError(f"layer {lay.name!r}: the main path does not lead back to the "
                            f"skip input {skip_src!r}")
        cur = by_name[src]
    else:  # pragma: no cover - a plan is a DAG
        raise FlowError(f"layer {lay.name!r}: cannot trace the main path")
    if whole:  # the skip holds all of an image before the main path's first word comes
        rows = max(rows, lay.out_shape[0])
    rows += SLACK_ROWS
    row_words = lay.width * lay.channels // lay.lanes
    return rows * row_words + SLACK_WORDS, rows


def assign_window_fifos(plan: NetworkPlan) -> dict:
    """Set ``fifo_rows`` of every pointwise convolution of a folded plan to
    :data:`WINDOW_FIFO_ROWS`, the capacity of the line buffer it replaces. The two-pixel form
    (``fifo_rows = 0``) keeps the engine exact alone, but not the pipeline: on an ECP5-85F
    folding of a random-weight effnet_cifar it measured 577,917 cycles per image against the
    report's 524,288 (a convolution with its next pixel's words still coming blocks the
    producer, and back up the line the bottleneck), whether or not the convolutions near the
    bottleneck had two rows; two rows everywhere measured 524,288. Returns the rows given, by
    layer."""
    out = {}
    for lay in plan.layers:
        if isinstance(lay, ConvLayer) and is_pointwise(lay.kernel, lay.stride, lay.padding):
            lay.fifo_rows = WINDOW_FIFO_ROWS
            out[lay.name] = lay.fifo_rows
    return out


def assign_skip_fifos(plan: NetworkPlan) -> dict:
    """Set ``skip_depth`` of every add layer of a folded plan; return a summary."""
    out = {}
    for lay in plan.layers:
        if isinstance(lay, AddLayer):
            depth, rows = skip_depth(plan, lay)
            lay.skip_depth = depth
            out[lay.name] = {"skip_depth_words": depth, "skip_rows": rows,
                             "skip_bits": depth * lay.lanes * lay.skip_bits}
    return out


def gate_map_words(lay: GateLayer, backlog: float) -> int:
    """Words of a gate's map memory: one map and ``backlog`` words (times
    :data:`BACKLOG_MARGIN`, plus :data:`SLACK_WORDS`), at most two maps."""
    words = lay.elements // lay.lanes
    return min(2 * words, words + math.ceil(backlog * BACKLOG_MARGIN) + SLACK_WORDS)


def assign_gate_buffers(plan: NetworkPlan, arrays: dict) -> dict:
    """Set ``map_words`` of every gate layer of a folded plan (skip FIFOs assigned); return a
    summary."""
    gates = [lay for lay in plan.layers if isinstance(lay, GateLayer)]
    if not gates:
        return {}
    for lay in gates:  # the estimate's rows with two maps: the memory moves no latency
        lay.map_words = 0
    backlog = cost.gate_backlog(plan, cost.layer_rows(plan, arrays))
    out = {}
    for lay in gates:
        lay.map_words = gate_map_words(lay, backlog[lay.name])
        out[lay.name] = {"map_words": lay.map_words, "map_backlog_words": round(backlog[lay.name])}
    return out
