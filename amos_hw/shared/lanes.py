"""The shared engine's multiply-accumulate lanes: one output channel each."""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import spike_product

__all__ = ["Lanes"]


class Lanes(wiring.Component):
    """``acc[k] += w_k * act`` for every lane ``k``, or ``acc[lane] += act << lshift`` for a skip
    beat.

    ``clear`` zeroes the accumulators, ``shift`` moves ``acc[k+1]`` into ``acc[k]`` (the
    epilogue reads ``acc0``, one lane a cycle); both win over ``valid``.

    Parameters
    ----------
    lanes : int
        Lanes (output channels at once).
    act_bits : int
        Width of an activation.
    acc_width : int
        Signed width of an accumulator.
    dsp : bool
        Write each product as a multiplication (a DSP block per lane) instead of the sum of the
        weight shifted by the positions of the activation's spikes
        (:func:`~amos_hw.engines.dense.spike_product`).

    Members
    -------
    clear, shift, valid, skip : ``In(1)``
    lane : ``In(range(lanes))``, the lane of a skip beat
    lshift : ``In(6)``, the left shift of a skip beat
    act : ``In(act_bits)``, unsigned
    weights : ``In(8 * lanes)``, one int8 weight a lane, lane 0 in the low byte
    acc0 : ``Out(signed(acc_width))``
    """

    def __init__(self, lanes: int, act_bits: int, acc_width: int, dsp: bool):
        self._n, self._A, self._w, self._dsp = lanes, act_bits, acc_width, dsp
        super().__init__({
            "clear": In(1), "shift": In(1), "valid": In(1), "skip": In(1),
            "lane": In(range(lanes)), "lshift": In(6), "act": In(act_bits),
            "weights": In(8 * lanes), "acc0": Out(signed(acc_width)),
        })

    def elaborate(self, platform):
        m = Module()
        n, A = self._n, self._A
        acc = [Signal(signed(self._w), name=f"acc{k}") for k in range(n)]
        m.d.comb += self.acc0.eq(acc[0])
        skip_term = self.act.as_unsigned() << self.lshift
        with m.If(self.clear):
            m.d.sync += [a.eq(0) for a in acc]
        with m.Elif(self.shift):
            m.d.sync += [acc[k].eq(acc[k + 1]) for k in range(n - 1)]
        with m.Elif(self.valid):
            for k in range(n):
                wk = self.weights.word_select(k, 8).as_signed()
                if self._dsp:
                    # one multiplier operand: the weight, or for a skip beat 2**lshift (in its
                    # lane) or 0: no second adder path
                    one = Signal(signed(16), name=f"op{k}")  # one 16x16 DSP a lane
                    m.d.comb += one.eq(Mux(self.skip,
                                           Mux(self.lane == k,
                                               Const(1, unsigned(15)) << self.lshift, 0),
                                           wk))
                    m.d.sync += acc[k].eq(acc[k] + one * self.act.as_unsigned())
                    continue
                prod = spike_product(wk, self.act, A)
                with m.If(self.skip):
                    with m.If(self.lane == k):
                        m.d.sync += acc[k].eq(acc[k] + skip_term)
                with m.Else():
                    m.d.sync += acc[k].eq(acc[k] + prod)
        return m
