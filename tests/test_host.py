"""boards.host: image loading, scores, messages, and the serial client against a board model
on a pseudo-terminal."""
import os
import pty
import threading

import numpy as np
import pytest

from amos_hw.lib import hostproto as hp
from boards import host


def test_load_image_grey_and_rgb(tmp_path):
    from PIL import Image
    a = np.arange(16 * 16 * 3, dtype=np.uint32).reshape(16, 16, 3) % 256
    p = tmp_path / "x.png"
    Image.fromarray(a.astype(np.uint8), "RGB").save(p)
    rgb = host.load_image(p, (8, 8, 3))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    grey = host.load_image(p, (4, 4, 1))
    assert grey.shape == (4, 4, 1)
    same = host.load_image(p, (16, 16, 3))
    assert (same == a).all()


def test_load_image_errors(tmp_path):
    with pytest.raises(host.HostError, match=r"no such file$"):
        host.load_image(tmp_path / "none.png", (8, 8, 1))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 broken")
    with pytest.raises(host.HostError, match=r"bad\.jpg: not an image Pillow can read"):
        host.load_image(bad, (8, 8, 1))
    with pytest.raises(host.HostError, match=r"^model input has 2 channels; images can feed 1 "
                                             r"\(grey\) or 3 \(RGB\)$"):
        host.load_image(bad, (8, 8, 2))


def test_score():
    p, kind = host.score([0, 0, 100], 1.0)
    assert kind == "softmax" and p == pytest.approx(1 / (1 + 2 * np.exp(-100.0)))
    assert host.score([3, -2, 7], None) == (7.0, "logit")


def test_output_scale_digits():
    import json
    with open("python_ref/zoo/digits.json") as f:
        desc = json.load(f)
    want = next(n["scale"] for n in desc["nodes"] if n["name"] == desc["outputs"][0])
    assert host.output_scale("digits") == want
    assert host.output_scale("no-such-model") is None


def test_serial_port_missing(capsys):
    assert host.main(["classify", "--port", "/dev/does-not-exist", "x.png"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot open /dev/does-not-exist")


def test_serial_client_with_board_model(tmp_path):
    """The client against a Python board on a pty: a NAK first, then the answer."""
    pytest.importorskip("serial")
    from PIL import Image
    master, slave = pty.openpty()
    info = hp.Info((4, 4, 1), 3, 2, 12_000_000, 100, 150, 1_000_000, "toy")
    naks = [1]

    def board():
        dec = hp.FrameDecoder()
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            for f in dec.feed(data):
                if f.cmd == hp.CMD_INFO:
                    os.write(master, hp.encode_frame(hp.RSP_INFO, info.to_payload()))
                elif f.cmd == hp.CMD_CLASSIFY:
                    if naks:
                        naks.pop()
                        os.write(master, b"\x00garbage" + hp.encode_frame(hp.RSP_NAK, b"\x01"))
                        continue
                    s = sum(f.payload)
                    logits = [s, -5, 7]
                    payload = bytes([0]) + b"".join(v.to_bytes(2, "little", signed=True)
                                                    for v in logits) + (42).to_bytes(4, "little")
                    os.write(master, hp.encode_frame(hp.RSP_RESULT, payload))

    t = threading.Thread(target=board, daemon=True)
    t.start()
    img = tmp_path / "i.png"
    Image.fromarray(np.full((4, 4), 3, np.uint8)).save(img)
    client = host.SerialClient(os.ttyname(slave), 1_000_000, timeout=1.0)
    try:
        got = client.info()
        assert got == info
        res, dt = client.classify(host.load_image(img, got.input_shape), got)
    finally:
        client.close()
        os.close(master)
        os.close(slave)
    assert (res.cls, res.logits, res.cycles) == (0, (48, -5, 7), 42)
    assert dt > 0 and not naks


def test_serial_port_lost():
    """The board (here the pty's other end) disappears: a message, no traceback."""
    pytest.importorskip("serial")
    master, slave = pty.openpty()
    client = host.SerialClient(os.ttyname(slave), 1_000_000, timeout=0.5, retries=0)
    os.close(master)
    try:
        with pytest.raises(host.HostError, match=r"^(lost the serial port .*|the board did not "
                                                 r"answer command 0x01 after 1 tries: no answer)$"):
            client.info()
    finally:
        client.close()
        os.close(slave)


def test_load_weights_restarts_after_a_nak():
    """load_weights against a Python board on a pty that NAKs the second chunk once: the load
    restarts from the first chunk (never resends a chunk on its own), and the board ends with
    exactly the image."""
    pytest.importorskip("serial")
    master, slave = pty.openpty()
    image = bytes(range(256)) * 40  # 10,240 bytes: 3 chunks of 4096
    got = bytearray()
    naks = [2]

    def board():
        dec = hp.FrameDecoder()
        seen = 0
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            for f in dec.feed(data):
                if f.cmd != hp.CMD_LOAD:
                    continue
                seen += 1
                if f.payload[0] & 1:
                    got.clear()
                got.extend(f.payload[1:])
                if naks and seen == naks[0]:
                    naks.pop()
                    os.write(master, hp.encode_frame(hp.RSP_NAK, bytes([hp.NAK_CRC])))
                    continue
                os.write(master, hp.encode_frame(hp.RSP_LOADED, len(got).to_bytes(4, "little")))

    t = threading.Thread(target=board, daemon=True)
    t.start()
    client = host.SerialClient(os.ttyname(slave), 1_000_000, timeout=1.0)
    try:
        assert client.load_weights(image, progress=False) == len(image)
    finally:
        client.close()
        os.close(master)
        os.close(slave)
    assert bytes(got) == image and not naks


def test_weight_image_is_the_shared_program():
    from amos_hw.flow import FlowConfig, run_flow
    img = host.weight_image("digits")
    ctx = run_flow(FlowConfig(model="digits", architecture="shared", stop_after="memory",
                              quiet=True))
    assert len(img) == 8 * ctx.program.weight_words
    assert int.from_bytes(img[:8], "little") == int(ctx.program.image[0])


def test_load_weights_cli_errors(capsys):
    assert host.main(["load-weights", "--port", "/dev/does-not-exist", "--model", "digits"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot open /dev/does-not-exist")
    assert host.main(["load-weights", "--port", "/dev/x", "--model", "nosuch"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown model 'nosuch'; known models:")


@pytest.mark.parametrize("spike_counts", [False, True])
def test_classify_port_prints_spikes(tmp_path, capsys, spike_counts):
    """``classify`` on a board with spike counters prints each image's spikes; on one without,
    a note says why there are none."""
    pytest.importorskip("serial")
    from PIL import Image
    master, slave = pty.openpty()
    info = hp.Info((4, 4, 1), 3, 2, 12_000_000, 100, 150, 1_000_000, "toy",
                   spike_counts=spike_counts)

    def board():
        dec = hp.FrameDecoder()
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            for f in dec.feed(data):
                if f.cmd == hp.CMD_INFO:
                    os.write(master, hp.encode_frame(hp.RSP_INFO, info.to_payload()))
                elif f.cmd == hp.CMD_CLASSIFY:
                    payload = bytes([1]) + b"".join(v.to_bytes(2, "little", signed=True)
                                                    for v in (-1, 9, 2)) + (42).to_bytes(4,
                                                                                         "little")
                    if spike_counts:
                        payload += (3 * sum(f.payload) + 100_000).to_bytes(4, "little")
                    os.write(master, hp.encode_frame(hp.RSP_RESULT, payload))

    t = threading.Thread(target=board, daemon=True)
    t.start()
    img = tmp_path / "i.png"
    Image.fromarray(np.full((4, 4), 3, np.uint8)).save(img)
    try:
        (c,) = host.classify_port(os.ttyname(slave), 1_000_000, [str(img)])
    finally:
        os.close(master)
        os.close(slave)
    printed = capsys.readouterr().out
    assert c.cls == 1
    if spike_counts:
        assert c.spikes == 3 * 48 + 100_000
        assert "; 100144 spikes; board" in printed
        assert host.NO_SPIKES not in printed
    else:
        assert c.spikes is None and "spikes;" not in printed
        assert printed.startswith(host.NO_SPIKES + "\n")


def test_spike_counts_needs_sim(capsys):
    with pytest.raises(SystemExit):
        host.main(["classify", "--port", "/dev/null", "--spike-counts", "x.png"])
    assert "--spike-counts builds the simulated board (--sim)" in capsys.readouterr().err
