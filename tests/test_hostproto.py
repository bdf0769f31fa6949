"""amos_hw.lib.hostproto: the host link's protocol in plain Python (no Amaranth): CRC, frames,
the decoder's recovery rules, the INFO / RESULT payloads and the weight-load chunks."""
import subprocess
import sys

import pytest

from amos_hw.lib import hostproto as hp


def test_no_amaranth_import():
    """The codec is what a host needs: importing it pulls in no HDL."""
    code = ("import sys, amos_hw.lib.hostproto; "
            "sys.exit(1 if any(m.split('.')[0] == 'amaranth' for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_crc8_check_value():
    # CRC-8/SMBUS check value from the CRC catalogue
    assert hp.crc8(b"123456789") == 0xF4


def test_encode_frame_layout():
    f = hp.encode_frame(0x02, b"\x10\x20\x30")
    assert f[:2] == b"\xa5\x5a"
    assert f[2] == 0x02 and f[3:5] == b"\x03\x00" and f[5:8] == b"\x10\x20\x30"
    assert f[8] == hp.crc8(b"\x02\x03\x00\x10\x20\x30")


def test_decoder_garbage_and_corruption():
    good = hp.encode_frame(0x81, b"abc")
    bad = bytearray(hp.encode_frame(0x82, b"xyz"))
    bad[6] ^= 1
    dec = hp.FrameDecoder()
    frames = dec.feed(b"\x00\xa5\xa5\x13" + bytes(bad) + b"\xa5" + good)
    assert frames == [hp.Frame(0x81, b"abc")]
    assert dec.crc_errors == 1


def test_info_roundtrip_and_errors():
    info = hp.Info((32, 32, 3), 10, 3, 25_000_000, 4096, 9000, 1_000_000, "resnet8")
    assert hp.Info.from_payload(info.to_payload()) == info
    with pytest.raises(hp.ProtocolError, match=r"^INFO payload must be 32 bytes \(or 33 with "
                                               r"the flags byte\), not 3$"):
        hp.Info.from_payload(b"abc")
    wrong = bytes([9]) + info.to_payload()[1:]
    with pytest.raises(hp.ProtocolError, match="^board speaks protocol version 9, this host 1$"):
        hp.Info.from_payload(wrong)


def test_result_payload_errors():
    with pytest.raises(hp.ProtocolError, match="^RESULT payload must be 25 bytes, not 2$"):
        hp.Result.from_payload(b"ab", 10, 2)
    with pytest.raises(hp.ProtocolError, match="^RESULT payload must be 29 bytes, not 25$"):
        hp.Result.from_payload(bytes(25), 10, 2, spikes=True)


def test_info_spike_counts_flag():
    """A board with spike counters sends one flags byte more; without, the payload is the
    32 bytes it always was."""
    plain = hp.Info((8, 8, 1), 10, 3, 25_000_000, 2221, 2400, 1_000_000, "digits")
    spk = hp.Info((8, 8, 1), 10, 3, 25_000_000, 2221, 2400, 1_000_000, "digits",
                  spike_counts=True)
    assert len(plain.to_payload()) == 32
    assert spk.to_payload() == plain.to_payload() + bytes([hp.INFO_SPIKES])
    assert hp.Info.from_payload(spk.to_payload()) == spk
    assert hp.Info.from_payload(plain.to_payload()).spike_counts is False
    with pytest.raises(hp.ProtocolError, match="^INFO flags byte 0x03 has bits this host does "
                                               "not know"):
        hp.Info.from_payload(plain.to_payload() + b"\x03")


def test_result_with_spikes():
    """The spike count follows the cycle count, 4 bytes little-endian."""
    payload = bytes([7]) + (-5).to_bytes(2, "little", signed=True) + (300).to_bytes(
        2, "little", signed=True) + (1234).to_bytes(4, "little") + (140693).to_bytes(4, "little")
    assert hp.Result.payload_size(2, 2, spikes=True) == len(payload) == 13
    r = hp.Result.from_payload(payload, 2, 2, spikes=True)
    assert r == hp.Result(7, (-5, 300), 1234, 140693)
    assert hp.Result.from_payload(payload[:9], 2, 2).spikes is None




def test_load_chunks_errors():
    with pytest.raises(ValueError, match="no weight bytes"):
        hp.load_chunks(b"")
    with pytest.raises(ValueError, match="^chunk must be a positive integer of at most 65534, "
                                         "not 0$"):
        hp.load_chunks(b"x", chunk=0)
    with pytest.raises(ValueError, match="^chunk must be a positive integer of at most 65534, "
                                         "not 65535$"):
        hp.load_chunks(b"x", chunk=65535)


def test_encode_frame_errors():
    with pytest.raises(hp.ProtocolError, match="^cmd must be a byte, not 256$"):
        hp.encode_frame(256)
    with pytest.raises(hp.ProtocolError, match="^payload must be at most 65535 bytes, not 65536$"):
        hp.encode_frame(hp.CMD_LOAD, bytes(65536))


def test_decoder_byte_by_byte_and_reset():
    """Frames split anywhere decode the same; reset() drops a partial frame (the host's read
    timeout), and the next frame still decodes."""
    frames = [hp.encode_frame(hp.RSP_INFO, b"abc"), hp.encode_frame(hp.RSP_NAK, b"\x02"),
              hp.encode_frame(hp.RSP_RESULT)]
    stream = b"".join(frames)
    dec = hp.FrameDecoder()
    got = [f for byte in stream for f in dec.feed(bytes([byte]))]
    assert got == [hp.Frame(hp.RSP_INFO, b"abc"), hp.Frame(hp.RSP_NAK, b"\x02"),
                   hp.Frame(hp.RSP_RESULT, b"")]
    assert dec.feed(frames[0][:5]) == []
    dec.reset()
    assert dec.feed(frames[1]) == [hp.Frame(hp.RSP_NAK, b"\x02")]
    assert (dec.crc_errors, dec.skipped) == (0, 0)


def test_result_roundtrip_signed_logits():
    logits = (-2048, 2047, 0, -1)
    payload = (bytes([1]) + b"".join(v.to_bytes(2, "little", signed=True) for v in logits)
               + (123456).to_bytes(4, "little"))
    assert hp.Result.payload_size(4, 2) == len(payload)
    assert hp.Result.from_payload(payload, 4, 2) == hp.Result(1, logits, 123456)


def test_load_chunks_flags_and_sizes():
    image = bytes(range(10))
    chunks = hp.load_chunks(image, chunk=4)
    assert chunks == [b"\x01" + image[:4], b"\x00" + image[4:8], b"\x00" + image[8:]]
    assert len(hp.load_chunks(bytes(hp.LOAD_CHUNK + 1))) == 2
