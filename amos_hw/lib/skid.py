"""A stream register slice with a skid register: registered ``valid``, ``payload`` *and* ``ready``.

Every engine ends in one, so that when engines are chained the ``ready`` path from a consumer
never reaches through its producer into the producer's own input: combinational ``ready`` chains
stay inside one engine, whatever the length of the network.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Two-entry stream buffer: the output register and a skid register behind it.

    ``i.ready`` is a register (low only while the skid register is full), ``o.valid`` and
    ``o.payload`` are registers. Order is kept. Throughput: one transfer per cycle while the
    consumer is ready. Latency: :attr:`latency` = 1 cycle.

    Parameters
    ----------
    shape : shape-castable
        Payload shape of both streams.

    Members
    -------
    i : ``In(stream.Signature(shape))``
    o : ``Out(stream.Signature(shape))``
    """

    latency = 1

    @staticmethod
    def flip_flops_for(bits: int) -> int:
        """Flip-flop estimate for a ``bits``-wide payload: two words and two valid bits."""
        return 2 * bits + 2

    @staticmethod
    def luts_for(bits: int) -> int:
        """LUT4 estimate for a ``bits``-wide payload: the output multiplexer and control."""
        return bits + 4

    def __init__(self, shape):
        self._shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        skid = Signal.like(self.o.payload, name="skid")
        skid_valid = Signal()
        take = Signal()
        out_free = Signal()
        m.d.comb += [
            self.i.ready.eq(~skid_valid),
            take.eq(self.i.valid & ~skid_valid),
            out_free.eq(~self.o.valid | self.o.ready),
        ]
        with m.If(out_free):
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1)]
                with m.If(take):
                    m.d.sync += skid.eq(self.i.payload)
                with m.Else():
                    m.d.sync += skid_valid.eq(0)
            with m.Else():
                m.d.sync += self.o.valid.eq(take)
                with m.If(take):
                    m.d.sync += self.o.payload.eq(self.i.payload)
        with m.Elif(take):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
