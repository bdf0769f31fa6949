"""The generator's output, pinned: SHA-256 of the emitted Verilog and ``report.json`` for the
designs users build most, recorded at commit 02807f4 (before the generator core was reshaped,
issue 14). A refactor must leave these bytes alone; a change that alters them on purpose
updates the value here and says why in ``docs/notes/generator_changes.md``."""
from __future__ import annotations

import hashlib

import pytest

from amos_hw.flow import FlowConfig, run_flow

#: name: (FlowConfig fields, {output file: SHA-256})
GOLDEN = {
    "digits": ({"model": "digits"}, {
        "amos_digits.v": "30cab6284ba181501f25778bf2e830fcb523fe5ecaa573593ca088c21af55e36",
        "report.json": "66c9b4f9b931cf4483147bef69f6b75d1c6ebc0da138c9cc30c33a2e2c6faf73"}),
    "resnet8": ({"model": "resnet8"}, {
        "amos_resnet8.v": "afd47d255301b3f5bda88e98213848688050c8179c5fa46da48a610f9c1df90b",
        "report.json": "7d53d5857b61abe8b90c09f87ef431e266ab2b003a05de49cda861610039d0b8"}),
    "resnet8_ecp5-85f": ({"model": "resnet8", "board": "ecp5-85f"}, {
        "amos_resnet8.v": "5a29c1f6f4a6df6657aeb2c152ece37d4bef1d9a6b8d342c9036cc92281b79be",
        "report.json": "505af416bc4e8639e70f47cd71f821fa474c018270bead96569fee9a4692c8c1"}),
    "resnet8_shared": ({"model": "resnet8", "architecture": "shared"}, {
        "amos_resnet8.v": "6cb169bf27dca5f9270ba3a7337b2bfcf4ab6bc90259739756a4afbebacc4925",
        "report.json": "02d799da807cff4ed2fbde0bfc25e7ba72d265a7656b69b1dde95722ffeb6d3b"}),
    "resnet8_ice40-up5k": ({"model": "resnet8", "board": "ice40-up5k"}, {
        "amos_resnet8.v": "6cb169bf27dca5f9270ba3a7337b2bfcf4ab6bc90259739756a4afbebacc4925",
        "report.json": "69f79d9c1f585dd7769d7c06933b84eaa718c1c20114c873cc98ec20c9863c9b"}),
    "resnet8_ecp5-25f_flash": ({"model": "resnet8", "board": "ecp5-25f"}, {
        "amos_resnet8.v": "59c1cd49d000d649f987145a129d79ce5b1bc433a6c47e8944751dc79051913c",
        "report.json": "2e9d172896957d4232703fb3f4e1a3bc40761af2811899bb1f25a68b89357285",
        "weights.bin": "89dacabd4e26dab94ccebd6d194209342b3a9e3c41206f0be60bf5f41769e1b4"}),
}


def _sha(data) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_outputs_unchanged(name):
    fields, want = GOLDEN[name]
    ctx = run_flow(FlowConfig(quiet=True, **fields))
    got = {f: _sha(ctx.files[f]) for f in want}
    assert got == want
