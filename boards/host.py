"""Host side of the board link: classify image files on a board, or on its simulated top.

::

    python -m boards.host info --port /dev/ttyUSB1
    python -m boards.host classify --port /dev/ttyUSB1 digit.png cat.jpg
    python -m boards.host classify --sim --board icebreaker --model digits digit.png
    python -m boards.host load-weights --port /dev/ttyUSB1 --model resnet8

``load-weights`` is for a board whose network takes its weights at run time: ResNet8 on the
iCEBreaker runs on the shared engine, whose weights live in the UP5K's SPRAM, which a bitstream
cannot initialise. Send them once after each configuration (77,744 bytes: about 1 s at 1 Mbaud);
``classify --sim`` sends them to the simulated board by itself.

Images (PNG, JPEG, anything Pillow reads) are converted to the model's channels (grey for one,
RGB for three) and resized to its input (asked from the board with ``CMD_INFO``, or taken from
the model with ``--sim``). Each prints the class, a score (the softmax of the logits at the
model's output scale, when the model description is at hand; else the raw top logit), the
time: the board's own cycle count converted at its clock, and the round trip through the link,
and the image's spikes when the board was built with spike counters (``boards build
--spike-counts``; ``classify --sim --spike-counts``); a board without them says so once.

``--sim`` runs the very board top (:class:`boards.top.UartNetworkTop`) under Verilator, with the
UART lines driven and sampled bit by bit (:mod:`boards.sim`); nothing else differs.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

try:  # POSIX only: tcflush on a vanished tty raises termios.error
    import termios
except ImportError:  # Windows
    termios = None

from amos_hw.flow import FlowConfig, FlowError, run_flow
from amos_hw.lib import hostproto as hp
from amos_hw.zoo import resolve
from boards import sim
from python_ref import ir

__all__ = ["Classification", "HostError", "SerialClient", "fit_image", "load_image", "main",
           "open_image", "score"]


class HostError(RuntimeError):
    """A host-side failure with a message for the user (no port, bad image, no answer)."""


@dataclass
class Classification:
    """One image's answer."""

    image: str
    cls: int
    logits: tuple
    cycles: int
    board_s: float
    round_trip_s: float | None
    score: float
    score_kind: str
    spikes: int | None = None


def _pil():
    """Pillow's ``Image`` module, or a :class:`HostError` that says how to install it."""
    try:  # Pillow comes with the `train` extra: only reading images needs it
        from PIL import Image
    except ImportError:
        raise HostError("reading images needs Pillow: pip install -e '.[train]' "
                        "(or pip install pillow)") from None
    return Image


def _channels(input_shape) -> tuple[int, int, int]:
    h, w, c = (int(v) for v in input_shape)
    if c not in (1, 3):
        raise HostError(f"model input has {c} channels; images can feed 1 (grey) or 3 (RGB)")
    return h, w, c


def open_image(path):
    """Read the image file ``path`` (anything Pillow reads) into memory.

    Raises
    ------
    HostError
        If the file is missing or Pillow cannot read it.
    """
    image = _pil()
    try:
        with image.open(path) as im:
            im.load()
            return im.copy()
    except FileNotFoundError:
        raise HostError(f"{path}: no such file") from None
    except (image.UnidentifiedImageError, OSError) as e:
        raise HostError(f"{path}: not an image Pillow can read ({e})") from None


def fit_image(im, input_shape) -> np.ndarray:
    """uint8 pixels ``(H, W, C)`` of the Pillow image ``im`` for a model input ``(H, W, C)``:
    grey for one channel, RGB for three, resized (bilinear)."""
    h, w, c = _channels(input_shape)
    im = im.convert("L" if c == 1 else "RGB").resize((w, h), _pil().Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8).reshape(h, w, c)


def load_image(path, input_shape) -> np.ndarray:
    """Read ``path`` and return uint8 pixels ``(H, W, C)`` for a model input ``(H, W, C)``."""
    _channels(input_shape)
    return fit_image(open_image(path), input_shape)


def output_scale(model_name: str) -> float | None:
    """Real-valued scale of a logit for a zoo model (its description's output node), or None."""
    try:
        g = ir.load(str(resolve(model_name)) + ".json", check=False)
    except Exception:  # noqa: BLE001  (any failure: no scale, the raw logit is shown)
        return None
    out = g.node[g.outputs[0]] if hasattr(g, "outputs") else g.nodes[-1]
    scale = out.get("scale")
    return float(scale) if scale else None


def score(logits, scale: float | None) -> tuple[float, str]:
    """Softmax probability of the top class at ``scale``; the raw top logit without one."""
    logits = [int(v) for v in logits]
    top = max(logits)
    if scale is None:
        return float(top), "logit"
    z = [math.exp((v - top) * scale) for v in logits]
    return 1.0 / sum(z), "softmax"


class SerialClient:
    """The protocol over a serial port (pyserial).

    Parameters
    ----------
    port : str
        Device (``/dev/ttyUSB1``, ``COM3``).
    baud : int
    timeout : float
        Seconds to wait for an answer before the frame is sent again.
    retries : int
    """

    def __init__(self, port: str, baud: int = 1_000_000, timeout: float = 2.0, retries: int = 3):
        try:  # pyserial comes with the `fpga` extra: only a real board needs it
            import serial
        except ImportError:
            raise HostError("talking to a board needs pyserial: pip install -e '.[fpga]' "
                            "(or pip install pyserial)") from None
        try:
            self.ser = serial.Serial(port, baud, timeout=0.05)
        except (serial.SerialException, OSError) as e:
            raise HostError(f"cannot open {port}: {e}") from None
        # what a port that vanished under us raises
        self._lost = (serial.SerialException, OSError,
                      *((termios.error,) if termios is not None else ()))
        self.timeout = timeout
        self.retries = retries
        self.decoder = hp.FrameDecoder()

    def close(self) -> None:
        self.ser.close()

    def request(self, cmd: int, payload: bytes, want: int,
                retries: int | None = None) -> hp.Frame:
        """Send one frame and return the answer with command ``want`` (retrying on NAK or
        silence; the board drops a partial frame after FRAME_TIMEOUT_S)."""
        try:
            return self._request(cmd, payload, want,
                                 self.retries if retries is None else retries)
        except self._lost as e:
            raise HostError(f"lost the serial port {self.ser.port}: {e}") from None

    def _request(self, cmd: int, payload: bytes, want: int, retries: int) -> hp.Frame:
        last = "no answer"
        for _ in range(retries + 1):
            self.ser.reset_input_buffer()
            self.decoder.reset()
            self.ser.write(hp.encode_frame(cmd, payload))
            self.ser.flush()
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                for f in self.decoder.feed(self.ser.read(4096)):
                    if f.cmd == want:
                        return f
                    if f.cmd == hp.RSP_NAK:
                        code = f.payload[0] if f.payload else 0
                        last = f"NAK ({hp.NAK_NAMES.get(code, code)})"
                        deadline = 0.0
                        break
            time.sleep(2 * hp.FRAME_TIMEOUT_S)
        raise HostError(f"the board did not answer command 0x{cmd:02x} after "
                        f"{retries + 1} tries: {last}")

    def info(self) -> hp.Info:
        return hp.Info.from_payload(self.request(hp.CMD_INFO, b"", hp.RSP_INFO).payload)

    def load_weights(self, image: bytes, *, attempts: int = 3, progress: bool = True) -> int:
        """Send the weight image in ``CMD_LOAD`` chunks; return the bytes the board took.

        A chunk is never sent twice (the board has already written its bytes): on a NAK or
        silence the whole load starts again from the first chunk, ``attempts`` times."""
        chunks = hp.load_chunks(image)
        last = None
        for _ in range(attempts):
            bar = None
            if progress:
                bar = tqdm(total=len(image), desc="load weights", unit="B", unit_scale=True,
                           file=sys.stderr)
            try:
                done = 0
                for payload in chunks:
                    f = self.request(hp.CMD_LOAD, payload, hp.RSP_LOADED, retries=0)
                    done += len(payload) - 1
                    got = int.from_bytes(f.payload, "little")
                    if got != done:
                        raise HostError(f"the board counted {got} weight bytes, {done} were sent")
                    if bar is not None:
                        bar.update(len(payload) - 1)
                return done
            except HostError as e:
                last = e
            finally:
                if bar is not None:
                    bar.close()
        raise HostError(f"loading the weights failed {attempts} times; last: {last} (a board "
                        f"whose network has its weights built in does not answer CMD_LOAD)")

    def classify(self, pixels: np.ndarray, info: hp.Info) -> tuple[hp.Result, float]:
        t0 = time.perf_counter()
        f = self.request(hp.CMD_CLASSIFY, pixels.tobytes(), hp.RSP_RESULT)
        dt = time.perf_counter() - t0
        return hp.Result.from_payload(f.payload, info.num_classes, info.logit_bytes,
                                      info.spike_counts), dt


#: What ``classify`` prints once for a board built without spike counters.
NO_SPIKES = ("note: this board's build has no spike counters, so no spikes per image (build "
             "it with `python -m boards build --spike-counts`, or simulate it with `classify "
             "--sim --spike-counts`)")


def _print(c: Classification, info: hp.Info) -> None:
    rt = f", round trip {c.round_trip_s * 1e3:.1f} ms" if c.round_trip_s is not None else ""
    kind = "p" if c.score_kind == "softmax" else "top logit"
    spikes = f"; {c.spikes} spikes" if c.spikes is not None else ""
    print(f"{c.image}: class {c.cls} ({kind} {c.score:.3f}){spikes}; board "
          f"{c.board_s * 1e6:.1f} us ({c.cycles} cycles at {info.clk_hz / 1e6:g} MHz){rt}")


def _print_all(out: list[Classification], info: hp.Info) -> None:
    if not info.spike_counts:
        print(NO_SPIKES)
    for c in out:
        _print(c, info)


def classify_port(port: str, baud: int, images: list[str]) -> list[Classification]:
    client = SerialClient(port, baud)
    try:
        info = client.info()
        scale = output_scale(info.name)
        if not info.spike_counts:
            print(NO_SPIKES)
        out = []
        for path in images:
            px = load_image(path, info.input_shape)
            res, dt = client.classify(px, info)
            sc, kind = score(res.logits, scale)
            c = Classification(str(path), res.cls, res.logits, res.cycles,
                               res.cycles / info.clk_hz, dt, sc, kind, res.spikes)
            _print(c, info)
            out.append(c)
        return out
    finally:
        client.close()


def classify_sim(board: str, model: str, images: list[str], *, progress: bool = True,
                 spike_counts: bool = False) -> list[Classification]:
    """Classify ``images`` on the Verilator simulation of ``board``'s top for ``model`` (with
    the spike counters built in: ``spike_counts``)."""
    opened = [open_image(p) for p in images]  # a bad file stops before any hardware is built
    top = sim.board_top(board, model, spike_counts=spike_counts)
    arrays = [fit_image(im, top.info.input_shape) for im in opened]
    info, results = sim.classify_top(top, arrays, board_name=board, progress=progress)
    scale = output_scale(model)  # the description simulated, not a zoo entry of the same name
    out = []
    for path, (res, sim_s) in zip(images, results, strict=True):
        sc, kind = score(res.logits, scale)
        out.append(Classification(str(path), res.cls, res.logits, res.cycles,
                                  res.cycles / info.clk_hz, sim_s, sc, kind, res.spikes))
    _print_all(out, info)
    return out


def weight_image(model: str) -> bytes:
    """The weight image of ``model`` on the shared engine (what ``load-weights`` sends)."""
    try:
        ctx = run_flow(FlowConfig(model=model, architecture="shared", stop_after="memory",
                                  quiet=True))
    except FlowError as e:
        raise HostError(str(e)) from None
    return ctx.program.weight_bytes()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m boards.host", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_info = sub.add_parser("info", help="what the board runs")
    p_info.add_argument("--port", required=True)
    p_info.add_argument("--baud", type=int, default=1_000_000)
    p_load = sub.add_parser("load-weights", help="send the weights of a shared-engine board "
                                                 "(ResNet8 on the iCEBreaker)")
    p_load.add_argument("--port", required=True)
    p_load.add_argument("--model", required=True, help="the model the board was built with")
    p_load.add_argument("--baud", type=int, default=1_000_000)
    p = sub.add_parser("classify", help="classify image files")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port of the board")
    where.add_argument("--sim", action="store_true",
                       help="the board top under Verilator with a modelled UART")
    p.add_argument("--baud", type=int, default=1_000_000,
                   help="UART bit rate (1000000 on the FTDI boards, 115200 on the OrangeCrab)")
    p.add_argument("--board", default="icebreaker", help="with --sim: whose top to simulate")
    p.add_argument("--model", default="digits", help="with --sim: the model it carries")
    p.add_argument("--spike-counts", action="store_true",
                   help="with --sim: build the spike counters in (the board prints each "
                        "image's spikes; a real board has them when built with "
                        "`python -m boards build --spike-counts`)")
    p.add_argument("--json", help="also write the answers to this JSON file")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "load-weights":
            image = weight_image(args.model)
            client = SerialClient(args.port, args.baud)
            try:
                n = client.load_weights(image)
            finally:
                client.close()
            print(f"{args.model}: {n} weight bytes loaded")
            return 0
        if args.cmd == "info":
            client = SerialClient(args.port, args.baud)
            try:
                print(client.info())
            finally:
                client.close()
            return 0
        if args.sim:
            res = classify_sim(args.board, args.model, args.images,
                               spike_counts=args.spike_counts)
        else:
            if args.spike_counts:
                ap.error("--spike-counts builds the simulated board (--sim); a real board has "
                         "the counters when its bitstream was built with them")
            res = classify_port(args.port, args.baud, args.images)
        if args.json:
            Path(args.json).write_text(json.dumps([c.__dict__ for c in res], indent=2) + "\n")
    except HostError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # unknown board or model, named by the message
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
