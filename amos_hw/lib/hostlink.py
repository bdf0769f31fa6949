"""The framed UART host link: one protocol definition, its gateware and its host side.

Protocol (version 1)
--------------------
Every message, in both directions, is one frame::

    A5 5A | CMD | LEN (2 bytes, little-endian) | PAYLOAD (LEN bytes) | CRC

``CRC`` is CRC-8 (polynomial 0x07, initial value 0, no reflection: CRC-8/SMBUS) over ``CMD``,
``LEN`` and ``PAYLOAD``. Host to board:

* ``CMD_INFO`` (``LEN`` 0): the board answers ``RSP_INFO`` with an :class:`Info` payload (input
  shape, classes, logit width, clock, cycles per image, ...).
* ``CMD_CLASSIFY`` (``LEN`` = H*W*C): the image, one byte per pixel in HWC order. The board answers
  ``RSP_RESULT`` with a :class:`Result` payload (class, logits, measured cycles).
* ``CMD_LOAD`` (``LEN`` >= 2, only boards whose network takes its weights at run time: the
  shared engine on the iCE40 UP5K, whose SPRAM has no initial contents): one flags byte (bit 0:
  this chunk starts the weights at word 0) and the next bytes of the weight image. The bytes go
  to the network as they arrive; the board answers ``RSP_LOADED`` with the number of bytes taken
  since the last start (4 bytes, little-endian). A chunk whose CRC fails is answered
  ``NAK_CRC`` after its bytes were written: the host restarts the load from the first chunk
  (:func:`load_chunks`). A board without run-time weights ignores the command (no answer).

Board to host, when a frame with a known command cannot be served: ``RSP_NAK`` with one byte,
``NAK_CRC`` (the frame arrived corrupted), ``NAK_LENGTH`` (``LEN`` is not what the command needs) or
``NAK_BUSY`` (an image is still being classified).

Recovery, on the board side: the receiver hunts for ``A5 5A`` and ignores everything else
(garbage); a frame whose bytes stop coming for :data:`FRAME_TIMEOUT_S` is dropped and the receiver
hunts again (truncated frames, a host that went away mid-frame); an unknown command is dropped
silently (a false ``A5 5A`` inside data); the image reaches the network only after its CRC checked,
so a broken frame never leaves the network half-fed. The transmitter never waits for the host (a
UART has no flow control here), so a host that stopped listening cannot block the board.

The host side (:func:`encode_frame`, :class:`FrameDecoder`, :class:`Info`, :class:`Result`) and the
gateware (:class:`HostLink`) both use the constants and helpers of this module.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from amaranth.hdl import Array, C, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "CMD_CLASSIFY",
    "CMD_INFO",
    "CMD_LOAD",
    "RSP_LOADED",
    "load_chunks",
    "load_layout",
    "FRAME_TIMEOUT_S",
    "NAK_BUSY",
    "NAK_CRC",
    "NAK_LENGTH",
    "PROTOCOL_VERSION",
    "RSP_INFO",
    "RSP_NAK",
    "RSP_RESULT",
    "SYNC",
    "Frame",
    "FrameDecoder",
    "HostLink",
    "Info",
    "ProtocolError",
    "Result",
    "crc8",
    "crc8_update",
    "encode_frame",
    "pixel_layout",
    "result_layout",
]

PROTOCOL_VERSION = 1
SYNC = b"\xa5\x5a"
CMD_INFO = 0x01
CMD_CLASSIFY = 0x02
CMD_LOAD = 0x03
RSP_INFO = 0x81
RSP_RESULT = 0x82
RSP_LOADED = 0x83
#: Weight bytes per ``CMD_LOAD`` frame sent by the host (any 1..65534 is accepted).
LOAD_CHUNK = 4096
RSP_NAK = 0xFF
NAK_CRC = 1
NAK_LENGTH = 2
NAK_BUSY = 3
NAK_NAMES = {NAK_CRC: "CRC error", NAK_LENGTH: "wrong length", NAK_BUSY: "busy"}
#: A frame whose next byte does not come within this many seconds is dropped by the board.
FRAME_TIMEOUT_S = 0.02
CRC_POLY = 0x07
MAX_PAYLOAD = 0xFFFF


class ProtocolError(ValueError):
    """A payload does not match the protocol (wrong length, version or field)."""


# --- the protocol, in Python ------------------------------------------------------------------

def crc8(data_bytes: bytes, crc: int = 0) -> int:
    """CRC-8/SMBUS (polynomial 0x07, init 0) of ``data_bytes``, continuing from ``crc``."""
    for byte in data_bytes:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def encode_frame(cmd: int, payload: bytes = b"") -> bytes:
    """One frame: sync, command, length, payload and CRC."""
    if not 0 <= cmd <= 0xFF:
        raise ProtocolError(f"cmd must be a byte, not {cmd!r}")
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload must be at most {MAX_PAYLOAD} bytes, not {len(payload)}")
    body = bytes([cmd]) + struct.pack("<H", len(payload)) + bytes(payload)
    return SYNC + body + bytes([crc8(body)])


@dataclass(frozen=True)
class Frame:
    """A decoded frame: its command byte and payload."""

    cmd: int
    payload: bytes


class FrameDecoder:
    """Byte-at-a-time frame parser with the board receiver's recovery rules.

    Bytes outside a frame are skipped; a frame whose CRC does not match is dropped and counted in
    ``crc_errors``. Call :meth:`reset` after a read timeout (the board side does the same after
    :data:`FRAME_TIMEOUT_S`).
    """

    def __init__(self):
        self.crc_errors = 0
        self.skipped = 0
        self.reset()

    def reset(self) -> None:
        """Drop any partial frame and hunt for the next sync."""
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[Frame]:
        """Add received bytes; return the frames they complete, in order."""
        out = []
        for byte in chunk:
            buf = self._buf
            buf.append(byte)
            if len(buf) == 1:
                if byte != SYNC[0]:
                    self.skipped += 1
                    buf.clear()
            elif len(buf) == 2:
                if byte != SYNC[1]:
                    self.skipped += 1
                    buf.clear()
                    if byte == SYNC[0]:
                        buf.append(byte)
            elif len(buf) >= 6:
                length = buf[3] | buf[4] << 8
                if len(buf) == 6 + length:
                    body = bytes(buf[2:-1])
                    if crc8(body) == buf[-1]:
                        out.append(Frame(body[0], body[3:]))
                    else:
                        self.crc_errors += 1
                    buf.clear()
        return out


_INFO = struct.Struct("<BHHBBBIIII8s")


@dataclass(frozen=True)
class Info:
    """What the board says about itself (payload of ``RSP_INFO``).

    Members
    -------
    input_shape : tuple of int
        ``(H, W, C)`` of the image the network takes.
    num_classes : int
    logit_bytes : int
        Bytes per logit in a :class:`Result` (two's complement, little-endian).
    clk_hz : int
        The clock the board top runs at.
    cycles_per_image : int
        Clock cycles between images at full throughput (the generator's figure).
    latency_cycles : int
        Clock cycles from the first pixel to the result (the generator's figure).
    baud : int
        The UART's bit rate.
    name : str
        Model name, at most 8 ASCII characters.
    """

    input_shape: tuple
    num_classes: int
    logit_bytes: int
    clk_hz: int
    cycles_per_image: int
    latency_cycles: int
    baud: int
    name: str

    @property
    def input_size(self) -> int:
        h, w, c = self.input_shape
        return h * w * c

    def to_payload(self) -> bytes:
        h, w, c = self.input_shape
        name = self.name.encode("ascii")[:8]
        return _INFO.pack(PROTOCOL_VERSION, h, w, c, self.num_classes, self.logit_bytes,
                          self.clk_hz, self.cycles_per_image, self.latency_cycles, self.baud, name)

    @classmethod
    def from_payload(cls, payload: bytes) -> Info:
        if len(payload) != _INFO.size:
            raise ProtocolError(f"INFO payload must be {_INFO.size} bytes, not {len(payload)}")
        (version, h, w, c, classes, lb, clk, cpi, lat, baud, name) = _INFO.unpack(payload)
        if version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"board speaks protocol version {version}, this host {PROTOCOL_VERSION}")
        return cls((h, w, c), classes, lb, clk, cpi, lat, baud,
                   name.rstrip(b"\0").decode("ascii", "replace"))


@dataclass(frozen=True)
class Result:
    """One classification (payload of ``RSP_RESULT``).

    Members
    -------
    cls : int
        The class the network chose.
    logits : tuple of int
        The output layer's accumulators.
    cycles : int
        Clock cycles from the first pixel entering the network to the result, measured on the
        board.
    """

    cls: int
    logits: tuple
    cycles: int

    @staticmethod
    def payload_size(num_classes: int, logit_bytes: int) -> int:
        return 1 + num_classes * logit_bytes + 4

    @classmethod
    def from_payload(cls, payload: bytes, num_classes: int, logit_bytes: int) -> Result:
        want = cls.payload_size(num_classes, logit_bytes)
        if len(payload) != want:
            raise ProtocolError(f"RESULT payload must be {want} bytes, not {len(payload)}")
        logits = tuple(
            int.from_bytes(payload[1 + i * logit_bytes:1 + (i + 1) * logit_bytes], "little",
                           signed=True)
            for i in range(num_classes))
        cycles = int.from_bytes(payload[-4:], "little")
        return cls(payload[0], logits, cycles)


# --- the protocol, in gateware -----------------------------------------------------------------

def crc8_update(crc, byte) -> Value:
    """Gateware CRC-8/SMBUS step: the CRC after ``byte`` (both 8-bit values).

    The step is linear over GF(2) in ``crc ^ byte``, so each output bit is the XOR of the input
    bits that :func:`crc8` maps onto it; the matrix is read off :func:`crc8` itself.
    """
    c = Value.cast(crc) ^ Value.cast(byte)
    columns = [crc8(bytes([1 << i])) for i in range(8)]
    bits = []
    for j in range(8):
        terms = [c[i] for i in range(8) if columns[i] >> j & 1]
        bit = terms[0]
        for t in terms[1:]:
            bit = bit ^ t
        bits.append(bit)
    return Cat(*bits)


def _sext(value, width: int) -> Value:
    """``value`` (signed) sign-extended to ``width`` bits."""
    v = Value.cast(value)
    return v.as_signed()[:width] if len(v) >= width else Cat(
        v, v[-1].replicate(width - len(v)))


def pixel_layout() -> data.StructLayout:
    """Payload of the network's ``pixels`` stream: one byte per beat with frame markers
    (:data:`amos_hw.lib.framer.PIXEL_LAYOUT`)."""
    from amos_hw.lib.framer import PIXEL_LAYOUT

    return PIXEL_LAYOUT


def load_layout() -> data.StructLayout:
    """Payload of the network's ``load`` stream (weight bytes; ``first`` restarts at word 0)."""
    return data.StructLayout({"data": unsigned(8), "first": unsigned(1)})


def load_chunks(image: bytes, chunk: int = LOAD_CHUNK) -> list[bytes]:
    """The ``CMD_LOAD`` payloads that load ``image``: a flags byte (1 on the first) and up to
    ``chunk`` bytes each."""
    if not 1 <= chunk <= MAX_PAYLOAD - 1:
        raise ValueError(f"chunk must be 1..{MAX_PAYLOAD - 1}, not {chunk}")
    if not image:
        raise ValueError("no weight bytes to load")
    return [bytes([1 if k == 0 else 0]) + image[k:k + chunk]
            for k in range(0, len(image), chunk)]


def result_layout(logit_width: int, num_classes: int) -> data.StructLayout:
    """Payload of the network's ``result`` stream."""
    return data.StructLayout({"cls": unsigned(4),
                              "logits": data.ArrayLayout(signed(logit_width), num_classes)})


def _check_pos(name: str, value, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (
            hi is not None and value > hi):
        bound = f" of at most {hi}" if hi is not None else ""
        raise ValueError(f"{name} must be a positive integer{bound}, not {value!r}")
    return value


class HostLink(wiring.Component):
    """Board side of the host link, between a UART and the network.

    Parameters
    ----------
    info : Info
        What ``CMD_INFO`` answers; also fixes the image size, classes and logit width.
    logit_width : int
        Width of the network's logits (``info.logit_bytes`` must be ``ceil(logit_width / 8)``).
    frame_timeout : int
        Clock cycles without a byte after which a partial frame is dropped.

    Members
    -------
    rx : In(stream.Signature(8))
        Bytes from the UART receiver; always ready.
    tx : Out(stream.Signature(8))
        Bytes to the UART transmitter.
    pixels : Out(stream.Signature(pixel_layout()))
        To the network: the image of a frame whose CRC checked, one pixel per cycle when the
        network is ready.
    result : In(stream.Signature(result_layout(...)))
        From the network: one beat per image, sent back as ``RSP_RESULT``; ``ready`` is always
        high (one image is in flight, so there is always room). The link takes the
        logits and finds the class itself, one comparison per cycle (lowest index on ties, as
        the network's ``cls``), so the network's combinational argmax is not on any path that
        synthesis keeps; ``cls`` is not read.
    activity : Out(1)
        One-cycle pulse for every frame accepted and every result sent (drive an LED through a
        pulse stretcher).

    One image is in flight at a time: a ``CMD_CLASSIFY`` that completes its header while the
    previous image has not been answered gets ``NAK_BUSY``. The image buffer is one memory of
    H*W*C bytes.

    ``load_port``: serve ``CMD_LOAD`` on a ``load`` stream (weight bytes to the network).
    Its ``ready`` must be high whenever no image is in flight; a byte it does not take makes the
    frame's answer ``NAK_BUSY``.

    ``registered_class``: the network's ``cls`` comes from a register and its result is held
    until taken (the shared engine): the link then takes the result only when its transmitter
    is idle and loads it straight into the frame, without its own copy of the logits and its
    own argmax (about 640 flip-flops fewer, which the iCE40 UP5K needs).
    """

    def __init__(self, info: Info, *, logit_width: int, frame_timeout: int,
                 registered_class: bool = False, load_port: bool = False):
        self._MustUse__silence = True  # a constructor that raises must not also warn
        if not isinstance(info, Info):
            raise TypeError(f"info must be an Info, not {info!r}")
        _check_pos("num_classes", info.num_classes, 16)
        _check_pos("logit_width", logit_width, 64)
        _check_pos("frame_timeout", frame_timeout)
        if info.logit_bytes != (logit_width + 7) // 8:
            raise ValueError(f"info.logit_bytes must be {(logit_width + 7) // 8} for "
                             f"logit_width {logit_width}, not {info.logit_bytes}")
        _check_pos("input size", info.input_size, MAX_PAYLOAD)
        self._info = info
        self._logit_width = logit_width
        self._frame_timeout = frame_timeout
        self._registered_class = bool(registered_class)
        self._load_port = bool(load_port)
        ports = {"load": Out(stream.Signature(load_layout()))} if load_port else {}
        super().__init__({
            **ports,
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "pixels": Out(stream.Signature(pixel_layout())),
            "result": In(stream.Signature(result_layout(logit_width, info.num_classes))),
            "activity": Out(1),
        })
        self._MustUse__silence = False

    @property
    def info(self) -> Info:
        return self._info

    @property
    def frame_timeout(self) -> int:
        return self._frame_timeout

    def elaborate(self, platform):
        m = Module()
        info = self._info
        n = info.input_size
        m.submodules.buf = buf = memory.Memory(shape=8, depth=n, init=[])
        wr = buf.write_port()
        rd = buf.read_port()

        busy = Signal()          # an image is in the buffer, the network or the result path
        start_req = Signal()     # a CLASSIFY frame checked (combinational, in CHECK)
        start = Signal()         # ... registered: feed the image from the next cycle. The
        # register cuts the UART byte -> CRC compare -> feeder path, which was the ECP5-85F
        # ResNet8 build's critical path (81.6 MHz, 85 % routing); the cycle count starts here too
        info_req = Signal()      # an INFO frame checked
        nak_req = Signal()
        nak_code_next = Signal(8)
        frame_ok = Signal()

        # --- receiver ---------------------------------------------------------------------
        ack_req = Signal()       # a LOAD frame checked
        ld_left = Signal(16)
        ld_first = Signal()
        ld_err = Signal()
        ld_total = Signal(32)
        cmd = Signal(8)
        len_lo = Signal(8)
        idx = Signal(range(n + 1))
        crc = Signal(8)
        timer = Signal(range(self._frame_timeout + 1))
        byte = self.rx.payload
        got = self.rx.valid
        m.d.comb += self.rx.ready.eq(1)
        length = Cat(len_lo, byte)
        # a partial frame whose bytes stopped coming is dropped (checked in every in-frame state)
        timeout = Signal()
        m.d.comb += timeout.eq(~got & (timer == self._frame_timeout - 1))

        with m.If(got):
            m.d.sync += [timer.eq(0), crc.eq(crc8_update(crc, byte))]
        with m.Else():
            m.d.sync += timer.eq(timer + 1)
        m.d.comb += [wr.addr.eq(idx), wr.data.eq(byte)]

        with m.FSM(name="rx_fsm"):
            with m.State("HUNT0"):
                m.d.sync += crc.eq(0)
                with m.If(got & (byte == SYNC[0])):
                    m.next = "HUNT1"
            with m.State("HUNT1"):
                m.d.sync += crc.eq(0)
                with m.If(got):
                    with m.If(byte == SYNC[1]):
                        m.next = "CMD"
                    with m.Elif(byte != SYNC[0]):
                        m.next = "HUNT0"
            with m.State("CMD"):
                with m.If(timeout):
                    m.next = "HUNT0"
                with m.If(got):
                    m.d.sync += cmd.eq(byte)
                    m.next = "LEN0"
            with m.State("LEN0"):
                with m.If(timeout):
                    m.next = "HUNT0"
                with m.If(got):
                    m.d.sync += len_lo.eq(byte)
                    m.next = "LEN1"
            with m.State("LEN1"):
                with m.If(timeout):
                    m.next = "HUNT0"
                with m.If(got):
                    m.d.sync += idx.eq(0)
                    m.next = "HUNT0"
                    with m.If(cmd == CMD_INFO):
                        with m.If(length == 0):
                            m.next = "CHECK"
                        with m.Else():
                            m.d.comb += [nak_req.eq(1), nak_code_next.eq(NAK_LENGTH)]
                    if self._load_port:
                        with m.Elif(cmd == CMD_LOAD):
                            with m.If(length < 2):
                                m.d.comb += [nak_req.eq(1), nak_code_next.eq(NAK_LENGTH)]
                            with m.Elif(busy):
                                m.d.comb += [nak_req.eq(1), nak_code_next.eq(NAK_BUSY)]
                            with m.Else():
                                m.d.sync += [ld_left.eq(length - 1), ld_err.eq(0)]
                                m.next = "LFLAGS"
                    with m.Elif(cmd == CMD_CLASSIFY):
                        with m.If(length != n):
                            m.d.comb += [nak_req.eq(1), nak_code_next.eq(NAK_LENGTH)]
                        with m.Elif(busy):
                            m.d.comb += [nak_req.eq(1), nak_code_next.eq(NAK_BUSY)]
                        with m.Else():
                            m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                with m.If(timeout):
                    m.next = "HUNT0"
                with m.If(got):
                    m.d.comb += wr.en.eq(1)
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == n - 1):
                        m.next = "CHECK"
            if self._load_port:
                with m.State("LFLAGS"):
                    with m.If(timeout):
                        m.next = "HUNT0"
                    with m.If(got):
                        m.d.sync += ld_first.eq(byte[0])
                        m.next = "LDATA"
                with m.State("LDATA"):
                    with m.If(timeout):
                        m.next = "HUNT0"
                    with m.If(got):
                        m.d.comb += [self.load.valid.eq(1), self.load.payload.data.eq(byte),
                                     self.load.payload.first.eq(ld_first)]
                        m.d.sync += [ld_first.eq(0), ld_left.eq(ld_left - 1)]
                        with m.If(~self.load.ready):
                            m.d.sync += ld_err.eq(1)
                        with m.If(ld_first):
                            m.d.sync += ld_total.eq(1)
                        with m.Else():
                            m.d.sync += ld_total.eq(ld_total + 1)
                        with m.If(ld_left == 1):
                            m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(timeout):
                    m.next = "HUNT0"
                with m.If(got):
                    m.next = "HUNT0"
                    with m.If(byte == crc):
                        m.d.comb += frame_ok.eq(1)
                        with m.If(cmd == CMD_INFO):
                            m.d.comb += info_req.eq(1)
                        with m.Elif(cmd == CMD_LOAD):
                            with m.If(ld_err):
                                m.d.comb += [nak_req.eq(1), nak_code_next.eq(NAK_BUSY)]
                            with m.Else():
                                m.d.comb += ack_req.eq(1)
                        with m.Else():
                            m.d.comb += start_req.eq(1)
                    with m.Else():
                        m.d.comb += [nak_req.eq(1), nak_code_next.eq(NAK_CRC)]

        # --- feeder: buffer -> network, one pixel per cycle ------------------------------------
        m.d.sync += start.eq(start_req)
        feeding = Signal()
        rd_idx = Signal(range(n + 1))
        out_idx = Signal(range(n))
        have = Signal()
        advance = ~have | self.pixels.ready
        m.d.comb += [
            rd.addr.eq(rd_idx),
            rd.en.eq(advance),
            self.pixels.valid.eq(have),
            self.pixels.payload.data.eq(rd.data),
            self.pixels.payload.first.eq(out_idx == 0),
            self.pixels.payload.last.eq(out_idx == n - 1),
        ]
        with m.If(advance):
            m.d.sync += [have.eq(feeding & (rd_idx < n)), out_idx.eq(rd_idx)]
            with m.If(feeding & (rd_idx < n)):
                m.d.sync += rd_idx.eq(rd_idx + 1)
            with m.Elif(feeding):
                m.d.sync += feeding.eq(0)
        with m.If(start):
            m.d.sync += [feeding.eq(1), rd_idx.eq(0), busy.eq(1)]

        # cycles from the first pixel offered to the result taken
        cycles = Signal(32)
        counting = Signal()
        count_stop = Signal()  # the result seen (direct mode: the count freezes in that cycle)
        with m.If(start):
            m.d.sync += [cycles.eq(0), counting.eq(1)]
        with m.Elif(counting & ~count_stop):
            m.d.sync += cycles.eq(cycles + 1)

        # --- transmitter ------------------------------------------------------------------
        nak_pending = Signal()
        nak_code = Signal(8)
        info_pending = Signal()
        with m.If(nak_req):
            m.d.sync += [nak_pending.eq(1), nak_code.eq(nak_code_next)]
        with m.If(info_req):
            m.d.sync += info_pending.eq(1)
        ack_pending = Signal()
        with m.If(ack_req):
            m.d.sync += ack_pending.eq(1)

        info_bytes = info.to_payload()
        lb = info.logit_bytes
        res_len = Result.payload_size(info.num_classes, lb)
        max_len = max(res_len, len(info_bytes), 1)
        pay = Signal(8 * max_len)
        plen = Signal(16)
        rcmd = Signal(8)
        tcrc = Signal(8)
        tidx = Signal(range(max_len + 7))

        # the logits are latched, then the class is found one comparison per cycle (lowest
        # index on ties): no wide combinational argmax between the network and the UART
        nc = info.num_classes
        lg = [Signal(signed(8 * lb), name=f"logit{i}") for i in range(nc)]
        best_v = Signal(signed(8 * lb))
        best_i = Signal(4)
        scan = Signal(range(max(nc, 2)))
        # the logits pass through a shift register: one compare per cycle and no wide mux
        sh = Signal(8 * lb * nc)
        cur = sh[:8 * lb].as_signed()
        res_bytes = Cat(best_i, C(0, 4), *lg, cycles)

        # The result is always taken: one image is in flight (``busy`` holds until its answer
        # is latched for sending), so the capture registers are free whenever a result comes.
        # A constant ``ready`` keeps the link off the network's backpressure paths (the
        # transmitter's state had been the start of the critical path on the ECP5).
        res_pending = Signal()
        direct = self._registered_class
        tx_idle = Signal()
        res_taken = Signal()
        m.d.comb += self.result.ready.eq(res_taken if direct else 1)
        if direct:
            res_direct = Cat(self.result.payload.cls, C(0, 4),
                             *[_sext(self.result.payload.logits[i], 8 * lb) for i in range(nc)],
                             cycles)
            m.d.comb += count_stop.eq(self.result.valid & tx_idle)
            with m.If(count_stop):
                m.d.sync += counting.eq(0)
        else:
            with m.If(self.result.valid):
                m.d.sync += [lg[i].eq(self.result.payload.logits[i]) for i in range(nc)]
                m.d.sync += sh.eq(Cat(*[_sext(self.result.payload.logits[i], 8 * lb)
                                        for i in range(nc)]))
                m.d.sync += [res_pending.eq(1), counting.eq(0)]

        with m.FSM(name="tx_fsm"):
            with m.State("IDLE"):
                m.d.comb += tx_idle.eq(1)
                m.d.sync += [tidx.eq(0), tcrc.eq(0)]
                with m.If(self.result.valid if direct else res_pending):
                    m.d.comb += self.activity.eq(1)
                    if direct:  # sent from the held result itself, taken after its last byte
                        m.d.sync += [plen.eq(res_len), rcmd.eq(RSP_RESULT), busy.eq(0)]
                        m.next = "SEND"
                    else:
                        m.d.sync += [best_i.eq(0), scan.eq(0), res_pending.eq(0),
                                     plen.eq(res_len), rcmd.eq(RSP_RESULT)]
                        m.next = "ARGMAX"
                with m.Elif(nak_pending):
                    if not direct:
                        m.d.sync += pay.eq(nak_code)
                    m.d.sync += [plen.eq(1), rcmd.eq(RSP_NAK), nak_pending.eq(0)]
                    m.next = "SEND"
                with m.Elif(ack_pending):
                    if not direct:
                        m.d.sync += pay.eq(ld_total)
                    m.d.sync += [plen.eq(4), rcmd.eq(RSP_LOADED), ack_pending.eq(0)]
                    m.next = "SEND"
                with m.Elif(info_pending):
                    if not direct:
                        m.d.sync += pay.eq(Const(int.from_bytes(info_bytes, "little"),
                                                 8 * len(info_bytes)))
                    m.d.sync += [plen.eq(len(info_bytes)), rcmd.eq(RSP_INFO),
                                 info_pending.eq(0)]
                    m.next = "SEND"
            with m.State("ARGMAX"):
                with m.If((scan == 0) | (cur > best_v)):
                    m.d.sync += [best_v.eq(cur), best_i.eq(scan)]
                m.d.sync += [scan.eq(scan + 1), sh.eq(sh >> (8 * lb))]
                with m.If(scan == nc - 1):
                    m.next = "LATCH"
            with m.State("LATCH"):
                m.d.sync += [pay.eq(res_bytes), busy.eq(0)]
                m.next = "SEND"
            with m.State("SEND"):
                pbyte = Signal(8)
                if direct:
                    # no payload register (about 45 bytes of flip-flops): each byte is picked
                    # from its source, which holds still while it is sent
                    k = Signal(range(max_len + 7))
                    m.d.comb += k.eq(tidx - 5)

                    def pick(value, n_bytes):
                        v = Value.cast(value)
                        if len(v) < 8 * n_bytes:
                            v = Cat(v, C(0, 8 * n_bytes - len(v)))
                        return Array(v.word_select(i, 8) for i in range(n_bytes))[k]

                    with m.Switch(rcmd):
                        with m.Case(RSP_RESULT):
                            m.d.comb += pbyte.eq(pick(res_direct, res_len))
                            with m.If(self.tx.ready & (tidx == plen + 5)):
                                m.d.comb += res_taken.eq(1)
                        with m.Case(RSP_LOADED):
                            m.d.comb += pbyte.eq(pick(ld_total, 4))
                        with m.Case(RSP_INFO):
                            m.d.comb += pbyte.eq(Array(C(b, 8) for b in info_bytes)[k])
                        with m.Default():
                            m.d.comb += pbyte.eq(nak_code)
                else:
                    m.d.comb += pbyte.eq(pay[:8])
                tbyte = Signal(8)
                with m.Switch(tidx):
                    with m.Case(0):
                        m.d.comb += tbyte.eq(SYNC[0])
                    with m.Case(1):
                        m.d.comb += tbyte.eq(SYNC[1])
                    with m.Case(2):
                        m.d.comb += tbyte.eq(rcmd)
                    with m.Case(3):
                        m.d.comb += tbyte.eq(plen[:8])
                    with m.Case(4):
                        m.d.comb += tbyte.eq(plen[8:])
                    with m.Default():
                        m.d.comb += tbyte.eq(Mux(tidx == plen + 5, tcrc, pbyte))
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(tbyte)]
                with m.If(self.tx.ready):
                    m.d.sync += tidx.eq(tidx + 1)
                    with m.If(tidx >= 2):
                        m.d.sync += tcrc.eq(crc8_update(tcrc, tbyte))
                    if not direct:
                        with m.If(tidx >= 5):  # the payload is a shift register: no wide mux
                            m.d.sync += pay.eq(pay >> 8)
                    with m.If(tidx == plen + 5):
                        m.next = "IDLE"

        with m.If(frame_ok):
            m.d.comb += self.activity.eq(1)
        return m
