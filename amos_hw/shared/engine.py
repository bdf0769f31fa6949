"""The shared engine: one multiply-accumulate array, one AMOS unit, every layer in turn.

The layer-pipelined :class:`~amos_hw.top.NetworkTop` gives every layer its own engine; on an
iCE40 UP5K (5,280 LUT4, 120 kbit of block RAM) that does not fit ResNet8. :class:`SharedNetwork`
runs a :class:`~amos_hw.shared.program.Program` instead: all weights and activation maps live
in one memory of 64-bit words (on the UP5K its four 256-kbit SPRAM blocks side by side), and
one engine computes every layer, eight output channels at a time.

Data path, per output position and group of :data:`~amos_hw.shared.program.LANES` channels::

    walker --addr--> main memory --word--> FIFO(3) --slot--> act ---+--> 8 lanes: acc += w * act
      (taps, words,                                   cache addr -> weight cache (8 x int8)
       skip lanes)                                                   (filled once per group)

    epilogue: acc + bias -> requantising shift -> AMOS unit (K stages) -> read-modify-write
              of the activation's slot (or, for the logits, -> result collector)

Each product ``w * act`` is the sum of the weight shifted by the positions of the activation's
spikes (:func:`~amos_hw.engines.dense.spike_product`): no multiplier. The walker steps through
the in-bounds taps of every source (one cycle per tap outside the map), fetching one word per
cycle while the FIFO has room; the FIFO hands one activation a cycle to the lanes. Timing is
exact and modelled by :func:`amos_hw.shared.program.cycles`.

The engine's logic is written by small builders, one job each, into its one module (they add
no hierarchy to the Verilog; the submodules are the memories, the lanes, the pixel framer, the
AMOS unit and the flash reader), in a fixed order: the order of the statements is the emitted
Verilog's.

=============================================== ==============================================
:class:`~amos_hw.shared.table.InstrTable`       per-instruction constants read at the program
                                                counter; :class:`~amos_hw.shared.table.Control`
                                                the phase register
:class:`~amos_hw.shared.walker.Walker`          steps instructions, groups, positions and taps,
                                                issues word addresses
:mod:`~amos_hw.shared.fetch`                    the weight-cache fill and the word FIFO into the
                                                lanes
:class:`~amos_hw.shared.lanes.Lanes`            the multiply-accumulate lanes (a submodule)
:mod:`~amos_hw.shared.epilogue`                 bias, requantisation, AMOS unit, write-back or
                                                logits and the result
:class:`~amos_hw.shared.inputs.InputWriter`     pixels into the input map, weight bytes in
:class:`~amos_hw.shared.memory.MainMemory`      the word memory (block RAM or SPRAM)
=============================================== ==============================================

The engine's figures are functions of the program and the options, so that a cost model needs
no component: :func:`cycles_per_image`, :func:`latency_cycles`, :func:`memories` and
:func:`stream_timing` (the component's properties of the same names return them).

Weights are loaded through the ``load`` port (bytes, little-endian words, ``first`` restarts at
address 0), or preloaded as the memory's initial contents (``preload=True``, the default, for
simulation and block-RAM targets). The UP5K's SPRAM has no initial contents: a board build uses
``preload=False`` and the host sends the weights once after configuration.
"""
from __future__ import annotations

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from amos_hw.lib.bram import MemShape
from amos_hw.lib.checks import positive_int
from amos_hw.lib.framer import PIXEL_LAYOUT
from amos_hw.lib.hostlink import load_layout
from amos_hw.lib.spiflash import SPI_FLASH, SpiFlashReader, reader_timing
from amos_hw.shared.epilogue import Epilogue, ResultCollector
from amos_hw.shared.fetch import FIFO_DEPTH, WordFifo, fill_cache
from amos_hw.shared.inputs import InputWriter
from amos_hw.shared.lanes import Lanes
from amos_hw.shared.memory import SPRAM_WORDS, MainMemory
from amos_hw.shared.program import LANES, WORD_BITS, Program, StreamTiming, cycles
from amos_hw.shared.table import EPI, FILL, INPUT, MAX_SOURCES, RUN, START, Control, InstrTable
from amos_hw.shared.walker import Walker
from amos_hw.top import result_layout
from python_ref.quant import signed_width

__all__ = ["SharedNetwork", "LOAD_LAYOUT", "FIFO_DEPTH", "SPRAM_WORDS", "memories",
           "stream_timing", "cycles_per_image", "latency_cycles", "check_arguments"]

#: Weight-load stream payload: one byte, ``first`` restarts at word 0 (the host link's).
LOAD_LAYOUT = load_layout()


# ----------------------------------------------------------------------------- figures
# Functions of the program and the options alone: the cost model calls them without building
# the engine; SharedNetwork's properties of the same names return the same values.

def memories(p: Program, *, spram: bool = False, flash_depth: int | None = None) -> list:
    """The memories :class:`SharedNetwork` builds for program ``p``.

    Parameters
    ----------
    p : Program
        A laid-out program.
    spram : bool
        The main memory is the UP5K's SPRAM (not a block-RAM memory, so not listed).
    flash_depth : int, optional
        With the weights in a flash: the reader's FIFO of ``flash_depth`` words (a
        ``SyncFIFOBuffered`` of ``flash_depth + 1``).

    Returns
    -------
    list of :class:`~amos_hw.lib.bram.MemShape`
        The main memory (unless ``spram``), the weight cache, the bias ROM and the flash FIFO.
    """
    mems = [MemShape("cache", max(p.cache_depth, 2), LANES * 8),
            MemShape("bias", max(len(p.bias_table), 2), max(p.bias_width, 2), rom=True)]
    if not spram:
        mems.insert(0, MemShape("main", p.depth, WORD_BITS))
    if flash_depth is not None:
        mems.append(MemShape("flash_fifo", flash_depth, WORD_BITS))
    return mems


def stream_timing(p: Program, *, flash_div: int = 1,
                  flash_depth: int = 512) -> StreamTiming | None:
    """When the weight words arrive for the engine on ``p``: from a flash reader with clock
    divider ``flash_div`` and a FIFO of ``flash_depth`` words when ``p`` is laid out with
    ``weights="stream"``; None when the weights are in memory."""
    if p.weights != "stream":
        return None
    return reader_timing(flash_div, flash_depth)


def cycles_per_image(p: Program, *, flash_div: int = 1, flash_depth: int = 512) -> int:
    """Cycles from one image's first pixel to the next image's, exactly (no stall; with the
    weights in a flash, the waits for it included): :func:`amos_hw.shared.program.cycles`
    with :func:`stream_timing`."""
    return cycles(p, stream=stream_timing(p, flash_div=flash_div, flash_depth=flash_depth))


def latency_cycles(p: Program, *, flash_div: int = 1, flash_depth: int = 512) -> int:
    """Cycles from an image's first pixel to its result: images do not overlap, so the
    interval, :func:`cycles_per_image`."""
    return cycles_per_image(p, flash_div=flash_div, flash_depth=flash_depth)


# ----------------------------------------------------------------------------- arguments

def check_arguments(program, *, preload: bool = True, spram: bool = False,
                    dsp_lanes: bool = False, weights: str = "memory", flash_offset: int = 0,
                    flash_div: int = 1, flash_depth: int = 512) -> None:
    """Raise the error :class:`SharedNetwork` would raise for these arguments (its parameters),
    naming the offending argument or layer; return None when they are valid."""
    if not isinstance(program, Program):
        raise TypeError(f"program must be an amos_hw.shared.program.Program, not "
                        f"{type(program).__name__}")
    if program.image is None:
        raise ValueError(f"program {program.name!r} is not laid out (call "
                         f"amos_hw.shared.program.layout first)")
    if weights not in ("memory", "flash"):
        raise ValueError(f"weights must be 'memory' or 'flash', not {weights!r}")
    want = "stream" if weights == "flash" else "memory"
    if program.weights != want:
        raise ValueError(f"weights={weights!r} needs a program laid out with "
                         f"weights={want!r} (amos_hw.shared.program.layout), not "
                         f"{program.weights!r}")
    if weights == "flash":
        positive_int("flash_div", flash_div)
        positive_int("flash_depth", flash_depth)
        SpiFlashReader.check(words=max(program.weight_words, 1), offset=flash_offset,
                             div=flash_div, depth=flash_depth)
    if spram and program.depth > SPRAM_WORDS:
        raise ValueError(f"{program.depth} words do not fit the {SPRAM_WORDS} of SPRAM")
    for i in program.instrs:
        if len(i.sources) > MAX_SOURCES:
            raise ValueError(f"instruction {i.name!r} has {len(i.sources)} sources; the "
                             f"shared engine walks at most {MAX_SOURCES}")
    if dsp_lanes and max([s.lshift for i in program.instrs for s in i.sources] + [0]) > 14:
        raise ValueError("dsp_lanes: a skip shift above 14 does not fit a 16-bit operand")
    Ks = {i.K for i in program.instrs if i.mode == "act"}
    if len(Ks) > 1:
        raise ValueError(f"the shared engine has one AMOS unit; the layers use K = "
                         f"{sorted(Ks)}")


# ----------------------------------------------------------------------------- the engine

class SharedNetwork(wiring.Component):
    """A converted network on one shared engine: pixels in, class and logits out.

    Parameters
    ----------
    program : Program
        A laid-out program (:func:`amos_hw.shared.program.layout`).
    preload : bool
        Start with the weights in memory (simulation, block RAM). ``False`` for SPRAM.
    spram : bool
        Build the main memory from four ``SB_SPRAM256KA`` (iCE40 UP5K) instead of an inferred
        memory.
    dsp_lanes : bool
        Write each lane's product as ``w * act`` (a multiplication synthesis may put in a DSP
        block: the UP5K's 8 SB_MAC16 are the 8 lanes) instead of the spike-gated sum of shifted
        weights. Same value; the default keeps the LUT-only gated adds.
    weights : str
        ``"memory"`` (the program laid out with ``weights="memory"``) or ``"flash"``: the
        weights are read from an SPI flash once per image (laid out with ``weights="stream"``).
    flash_offset, flash_div, flash_depth : int
        With ``weights="flash"``: the weights' byte address in the flash, the flash clock's
        divider and the reader's FIFO words (:class:`~amos_hw.lib.spiflash.SpiFlashReader`).

    Raises
    ------
    TypeError, ValueError
        From :func:`check_arguments`, before the component exists (so that a call that fails
        leaves no unused elaboratable behind).

    Members
    -------
    pixels : ``In(stream.Signature(PIXEL_LAYOUT))``
    load : ``In(stream.Signature(LOAD_LAYOUT))``, weight bytes (taken between images; with
        ``weights="memory"``)
    flash : ``Out(SPI_FLASH)``, the flash's pins (with ``weights="flash"``)
    result : ``Out(stream.Signature(result_layout(logit_width, num_classes)))``
    frame_errors : ``Out(unsigned(16))``
    busy : ``Out(1)``, high while an image is being computed
    """

    def __new__(cls, program, **options):
        check_arguments(program, **options)
        # the caller, not this method, constructs the component (Amaranth's source location)
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, program: Program, *, preload: bool = True, spram: bool = False,
                 dsp_lanes: bool = False, weights: str = "memory", flash_offset: int = 0,
                 flash_div: int = 1, flash_depth: int = 512):
        # the arguments were checked by __new__ (check_arguments)
        self._p = p = program
        self._preload, self._spram, self._dsp = preload, spram, dsp_lanes
        self._weights = weights
        self._flash_depth = flash_depth if weights == "flash" else None
        self._flash = None
        if weights == "flash":
            self._flash = dict(words=max(p.weight_words, 1), offset=flash_offset,
                               div=flash_div, depth=flash_depth)
        Ks = {i.K for i in p.instrs if i.mode == "act"}
        self._K = Ks.pop() if Ks else 1
        self._acc_w = p.acc_width
        lo = min(i.acc_range[0] for i in p.instrs if i.mode == "logits")
        hi = max(i.acc_range[1] for i in p.instrs if i.mode == "logits")
        self._logit_w = signed_width(lo, hi)
        members = {
            "pixels": In(stream.Signature(PIXEL_LAYOUT)),
            "result": Out(stream.Signature(result_layout(self._logit_w, p.num_classes))),
            "frame_errors": Out(unsigned(16)),
            "busy": Out(1),
        }
        if weights == "memory":
            members["load"] = In(stream.Signature(LOAD_LAYOUT))
        else:
            members["flash"] = Out(SPI_FLASH)
        super().__init__(members)

    program = property(lambda self: self._p)
    #: ``"memory"`` or ``"flash"`` (the weights streamed from an SPI flash each image)
    weights = property(lambda self: self._weights)
    #: the flash reader's parameters (``words``, ``offset``, ``div``, ``depth``;
    #: :class:`~amos_hw.lib.spiflash.SpiFlashReader`), None with the weights in memory
    flash_params = property(lambda self: dict(self._flash) if self._flash else None)

    @property
    def stream_timing(self):
        """The flash reader's timing (``weights="flash"``), else None (:func:`stream_timing`)."""
        return stream_timing(self._p, **self._flash_options())

    dsp_lanes = property(lambda self: self._dsp)
    #: ``cls`` is a register and the result is held until taken (see HostLink).
    registered_class = True
    logit_width = property(lambda self: self._logit_w)
    num_classes = property(lambda self: self._p.num_classes)
    input_shape = property(lambda self: self._p.input_shape)

    @property
    def cycles_per_image(self) -> int:
        """Cycles from one image's first pixel to the next image's (:func:`cycles_per_image`)."""
        return cycles_per_image(self._p, **self._flash_options())

    @property
    def latency_cycles(self) -> int:
        """Images do not overlap: the latency is the interval (:func:`latency_cycles`)."""
        return latency_cycles(self._p, **self._flash_options())

    @property
    def memories(self) -> list:
        """The memories this engine builds (:func:`memories`)."""
        return memories(self._p, spram=self._spram, flash_depth=self._flash_depth)

    def _flash_options(self) -> dict:
        if self._flash is None:
            return {}
        return {"flash_div": self._flash["div"], "flash_depth": self._flash["depth"]}

    def elaborate(self, platform):
        """The builders, in this order (the order of the statements is the emitted Verilog's):
        memories, instruction table, walker, word FIFO, lanes, epilogue, input; then the phases
        INPUT, FILL, START, RUN (walk, FIFO, lanes), EPI and NEXT."""
        m = Module()
        p = self._p
        main, c_wp, c_rp, b_rp = self._add_memories(m)
        table = InstrTable(p)
        ctl = Control(p, self._K)
        m.d.comb += self.busy.eq(ctl.state != INPUT)
        walker = Walker(p, table)
        fifo = WordFifo(p)
        m.submodules.lanes = lanes = Lanes(LANES, p.act_bits, self._acc_w, self._dsp)
        epi = Epilogue(p, table, self._K, self._acc_w)
        inputs = InputWriter(p)
        m.d.comb += [main.we.eq(0), main.addr.eq(0), main.wdata.eq(0),
                     c_wp.en.eq(0), c_rp.en.eq(1)]
        inputs.add_framer(m, self.pixels, self.frame_errors)
        results = ResultCollector(self._logit_w, p.num_classes)
        results.build(m, self.result)
        epi.add_unit(m)
        reader = self._add_reader(m)

        inputs.build(m, ctl, main, load=self.load if reader is None else None, reader=reader,
                     on_image=[ctl.state.eq(FILL), *walker.restart(), ctl.e.eq(0),
                               ctl.wptr.eq(p.instrs[0].wbase)])
        fill_cache(m, ctl, table, walker, main, c_wp, reader)
        with m.If(ctl.state == START):
            m.d.sync += walker.load(0)
            m.d.sync += [walker.wdone.eq(0), ctl.state.eq(RUN), fifo.kbeat.eq(0)]
            m.d.comb += lanes.clear.eq(1)
        walker.issue(m, ctl.state == RUN, fifo, main.addr)
        fifo.track(m)
        fifo.feed(m, main.rdata, c_rp, lanes)
        with m.If(fifo.drained((ctl.state == RUN) & walker.wdone)):
            m.d.sync += [ctl.state.eq(EPI), ctl.e.eq(0), *epi.begin(walker.nl_cur),
                         *walker.rewind_slots()]
        epi.build(m, ctl, walker, lanes, b_rp, main, results)
        walker.step(m, ctl)
        return m

    def _add_memories(self, m: Module) -> tuple:
        """The main memory, the weight cache (write and read port) and the bias ROM's port."""
        p = self._p
        init = ([int(w) for w in p.image.tolist()]
                if self._preload and p.weights == "memory" else [])
        m.submodules.main = main = MainMemory(p.depth, init, self._spram)
        m.submodules.cache = cache = Memory(shape=LANES * 8, depth=max(p.cache_depth, 2),
                                            init=[])
        c_wp = cache.write_port()
        c_rp = cache.read_port(transparent_for=())
        m.submodules.bias = bias_mem = Memory(shape=signed(max(p.bias_width, 2)),
                                              depth=max(len(p.bias_table), 2),
                                              init=[int(v) for v in p.bias_table])
        b_rp = bias_mem.read_port(transparent_for=())
        return main, c_wp, c_rp, b_rp

    def _add_reader(self, m: Module):
        """With the weights in a flash, its reader on the ``flash`` pins; else None."""
        if self._flash is None:
            return None
        m.submodules.reader = reader = SpiFlashReader(**self._flash)
        wiring.connect(m, reader.flash, wiring.flipped(self.flash))
        return reader
