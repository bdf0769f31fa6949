"""The generated digits network under cocotb: the whole digits test set, bit for bit."""
from rtl_tests.network import run_network


def test_digits_whole_test_set(sim):
    res = run_network("digits", 10**6, sim)
    assert res["images"] == 359
    assert res["mismatches"] == 0
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]
