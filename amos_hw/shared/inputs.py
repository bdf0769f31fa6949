"""The shared engine's INPUT phase: an image's pixels into the input map, and weight bytes.

Between images the engine takes bytes from its pixel stream (through a
:class:`~amos_hw.lib.framer.PixelFramer`) and packs them, ``slots`` channels to a word, into the
input map. With its weights in memory, a ``load`` beat offered at the start of an image wins over
the pixels: its bytes are packed little-endian into words written from address 0 (``first``
restarts there). With its weights in a flash, the image's last byte starts the flash reader.
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring

from amos_hw.lib.framer import PixelFramer
from amos_hw.shared.program import WORD_BITS, Program
from amos_hw.shared.table import INPUT, Control

__all__ = ["InputWriter"]


class InputWriter:
    """The INPUT phase's registers and logic.

    Parameters
    ----------
    p : Program
        A laid-out program.
    """

    def __init__(self, p: Program):
        self.program = p
        H, W, C = p.input_shape
        self.n_bytes = H * W * C
        self.in_pos_ptr = Signal(range(p.depth + 1), init=p.maps["input"][0])
        self.in_c = Signal(range(max(p.slots, 2)))
        self.in_ch = Signal(range(max(C, 2)))
        self.in_cnt = Signal(range(self.n_bytes + 1))
        self.in_word = Signal(WORD_BITS)
        self.ld_ptr = Signal(range(p.depth + 1))
        self.ld_byte = Signal(3)
        self.ld_word = Signal(WORD_BITS)
        self.framer = None

    def add_framer(self, m: Module, pixels, frame_errors) -> None:
        """The pixel framer on the ``pixels`` stream; its error count on ``frame_errors``."""
        m.submodules.framer = self.framer = PixelFramer(self.n_bytes)
        wiring.connect(m, wiring.flipped(pixels), self.framer.i)
        m.d.comb += frame_errors.eq(self.framer.frame_errors)

    def build(self, m: Module, ctl: Control, main, load=None, reader=None,
              on_image=()) -> None:
        """The INPUT phase: weight bytes from ``load`` (weights in memory) or none (``reader``,
        the flash reader, is started by the last byte), pixels from the framer, written to
        ``main``; after the image's last byte the ``on_image`` statements (sync)."""
        framer = self.framer
        with m.If(ctl.state == INPUT):
            at_start = self.in_cnt == 0
            if reader is None:
                m.d.comb += [framer.o.ready.eq(~(load.valid & at_start)),
                             load.ready.eq(at_start)]
                loading = load.valid & at_start
            else:
                m.d.comb += framer.o.ready.eq(1)
                loading = Const(0, 1)
            with m.If(loading):
                if reader is None:
                    self._load_byte(m, main, load)
            with m.Elif(framer.o.valid):
                self._pixel(m, main, reader, on_image)
        with m.Else():
            m.d.comb += framer.o.ready.eq(0)
            if reader is None:
                m.d.comb += load.ready.eq(0)

    def _load_byte(self, m: Module, main, load) -> None:
        """A weight byte into the word being assembled; written after its eighth byte."""
        byte = Mux(load.payload.first, 0, self.ld_byte)
        ptr = Mux(load.payload.first, 0, self.ld_ptr)
        new = Signal(WORD_BITS)
        m.d.comb += new.eq(self.ld_word)
        for b in range(8):
            with m.If(byte == b):
                m.d.comb += new.word_select(b, 8).eq(load.payload.data)
        m.d.sync += [self.ld_word.eq(new), self.ld_byte.eq(byte + 1)]
        with m.If(byte == 7):
            m.d.comb += [main.addr.eq(ptr), main.wdata.eq(new), main.we.eq(1)]
            m.d.sync += self.ld_ptr.eq(ptr + 1)
        with m.Else():
            m.d.sync += self.ld_ptr.eq(ptr)

    def _pixel(self, m: Module, main, reader, on_image) -> None:
        """A pixel byte into its slot; the word written after its last slot or channel; the
        image's last byte starts the reader and ends the phase."""
        p, framer = self.program, self.framer
        S, A, C = p.slots, p.act_bits, p.input_shape[2]
        neww = Signal(WORD_BITS)
        m.d.comb += neww.eq(self.in_word)
        for s in range(S):
            with m.If(self.in_c == s):
                m.d.comb += neww.word_select(s, A).eq(framer.o.payload)
        m.d.sync += self.in_word.eq(neww)
        last_c = Signal()
        m.d.comb += last_c.eq((self.in_c == S - 1) | (self.in_ch == C - 1))
        m.d.sync += self.in_ch.eq(Mux(self.in_ch == C - 1, 0, self.in_ch + 1))
        with m.If(last_c):
            m.d.comb += [main.addr.eq(self.in_pos_ptr), main.wdata.eq(neww), main.we.eq(1)]
            m.d.sync += [self.in_pos_ptr.eq(self.in_pos_ptr + 1), self.in_c.eq(0),
                         self.in_word.eq(0)]
        with m.Else():
            m.d.sync += self.in_c.eq(self.in_c + 1)
        with m.If(self.in_cnt == self.n_bytes - 1):
            if reader is not None:  # the image's weights: one read of the flash
                m.d.comb += reader.start.eq(1)
            m.d.sync += [self.in_cnt.eq(0), self.in_pos_ptr.eq(p.maps["input"][0]),
                         *on_image]
        with m.Else():
            m.d.sync += self.in_cnt.eq(self.in_cnt + 1)
