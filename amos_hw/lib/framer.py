"""Image framing at the network's input: checks the ``first`` / ``last`` markers of the pixel
stream and keeps the network aligned to whole images whatever the producer sends.

The engines count words, so a short or long image would shift every later image by the missing
or extra bytes, for good. :class:`PixelFramer` sits between the ``pixels`` port and the first
engine and makes every image exactly ``n`` bytes long:

* a well-formed image (``first`` on byte 0, ``last`` on byte ``n-1``) passes unchanged, one byte
  per cycle, with no added latency (valid, ready and data are combinational);
* **truncated by** ``last``: an image whose ``last`` comes before byte ``n-1`` is completed with
  zero bytes;
* **truncated by** ``first``: a ``first`` before the image is complete is held back, the current
  image is completed with zero bytes, then the held byte starts the next image;
* **too long**: an image whose byte ``n-1`` carries no ``last`` ends there; the bytes after it
  are dropped up to and including the next ``last`` (or up to, not including, the next ``first``);
* **no** ``first`` on byte 0: the byte is taken as the start of an image anyway.

Each of these events adds one to ``frame_errors`` (16 bits, wrapping), so a host can see that a
result belongs to a repaired image. Exactly one image reaches the network per image begun, so one
result comes out per image and the stream never loses alignment.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.lib.checks import positive_int

__all__ = ["PIXEL_LAYOUT", "PixelFramer", "frame_reference"]

#: Payload of a pixel stream with image markers.
PIXEL_LAYOUT = data.StructLayout({"data": unsigned(8), "first": unsigned(1), "last": unsigned(1)})


class PixelFramer(wiring.Component):
    """``n``-byte image framing (see the module docstring).

    Members
    -------
    i : ``In(stream.Signature(PIXEL_LAYOUT))``
    o : ``Out(stream.Signature(unsigned(8)))``, exactly ``n`` bytes per image
    frame_errors : ``Out(unsigned(16))``, repaired framing events, wrapping
    """

    def __init__(self, n: int):
        self._n = positive_int("PixelFramer: image size", n)
        super().__init__({
            "i": In(stream.Signature(PIXEL_LAYOUT)),
            "o": Out(stream.Signature(unsigned(8))),
            "frame_errors": Out(unsigned(16)),
        })

    n = property(lambda self: self._n, doc="Bytes per image.")

    def elaborate(self, platform):
        m = Module()
        n = self._n
        idx = Signal(range(max(2, n)))
        err = Signal()  # an end-of-image event (short, long, cut by ``first``)
        no_first = Signal()  # byte 0 without ``first`` (can coincide with ``err``)
        m.d.sync += self.frame_errors.eq(self.frame_errors + err + no_first)
        p = self.i.payload
        at_end = idx == n - 1

        with m.FSM(name="framer"):
            with m.State("PASS"):
                restart = p.first & (idx != 0)  # a new image before this one is complete
                m.d.comb += [
                    self.o.payload.eq(p.data),
                    self.o.valid.eq(self.i.valid & ~restart),
                    self.i.ready.eq(self.o.ready & ~restart),
                ]
                with m.If(self.i.valid & restart):
                    m.d.comb += err.eq(1)
                    m.next = "PAD"
                with m.Elif(self.i.valid & self.o.ready):
                    with m.If((idx == 0) & ~p.first):
                        m.d.comb += no_first.eq(1)
                    with m.If(at_end):
                        m.d.sync += idx.eq(0)
                        with m.If(~p.last):
                            m.d.comb += err.eq(1)
                            m.next = "DROP"
                    with m.Else():
                        m.d.sync += idx.eq(idx + 1)
                        with m.If(p.last):
                            m.d.comb += err.eq(1)
                            m.next = "PAD"
            with m.State("PAD"):
                m.d.comb += [self.o.payload.eq(0), self.o.valid.eq(1), self.i.ready.eq(0)]
                with m.If(self.o.ready):
                    with m.If(at_end):
                        m.d.sync += idx.eq(0)
                        m.next = "PASS"
                    with m.Else():
                        m.d.sync += idx.eq(idx + 1)
            with m.State("DROP"):
                m.d.comb += [self.o.valid.eq(0), self.i.ready.eq(~p.first)]
                with m.If(self.i.valid & (p.first | p.last)):
                    m.next = "PASS"
        return m


def frame_reference(beats, n: int) -> tuple[list[int], int]:
    """What :class:`PixelFramer` hands on for a sequence of beats (``{"data", "first", "last"}``),
    and how many framing errors it counts. The hardware is checked against this."""
    out: list[int] = []
    errors = 0
    idx = 0
    mode = "PASS"
    k = 0
    while k < len(beats):
        b = beats[k]
        if mode == "DROP":
            if b["first"]:
                mode = "PASS"
                continue  # the byte starts the next image
            k += 1
            if b["last"]:
                mode = "PASS"
            continue
        if b["first"] and idx != 0:
            errors += 1
            out.extend([0] * (n - idx))
            idx = 0
            continue
        if idx == 0 and not b["first"]:
            errors += 1
        out.append(b["data"])
        k += 1
        if idx == n - 1:
            idx = 0
            if not b["last"]:
                errors += 1
                mode = "DROP"
        else:
            idx += 1
            if b["last"]:
                errors += 1
                out.extend([0] * (n - idx))
                idx = 0
    return out, errors
