"""iCEBreaker (iCE40 UP5K, SG48): 12 MHz oscillator, FTDI UART (1 Mbaud), red LED, iceprog."""
from amaranth_boards.icebreaker import ICEBreakerPlatform

from boards.board import Board, Tool

ICEPROG = Tool("iceprog", "ICEPROG", "fpga-icestorm")

ICEBREAKER = Board(
    name="icebreaker",
    title="iCEBreaker (iCE40 UP5K)",
    platform=ICEBreakerPlatform,
    family="ice40",
    device="iCE40UP5K-SG48",
    generator_device="ice40-up5k",
    resources={"lut4": 5280, "ff": 5280, "bram_blocks": 30, "bram_block_bits": 4096,
               "spram_blocks": 4, "spram_block_bits": 256 * 1024, "dsp": 8},
    baud=1_000_000,
    # every layer folded to one lane: the smallest design (the generator's own choice for
    # the UP5K over-ran its 5280 logic cells by 14% on the digits network)
    fold={},
    programmer=ICEPROG,
    notes="UART on the FTDI's second channel (/dev/ttyUSB1 on Linux); LED: the red one.",
)

BOARDS = (ICEBREAKER,)
