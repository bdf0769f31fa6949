"""Gate engine: the squeeze-and-excitation gate, every map value times its channel's gate, with a
trained two-input AMOS unit."""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import counter
from amos_hw.engines.gate_params import GateParams, port_range
from amos_hw.engines.unit import SerialLanes
from amos_hw.engines.unit_params import COUNT_WIDTH
from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.bram import style_attrs
from python_ref.quant import requant_shift

__all__ = ["GateEngine"]


def _shape(width: int, is_signed: bool):
    return signed(width) if is_signed else unsigned(width)


class GateEngine(wiring.Component):
    """``y[h, w, c] = sum_i d_i z_i(v1, v2)`` with ``v1 = requant_shift(x[h, w, c], S1)`` and
    ``v2 = requant_shift(g[c], S2)``: a two-input ``amos`` op whose second input ``g`` (one
    value a channel) is broadcast over the map ``x``.

    The integer semantics are :class:`python_ref.quant.IntAmosUnit`'s with two inputs:
    ``requant_shift(a, S) = (a + 2**(S-1)) >> S`` (``S = 0``: ``a``), ``v1`` / ``v2``
    saturated to the unit's ``in_range`` / ``in2_range``, then the ``K`` neurons fire in order,
    ``z_k = [c_k*v1 + c2_k*v2 - sum_{j<k} h_kj z_j - T_k >= 0]``, and ``y = sum_k d_k z_k``
    leaves as a two's-complement word of ``y_width = signed_width(sum of the negative d_k, sum
    of the positive d_k)`` bits, which the next engine reads bit-serially.

    In a squeeze-and-excitation block the gate of an image is computed from the whole map (a
    global average pool, two dense layers), so it arrives after the map's last word. The engine
    therefore writes each map into a ring of ``map_words`` words (by default two maps; written
    one word a cycle while a word is free) and the gate into a memory of two gate vectors; an
    image is read out, one word a cycle, once its map and its whole gate are in, each word with
    the gate word of its channels (``lanes`` divides ``channels``, so a word's lanes are
    consecutive channels of one pixel). The map of image ``n + 1`` is written while image ``n``
    is read, and the gate of ``n + 1`` while ``n``'s is used: the map's producer (which also
    feeds the pool that makes the gate) never waits on the gate of its own image, so the
    pipeline cannot deadlock.

    Throughput: one word (``lanes`` values) a cycle in, one out; :attr:`expected_cycles` =
    ``elements / lanes`` per image, while fewer than ``words`` words of the next map arrive up
    to each gate's last word (:attr:`GateParams.cycles
    <amos_hw.engines.gate_params.GateParams.cycles>`).
    Latency: :attr:`latency` = ``K + 5`` cycles from the transfer of an image's last gate word
    (map complete, previous image read out, output ready) to its first output word.

    The serial form (``serial=n``): the unit is :class:`~amos_hw.engines.unit.SerialLanes`,
    ``n`` time-serial units (one a lane, ``lanes = n``) behind a pacer that takes a word every
    ``K`` cycles; the read side issues a word only when the unit takes one (its pipeline holds
    on the unit's ready), so the map is read one word every ``K`` cycles:
    :attr:`expected_cycles` = ``K * elements / lanes``, :attr:`latency` = ``3 + K * D + 1``.

    Parameters
    ----------
    unit : python_ref.quant.IntAmosUnit
        The integer unit; two inputs.
    channels : int
        ``C``, the gate vector's length and the map's last axis.
    elements : int
        Values of one map, ``H * W * C`` (or ``C`` for a vector).
    x_width, g_width : int
        Widths of a map value and of a gate value on the ports (1..32).
    shifts : (int, int)
        ``(S1, S2)``, 0..62 each.
    lanes : int
        Values per word on every stream; divides ``channels``.
    x_signed, g_signed : bool
        The ports carry two's-complement words (a trained unit's ``y``), else unsigned ones
        (ReLU spike words). Default: signed.
    name : str
        Layer name for error messages.
    serial : int, optional
        ``n``: ``n`` serial units (``lanes`` 1 or ``n``) instead of the pipelined
        :class:`~amos_hw.lib.amos_unit.AmosUnit`. Default ``None``.
    depth : int, optional
        ``D`` of each serial unit (1..16, ``gcd(K, D) = 1``); serial form only.
    map_words : int, optional
        Words of the map memory, one map (``elements / lanes``) to two (the default): one
        map and the words of the next that arrive before its gate is in and its reading
        catches up (:func:`amos_hw.buffers.gate_map_words`).

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(x_shape, lanes)))``
        The map, in HWC order.
    skip : ``In(stream.Signature(ArrayLayout(g_shape, lanes)))``
        The gate vectors, ``channels / lanes`` words an image (named as the residual add's second
        input, so that :class:`amos_hw.top.NetworkTop` wires it the same way).
    o : ``Out(stream.Signature(ArrayLayout(signed(y_width), lanes)))``
        Outputs ``y``, in the map's order.
    spike_count : ``Out(32)``
        Spikes ``z`` of every output word handed on so far (wraps around); a transfer is
        included two clock edges after it (:mod:`amos_hw.lib.spike_tally`).
    """

    def __init__(self, unit, *, channels, elements, x_width, g_width, shifts=(0, 0), lanes=1,
                 x_signed=True, g_signed=True, name="gate", serial=None, depth=None,
                 map_words=None, lut_memories=()):
        p = GateParams.check(unit, channels=channels, elements=elements, x_width=x_width,
                             g_width=g_width, shifts=shifts, lanes=lanes, x_signed=x_signed,
                             g_signed=g_signed, name=name, serial=serial, depth=depth,
                             map_words=map_words, lut_memories=lut_memories)
        self._p = p
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(_shape(p.x_width, p.x_signed), p.lanes))),
            "skip": In(stream.Signature(data.ArrayLayout(_shape(p.g_width, p.g_signed),
                                                         p.lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(p.y_width), p.lanes))),
            "spike_count": Out(COUNT_WIDTH),
        })

    @staticmethod
    def figures(unit, *, channels, elements, x_width, g_width, shifts=(0, 0), lanes=1,
                x_signed=True, g_signed=True, name="gate", serial=None, depth=None,
                map_words=None, lut_memories=()):
        """The figures of the engine these arguments would build, without building it: the
        constructor's arguments and checks (same errors), then
        :meth:`amos_hw.engines.gate_params.GateParams.figures`."""
        return GateParams.check(unit, channels=channels, elements=elements, x_width=x_width,
                                g_width=g_width, shifts=shifts, lanes=lanes, x_signed=x_signed,
                                g_signed=g_signed, name=name, serial=serial,
                                depth=depth, map_words=map_words,
                                lut_memories=lut_memories).figures()

    params = property(lambda self: self._p, doc="The checked parameters (GateParams).")
    name = property(lambda self: self._p.name)
    unit = property(lambda self: self._p.unit, doc="The integer unit (IntAmosUnit).")
    K = property(lambda self: self._p.K, doc="Neurons of the unit.")
    lanes = property(lambda self: self._p.lanes)
    serial = property(lambda self: self._p.serial,
                      doc="Serial units (one a lane), or None: the pipelined form.")
    depth = property(lambda self: self._p.depth, doc="D of the serial units (or None).")
    pe = property(lambda self: self._p.lanes, doc="Output lanes (as the other engines' ``pe``).")
    simd = property(lambda self: self._p.lanes, doc="Input lanes.")
    channels = property(lambda self: self._p.channels)
    elements = property(lambda self: self._p.elements, doc="Values of one map.")
    y_width = property(lambda self: self._p.y_width, doc="Signed width of y.")
    out_width = property(lambda self: self._p.y_width, doc="Signed width of y.")
    # the figures: GateParams's formulas (see there)
    expected_cycles = property(lambda self: self._p.cycles,
                               doc="Cycles per image: one word a cycle in and out.")
    latency = property(lambda self: self._p.latency,
                       doc="Cycles from an image's last gate word to its first output: K + 5.")
    memories = property(lambda self: list(self._p.memories),
                        doc="The map and gate memories, as :class:`~amos_hw.lib.bram.MemShape`.")
    memory_bits = property(lambda self: self._p.memory_bits,
                           doc="Bits of two maps and two gate vectors.")
    flip_flops = property(lambda self: self._p.flip_flops, doc="Flip-flop estimate.")
    luts = property(lambda self: self._p.luts, doc="LUT4 estimate (GateParams.luts).")

    def model(self, x, g):
        """Bit-exact reference: ``y`` of the unit for maps ``x`` and gates ``g``.

        Parameters
        ----------
        x : array_like of int, shape ``(..., elements)`` or ``(..., H, W, C)``
            Maps, channels last.
        g : array_like of int, shape ``(..., channels)``
            One gate vector per map, broadcast over the map's leading axes.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            ``y`` (the shape of ``x``) and the spikes of each value, both int64.

        Raises
        ------
        TypeError
            The values are not integers.
        ValueError
            A value does not fit its port, or the shapes do not match.
        """
        p = self._p
        x, g = np.asarray(x), np.asarray(g)
        for what, a, w, s in (("x", x, p.x_width, p.x_signed), ("g", g, p.g_width, p.g_signed)):
            if a.dtype.kind not in "iu":
                raise TypeError(f"{p.name}: {what} must hold integers, not {a.dtype}")
            lo, hi = port_range(w, s)
            if a.size and (int(a.min()) < lo or int(a.max()) > hi):
                raise ValueError(f"{p.name}: {what} must lie in {lo}..{hi}")
        if g.shape[-1:] != (p.channels,) or x.shape[-1] % p.channels:
            raise ValueError(f"{p.name}: g must end in {p.channels} channels and x in a "
                             f"multiple of them, not {g.shape} and {x.shape}")
        lead = x.shape[:-1] + (x.shape[-1] // p.channels, p.channels)
        xs = x.astype(np.int64).reshape(lead)
        gs = g.astype(np.int64).reshape(g.shape[:-1] + (1,) * (len(lead) - g.ndim) + (p.channels,))
        v1 = requant_shift(xs, p.shifts[0])
        v2 = np.broadcast_to(requant_shift(gs, p.shifts[1]), v1.shape)
        z = p.unit.spikes(v1, v2)
        y = z.astype(np.int64) @ p.unit.d.astype(np.int64)
        return y.reshape(x.shape), z.sum(-1, dtype=np.int64).reshape(x.shape)

    # -- hardware -------------------------------------------------------------------------------
    def _write_map(self, m, wr):
        """The map's write side: a ring of two maps, a word taken while one is free. Returns
        (taken, the last word of a map taken)."""
        p = self._p
        D, W = p.map_depth, p.words
        waddr = counter(D, "map_waddr")
        wword = counter(W, "map_wword")  # word of the map being written
        take = Signal()
        m.d.comb += [
            take.eq(self.i.valid & self.i.ready),
            wr.en.eq(take),
            wr.addr.eq(waddr),
            wr.data.eq(self.i.payload.as_value()),
        ]
        with m.If(take):
            m.d.sync += waddr.eq(Mux(waddr == D - 1, 0, waddr + 1))
            m.d.sync += wword.eq(Mux(wword == W - 1, 0, wword + 1))
        done = take & (wword == W - 1)
        return take, done

    def _write_gate(self, m, wr, gfull):
        """The gate's write side: two banks of ``gate_words`` words, a bank taken while free.
        Returns the bank flags set this cycle."""
        p = self._p
        CW = p.gate_words
        wbank = Signal(name="gate_wbank")
        wcnt = counter(CW, "gate_wcnt")
        take = Signal()
        set_full = Signal(2)
        m.d.comb += [
            self.skip.ready.eq(~gfull.bit_select(wbank, 1)),
            take.eq(self.skip.valid & self.skip.ready),
            wr.en.eq(take),
            wr.addr.eq(Mux(wbank, CW, 0) + wcnt),
            wr.data.eq(self.skip.payload.as_value()),
        ]
        with m.If(take):
            m.d.sync += wcnt.eq(Mux(wcnt == CW - 1, 0, wcnt + 1))
            with m.If(wcnt == CW - 1):
                m.d.sync += wbank.eq(~wbank)
                m.d.comb += set_full.eq(Mux(wbank, 2, 1))
        return set_full

    def elaborate(self, platform):
        m = Module()
        p = self._p
        L, D, W, CW = p.lanes, p.map_depth, p.words, p.gate_words
        m.submodules.map_mem = mmem = Memory(shape=unsigned(L * p.x_width), depth=D, init=[],
                                             attrs=style_attrs("map", False, p.lut_memories))
        m.submodules.gate_mem = gmem = Memory(shape=unsigned(L * p.g_width), depth=2 * CW,
                                              init=[],
                                              attrs=style_attrs("gate", False, p.lut_memories))
        m_wr, m_rd = mmem.write_port(), mmem.read_port()
        g_wr, g_rd = gmem.write_port(), gmem.read_port()
        if p.serial:
            amos = SerialLanes(p.unit, p.v1_width, in2_width=p.v2_width, lanes=L,
                               depth=p.depth)
        else:
            amos = AmosUnit(p.unit, p.v1_width, in2_width=p.v2_width, lanes=L,
                            count_width=COUNT_WIDTH)
        m.submodules.amos = amos
        if amos.y_width != p.y_width:  # one formula in both; a change in one must show here
            raise AssertionError(f"{p.name}: AmosUnit's y is {amos.y_width} bits, the engine's "
                                 f"{p.y_width}")
        gfull = Signal(2)  # gate bank k holds a whole gate vector not yet read out
        used = Signal(range(D + 1))  # map words written and not yet read
        maps = Signal(range(3))  # whole maps written whose reading has not begun
        m_take, m_done = self._write_map(m, m_wr)
        set_full = self._write_gate(m, g_wr, gfull)
        m.d.comb += self.i.ready.eq(used != D)

        # the read side: issue a word's reads (map and gate), register them (the memories'
        # read ports), register v1 / v2, then the unit; the whole pipeline holds while stalled
        raddr = counter(D, "map_raddr")
        rword = counter(W, "map_rword")  # word of the map being read
        rcnt = counter(CW, "gate_rcnt")  # channel group of the next word
        rbank = Signal(name="gate_rbank")
        mid = Signal()  # an image is being read (its first word issued, not its last)
        en, issue, valid_r, valid_v = Signal(), Signal(), Signal(), Signal()
        first, last = Signal(), Signal()
        clear_full = Signal(2)
        m.d.comb += [
            en.eq(~valid_v | amos.i.ready),
            issue.eq(en & (mid | ((maps != 0) & gfull.bit_select(rbank, 1)))),
            first.eq(issue & ~mid),
            last.eq(issue & (rword == W - 1)),
            m_rd.en.eq(en),
            m_rd.addr.eq(raddr),
            g_rd.en.eq(en),
            g_rd.addr.eq(Mux(rbank, CW, 0) + rcnt),
        ]
        with m.If(issue):
            m.d.sync += [
                raddr.eq(Mux(raddr == D - 1, 0, raddr + 1)),
                rword.eq(Mux(rword == W - 1, 0, rword + 1)),
                rcnt.eq(Mux(rcnt == CW - 1, 0, rcnt + 1)),
                mid.eq(~last),
            ]
        with m.If(last):
            m.d.sync += rbank.eq(~rbank)
            m.d.comb += clear_full.eq(Mux(rbank, 2, 1))
        m.d.sync += [
            gfull.eq((gfull | set_full) & ~clear_full),
            used.eq(used + m_take - issue),
            maps.eq(maps + m_done - first),
        ]
        xs = data.ArrayLayout(_shape(p.x_width, p.x_signed), L)(m_rd.data)
        gs = data.ArrayLayout(_shape(p.g_width, p.g_signed), L)(g_rd.data)
        with m.If(en):
            m.d.sync += [valid_r.eq(issue), valid_v.eq(valid_r)]
        S1, S2 = p.shifts
        for n in range(L):
            v1 = Signal(signed(p.v1_width), name=f"v1_{n}")
            v2 = Signal(signed(p.v2_width), name=f"v2_{n}")
            with m.If(en):
                m.d.sync += [
                    v1.eq((xs[n] + (1 << (S1 - 1))) >> S1 if S1 else xs[n]),
                    v2.eq((gs[n] + (1 << (S2 - 1))) >> S2 if S2 else gs[n]),
                ]
            m.d.comb += [
                amos.i.payload.x[n].eq(v1),
                amos.i.payload.x2[n].eq(v2),
                self.o.payload[n].eq(amos.o.payload.y[n]),
            ]
        m.d.comb += [
            amos.i.valid.eq(valid_v),
            self.o.valid.eq(amos.o.valid),
            amos.o.ready.eq(self.o.ready),
            self.spike_count.eq(amos.spike_count),
        ]
        return m
