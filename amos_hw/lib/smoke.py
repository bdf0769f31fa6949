"""A tiny pipelined stream block that keeps the whole test path alive from day one.

:class:`PipelinedCompare` is not part of any generated network. It exists so that the path every
real block takes (Amaranth -> :func:`amos_hw.backend.verilog.to_verilog` -> cocotb on Icarus and
Verilator, and the Amaranth simulator with the shared stream helpers) is exercised by the test
suite before the first real engine lands, and so that new contributors have a small, complete
example of a block with a ``model()``, a ``latency`` and both test tiers
(``tests/test_smoke_sim.py``, ``rtl_tests/test_smoke.py``).
"""
from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.lib.checks import positive_int

__all__ = ["PipelinedCompare"]


class PipelinedCompare(wiring.Component):
    """Signed comparator in three register stages: ``o.payload = int(a >= b)``.

    The whole pipeline advances when the output is empty or being taken (``~o.valid | o.ready``)
    and stalls otherwise; ``i.ready`` is that advance condition.

    Latency: 3 cycles from the input transfer to the earliest output transfer. Throughput: one
    comparison per cycle when the consumer never stalls.

    Parameters
    ----------
    width : int
        Bit width of each signed operand, at least 1.

    Members
    -------
    i : ``In(stream.Signature(data.StructLayout({"a": signed(width), "b": signed(width)})))``
        Operand pairs. Emitted Verilog: ``i__valid``, ``i__ready``, ``i__payload`` with ``a`` in
        the low ``width`` bits and ``b`` above it.
    o : ``Out(stream.Signature(1))``
        ``1`` when ``a >= b``. Emitted Verilog: ``o__valid``, ``o__ready``, ``o__payload``.
    """

    def __init__(self, width: int):
        self._width = positive_int("width", width)
        super().__init__({
            "i": In(stream.Signature(self.operand_layout(width))),
            "o": Out(stream.Signature(1)),
        })

    @staticmethod
    def operand_layout(width: int) -> data.StructLayout:
        """The input payload layout for operands of ``width`` bits."""
        return data.StructLayout({"a": signed(width), "b": signed(width)})

    @property
    def width(self) -> int:
        """Bit width of each operand."""
        return self._width

    @property
    def latency(self) -> int:
        """Cycles from an input transfer to the earliest transfer of its result."""
        return 3

    @staticmethod
    def model(a: int, b: int) -> int:
        """Reference result for one operand pair."""
        return int(a >= b)

    def elaborate(self, platform):
        m = Module()
        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)

        # Stage 1 registers the operands, stage 2 their difference (one bit wider, so it cannot
        # overflow), stage 3 the sign test; each stage carries its own valid bit.
        valid1 = Signal()
        a1 = Signal(signed(self._width))
        b1 = Signal(signed(self._width))
        valid2 = Signal()
        diff2 = Signal(signed(self._width + 1))
        with m.If(advance):
            m.d.sync += [
                valid1.eq(self.i.valid),
                a1.eq(self.i.payload.a),
                b1.eq(self.i.payload.b),
                valid2.eq(valid1),
                diff2.eq(a1 - b1),
                self.o.valid.eq(valid2),
                self.o.payload.eq(diff2 >= 0),
            ]
        return m
