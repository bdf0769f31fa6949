"""iCE40-HX8K breakout board (iCE40HX8K-CT256): 12 MHz, FTDI UART (1 Mbaud), LED D2, iceprog."""
from amaranth_boards.ice40_hx8k_b_evn import ICE40HX8KBEVNPlatform

from boards.board import Board, Tool

HX8K = Board(
    name="hx8k",
    title="iCE40-HX8K breakout (iCE40 HX8K)",
    platform=ICE40HX8KBEVNPlatform,
    family="ice40",
    device="iCE40HX8K-CT256",
    generator_device=None,
    resources={"lut4": 7680, "ff": 7680, "bram_blocks": 32, "bram_block_bits": 4096,
               "spram_blocks": 0, "spram_block_bits": 0, "dsp": 0},
    baud=1_000_000,
    # every layer folded to one lane: the smallest design (the generator's own choice for
    # the UP5K over-ran its 5280 logic cells by 14% on the digits network)
    fold={},
    programmer=Tool("iceprog", "ICEPROG", "fpga-icestorm"),
    notes="Jumpers J6 1-2/3-4 as for SRAM programming; UART on the FTDI's second channel.",
)

BOARDS = (HX8K,)
