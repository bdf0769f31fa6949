"""ULX3S (ECP5 LFE5U-25F / 45F / 85F, BG381): 25 MHz, FTDI UART (1 Mbaud), LED 0,
openFPGALoader."""
from amaranth_boards.ulx3s import ULX3S_25F_Platform, ULX3S_45F_Platform, ULX3S_85F_Platform

from boards.board import Board, Tool

OPENFPGALOADER = Tool("openFPGALoader", "OPENFPGALOADER", "openfpgaloader")

#: Where ``make flash`` writes a flash-weights model's ``weights.bin``.
WEIGHTS_OFFSET = 0x200000

_ECP5 = {
    "25f": (ULX3S_25F_Platform, 24288, 56, 28),
    "45f": (ULX3S_45F_Platform, 43848, 108, 72),
    "85f": (ULX3S_85F_Platform, 83640, 208, 156),
}

ULX3S = {
    size: Board(
        name=f"ulx3s-{size}",
        title=f"ULX3S (ECP5 LFE5U-{size.upper()})",
        platform=plat,
        family="ecp5",
        device=f"LFE5U-{size.upper()}-6BG381",
        generator_device=f"ecp5-{size}",
        resources={"lut4": lut, "ff": lut, "bram_blocks": ebr, "bram_block_bits": 18432,
                   "spram_blocks": 0, "spram_block_bits": 0, "dsp": dsp},
        baud=1_000_000,
        programmer=OPENFPGALOADER,
        notes="UART through the FTDI (US1 port).",
        # the bitstream of even the 85F (compressed) ends well before 2 MiB; every ULX3S
        # flash holds at least 4 MiB
        weight_flash=("spi_flash", 0),
        weight_flash_offset=WEIGHTS_OFFSET,
        weight_flash_cmd=("-b", "ulx3s", "-f", "-o", hex(WEIGHTS_OFFSET), "--file-type", "bin",
                          "{file}"),
    )
    for size, (plat, lut, ebr, dsp) in _ECP5.items()
}

BOARDS = tuple(ULX3S.values())
