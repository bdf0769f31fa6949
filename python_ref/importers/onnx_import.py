"""A float ONNX model (opsets 13 and newer, as ``torch.onnx.export`` writes them) to the
converter's float ops (:func:`python_ref.checkpoint.float_graph`'s format).

Steps: read and check the model (one input ``N x C x H x W``, one output); fold constants
(initializers, ``Constant`` nodes, nodes whose inputs are all constant, ``Shape`` of a static
tensor; nodes that only compute a ``Reshape``'s target shape are dropped); list every node whose
op is not supported, all at once; then map node by node (one handler per op type, below).
``docs/import.md`` is the reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from .common import UNIT_OPS, ModelImportError, sanitise_name, unique_name

__all__ = ["SUPPORTED_OPS", "import_onnx"]

#: ONNX op types the importer maps (what each becomes: docs/import.md).
SUPPORTED_OPS = ("Conv", "Gemm", "MatMul", "Add", "BatchNormalization", "Relu", "Clip",
                 "Sigmoid", "Mul", "Swish", "MaxPool", "AveragePool", "GlobalAveragePool",
                 "ReduceMean", "Flatten", "Reshape", "Unsqueeze", "Identity", "Dropout")

#: Why an op type that looks close to a supported one is refused (added to the error).
_REFUSED_HINTS = {
    "HardSwish": "no trained unit approximates it; use SiLU (x * Sigmoid(x)), the swish unit",
    "HardSigmoid": "no trained unit approximates it; use Sigmoid, the sigmoid unit",
}


@dataclass
class _Tensor:
    """An activation: the float op that computes it and its shape without the batch.

    ``shape`` is ``(C, H, W)`` or ``(F,)``; ``flat_from`` is the ``(C, H, W)`` a flat tensor
    was flattened from (a dense layer reading it takes its columns in ``(H, W, C)`` order, the
    float ops' layout); ``div`` is the divisor a ``gap`` (its H*W) or an ``avgpool`` (its
    k*k), both sums, left for the next conv or dense layer (1: none).
    """

    op: str
    shape: tuple
    flat_from: tuple | None = None
    div: int = 1


@dataclass
class _State:
    """The import in progress."""

    consts: dict  # tensor name -> numpy array
    shapes: dict  # tensor name -> static shape (from onnx shape inference), when known
    consumers: dict  # tensor name -> nodes reading it (through Identity / Dropout)
    readers: dict = field(default_factory=dict)  # tensor name -> those nodes
    silu: dict = field(default_factory=dict)  # Sigmoid output -> its input, for Mul(x, s)
    alias: dict = field(default_factory=dict)  # Identity / Dropout output -> the tensor it is
    acts: dict = field(default_factory=dict)  # tensor name -> _Tensor
    ops: list = field(default_factory=list)  # the float ops
    byname: dict = field(default_factory=dict)  # float op name -> op
    origin: dict = field(default_factory=dict)  # float op name -> its ONNX node's name and type
    taken: set = field(default_factory=lambda: {"input"})


def import_onnx(model) -> list:
    """The float ops of an ONNX model (a path or an ``onnx.ModelProto``).

    Returns
    -------
    list
        ``[{"name": "input", "op": "input", "shape": [H, W, C]}, ...]`` in topological order,
        layer names from the ONNX node names (:func:`~python_ref.importers.sanitise_name`).

    Raises
    ------
    ModelImportError
        A missing or unreadable file, a model with other than one input and one output, any
        unsupported node (all of them listed), or an unsupported attribute (naming the node).

    Notes
    -----
    A linear output (a conv / dense / add with no activation) that another layer reads is left
    as it is here; the converter puts an ``identity`` op after it
    (:func:`python_ref.importers.common.insert_identities`, called by
    :func:`python_ref.convert.calibrate` and :func:`python_ref.convert.quantise`).
    """
    m = _read(model)
    g = m.graph
    st = _State(consts={t.name: numpy_helper.to_array(t).astype(np.float64)
                        if numpy_helper.to_array(t).dtype.kind == "f"
                        else numpy_helper.to_array(t) for t in g.initializer},
                shapes=_static_shapes(m), consumers={})
    _add_input(st, g)
    nodes = _fold_constants(st, g)
    _count_readers(st, nodes)
    _check_supported(nodes)
    for k, n in enumerate(nodes):
        _HANDLERS[n.op_type](st, n, _node_name(st, n, k))
    return _finish(st, g)


def _count_readers(st: _State, nodes: list) -> None:
    """How many nodes read each tensor, an Identity / Dropout chain counted as its source."""
    for n in nodes:
        if n.op_type in ("Identity", "Dropout"):
            st.alias[n.output[0]] = st.alias.get(n.input[0], n.input[0])
        else:
            for i in n.input:
                src = st.alias.get(i, i)
                st.consumers[src] = st.consumers.get(src, 0) + 1
                st.readers.setdefault(src, []).append(n)


def _read(model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise ModelImportError(f"{path}: no such ONNX file")
    try:
        m = onnx.load(str(path))
        onnx.checker.check_model(m)
    except Exception as e:  # noqa: BLE001 - any unreadable file becomes one clear message
        raise ModelImportError(f"{path}: cannot be read as an ONNX model ({e})") from None
    return m


def _static_shapes(m: onnx.ModelProto) -> dict:
    """Tensor name -> shape tuple, ``None`` for a symbolic dimension (onnx shape inference)."""
    try:
        g = shape_inference.infer_shapes(m).graph
    except Exception:  # noqa: BLE001 - shapes are a help for Shape/Reshape, not required
        g = m.graph
    out = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                 for d in t.shape.dim)
    return out


def _add_input(st: _State, g) -> None:
    ins = [i for i in g.input if i.name not in st.consts]
    if len(ins) != 1:
        raise ModelImportError(f"the model has {len(ins)} inputs "
                               f"({', '.join(i.name for i in ins)}); it must have one, the "
                               "image (N x C x H x W)")
    shape = st.shapes.get(ins[0].name)
    if shape is None or len(shape) != 4 or any(d is None or d <= 0 for d in shape[1:]):
        raise ModelImportError(f"input {ins[0].name!r}: shape {shape} must be N x C x H x W "
                               "with C, H and W fixed (only the batch may be symbolic)")
    C, H, W = (int(d) for d in shape[1:])
    st.acts[ins[0].name] = _Tensor("input", (C, H, W))
    op = {"name": "input", "op": "input", "inputs": [], "shape": [H, W, C]}
    st.ops.append(op)
    st.byname["input"] = op


def _fold_constants(st: _State, g) -> list:
    """Fold every node that computes a constant; return the other nodes, in order."""
    shape_only = _shape_only_nodes(g)
    rest = []
    for n in g.node:
        if n.op_type == "Constant":
            st.consts[n.output[0]] = _eval(n, {})[0]
        elif n.op_type == "Shape" and _static(st, n.input[0]):
            st.consts[n.output[0]] = np.asarray(st.shapes[n.input[0]], np.int64)
        elif n.input and all(i in st.consts or not i for i in n.input):
            vals = _eval(n, {i: st.consts[i] for i in n.input if i})
            st.consts.update(zip(n.output, vals, strict=False))
        elif id(n) not in shape_only:
            rest.append(n)
    return rest


def _static(st: _State, name: str) -> bool:
    s = st.shapes.get(name)
    return s is not None and all(d is not None for d in s)


def _eval(n, feeds: dict) -> list:
    try:
        return [np.asarray(v) for v in ReferenceEvaluator(n).run(None, feeds)]
    except Exception as e:  # noqa: BLE001 - names the node whatever failed
        raise ModelImportError(f"node {n.name!r} ({n.op_type}): cannot fold this constant "
                               f"({e})") from None


def _shape_only_nodes(g) -> set:
    """Nodes (by id) whose outputs only feed a Reshape's target shape (a dynamic batch)."""
    readers: dict[str, list] = {}
    for n in g.node:
        for k, i in enumerate(n.input):
            readers.setdefault(i, []).append((n, k))
    outputs = {o.name for o in g.output}
    marked: set = set()
    for n in reversed(g.node):
        if n.op_type in ("Reshape",) or any(o in outputs for o in n.output):
            continue
        uses = [r for o in n.output for r in readers.get(o, [])]
        if uses and all((u.op_type == "Reshape" and k == 1) or id(u) in marked
                        for u, k in uses):
            marked.add(id(n))
    return marked


def _check_supported(nodes: list) -> None:
    bad = [n for n in nodes if n.op_type not in SUPPORTED_OPS]
    if bad:
        lines = "\n".join(f"  node {n.name!r}: {n.op_type}"
                          + (f" ({_REFUSED_HINTS[n.op_type]})" if n.op_type in _REFUSED_HINTS
                             else "") for n in bad)
        raise ModelImportError(f"{len(bad)} node(s) of an unsupported op type:\n{lines}\n"
                               f"supported: {', '.join(SUPPORTED_OPS)}")


def _node_name(st: _State, n, k: int) -> str:
    return unique_name(sanitise_name(n.name, f"{n.op_type}_{k}"), st.taken)


def _attrs(n) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}


def _act(st: _State, n, i: int = 0) -> _Tensor:
    name = n.input[i]
    if name not in st.acts:
        what = "a constant" if name in st.consts else "not computed by a supported node"
        raise ModelImportError(f"node {n.name!r} ({n.op_type}): input {name!r} is {what}; "
                               "an activation was expected")
    return st.acts[name]


def _const(st: _State, n, i: int, what: str) -> np.ndarray:
    name = n.input[i] if i < len(n.input) else ""
    if name not in st.consts:
        raise ModelImportError(f"node {n.name!r} ({n.op_type}): its {what} ({name!r}) must be "
                               "a constant (an initializer or folded)")
    return st.consts[name]


def _emit(st: _State, n, op: dict, shape: tuple, **kw) -> None:
    st.ops.append(op)
    st.byname[op["name"]] = op
    st.origin[op["name"]] = f"node {n.name!r} ({n.op_type})"
    st.acts[n.output[0]] = _Tensor(op["name"], shape, **kw)


def _alias(st: _State, n) -> None:
    """Identity / Dropout (inference): the output is the input."""
    st.acts[n.output[0]] = _act(st, n)


# ---------------------------------------------------------------------------------------------
# One handler per op type: (state, node, layer name)
# ---------------------------------------------------------------------------------------------


def _conv_geometry(n, a: dict, k: tuple) -> tuple[int, int]:
    """``(stride, padding)`` of a Conv or a pool, refusing what the description cannot hold."""
    where = f"node {n.name!r} ({n.op_type})"
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise ModelImportError(f"{where}: dilation {list(a['dilations'])} is not supported")
    if len(k) != 2 or k[0] != k[1]:
        raise ModelImportError(f"{where}: kernel {list(k)} must be square (k x k)")
    strides = list(a.get("strides", [1, 1]))
    if len(set(strides)) != 1:
        raise ModelImportError(f"{where}: strides {strides} must be equal")
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):
        raise ModelImportError(f"{where}: auto_pad {auto} is not supported; export with "
                               "explicit pads")
    pads = list(a.get("pads", [0, 0, 0, 0])) if auto == "NOTSET" else [0, 0, 0, 0]
    if len(set(pads)) != 1:
        raise ModelImportError(f"{where}: asymmetric padding {pads} (top, left, bottom, right) "
                               "is not supported; the padding must be the same on every side")
    return int(strides[0]), int(pads[0])


def _conv_groups(n, a: dict, x: _Tensor, w: np.ndarray) -> int:
    """A Conv's ``group``: 1, or the input channels with as many output channels
    (depthwise)."""
    group, C = int(a.get("group", 1)), x.shape[0]
    if group == 1:
        if w.shape[1] != C:
            raise ModelImportError(f"node {n.name!r} (Conv): weight has {w.shape[1]} input "
                                   f"channels, the input {C}")
        return 1
    if group != C:
        raise ModelImportError(f"node {n.name!r} (Conv): group = {group} is not supported; "
                               f"only 1 or the input channels ({C}, depthwise)")
    if w.shape[:2] != (C, 1):
        raise ModelImportError(f"node {n.name!r} (Conv): a depthwise conv (group = {C}) needs "
                               f"{C} output channels, one per input channel, not weight "
                               f"shape {list(w.shape)}")
    return group


def _conv_on_vector(st: _State, n, name: str, x: _Tensor, w: np.ndarray, a: dict) -> None:
    """A 1x1 Conv on a per-channel vector (``N x C x 1 x 1``, what a GlobalAveragePool or a
    ReduceMean with keepdims gives, as in squeeze-and-excitation): a dense layer."""
    where = f"node {n.name!r} (Conv)"
    if x.flat_from is not None or w.ndim != 4 or w.shape[2:] != (1, 1):
        raise ModelImportError(f"{where}: its input is flat {x.shape}; only a 1x1 Conv on a "
                               "pooled N x C x 1 x 1 tensor is taken (as a dense layer)")
    if int(a.get("group", 1)) != 1 or w.shape[1] != x.shape[0]:
        raise ModelImportError(f"{where}: a 1x1 Conv on a pooled vector of {x.shape[0]} "
                               f"channels needs group 1 and weight (O, {x.shape[0]}, 1, 1), "
                               f"not group {a.get('group', 1)} and {list(w.shape)}")
    stride, pad = _conv_geometry(n, a, w.shape[2:])
    if pad != 0:
        raise ModelImportError(f"{where}: padding {pad} on a 1 x 1 map is not supported")
    O = w.shape[0]
    b = _const(st, n, 2, "bias") if len(n.input) > 2 and n.input[2] else np.zeros(O)
    _dense(st, n, name, x, w.reshape(O, -1), np.asarray(b, np.float64).reshape(O))


def _conv(st: _State, n, name: str) -> None:
    x = _act(st, n)
    w = _const(st, n, 1, "weight")
    a = _attrs(n)
    if len(x.shape) == 1:
        _conv_on_vector(st, n, name, x, w, a)
        return
    stride, pad = _conv_geometry(n, a, w.shape[2:])
    groups = _conv_groups(n, a, x, w)
    O, k = w.shape[0], w.shape[2]
    b = _const(st, n, 2, "bias") if len(n.input) > 2 and n.input[2] else np.zeros(O)
    H, W = ((d + 2 * pad - k) // stride + 1 for d in x.shape[1:])
    op = {"name": name, "op": "conv", "inputs": [x.op],
          "w": w.transpose(0, 2, 3, 1) / x.div,
          "b": np.asarray(b, np.float64).reshape(O).copy(), "stride": stride, "padding": pad}
    if groups != 1:
        op["groups"] = groups
    _emit(st, n, op, (O, H, W))


def _pool(st: _State, n, name: str) -> None:
    """MaxPool and AveragePool (count_include_pad = 1 or no padding); an average pool is a
    window sum whose 1/(k*k) the next conv or dense layer carries."""
    x = _act(st, n)
    where = f"node {n.name!r} ({n.op_type})"
    if len(x.shape) != 3:
        raise ModelImportError(f"{where}: its input is flat {x.shape}")
    if len(n.output) > 1 and n.output[1]:
        raise ModelImportError(f"{where}: the Indices output is not supported")
    a = _attrs(n)
    for key in ("ceil_mode", "storage_order"):
        if a.get(key, 0):
            raise ModelImportError(f"{where}: {key} = {a[key]} is not supported (only 0)")
    k = list(a.get("kernel_shape", []))
    stride, pad = _conv_geometry(n, a, k)
    if not pad < k[0]:
        raise ModelImportError(f"{where}: padding {pad} must be smaller than the kernel {k[0]}")
    avg = n.op_type == "AveragePool"
    if avg and pad and not a.get("count_include_pad", 0):
        raise ModelImportError(f"{where}: count_include_pad = 0 with padding {pad} is not "
                               "supported (the windows at the border would divide by fewer "
                               "elements); export with count_include_pad = 1 or no padding")
    H, W = ((d + 2 * pad - k[0]) // stride + 1 for d in x.shape[1:])
    if H < 1 or W < 1:
        raise ModelImportError(f"{where}: the output would be empty ({H}x{W})")
    op = {"name": name, "op": "avgpool" if avg else "maxpool", "inputs": [x.op],
          "kernel": int(k[0]), "stride": stride, "padding": pad}
    _emit(st, n, op, (x.shape[0], H, W), div=x.div * (k[0] ** 2 if avg else 1))


def _dense(st: _State, n, name: str, x: _Tensor, w: np.ndarray, b: np.ndarray) -> None:
    """A dense layer ``w`` ``(O, I)`` reading ``x``; columns reordered for a flattened map and
    the pending 1/(H*W) of a ``gap`` folded in."""
    if len(x.shape) != 1:
        raise ModelImportError(f"node {n.name!r} ({n.op_type}): its input has shape {x.shape}; "
                               "flatten it first (Flatten / Reshape)")
    if w.shape[1] != x.shape[0]:
        raise ModelImportError(f"node {n.name!r} ({n.op_type}): weight takes {w.shape[1]} "
                               f"features, the input has {x.shape[0]}")
    if x.flat_from is not None:
        C, H, W = x.flat_from
        w = w.reshape(-1, C, H, W).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
    w = w / x.div
    O = w.shape[0]
    op = {"name": name, "op": "dense", "inputs": [x.op], "w": np.array(w, np.float64),
          "b": np.broadcast_to(np.asarray(b, np.float64), (O,)).copy()}
    _emit(st, n, op, (O,))


def _gemm(st: _State, n, name: str) -> None:
    a = _attrs(n)
    if a.get("transA", 0):
        raise ModelImportError(f"node {n.name!r} (Gemm): transA = 1 is not supported")
    w = _const(st, n, 1, "weight B")
    w = (w if a.get("transB", 0) else w.T) * a.get("alpha", 1.0)
    b = (_const(st, n, 2, "bias C").reshape(-1) * a.get("beta", 1.0)
         if len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0]))
    _dense(st, n, name, _act(st, n), w, b)


def _matmul(st: _State, n, name: str) -> None:
    w = _const(st, n, 1, "weight (second input)")
    if w.ndim != 2:
        raise ModelImportError(f"node {n.name!r} (MatMul): weight must be 2-D, not {w.shape}")
    _dense(st, n, name, _act(st, n), w.T, np.zeros(w.shape[1]))


def _foldable(st: _State, n, x: _Tensor, what: str) -> dict:
    """The conv / dense op computing ``x``, if ``n`` is its only reader; else an error."""
    op = st.byname[x.op]
    if op["op"] not in ("conv", "dense") or st.consumers.get(
            st.alias.get(n.input[0], n.input[0]), 0) != 1:
        raise ModelImportError(f"node {n.name!r} ({n.op_type}): {what} cannot be folded: its "
                               "input must be the output of a Conv / Gemm / MatMul that "
                               "nothing else reads")
    return op


def _channel_vector(st: _State, n, v: np.ndarray, O: int, what: str) -> np.ndarray:
    v = np.asarray(v, np.float64)
    if v.size == 1 or (v.size == O and max(v.shape, default=1) == O):
        return np.broadcast_to(v.reshape(-1), (O,)).copy()
    raise ModelImportError(f"node {n.name!r} ({n.op_type}): {what} of shape {v.shape} is not "
                           f"one value per channel ({O})")


def _add(st: _State, n, name: str) -> None:
    ins = list(n.input)
    const = [i for i in ins if i in st.consts]
    if len(const) == 2:
        raise ModelImportError(f"node {n.name!r} (Add): both inputs are constants")
    if const:  # a bias: folded into the conv / dense before
        if ins[0] in st.consts:
            n = onnx.helper.make_node("Add", ins[::-1], list(n.output), name=n.name)
        x = _act(st, n)
        op = _foldable(st, n, x, "the constant added")
        op["b"] = op["b"] + _channel_vector(st, n, st.consts[n.input[1]], len(op["b"]), "bias")
        st.acts[n.output[0]] = x
        return
    a, b = _act(st, n, 0), _act(st, n, 1)
    if a.shape != b.shape or a.flat_from or b.flat_from or a.div != 1 or b.div != 1:
        raise ModelImportError(f"node {n.name!r} (Add): inputs of shapes {a.shape} and "
                               f"{b.shape}; a residual add takes two maps of one shape")
    _emit(st, n, {"name": name, "op": "add", "inputs": [a.op, b.op]}, a.shape)


def _batchnorm(st: _State, n, name: str) -> None:
    x = _act(st, n)
    op = _foldable(st, n, x, "this BatchNormalization")
    O = len(op["b"])
    g, beta, mean, var = (_channel_vector(st, n, _const(st, n, i, what), O, what)
                          for i, what in ((1, "scale"), (2, "bias"), (3, "mean"),
                                          (4, "variance")))
    s = g / np.sqrt(var + _attrs(n).get("epsilon", 1e-5))
    op["w"] = op["w"] * s.reshape((O,) + (1,) * (op["w"].ndim - 1))
    op["b"] = (op["b"] - mean) * s + beta
    st.acts[n.output[0]] = x


def _non_negative(st: _State, op: dict) -> bool:
    """Whether the float op's output is >= 0 for every input: a ReLU, or a pool or gap of
    one."""
    while op["op"] in ("maxpool", "avgpool", "gap"):
        op = st.byname[op["inputs"][0]]
    return op["op"] in ("relu", "sigmoid")


def _relu(st: _State, n, name: str, cap: float | None = None) -> None:
    """A ReLU (with ``cap``: a Clip(0, cap)). On a non-negative tensor an uncapped ReLU is the
    identity and is dropped; after a MaxPool of a conv / add it moves before the MaxPool."""
    x = _act(st, n)
    src = st.byname[x.op]
    if cap is None and _non_negative(st, src):
        st.acts[n.output[0]] = x
        return
    if src["op"] in UNIT_OPS:
        raise ModelImportError(f"{st.origin[src['name']]} -> node {n.name!r} ({n.op_type}): an "
                               f"activation after a trained unit ({src['op']}) is not "
                               "supported")
    if x.div != 1:
        raise ModelImportError(f"{st.origin.get(x.op, x.op)} -> node {n.name!r} "
                               f"({n.op_type}): an activation after an average pool is not "
                               "supported; put it before the pool")
    op = {"name": name, "op": "relu", "inputs": [x.op]}
    if cap is not None:
        op["cap"] = cap
    if src["op"] == "maxpool" and not _non_negative(st, src):
        _relu_before_maxpool(st, n, op, src)
        return
    _emit(st, n, op, x.shape)


def _relu_before_maxpool(st: _State, n, relu: dict, mp: dict) -> None:
    """Conv -> MaxPool -> ReLU becomes Conv -> ReLU -> MaxPool: max commutes with a monotone
    unit, and ONNX's -inf padding equals zero padding once the values are >= 0."""
    if st.consumers.get(st.alias.get(n.input[0], n.input[0]), 0) != 1:
        raise ModelImportError(f"node {n.name!r} ({n.op_type}): the MaxPool before it "
                               f"({st.origin[mp['name']]}) is also read elsewhere, so the "
                               "activation cannot move before it; put the activation first")
    relu["inputs"] = list(mp["inputs"])
    st.ops.remove(mp)
    st.ops += [relu, mp]
    mp["inputs"] = [relu["name"]]
    st.byname[relu["name"]] = relu
    st.origin[relu["name"]] = f"node {n.name!r} ({n.op_type})"
    st.acts[n.output[0]] = st.acts[n.input[0]]


def _clip(st: _State, n, name: str) -> None:
    """Clip(0, +inf) is a ReLU; Clip(0, a) (ReLU6: a = 6) a ReLU whose calibrated clipping
    level is capped at ``a``."""
    a = _attrs(n)
    lo = a.get("min", _const(st, n, 1, "min") if len(n.input) > 1 and n.input[1] else None)
    hi = a.get("max", _const(st, n, 2, "max") if len(n.input) > 2 and n.input[2] else None)
    if lo is None or float(lo) != 0.0:
        raise ModelImportError(f"node {n.name!r} (Clip): min {lo} is not supported; only "
                               "Clip(0, a) maps to a ReLU")
    cap = None
    if hi is not None and np.isfinite(float(hi)):
        cap = float(hi)
        if not cap > 0:
            raise ModelImportError(f"node {n.name!r} (Clip): max {cap} must be positive")
    _relu(st, n, name, cap)


def _swish_mul(st: _State, n):
    """The Mul that makes Sigmoid node ``n`` a SiLU: the only reader of its output, whose other
    input is the Sigmoid's input (the same tensor, through Identity / Dropout); else None."""
    out, x = (st.alias.get(t, t) for t in (n.output[0], n.input[0]))
    readers = st.readers.get(out, [])
    if len(readers) != 1 or readers[0].op_type != "Mul" or len(readers[0].input) != 2:
        return None
    ins = [st.alias.get(t, t) for t in readers[0].input]
    return readers[0] if sorted(ins) == sorted([out, x]) and out != x else None


def _sigmoid(st: _State, n, name: str) -> None:
    """Sigmoid: the ``sigmoid`` unit; when a Mul multiplies its output by its own input (how
    PyTorch exports ``nn.SiLU``), nothing yet: that Mul becomes the ``swish`` unit."""
    x = _act(st, n)
    if _swish_mul(st, n) is not None:
        st.silu[st.alias.get(n.output[0], n.output[0])] = (st.alias.get(n.input[0], n.input[0]),
                                                           n)
        return
    _unit(st, n, name, "sigmoid", x)


_MUL_TAKEN = ("only x * Sigmoid(x) (SiLU / swish: the same tensor x on both sides) and the "
              "squeeze-and-excitation gate x * s (x the map output of a SiLU or Sigmoid, s a "
              "Sigmoid output of one value per channel, N x C x 1 x 1, or of x's shape) are "
              "supported")


def _mul(st: _State, n, name: str) -> None:
    """``Mul(x, Sigmoid(x))`` (either order): the ``swish`` unit, named after the Mul; else the
    squeeze-and-excitation gate (:func:`_gate`)."""
    ins = [st.alias.get(t, t) for t in n.input]
    for s, x in (ins, ins[::-1]):
        if s in st.silu and st.silu[s][0] == x:
            sig = st.silu[s][1]
            _unit(st, n, name, "swish", _act(st, n, ins.index(x)),
                  f"node {sig.name!r} (Sigmoid) and node {n.name!r} (Mul)")
            return
    consts = [t for t in ins if t in st.consts]
    if consts or len(ins) != 2:
        raise ModelImportError(f"node {n.name!r} (Mul): {_MUL_TAKEN}; a product by a "
                               f"constant ({', '.join(map(repr, consts))}) is not")
    _gate(st, n, name)


def _gate_operands(st: _State, n) -> tuple[_Tensor, _Tensor]:
    """The map ``x`` and the gate ``s`` of a Mul of two activations (``s`` the per-channel
    one when the shapes differ, else the Sigmoid output, else the second input), or an
    error naming the node."""
    a, b = _act(st, n, 0), _act(st, n, 1)
    if len(a.shape) == 1 and len(b.shape) == 3:
        a, b = b, a
    elif a.shape == b.shape and st.byname[a.op]["op"] == "sigmoid" != st.byname[b.op]["op"]:
        a, b = b, a
    same = a.shape == b.shape
    if not (same or (len(a.shape) == 3 and b.shape == (a.shape[0],))):
        raise ModelImportError(f"node {n.name!r} (Mul): {_MUL_TAKEN}; not inputs of shapes "
                               f"{a.shape} and {b.shape} (C x H x W, or C for N x C x 1 x 1)")
    for t in (a, b):
        if t.div != 1 or (t.flat_from is not None and not same):
            raise ModelImportError(f"node {n.name!r} (Mul): {_MUL_TAKEN}; input {t.op!r} is a "
                                   "pooled sum or a flattened map")
    return a, b


def _gate(st: _State, n, name: str) -> None:
    """``Mul(x, s)`` of two activations: the squeeze-and-excitation gate, a ``gate`` op
    ``[x, s]`` (the library's two-input ``mult`` unit); ``s`` is broadcast over ``x``'s H and
    W when it is one value per channel (``N x C x 1 x 1``). ``x`` must be a SiLU or Sigmoid
    output and ``s`` a Sigmoid output (the trained units' signed words the gate reads)."""
    x, s = _gate_operands(st, n)
    kinds = (st.byname[x.op]["op"], st.byname[s.op]["op"])
    if kinds[0] not in UNIT_OPS or kinds[1] != "sigmoid":
        raise ModelImportError(
            f"node {n.name!r} (Mul): {_MUL_TAKEN}; here x is "
            f"{st.origin.get(x.op, 'the input image')} ({kinds[0]}) and s is "
            f"{st.origin.get(s.op, 'the input image')} ({kinds[1]})")
    _emit(st, n, {"name": name, "op": "gate", "inputs": [x.op, s.op]}, x.shape,
          flat_from=x.flat_from)


def _swish(st: _State, n, name: str) -> None:
    """ONNX ``Swish`` (opset 24: ``x * Sigmoid(alpha * x)``) with ``alpha = 1``."""
    alpha = float(_attrs(n).get("alpha", 1.0))
    if alpha != 1.0:
        raise ModelImportError(f"node {n.name!r} (Swish): alpha = {alpha:g} is not supported; "
                               "the swish unit is x * sigmoid(x) (alpha = 1)")
    _unit(st, n, name, "swish", _act(st, n))


def _unit(st: _State, n, name: str, kind: str, x: _Tensor, origin: str | None = None) -> None:
    """A trained-unit op ``kind`` reading ``x``, which must be a conv / dense / add output."""
    where = origin or f"node {n.name!r} ({n.op_type})"
    if x.div != 1:
        raise ModelImportError(f"{where}: an activation after an average pool is not "
                               "supported; put it before the pool")
    src = st.byname[x.op]
    if src["op"] not in ("conv", "dense", "add"):
        what = st.origin.get(src["name"], "the input image")
        raise ModelImportError(f"{where}: the {kind} unit must read a Conv / Gemm / MatMul "
                               f"(or a residual Add) output, not that of {what} ({src['op']})")
    _emit(st, n, {"name": name, "op": kind, "inputs": [x.op]}, x.shape, flat_from=x.flat_from)
    st.origin[name] = where


def _gap(st: _State, n, name: str) -> None:
    x = _act(st, n)
    if len(x.shape) != 3:
        raise ModelImportError(f"node {n.name!r} ({n.op_type}): input {x.shape} is not a map")
    C, H, W = x.shape
    _emit(st, n, {"name": name, "op": "gap", "inputs": [x.op]}, (C,), div=x.div * H * W)


def _reduce_mean(st: _State, n, name: str) -> None:
    a = _attrs(n)
    axes = a.get("axes")
    if axes is None and len(n.input) > 1 and n.input[1]:
        axes = _const(st, n, 1, "axes")
    if axes is None or sorted(int(v) % 4 for v in np.ravel(axes)) != [2, 3]:
        raise ModelImportError(f"node {n.name!r} (ReduceMean): axes {axes} are not supported; "
                               "only the mean over H and W (axes 2, 3)")
    _gap(st, n, name)


def _channel_view(st: _State, n) -> bool:
    """Whether ``n`` (a Reshape or Unsqueeze) turns a per-channel vector ``N x C`` into
    ``N x C x 1 x 1`` (how a squeeze-and-excitation gate computed by Gemm layers is broadcast
    over the map); the vector is then kept as it is."""
    x = _act(st, n)
    if len(x.shape) != 1 or x.flat_from is not None:
        return False
    if n.op_type == "Unsqueeze":
        axes = _attrs(n).get("axes")
        if axes is None and len(n.input) > 1 and n.input[1] in st.consts:
            axes = st.consts[n.input[1]]
        return axes is not None and sorted(int(v) % 4 for v in np.ravel(axes)) == [2, 3]
    target = st.consts.get(n.input[1]) if len(n.input) > 1 else None
    if target is None:
        target = st.shapes.get(n.output[0])
    return (target is not None and len(target) == 4
            and tuple(int(v) if v is not None else None for v in target[1:])
            == (x.shape[0], 1, 1))


def _unsqueeze(st: _State, n, name: str) -> None:
    if not _channel_view(st, n):
        raise ModelImportError(f"node {n.name!r} (Unsqueeze): only N x C -> N x C x 1 x 1 "
                               "(axes 2, 3) of a pooled per-channel vector is supported")
    st.acts[n.output[0]] = _act(st, n)


def _flatten(st: _State, n, name: str) -> None:
    x = _act(st, n)
    if n.op_type == "Reshape" and _channel_view(st, n):
        st.acts[n.output[0]] = x
        return
    if n.op_type == "Flatten" and _attrs(n).get("axis", 1) != 1:
        raise ModelImportError(f"node {n.name!r} (Flatten): only axis = 1 is supported")
    if n.op_type == "Reshape":
        _check_reshape(st, n, x)
    if len(x.shape) == 1:
        st.acts[n.output[0]] = x
    elif x.shape[1:] == (1, 1):
        st.acts[n.output[0]] = _Tensor(x.op, (x.shape[0],), div=x.div)
    else:
        st.acts[n.output[0]] = _Tensor(x.op, (int(np.prod(x.shape)),), flat_from=x.shape,
                                       div=x.div)


def _check_reshape(st: _State, n, x: _Tensor) -> None:
    """A Reshape must flatten to ``N x F`` (or keep a flat tensor flat)."""
    F = int(np.prod(x.shape))
    target = st.consts.get(n.input[1])
    if target is None:
        target = st.shapes.get(n.output[0])
    ok = target is not None and len(target) == 2 and (
        target[1] in (-1, F) or (target[1] is None and target[0] not in (None, -1)))
    if not ok:
        raise ModelImportError(f"node {n.name!r} (Reshape): target shape "
                               f"{None if target is None else list(target)} is not supported; "
                               f"only a flatten to N x {F} before the classifier")


_HANDLERS = {"Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "Add": _add,
             "BatchNormalization": _batchnorm, "Relu": _relu, "Clip": _clip,
             "Sigmoid": _sigmoid, "Mul": _mul, "Swish": _swish,
             "MaxPool": _pool, "AveragePool": _pool, "GlobalAveragePool": _gap,
             "ReduceMean": _reduce_mean, "Flatten": _flatten,
             "Reshape": _flatten, "Unsqueeze": _unsqueeze,
             "Identity": lambda st, n, name: _alias(st, n),
             "Dropout": lambda st, n, name: _alias(st, n)}


def _check_pools(st: _State) -> None:
    """Every pool reads values that are >= 0: a MaxPool a ReLU (or a MaxPool), an AveragePool
    those, another AveragePool or the input."""
    allowed = {"maxpool": ("relu", "maxpool"), "avgpool": ("relu", "maxpool", "avgpool",
                                                           "input")}
    for o in st.ops:
        if o["op"] in allowed:
            src = st.byname[o["inputs"][0]]
            if src["op"] not in allowed[o["op"]]:
                what = st.origin.get(src["name"], "the input")
                if src["op"] in UNIT_OPS:
                    raise ModelImportError(
                        f"{st.origin[o['name']]}: its input ({what}) is a trained "
                        f"{src['op']} unit; a pool after a trained unit is not supported (a "
                        "pool must read a ReLU / Clip(0, a) activation)")
                raise ModelImportError(
                    f"{st.origin[o['name']]}: its input ({what}, {src['op']}) may be negative; "
                    "a pool must read a ReLU / Clip(0, a) activation (or another pool, or for "
                    "AveragePool the input image)")


def _finish(st: _State, g) -> list:
    """Check the pools' inputs and the output: exactly one, computed by the last dense
    layer."""
    _check_pools(st)
    if len(g.output) != 1:
        raise ModelImportError(f"the model has {len(g.output)} outputs "
                               f"({', '.join(o.name for o in g.output)}); it must have one, "
                               "the logits")
    out = g.output[0].name
    x = st.acts.get(out)
    if x is None or st.byname[x.op]["op"] != "dense" or x.op != st.ops[-1]["name"]:
        raise ModelImportError(f"output {out!r}: must be the logits of the last Gemm / MatMul "
                               "layer (the classifier)")
    return st.ops
