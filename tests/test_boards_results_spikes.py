"""boards.results for the RTL runs with the hardware's spike counts (``--spike-counts``): the
command rebuilt from the file name, the spike mismatches beside the output mismatches."""
from boards import results

RUN = {"model": "resnet8", "images": 100, "simulator": "verilator",
       "parallelism": "target 762.939 images/s (65536 cycles at 50 MHz)",
       "cycles_per_image_report": 65536}


def test_rtl_command_with_spike_counts():
    assert results._rtl_command("rtl_resnet8_spikes.json", RUN) == (
        "`python -m rtl_tests.network --model resnet8 --target-cycles 65536 --images 100 "
        "--sim verilator --spike-counts`")
    assert results._rtl_command("rtl_resnet8_ecp5-85f_spikes.json", RUN) == (
        "`python -m rtl_tests.network --model resnet8 --board ecp5-85f --images 100 "
        "--sim verilator --spike-counts`")


def test_rtl_table_shows_spike_mismatches():
    run = dict(RUN, architecture="pipelined", mismatches=0, spike_mismatches=2, accuracy=0.5,
               reference_accuracy=0.5, cycles_per_image_measured=65536,
               latency_cycles_measured=9, latency_cycles_report=10)
    page = "\n".join(results.rtl_table([("rtl_resnet8_spikes.json",
                                         {"runs": {"verilator": run}})]))
    assert "| 0 (spikes: 2) |" in page
    del run["spike_mismatches"]
    plain = "\n".join(results.rtl_table([("rtl_resnet8.json", {"runs": {"verilator": run}})]))
    assert "| 0 |" in plain and "(spikes:" not in plain
