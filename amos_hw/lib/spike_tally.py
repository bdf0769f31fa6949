"""Per-image spike counts of a layer-pipelined network, joined to its result beats.

Every engine with an AMOS unit (convolution, dense, residual add with a ReLU unit) has a wrapping
32-bit ``spike_count``: the spikes of every output word it handed on
(:class:`amos_hw.lib.amos_unit.AmosUnit`). :class:`SpikeTally` turns those running counts into
one count per image and layer and hands them on with the image's result beat:

* **per layer**, a word counter on the engine's output stream finds the last word of each image;
  two clock edges later (the unit's counter includes a transfer two edges after it) the running
  count is latched and its difference from the previous latch, the image's spikes in that
  layer, goes into a FIFO;
* **at the output**, as soon as every layer's FIFO holds an entry, the entries move into a
  register (summed, ``spikes``, and split per layer, ``layer_spikes``); the image's result beat
  passes with them (its ``valid`` waits for that register, which is loaded long before the
  result comes: no added cycle), and the register takes the next image's entries;
* **the images in flight** (begun at the network's input, result not yet out) are at most
  :attr:`SpikeTally.depth`: the first byte of one more image is held back until a result leaves.
  A layer's FIFO holds an entry for images that left that layer and whose result is not out,
  so a FIFO of ``depth`` entries never overflows. The generator's ``depth`` is
  ``ceil(latency / cycles_per_image) + 2``, more than a stall-free pipeline ever holds, so the
  gate only acts under result backpressure and the throughput is unchanged.

The spike count of a layer is therefore exactly :attr:`python_ref.snn.SimResult.spikes` of its
``amos`` op: the units' spikes summed over every element of the layer's output, per image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from amos_hw.lib.checks import positive_int

__all__ = ["SPIKE_WIDTH", "SpikeLayer", "SpikeTally", "spike_layers", "spike_result_layout",
           "tally_depth"]

#: Width of the ``spikes`` field of a result beat and of each ``layer_spikes`` element.
SPIKE_WIDTH = 32
#: Clock edges from an output word's transfer to its spikes in the unit's ``spike_count``.
COUNT_DELAY = 2


@dataclass(frozen=True)
class SpikeLayer:
    """One AMOS layer as the tally sees it.

    Members
    -------
    name : str
        The layer (its ``amos`` op's name).
    words : int
        Output words of one image (``H * W * C / pe`` for a convolution).
    max_spikes : int
        Most spikes one image can make in it (its output elements times ``K``).
    """

    name: str
    words: int
    max_spikes: int

    @property
    def width(self) -> int:
        """Bits of one image's count."""
        return max(1, self.max_spikes.bit_length())


def spike_result_layout(result_layout: data.StructLayout, n_layers: int) -> data.StructLayout:
    """``result_layout``'s fields, then ``spikes`` (:data:`SPIKE_WIDTH` bits)."""
    fields = dict(result_layout.members)
    fields["spikes"] = unsigned(SPIKE_WIDTH)
    return data.StructLayout(fields)


def _check_layers(layers) -> tuple[SpikeLayer, ...]:
    layers = tuple(layers)
    if not layers:
        raise ValueError("a spike tally needs at least one AMOS layer")
    for lay in layers:
        if not isinstance(lay, SpikeLayer):
            raise TypeError(f"layers must be SpikeLayer, not {type(lay).__name__}")
        positive_int(f"layer {lay.name!r}: words", lay.words)
        positive_int(f"layer {lay.name!r}: max_spikes", lay.max_spikes)
    total = sum(lay.max_spikes for lay in layers)
    if total >= 2 ** SPIKE_WIDTH:
        worst = max(layers, key=lambda lay: lay.max_spikes)
        raise ValueError(f"up to {total:,} spikes per image do not fit the {SPIKE_WIDTH}-bit "
                         f"spike count (layer {worst.name!r} alone: {worst.max_spikes:,})")
    return layers


class SpikeTally(wiring.Component):
    """Count each image's spikes per AMOS layer and join them to its result beat.

    Parameters
    ----------
    result_layout : StructLayout
        Payload of the result beats (``cls``, ``logits``).
    layers : sequence of SpikeLayer
        The AMOS layers, in the order of ``counts``, ``taken`` and ``layer_spikes``.
    image_bytes : int
        Input words (bytes) of one image.
    depth : int
        Most images in flight, and the entries of each layer's FIFO.

    Members
    -------
    i : ``In(stream.Signature(result_layout))``
        Result beats, one per image.
    o : ``Out(stream.Signature(spike_result_layout(result_layout, n)))``
        The same beats with ``spikes``, the image's spikes in all layers (no added cycle:
        ``o.valid = i.valid & counts ready``).
    layer_spikes : ``Out(ArrayLayout(unsigned(32), n))``
        The per-layer split of the beat on ``o`` (a debug port; valid with ``o.valid``).
    counts : ``In(32).array(n)``
        Each layer's running ``spike_count``.
    taken : ``In(1).array(n)``
        Each layer's output word transfers (``o.valid & o.ready`` of its engine).
    pixel_taken : ``In(1)``
        An input byte transfers into the network.
    admit : ``Out(1)``
        Low while the next input byte would begin an image beyond :attr:`depth` in flight;
        the network's input must not transfer then. A register function: no path from ``i``
        or ``o``.
    """

    def __init__(self, result_layout, layers, *, image_bytes: int, depth: int):
        self._layers = _check_layers(layers)
        self._image_bytes = positive_int("image_bytes", image_bytes)
        self._depth = positive_int("depth", depth, at_most=64)
        n = len(self._layers)
        super().__init__({
            "i": In(stream.Signature(result_layout)),
            "o": Out(stream.Signature(spike_result_layout(result_layout, n))),
            "layer_spikes": Out(data.ArrayLayout(unsigned(SPIKE_WIDTH), n)),
            "counts": In(32).array(n),
            "taken": In(1).array(n),
            "pixel_taken": In(1),
            "admit": Out(1),
        })

    layers = property(lambda self: self._layers, doc="The AMOS layers (SpikeLayer).")
    depth = property(lambda self: self._depth, doc="Most images in flight.")

    @staticmethod
    def figures(layers, *, image_bytes: int, depth: int) -> dict:
        """Flip-flop and LUT4 estimates of the tally (without building it).

        Per layer: the word counter, two delay flags, the previous latch, the difference and
        a ``depth``-entry FIFO of the count (LUT RAM: one LUT4 per 16 x 2 bits, and its
        pointers); the register of every count and the sum; the byte counter and the in-flight
        counter; the adder tree of the sum.
        """
        layers = _check_layers(layers)
        ptr = max(1, (depth - 1).bit_length()) + 1
        ff = lut = 0
        for lay in layers:
            cnt = max(1, (lay.words - 1).bit_length())
            ff += cnt + COUNT_DELAY + lay.width + 2 * ptr + 1
            lut += cnt + 2 * lay.width + math.ceil(depth / 16) * math.ceil(lay.width / 2) \
                + 4 * ptr
        total_w = max(1, sum(lay.max_spikes for lay in layers).bit_length())
        ff += total_w + sum(lay.width for lay in layers) + 1
        lut += total_w * (len(layers) - 1) + len(layers) + 2
        in_w = max(1, (image_bytes - 1).bit_length()) + depth.bit_length()
        ff += in_w
        lut += 2 * in_w + 2
        return {"ff": ff, "lut4": lut}

    def elaborate(self, platform):
        m = Module()
        fifos = [self._layer(m, k, lay) for k, lay in enumerate(self._layers)]
        self._gate(m)
        # the next image's counts wait in a register (taken from the FIFOs as soon as all of
        # them hold one), so a result beat passes with no added cycle
        have = Signal(name="counts_ready")
        total = Signal(unsigned(SPIKE_WIDTH), name="total_spikes")
        load = ~have & Cat(*[f.r_rdy for f in fifos]).all()
        m.d.comb += [f.r_en.eq(load) for f in fifos]
        with m.If(load):
            m.d.sync += [have.eq(1),
                         total.eq(sum((f.r_data for f in fifos[1:]), fifos[0].r_data))]
            m.d.sync += [self.layer_spikes[k].eq(f.r_data) for k, f in enumerate(fifos)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += have.eq(0)
        m.d.comb += [
            self.o.valid.eq(self.i.valid & have),
            self.i.ready.eq(self.o.ready & have),
            self.o.payload.spikes.eq(total),
        ]
        for name in self.i.payload.shape().members:
            m.d.comb += self.o.payload[name].eq(self.i.payload[name])
        return m

    def _layer(self, m: Module, k: int, lay: SpikeLayer) -> SyncFIFO:
        """Layer ``k``: the image boundary of its output, the latch, the FIFO of counts."""
        width = lay.width
        fifo = m.submodules[f"fifo_{k}"] = SyncFIFO(width=width, depth=self._depth)
        taken = self.taken[k]
        delay = [Signal(name=f"boundary_{k}_{d}") for d in range(COUNT_DELAY + 1)]
        if lay.words > 1:
            words = Signal(range(lay.words), name=f"words_{k}")
            last = taken & (words == lay.words - 1)
            with m.If(taken):
                m.d.sync += words.eq(0)
                with m.If(words != lay.words - 1):
                    m.d.sync += words.eq(words + 1)
        else:
            last = taken
        m.d.comb += delay[0].eq(last)
        m.d.sync += [delay[d + 1].eq(delay[d]) for d in range(COUNT_DELAY)]
        prev = Signal(width, name=f"latched_{k}")
        now = self.counts[k][:width]
        with m.If(delay[COUNT_DELAY]):
            m.d.sync += prev.eq(now)
        m.d.comb += [fifo.w_en.eq(delay[COUNT_DELAY]), fifo.w_data.eq((now - prev)[:width])]
        return fifo

    def _gate(self, m: Module) -> None:
        """Count the input bytes of each image and the images in flight; ``admit``."""
        n = self._image_bytes
        pos = Signal(range(n), name="image_byte")
        in_flight = Signal(range(self._depth + 1), name="images_in_flight")
        begin = self.pixel_taken & (pos == 0)
        done = self.o.valid & self.o.ready
        if n > 1:
            with m.If(self.pixel_taken):
                m.d.sync += pos.eq(0)
                with m.If(pos != n - 1):
                    m.d.sync += pos.eq(pos + 1)
        with m.If(begin & ~done):
            m.d.sync += in_flight.eq(in_flight + 1)
        with m.Elif(done & ~begin):
            m.d.sync += in_flight.eq(in_flight - 1)
        m.d.comb += self.admit.eq((pos != 0) | (in_flight != self._depth))


def spike_layers(layers) -> tuple[SpikeLayer, ...]:
    """The AMOS layers of a plan's ``layers``, in plan order: those whose output is a fused
    ``amos`` op (the layer is named after it, its first description op is the conv, dense or
    add before it) emitting ``K``-bit spike words, and the trained units (``kind == "unit"``,
    and the squeeze-and-excitation gates, ``kind == "gate"``: ``K`` neurons each; their engine
    counts the neurons' spikes, not the bits of ``y``). A
    layer that passes spike words on without a unit of its own (pooling) is not one.

    Parameters
    ----------
    layers : sequence
        Plan layers (``name``, ``ir_nodes``, ``out_shape``, ``out_lanes``, ``out_bits``),
        folded.
    """
    out = []
    for lay in layers:
        unit = getattr(lay, "kind", "") in ("unit", "gate")
        if lay.out_bits is None or (lay.name == lay.ir_nodes[0] and not unit):
            continue
        elements = math.prod(lay.out_shape)
        K = lay.K if unit else lay.out_bits
        out.append(SpikeLayer(lay.name, elements // lay.out_lanes, elements * K))
    return tuple(out)


def tally_depth(latency_cycles: int, cycles_per_image: int) -> int:
    """Images in flight a tally admits: ``ceil(latency / cycles_per_image) + 2`` (a pipeline
    without stalls holds at most ``ceil(latency / cycles_per_image) + 1``)."""
    return -(-int(latency_cycles) // int(cycles_per_image)) + 2
