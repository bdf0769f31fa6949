"""OrangeCrab r0.2 (ECP5 LFE5U-25F / 85F, MG285): 48 MHz, green of the RGB LED, dfu-util.

The OrangeCrab has no USB-UART bridge (its USB port goes to the FPGA, used by the DFU
bootloader), so the host link is a 3.3 V UART on the Feather header: FPGA RX on pin ``0``, TX on
pin ``1``; connect any USB-UART adapter (115200 baud, which every adapter supports).
"""
from amaranth.build import Attrs, Pins, PinsN, Resource, Subsignal
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform, OrangeCrabR0_2_85FPlatform
from amaranth_boards.resources import UARTResource

from boards.board import Board, Tool


def _add_uart(platform) -> None:
    platform.add_resources([
        UARTResource(0, rx="0", tx="1", conn=("io", 0),
                     attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP")),
        # the configuration flash without its clock pin (U16, driven through USRMCLK), as
        # amaranth-boards' ULX3S declares its "spi_flash"
        Resource("weight_flash", 0,
                 Subsignal("cs", PinsN("U17", dir="o")),
                 Subsignal("copi", Pins("U18", dir="o")),
                 Subsignal("cipo", Pins("T18", dir="i")),
                 Subsignal("wp", PinsN("R18", dir="o")),
                 Subsignal("hold", PinsN("N18", dir="o")),
                 Attrs(IO_TYPE="LVCMOS33")),
    ])


#: Where the flash-weights models' ``weights.bin`` goes (the bootloader's DFU alt 1).
WEIGHTS_OFFSET = 0x100000

_ECP5 = {
    "25f": (OrangeCrabR0_2_25FPlatform, 24288, 56, 28),
    "85f": (OrangeCrabR0_2_85FPlatform, 83640, 208, 156),
}

ORANGECRAB = {
    size: Board(
        name=f"orangecrab-{size}",
        title=f"OrangeCrab r0.2 (ECP5 LFE5U-{size.upper()})",
        platform=plat,
        family="ecp5",
        device=f"LFE5U-{size.upper()}-8MG285",
        generator_device=f"ecp5-{size}",
        resources={"lut4": lut, "ff": lut, "bram_blocks": ebr, "bram_block_bits": 18432,
                   "spram_blocks": 0, "spram_block_bits": 0, "dsp": dsp},
        baud=115_200,
        programmer=Tool("dfu-util", "DFU_UTIL", "dfu-util"),
        build_tools=(Tool("dfu-suffix", "DFU_SUFFIX", "dfu-util"),),
        led=("rgb_led", 0),
        led_field="g",
        add_resources=_add_uart,
        # the bootloader's second DFU partition (alt 1) starts at 1 MiB, past the user
        # bitstream's (alt 0, at 512 KiB; compressed bitstreams are well below 512 KiB)
        weight_flash=("weight_flash", 0),
        weight_flash_offset=WEIGHTS_OFFSET,
        weight_flash_cmd=("-a", "1", "-D", "{file}"),
        notes="External USB-UART adapter on Feather pins 0 (FPGA RX) and 1 (FPGA TX), 115200 "
              "baud; hold the button while plugging in to enter the DFU bootloader for flashing.",
    )
    for size, (plat, lut, ebr, dsp) in _ECP5.items()
}

BOARDS = tuple(ORANGECRAB.values())
