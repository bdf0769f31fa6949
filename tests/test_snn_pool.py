"""The integer reference of the pooling ops and depthwise conv (python_ref.snn) against nested
Python loops written here, whole networks (direct and bit-serial), spikes and SynOps."""
import numpy as np
import pytest
from test_ir_pool import pool_net

from python_ref import ir, snn


def loop_pool(a, k, s, p, how):
    """Max or sum over each k x k window of the zero-padded map, in Python integers."""
    N, H, W, C = a.shape
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    out = np.zeros((N, Ho, Wo, C), np.int64)
    for n in range(N):
        for i in range(Ho):
            for j in range(Wo):
                for c in range(C):
                    vals = []
                    for dy in range(k):
                        for dx in range(k):
                            y, x = i * s + dy - p, j * s + dx - p
                            inside = 0 <= y < H and 0 <= x < W
                            vals.append(int(a[n, y, x, c]) if inside else 0)
                    out[n, i, j, c] = max(vals) if how == "max" else sum(vals)
    return out


def loop_depthwise(a, w, b, s, p):
    """Depthwise convolution (one kernel per channel) in Python integers."""
    N, H, W, C = a.shape
    k = w.shape[1]
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    out = np.zeros((N, Ho, Wo, C), np.int64)
    for n in range(N):
        for i in range(Ho):
            for j in range(Wo):
                for c in range(C):
                    acc = 0 if b is None else int(b[c])
                    for dy in range(k):
                        for dx in range(k):
                            y, x = i * s + dy - p, j * s + dx - p
                            if 0 <= y < H and 0 <= x < W:
                                acc += int(a[n, y, x, c]) * int(w[c, dy, dx, 0])
                    out[n, i, j, c] = acc
    return out


def loop_cover(H, W, k, s, p):
    """How many windows cover each position, counted window by window."""
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    cover = np.zeros((H, W), np.int64)
    for i in range(Ho):
        for j in range(Wo):
            for dy in range(k):
                for dx in range(k):
                    y, x = i * s + dy - p, j * s + dx - p
                    if 0 <= y < H and 0 <= x < W:
                        cover[y, x] += 1
    return cover


GEOMETRIES = [(2, 2, 0), (3, 2, 1), (3, 1, 1), (1, 1, 0), (3, 3, 2), (2, 1, 1)]


@pytest.mark.parametrize("k,s,p", GEOMETRIES)
def test_pools_match_loops(k, s, p):
    a = np.random.default_rng(k * 100 + s * 10 + p).integers(0, 16, (2, 7, 6, 3))
    got_max, got_sum = snn.maxpool2d(a, k, s, p), snn.avgpool2d(a, k, s, p)
    assert got_max.dtype == np.int64 and got_sum.dtype == np.int64
    assert np.array_equal(got_max, loop_pool(a, k, s, p, "max"))
    assert np.array_equal(got_sum, loop_pool(a, k, s, p, "sum"))


@pytest.mark.parametrize("k,s,p", [(3, 1, 1), (3, 2, 1), (1, 1, 0), (5, 2, 2)])
def test_depthwise_conv_matches_loops_and_bitserial(k, s, p):
    rng = np.random.default_rng(k + s + p)
    a = rng.integers(0, 16, (2, 7, 6, 3))
    w = rng.integers(-127, 128, (3, k, k, 1)).astype(np.int8)
    b = rng.integers(-1000, 1000, 3).astype(np.int32)
    want = loop_depthwise(a, w, b, s, p)
    assert np.array_equal(snn.conv2d(a, w, b, s, p, groups=3), want)
    z, d = snn.input_spikes(a, 4)
    assert np.array_equal(snn.conv2d_bitserial(z, d, w, b, s, p, groups=3), want)


def test_depthwise_conv_shape_errors():
    a = np.zeros((1, 4, 4, 3), np.int64)
    with pytest.raises(ValueError, match="groups must be 1 or the input channels, not 2"):
        snn.conv2d(a, np.zeros((3, 3, 3, 1), np.int8), groups=2)
    with pytest.raises(ValueError, match=r"weight \(2, 3, 3, 1\) \(\(C, k, k, 1\)\) disagree"):
        snn.conv2d(a, np.zeros((2, 3, 3, 1), np.int8), groups=3)
    with pytest.raises(ValueError, match=r"pool input must be \(N, H, W, C\)"):
        snn.maxpool2d(np.zeros((2, 3), np.int64), 1, 1)


def test_fan_out_of_pools_and_depthwise():
    for op in ("maxpool", "avgpool"):
        node = {"name": "p", "op": op, "kernel": 3, "stride": 2, "padding": 1}
        fan = snn.fan_out((7, 6, 2), node)
        assert np.array_equal(fan, np.repeat(loop_cover(7, 6, 3, 2, 1)[..., None], 2, -1))
    dw = {"name": "d", "op": "conv", "kernel": 3, "stride": 1, "padding": 1, "out_channels": 2,
          "groups": 2}
    assert np.array_equal(snn.fan_out((5, 5, 2), dw),
                          np.repeat(loop_cover(5, 5, 3, 1, 1)[..., None], 2, -1))


def _popcount(a):
    return np.vectorize(lambda v: bin(int(v)).count("1"))(a).astype(np.int64)


def _layer_by_layer(g, x):
    """The network from the loops above and the per-op functions already tested elsewhere."""
    t = {"input": x.astype(np.int64)}
    for n in g.nodes[1:]:
        a = t[n["inputs"][0]]
        if n["op"] == "conv" and ir.conv_groups(n) != 1:
            t[n["name"]] = loop_depthwise(a, g.arrays[n["weight"]], g.arrays[n["bias"]],
                                          n["stride"], n["padding"])
        elif n["op"] == "conv":
            t[n["name"]] = snn.conv2d(a, g.arrays[n["weight"]], g.arrays[n["bias"]],
                                      n["stride"], n["padding"])
        elif n["op"] in ("maxpool", "avgpool"):
            how = "max" if n["op"] == "maxpool" else "sum"
            t[n["name"]] = loop_pool(a, n["kernel"], n["stride"], n["padding"], how)
        elif n["op"] == "amos":
            t[n["name"]] = snn.requant_unit([a], n["rshift"], g.unit(n["unit"]))[0]
        else:
            t[n["name"]] = snn.dense(a, g.arrays[n["weight"]])
    return t


def test_network_direct_and_bitserial_equal_the_loops():
    g = pool_net()
    x = np.random.default_rng(5).integers(0, 8, (4, 6, 6, 2), dtype=np.uint8)
    want = _layer_by_layer(g, x)
    r = snn.run(g, x, trace=True, batch_size=3)
    for name, v in want.items():
        assert np.array_equal(r.traces[name], v), name
    rb = snn.run(g, x, bitserial=True)
    assert np.array_equal(rb.logits, want["fc"])
    # spikes are counted at amos layers only, the pools emit none of their own
    assert set(r.spikes) == {"a1", "a2"}
    for k in ("a1", "a2"):
        want_spikes = _popcount(want[k]).reshape(4, -1).sum(1)
        assert np.array_equal(r.spikes[k], want_spikes)
        assert np.array_equal(rb.spikes[k], want_spikes)


def test_synops_count_pool_outputs_as_spikes():
    g = pool_net()
    x = np.random.default_rng(6).integers(0, 8, (3, 6, 6, 2), dtype=np.uint8)
    t = _layer_by_layer(g, x)
    r = snn.run(g, x, synops=True)

    def ops(src, per_elem):
        return (_popcount(t[src]) * per_elem).reshape(3, -1).sum(1)

    cover = loop_cover
    want_syn = {
        "mp": ops("a1", cover(6, 6, 2, 2, 0)[..., None]),
        "dw": ops("mp", cover(3, 3, 3, 1, 1)[..., None]),
        "ap": ops("a2", cover(3, 3, 3, 1, 1)[..., None]),
        "fc": ops("ap", 5),
    }
    want_in = {"c1": ops("input", 4 * cover(6, 6, 3, 1, 1)[..., None]),
               "ip": ops("input", cover(6, 6, 2, 2, 1)[..., None])}
    assert r.synops.keys() == want_syn.keys() and r.input_synops.keys() == want_in.keys()
    for k, v in want_syn.items():
        assert np.array_equal(r.synops[k], v), k
    for k, v in want_in.items():
        assert np.array_equal(r.input_synops[k], v), k


def test_pool_chain_on_the_input_counts_as_input_synops():
    g = pool_net()
    g.nodes.append({"name": "ip2", "op": "avgpool", "inputs": ["ip"], "kernel": 1, "stride": 1,
                    "padding": 0})
    x = np.random.default_rng(7).integers(0, 8, (2, 6, 6, 2), dtype=np.uint8)
    r = snn.run(g, x, synops=True, trace=["ip"])
    want = _popcount(r.traces["ip"]).reshape(2, -1).sum(1)
    assert np.array_equal(r.input_synops["ip2"], want)
    assert "ip2" not in r.synops
