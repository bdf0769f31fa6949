"""Fast checks of the slow tier's helpers (no simulator needed): payload packing, messages."""
import pytest
from amaranth import signed, unsigned
from amaranth.lib import data

from amos_hw.lib.smoke import PipelinedCompare
from rtl_tests.harness import PARAMS_ENV, check_simulator, test_params
from rtl_tests.streams import StreamDriver, StreamReceiver, pack, unpack

OPERANDS = PipelinedCompare.operand_layout(5)


def test_struct_fields_pack_low_bits_first():
    # a occupies bits 0..4 and b bits 5..9, as Amaranth lays out the flattened port
    assert pack(OPERANDS, {"a": 3, "b": -1}) == 3 | (0b11111 << 5)
    assert unpack(OPERANDS, 3 | (0b11111 << 5)) == {"a": 3, "b": -1}


@pytest.mark.parametrize("shape, value", [
    (signed(4), -8), (signed(4), 7), (unsigned(4), 15), (unsigned(1), 0), (None, 12345),
    (data.StructLayout({"x": OPERANDS, "last": 1}), {"x": {"a": -16, "b": 15}, "last": 1}),
])
def test_round_trip(shape, value):
    assert unpack(shape, pack(shape, value)) == value


@pytest.mark.parametrize("shape, value, message", [
    (unsigned(4), 16, "payload 16 does not fit unsigned(4) (0..15)"),
    (signed(4), -9, "payload -9 does not fit signed(4) (-8..7)"),
    (OPERANDS, {"a": 100, "b": 0}, "payload 100 does not fit signed(5) (-16..15)"),
    (OPERANDS, {"a": 1}, "payload {'a': 1} must be a dict with exactly the fields ['a', 'b']"),
])
def test_pack_messages(shape, value, message):
    with pytest.raises(ValueError) as info:
        pack(shape, value)
    assert str(info.value) == message


@pytest.mark.parametrize("cls, kwarg", [(StreamDriver, "idle"), (StreamReceiver, "backpressure")])
def test_probability_messages(cls, kwarg):
    with pytest.raises(ValueError) as info:
        cls(object(), "i", **{kwarg: 1.0})
    assert str(info.value) == f"{kwarg} must be a probability in [0, 1), not 1.0"


def test_unknown_simulator_message():
    with pytest.raises(ValueError) as info:
        check_simulator("modelsim")
    assert str(info.value) == "SIM must be one of icarus, verilator, not 'modelsim'"


def test_params_outside_the_harness(monkeypatch):
    monkeypatch.delenv(PARAMS_ENV, raising=False)
    with pytest.raises(RuntimeError, match=f"{PARAMS_ENV} is not set"):
        test_params()


def test_params_round_trip(monkeypatch, tmp_path):
    path = tmp_path / "params.json"
    path.write_text('{"width": 8, "seed": 3}')
    monkeypatch.setenv(PARAMS_ENV, str(path))
    assert test_params() == {"width": 8, "seed": 3}


def test_missing_stream_port_message():
    from types import SimpleNamespace

    dut = SimpleNamespace(_name="cmp8", clk=object())
    with pytest.raises(AttributeError) as info:
        StreamDriver(dut, "x")
    assert str(info.value) == (
        "cmp8 has no stream port 'x' (expected x__valid, x__ready, x__payload)")


def test_several_simulators_need_an_explicit_choice(monkeypatch):
    from rtl_tests.harness import run_cocotb

    monkeypatch.setenv("SIM", "icarus,verilator")
    with pytest.raises(ValueError, match=r"\$SIM names several simulators \('icarus,verilator'\)"):
        run_cocotb("module m; endmodule\n", toplevel="m", test_module="rtl_tests.tb_smoke")
