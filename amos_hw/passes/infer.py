"""Step ``infer``: shapes, exact widths, and the hardware layer list (the plan).

The description's ops become *hardware layers*, each one engine:

* ``conv`` / ``dense`` followed by its only consumer, a ReLU ``amos`` op: one engine that
  requantises and emits spike words (``out_bits = K``, ``shift = rshift``);
* ``conv`` / ``dense`` whose consumers are ``add`` ops, or a network output: a *raw* engine
  (``out_bits=None``, ``shift=0``) that emits signed accumulators (residual main path,
  projection shortcut, logits);
* ``add`` followed by a ReLU ``amos``: the residual add engine. Its *main* input is the raw
  convolution on the longer path (more AMOS layers before it), the other input the skip;
* ``gap``: the pooling engine (its sums are the next dense layer's inputs).

Everything the engines cannot build is refused here, naming the layer, before any hardware is
built: an unknown op, a stride the conv engine does not support, a unit kind without hardware,
an ``amos`` op not fused into a layer, widths beyond the engines' limits.

Widths are derived the way the engines derive them (:func:`amos_hw.engines.dense
.accumulator_range`, :func:`python_ref.quant.signed_width`), so the plan states every stream's
element width before an engine exists.
"""
from __future__ import annotations

import math

import numpy as np

from amos_hw.engines.dense import accumulator_range
from amos_hw.passes.common import FlowContext, FlowError
from python_ref import ir
from python_ref.quant import requant_shift, signed_width

__all__ = ["infer", "lower", "SUPPORTED_STRIDES", "MAX_BITS"]

#: Strides the sliding window / conv engine is verified for (rtl_tests/test_engine_conv.py).
SUPPORTED_STRIDES = (1, 2)
#: Largest spike word (in_bits / out_bits) the engines take.
MAX_BITS = 16


def _err(name, msg):
    return FlowError(f"layer {name!r}: {msg}")


def _relu_K(g, node) -> int:
    spec = g.units.get(node["unit"], {})
    kind = spec.get("kind")
    if kind != "relu":
        raise _err(node["name"], f"unit {node['unit']!r} of kind {kind!r} has no hardware "
                                 f"(the engines implement unit kind 'relu' only)")
    if len(node["inputs"]) != 1:
        raise _err(node["name"], "a two-input amos op has no hardware")
    K = int(spec["K"])
    if K > MAX_BITS:
        raise _err(node["name"], f"K={K} is more than the engines' {MAX_BITS} spikes per value")
    return K


def _raw_width(w2d, bias, in_bits, shift) -> int:
    lo, hi = accumulator_range(w2d, bias, in_bits)
    v_lo, v_hi = (int(v) for v in requant_shift(np.array([lo, hi]), shift))
    return signed_width(v_lo, v_hi)


def lower(g) -> dict:
    """The hardware plan of a validated description (see the module docstring)."""
    try:
        info = ir.validate(g)
    except ir.IRError as e:
        raise FlowError(str(e)) from None
    nodes = g.index()
    consumers: dict[str, list[str]] = {n["name"]: [] for n in g.nodes}
    for n in g.nodes:
        for i in n.get("inputs", []):
            consumers[i].append(n["name"])
    depth: dict[str, int] = {}
    for n in g.nodes:
        d = max((depth[i] for i in n.get("inputs", [])), default=0)
        depth[n["name"]] = d + (n["op"] == "amos")

    inp = g.nodes[0]
    layers: list[dict] = []
    produced: dict[str, dict] = {}  # IR tensor -> hardware layer (or the input) producing it
    source_input = {"name": "input", "out_width": inp["bits"], "out_signed": False,
                    "out_shape": list(inp["shape"])}
    produced[inp["name"]] = source_input
    fused: set[str] = set()

    def spikes_from(name, src_tensor):
        src = produced[src_tensor]
        if src["out_signed"]:
            raise _err(name, f"its input {src_tensor!r} is a raw accumulator; the engines need "
                             f"spike words (a ReLU amos op in between)")
        if src["out_width"] > MAX_BITS:
            raise _err(name, f"its input is {src['out_width']} bits wide, more than the "
                             f"engines' {MAX_BITS}")
        return src

    for n in g.nodes[1:]:
        name, op = n["name"], n["op"]
        cons = [nodes[c] for c in consumers[name]]
        if op in ("conv", "dense"):
            src = spikes_from(name, n["inputs"][0])
            w = np.asarray(g.arrays[n["weight"]], dtype=np.int64)
            bkey = n.get("bias") or None
            b = (np.asarray(g.arrays[bkey], np.int64) if bkey else np.zeros(w.shape[0], np.int64))
            w2d = w.reshape(w.shape[0], -1)
            in_bits = src["out_width"]
            follow = cons[0] if len(cons) == 1 else None
            if follow is not None and follow["op"] == "amos":
                K = _relu_K(g, follow)
                out_name, out_bits, shift = follow["name"], K, int(follow["rshift"][0])
                fused.add(follow["name"])
                out_signed, out_width = False, K
            elif (cons and all(c["op"] == "add" for c in cons)) or (not cons
                                                                   and name in g.outputs):
                out_name, out_bits, shift = name, None, 0
                out_signed, out_width = True, _raw_width(w2d, b, in_bits, 0)
            else:
                raise _err(name, f"its output feeds {[c['name'] for c in cons]}; the engines "
                                 f"need a {op} followed by one ReLU amos op, add ops, or a "
                                 f"network output")
            spec = {"name": out_name, "kind": op, "ir_nodes": [name] + (
                [out_name] if out_name != name else []), "inputs": [src["name"]],
                "weight": n["weight"], "bias": bkey, "in_bits": in_bits, "shift": shift,
                "out_bits": out_bits, "out_signed": out_signed, "out_width": out_width,
                "out_shape": list(info[out_name]["shape"]), "depth": depth[out_name]}
            if op == "conv":
                H, W, C = info[n["inputs"][0]]["shape"]
                k, s, p = n["kernel"], n["stride"], n["padding"]
                if s not in SUPPORTED_STRIDES:
                    raise _err(name, f"stride {s} is not supported by the conv engine "
                                     f"(supported: {', '.join(map(str, SUPPORTED_STRIDES))})")
                if p >= k:
                    raise _err(name, f"padding {p} must be less than the kernel {k} for the "
                                     f"sliding window")
                spec.update(height=H, width=W, c_in=C, c_out=w.shape[0], kernel=k, stride=s,
                            padding=p)
            else:
                spec.update(n_in=w2d.shape[1], n_out=w.shape[0])
            layers.append(spec)
            produced[out_name] = spec
            if out_name != name:
                produced[name] = spec
        elif op == "add":
            if len(n["inputs"]) != 2:
                raise _err(name, f"the residual add engine takes 2 inputs, not "
                                 f"{len(n['inputs'])}")
            if len(cons) != 1 or cons[0]["op"] != "amos":
                raise _err(name, "the residual add engine needs one ReLU amos op after the add")
            follow = cons[0]
            K = _relu_K(g, follow)
            fused.add(follow["name"])
            srcs = [produced[i] for i in n["inputs"]]
            mains = [k for k, s in enumerate(srcs)
                     if s["name"] != "input" and s["out_signed"] and s["kind"] == "conv"
                     and n["lshift"][k] == 0]
            if not mains:
                raise _err(name, "the residual add engine needs a raw convolution with lshift 0 "
                                 "on one input (the block's last conv)")
            mk = max(mains, key=lambda k: (srcs[k]["depth"], k))
            sk = 1 - mk
            main, skip = srcs[mk], srcs[sk]
            shape = list(info[name]["shape"])
            spec = {"name": follow["name"], "kind": "add", "ir_nodes": [name, follow["name"]],
                    "inputs": [main["name"], skip["name"]], "main_width": main["out_width"],
                    "skip_bits": skip["out_width"], "skip_signed": skip["out_signed"],
                    "skip_shift": int(n["lshift"][sk]), "shift": int(follow["rshift"][0]),
                    "out_bits": K, "out_signed": False, "out_width": K, "out_shape": shape,
                    "depth": depth[follow["name"]], "height": shape[0], "width": shape[1],
                    "channels": shape[2]}
            if spec["skip_shift"] > 30:
                raise _err(name, f"skip shift {spec['skip_shift']} is more than the engine's 30")
            layers.append(spec)
            produced[name] = produced[follow["name"]] = spec
        elif op == "gap":
            src = spikes_from(name, n["inputs"][0])
            H, W, C = info[n["inputs"][0]]["shape"]
            K = src["out_width"]
            sum_bits = (H * W * (2**K - 1)).bit_length()
            spec = {"name": name, "kind": "gap", "ir_nodes": [name], "inputs": [src["name"]],
                    "height": H, "width": W, "channels": C, "in_bits": K, "out_bits": None,
                    "out_signed": False, "out_width": sum_bits, "out_shape": [C],
                    "depth": depth[name]}
            layers.append(spec)
            produced[name] = spec
        elif op == "amos":
            if name not in fused:
                src = nodes[n["inputs"][0]]
                raise _err(name, f"an amos op must directly follow a conv, dense or add "
                                 f"(the engines fuse them); it follows {src['op']} "
                                 f"{src['name']!r}")
        else:  # validate() knows every op; an op without an engine
            raise _err(name, f"op {op!r} has no engine")

    out_t = g.outputs[0]
    out = produced[out_t]
    if out["name"] == "input" or out.get("out_bits") is not None or len(out["out_shape"]) != 1:
        raise _err(out_t, "the network output must be the raw accumulators (logits) of a "
                          "dense layer")
    num_classes = out["out_shape"][0]
    if not 1 <= num_classes <= 16:
        raise _err(out_t, f"{num_classes} classes do not fit the 4-bit class field (1..16)")
    for lay in layers:
        if lay["kind"] in ("conv", "dense") and lay["in_bits"] > MAX_BITS:
            raise _err(lay["name"], f"inputs of {lay['in_bits']} bits are more than the "
                                    f"engines' {MAX_BITS}")
    return {"name": g.name, "input": {"shape": list(inp["shape"]), "bits": inp["bits"],
                                      "elements": math.prod(inp["shape"])},
            "num_classes": num_classes, "output": out["name"], "layers": layers,
            "neurons": g.neurons(), "time_steps": g.time_steps()}


def infer(ctx: FlowContext) -> dict:
    try:
        ctx.info = ir.validate(ctx.graph)
    except ir.IRError as e:
        raise FlowError(f"model {ctx.model_name!r}: {e}") from None
    ctx.plan = lower(ctx.graph)
    return ctx.plan
