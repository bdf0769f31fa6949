"""The framed UART host link's protocol, in plain Python: constants, CRC, frames and payloads.

No Amaranth here: the host CLI (:mod:`boards.host`), the cocotb model of the host
(:mod:`boards.tb_host`) and the gateware (:mod:`amos_hw.lib.hostlink`, which takes its
constants and its CRC matrix from this module) all speak the protocol defined once below.

Protocol (version 1)
--------------------
Every message, in both directions, is one frame::

    A5 5A | CMD | LEN (2 bytes, little-endian) | PAYLOAD (LEN bytes) | CRC

``CRC`` is CRC-8 (polynomial 0x07, initial value 0, no reflection: CRC-8/SMBUS) over ``CMD``,
``LEN`` and ``PAYLOAD``. Host to board:

* ``CMD_INFO`` (``LEN`` 0): the board answers ``RSP_INFO`` with an :class:`Info` payload (input
  shape, classes, logit width, clock, cycles per image, ...).
* ``CMD_CLASSIFY`` (``LEN`` = H*W*C): the image, one byte per pixel in HWC order. The board answers
  ``RSP_RESULT`` with a :class:`Result` payload (class, logits, measured cycles and, from a
  board built with spike counters, the image's spikes).
* ``CMD_LOAD`` (``LEN`` >= 2, only boards whose network takes its weights at run time: the
  shared engine on the iCE40 UP5K, whose SPRAM has no initial contents): one flags byte (bit 0:
  this chunk starts the weights at word 0) and the next bytes of the weight image. The bytes go
  to the network as they arrive; the board answers ``RSP_LOADED`` with the number of bytes taken
  since the last start (4 bytes, little-endian). A chunk whose CRC fails is answered
  ``NAK_CRC`` after its bytes were written: the host restarts the load from the first chunk
  (:func:`load_chunks`). A board without run-time weights ignores the command (no answer).

Spike counters (a network generated with ``--spike-counts``): the ``RSP_INFO`` payload has one
more byte, :data:`INFO_SPIKES` in bit 0 (boards without the counters send the payload without
it, as before), and every ``RSP_RESULT`` payload 4 more bytes at its end: the image's spikes
(little-endian), summed over every AMOS layer, as :attr:`python_ref.snn.SimResult.spikes`
counts them.

Board to host, when a frame with a known command cannot be served: ``RSP_NAK`` with one byte,
``NAK_CRC`` (the frame arrived corrupted), ``NAK_LENGTH`` (``LEN`` is not what the command needs) or
``NAK_BUSY`` (an image is still being classified).

Recovery, on the board side: the receiver hunts for ``A5 5A`` and ignores everything else
(garbage); a frame whose bytes stop coming for :data:`FRAME_TIMEOUT_S` is dropped and the receiver
hunts again (truncated frames, a host that went away mid-frame); an unknown command is dropped
silently (a false ``A5 5A`` inside data); the image reaches the network only after its CRC checked,
so a broken frame never leaves the network half-fed. The transmitter never waits for the host (a
UART has no flow control here), so a host that stopped listening cannot block the board.
:class:`FrameDecoder` applies the same rules on the host side.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from amos_hw.lib.checks import positive_int

__all__ = [
    "CMD_CLASSIFY",
    "CMD_INFO",
    "CMD_LOAD",
    "CRC_POLY",
    "FRAME_TIMEOUT_S",
    "INFO_SPIKES",
    "LOAD_CHUNK",
    "MAX_PAYLOAD",
    "NAK_BUSY",
    "NAK_CRC",
    "NAK_LENGTH",
    "NAK_NAMES",
    "PROTOCOL_VERSION",
    "RSP_INFO",
    "RSP_LOADED",
    "RSP_NAK",
    "RSP_RESULT",
    "SYNC",
    "Frame",
    "FrameDecoder",
    "Info",
    "ProtocolError",
    "Result",
    "crc8",
    "encode_frame",
    "load_chunks",
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
#: Bit of the ``RSP_INFO`` flags byte: the board returns each image's spikes with its result.
INFO_SPIKES = 0x01


class ProtocolError(ValueError):
    """A payload does not match the protocol (wrong length, version or field)."""


def crc8(data_bytes: bytes, crc: int = 0) -> int:
    """CRC-8/SMBUS (polynomial 0x07, init 0) of ``data_bytes``, continuing from ``crc``.

    Parameters
    ----------
    data_bytes : bytes
    crc : int, optional
        The CRC of the bytes before these (0 to start).

    Returns
    -------
    int
        The CRC, 0 to 255.
    """
    for byte in data_bytes:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def encode_frame(cmd: int, payload: bytes = b"") -> bytes:
    """One frame: sync, command, length, payload and CRC.

    Raises
    ------
    ProtocolError
        If ``cmd`` is not a byte or ``payload`` is longer than :data:`MAX_PAYLOAD`.
    """
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

    Bytes outside a frame are skipped (counted in ``skipped``); a frame whose CRC does not match
    is dropped and counted in ``crc_errors``. Call :meth:`reset` after a read timeout (the board
    side does the same after :data:`FRAME_TIMEOUT_S`).
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
    spike_counts : bool
        The board returns each image's spikes with its result (``RSP_RESULT`` is 4 bytes
        longer); sent as a flags byte after the others, only when set.
    """

    input_shape: tuple
    num_classes: int
    logit_bytes: int
    clk_hz: int
    cycles_per_image: int
    latency_cycles: int
    baud: int
    name: str
    spike_counts: bool = False

    @property
    def input_size(self) -> int:
        """Bytes of one image: ``H * W * C``."""
        h, w, c = self.input_shape
        return h * w * c

    def to_payload(self) -> bytes:
        """The ``RSP_INFO`` payload (the name cut to 8 bytes; the flags byte only with
        ``spike_counts``)."""
        h, w, c = self.input_shape
        name = self.name.encode("ascii")[:8]
        flags = bytes([INFO_SPIKES]) if self.spike_counts else b""
        return _INFO.pack(PROTOCOL_VERSION, h, w, c, self.num_classes, self.logit_bytes,
                          self.clk_hz, self.cycles_per_image, self.latency_cycles, self.baud,
                          name) + flags

    @classmethod
    def from_payload(cls, payload: bytes) -> Info:
        """Decode an ``RSP_INFO`` payload.

        Raises
        ------
        ProtocolError
            If the payload has the wrong length or another protocol version.
        """
        if len(payload) not in (_INFO.size, _INFO.size + 1):
            raise ProtocolError(f"INFO payload must be {_INFO.size} bytes (or {_INFO.size + 1} "
                                f"with the flags byte), not {len(payload)}")
        (version, h, w, c, classes, lb, clk, cpi, lat, baud, name) = _INFO.unpack(
            payload[:_INFO.size])
        if version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"board speaks protocol version {version}, this host {PROTOCOL_VERSION}")
        flags = payload[_INFO.size] if len(payload) > _INFO.size else 0
        if flags & ~INFO_SPIKES:
            raise ProtocolError(f"INFO flags byte 0x{flags:02x} has bits this host does not "
                                f"know (known: 0x{INFO_SPIKES:02x}, spike counts)")
        return cls((h, w, c), classes, lb, clk, cpi, lat, baud,
                   name.rstrip(b"\0").decode("ascii", "replace"), bool(flags & INFO_SPIKES))


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
    spikes : int or None
        The image's spikes in every AMOS layer, from a board with spike counters; else None.
    """

    cls: int
    logits: tuple
    cycles: int
    spikes: int | None = None

    @staticmethod
    def payload_size(num_classes: int, logit_bytes: int, spikes: bool = False) -> int:
        """Bytes of an ``RSP_RESULT`` payload: the class, the logits, the 4-byte cycle count
        (and, with ``spikes``, the 4-byte spike count)."""
        return 1 + num_classes * logit_bytes + 4 + (4 if spikes else 0)

    @classmethod
    def from_payload(cls, payload: bytes, num_classes: int, logit_bytes: int,
                     spikes: bool = False) -> Result:
        """Decode an ``RSP_RESULT`` payload of a board with these classes and logit bytes
        (and spike counters, ``spikes``: :attr:`Info.spike_counts`).

        Raises
        ------
        ProtocolError
            If the payload does not have :meth:`payload_size` bytes.
        """
        want = cls.payload_size(num_classes, logit_bytes, spikes)
        if len(payload) != want:
            raise ProtocolError(f"RESULT payload must be {want} bytes, not {len(payload)}")
        logits = tuple(
            int.from_bytes(payload[1 + i * logit_bytes:1 + (i + 1) * logit_bytes], "little",
                           signed=True)
            for i in range(num_classes))
        at = 1 + num_classes * logit_bytes
        cycles = int.from_bytes(payload[at:at + 4], "little")
        count = int.from_bytes(payload[at + 4:at + 8], "little") if spikes else None
        return cls(payload[0], logits, cycles, count)


def load_chunks(image: bytes, chunk: int = LOAD_CHUNK) -> list[bytes]:
    """The ``CMD_LOAD`` payloads that load ``image``: a flags byte (1 on the first) and up to
    ``chunk`` bytes each.

    Raises
    ------
    ValueError
        If ``chunk`` is not 1 to ``MAX_PAYLOAD - 1`` or ``image`` is empty.
    """
    positive_int("chunk", chunk, at_most=MAX_PAYLOAD - 1)
    if not image:
        raise ValueError("no weight bytes to load")
    return [bytes([1 if k == 0 else 0]) + image[k:k + chunk]
            for k in range(0, len(image), chunk)]
