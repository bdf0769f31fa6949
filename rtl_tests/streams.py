"""cocotb drivers and monitors for ``amaranth.lib.stream`` ports of emitted Verilog.

Amaranth 0.5 names the ports of a :class:`~amaranth.lib.wiring.Component` by their path in its
signature joined with ``__``: a stream member ``i`` becomes ``i__valid``, ``i__ready`` and
``i__payload``. A struct (``data.StructLayout``) payload is one flat vector whose first field sits
in the least significant bits; :func:`pack` and :func:`unpack` convert between it and a dict,
given the same layout the component uses.

Timing discipline (the same for Icarus and Verilator, whatever order coroutines wake in): every
helper changes what it drives only just after a rising clock edge, and samples the handshake at
the falling edge, when all inputs and the design's combinational outputs have settled. A
transfer seen at the falling edge happens at the next rising edge. The clock must therefore have
both edges (:func:`start_clock` gives a 50 % duty cycle).

A producer (:class:`StreamDriver`) raises ``valid`` without looking at ``ready`` and holds it
with the payload until the transfer; random idle cycles go only between transfers. A consumer
(:class:`StreamReceiver`) drops ``ready`` at random between cycles (backpressure).
:class:`StreamMonitor` records every transfer with its cycle number, for scoreboards and latency.

The Amaranth-simulator counterparts are in :mod:`amos_hw.lib.sim`.
"""
from __future__ import annotations

import random

import cocotb
from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

__all__ = [
    "StreamDriver",
    "StreamMonitor",
    "StreamReceiver",
    "pack",
    "reset",
    "start_clock",
    "unpack",
]


def _plain_shape(shape) -> Shape:
    if isinstance(shape, ShapeCastable):
        shape = shape.as_shape()
    return Shape.cast(shape)


def pack(shape, value) -> int:
    """Bits of ``value`` for a port of ``shape`` (an Amaranth shape or layout), as an int.

    ``shape=None`` passes a non-negative int through. A layout takes a dict (nested dicts for
    nested layouts); a signed shape takes negative ints.

    Raises
    ------
    ValueError
        If a number does not fit its field, or a struct's dict has missing or extra fields.
    """
    if shape is None:
        return int(value)
    if isinstance(shape, data.StructLayout):
        fields = dict(shape)
        if not isinstance(value, dict) or set(value) != set(fields):
            raise ValueError(f"payload {value!r} must be a dict with exactly the fields "
                             f"{sorted(fields)}")
        bits = 0
        for name, field in fields.items():
            bits |= pack(field.shape, value[name]) << field.offset
        return bits
    if isinstance(shape, data.Layout):
        return shape.const(value).as_bits()
    shape = _plain_shape(shape)
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    hi = (1 << (shape.width - 1 if shape.signed else shape.width)) - 1
    if not lo <= value <= hi:
        raise ValueError(f"payload {value!r} does not fit {shape!r} ({lo}..{hi})")
    return value & ((1 << shape.width) - 1)


def unpack(shape, bits: int):
    """Inverse of :func:`pack`: an int for a plain shape (negative if the shape is signed and
    the top bit set), a dict of fields for a layout."""
    if shape is None:
        return int(bits)
    if isinstance(shape, data.Layout):
        return _const_to_python(shape.from_bits(bits))
    shape = _plain_shape(shape)
    bits &= (1 << shape.width) - 1
    if shape.signed and bits >> (shape.width - 1):
        bits -= 1 << shape.width
    return bits


def _const_to_python(value):
    if isinstance(value, data.Const):
        return {name: _const_to_python(value[name]) for name, _ in value.shape()}
    return value


def start_clock(dut, period_ns: int = 10, signal: str = "clk") -> Clock:
    """Start a 50 % duty clock on ``dut.<signal>`` and return it."""
    clock = Clock(getattr(dut, signal), period_ns, unit="ns")
    clock.start()
    return clock


async def reset(dut, cycles: int = 2, clk: str = "clk", rst: str = "rst") -> None:
    """Hold ``rst`` high for ``cycles`` rising edges; returns just after a rising edge with
    ``rst`` low, which is where the stream helpers expect to start."""
    getattr(dut, rst).value = 1
    for _ in range(cycles):
        await RisingEdge(getattr(dut, clk))
    getattr(dut, rst).value = 0
    await RisingEdge(getattr(dut, clk))


class _Port:
    def __init__(self, dut, name: str, clk: str):
        try:
            self.valid = getattr(dut, f"{name}__valid")
            self.ready = getattr(dut, f"{name}__ready")
            self.payload = getattr(dut, f"{name}__payload")
        except AttributeError as exc:
            raise AttributeError(
                f"{dut._name} has no stream port {name!r} (expected {name}__valid, "
                f"{name}__ready, {name}__payload)"
            ) from exc
        self.clk = getattr(dut, clk)
        self.name = name


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), not {value!r}")


class StreamDriver:
    """Drive the design's input stream ``<name>__{valid,ready,payload}``.

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    name : str
        Stream member name in the component's signature (``"i"``).
    shape : Amaranth shape or layout, optional
        Payload shape, for :func:`pack`; ``None`` sends raw ints.
    rng : random.Random, optional
        Source of idle cycles (none without it).
    idle : float
        Probability, checked once per cycle, of leaving ``valid`` low one more cycle before an
        item is offered. In [0, 1).
    clk : str
        Clock port name.
    """

    def __init__(self, dut, name: str, *, shape=None, rng: random.Random | None = None,
                 idle: float = 0.0, clk: str = "clk"):
        _check_probability("idle", idle)
        self._port = _Port(dut, name, clk)
        self._shape = shape
        self._rng = rng
        self._idle = idle
        self._port.valid.value = 0

    async def send(self, items) -> None:
        """Send every item in order. Call just after a rising edge (e.g. after :func:`reset`);
        returns just after the rising edge of the last transfer, with ``valid`` low."""
        port = self._port
        for item in items:
            while self._rng is not None and self._rng.random() < self._idle:
                port.valid.value = 0
                await RisingEdge(port.clk)
            port.payload.value = pack(self._shape, item)
            port.valid.value = 1
            while True:
                await FallingEdge(port.clk)
                taken = int(port.ready.value)
                await RisingEdge(port.clk)
                if taken:
                    break
        port.valid.value = 0


class StreamReceiver:
    """Consume the design's output stream ``<name>__{valid,ready,payload}``.

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    name : str
        Stream member name in the component's signature (``"o"``).
    shape : Amaranth shape or layout, optional
        Payload shape, for :func:`unpack`; ``None`` returns raw ints.
    rng : random.Random, optional
        Source of backpressure (``ready`` always high without it).
    backpressure : float
        Probability, drawn once per cycle, of holding ``ready`` low that cycle. In [0, 1).
    clk : str
        Clock port name.
    """

    def __init__(self, dut, name: str, *, shape=None, rng: random.Random | None = None,
                 backpressure: float = 0.0, clk: str = "clk"):
        _check_probability("backpressure", backpressure)
        self._port = _Port(dut, name, clk)
        self._shape = shape
        self._rng = rng
        self._backpressure = backpressure
        self._port.ready.value = 0

    async def receive(self, count: int) -> list:
        """Receive ``count`` items and return them (unpacked). Call just after a rising edge;
        returns just after the rising edge of the last transfer, with ``ready`` low."""
        port = self._port
        items = []
        while len(items) < count:
            ready = not (self._rng is not None and self._rng.random() < self._backpressure)
            port.ready.value = int(ready)
            await FallingEdge(port.clk)
            if ready and int(port.valid.value):
                items.append(unpack(self._shape, int(port.payload.value)))
            await RisingEdge(port.clk)
        port.ready.value = 0
        return items


class StreamMonitor:
    """Record every transfer on ``<name>__{valid,ready,payload}`` without driving anything.

    ``transfers`` is a list of ``(cycle, payload)``; ``cycle`` counts falling edges from
    :meth:`start`, so the difference of two cycle numbers (on any two monitors started together)
    is a latency in clock cycles.
    """

    def __init__(self, dut, name: str, *, shape=None, clk: str = "clk"):
        self._port = _Port(dut, name, clk)
        self._shape = shape
        self.transfers: list[tuple[int, object]] = []
        self._task = None

    def start(self) -> StreamMonitor:
        """Start recording in the background; returns ``self``."""
        self._task = cocotb.start_soon(self._run())
        return self

    async def _run(self) -> None:
        port = self._port
        cycle = 0
        while True:
            await FallingEdge(port.clk)
            if int(port.valid.value) and int(port.ready.value):
                self.transfers.append((cycle, unpack(self._shape, int(port.payload.value))))
            cycle += 1
