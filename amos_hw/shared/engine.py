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

Weights are loaded through the ``load`` port (bytes, little-endian words, ``first`` restarts at
address 0), or preloaded as the memory's initial contents (``preload=True``, the default, for
simulation and block-RAM targets). The UP5K's SPRAM has no initial contents: a board build uses
``preload=False`` and the host sends the weights once after configuration.
"""
from __future__ import annotations

from amaranth.hdl import Array, ClockSignal, Const, Instance, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import spike_product
from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.framer import PIXEL_LAYOUT, PixelFramer
from amos_hw.lib.hostlink import load_layout
from amos_hw.shared.program import LANES, WORD_BITS, Program
from amos_hw.top import result_layout
from python_ref.quant import IntAmosUnit, signed_width

__all__ = ["SharedNetwork", "LOAD_LAYOUT", "FIFO_DEPTH", "SPRAM_WORDS"]

#: Weight-load stream payload: one byte, ``first`` restarts at word 0 (the host link's).
LOAD_LAYOUT = load_layout()
#: Words the walker may have fetched ahead of the lanes.
FIFO_DEPTH = 3
#: Words of the UP5K's four SPRAM blocks side by side (16,384 x 64 bits).
SPRAM_WORDS = 16384


def _u(v) -> int:
    return max(1, int(v).bit_length())


def _times(x, k: int):
    """``x * k`` for a constant ``k``, written as the sum of shifted copies of ``x`` (Yosys
    maps even a multiplication by a small constant to an ECP5 DSP block)."""
    terms = [x << b for b in range(k.bit_length()) if (k >> b) & 1]
    if not terms:
        return Const(0, 1)
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


class _MainMemory(wiring.Component):
    """One port of 64-bit words: a read (data the next cycle) or a write each cycle."""

    def __init__(self, depth: int, init, spram: bool):
        self._depth, self._init, self._spram = depth, init, spram
        super().__init__({
            "addr": In(range(max(depth, 2))),
            "we": In(1),
            "wdata": In(WORD_BITS),
            "rdata": Out(WORD_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        if self._spram:
            for k in range(WORD_BITS // 16):
                m.submodules[f"spram{k}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=self.addr[:14], i_DATAIN=self.wdata[16 * k: 16 * k + 16],
                    i_MASKWREN=Const(0xF, 4), i_WREN=self.we, i_CHIPSELECT=Const(1, 1),
                    i_CLOCK=ClockSignal("sync"), i_STANDBY=Const(0, 1),
                    i_SLEEP=Const(0, 1), i_POWEROFF=Const(1, 1),
                    o_DATAOUT=self.rdata[16 * k: 16 * k + 16])
            return m
        m.submodules.mem = mem = Memory(shape=WORD_BITS, depth=self._depth, init=self._init)
        wp = mem.write_port()
        rp = mem.read_port(transparent_for=())
        m.d.comb += [wp.addr.eq(self.addr), wp.data.eq(self.wdata), wp.en.eq(self.we),
                     rp.addr.eq(self.addr), rp.en.eq(~self.we), self.rdata.eq(rp.data)]
        return m


class _Lanes(wiring.Component):
    """The multiply-accumulate lanes: ``acc[k] += w_k * act`` (or, for a skip beat,
    ``acc[lane] += act << lshift``); ``clear`` zeroes them, ``shift`` moves ``acc[k+1]`` into
    ``acc[k]`` (the epilogue reads ``acc0``)."""

    def __init__(self, lanes: int, act_bits: int, acc_width: int, dsp: bool):
        self._n, self._A, self._w, self._dsp = lanes, act_bits, acc_width, dsp
        super().__init__({
            "clear": In(1), "shift": In(1), "valid": In(1), "skip": In(1),
            "lane": In(range(lanes)), "lshift": In(6), "act": In(act_bits),
            "weights": In(8 * lanes), "acc0": Out(signed(acc_width)),
        })

    def elaborate(self, platform):
        m = Module()
        n, A = self._n, self._A
        acc = [Signal(signed(self._w), name=f"acc{k}") for k in range(n)]
        m.d.comb += self.acc0.eq(acc[0])
        skip_term = self.act.as_unsigned() << self.lshift
        with m.If(self.clear):
            m.d.sync += [a.eq(0) for a in acc]
        with m.Elif(self.shift):
            m.d.sync += [acc[k].eq(acc[k + 1]) for k in range(n - 1)]
        with m.Elif(self.valid):
            for k in range(n):
                wk = self.weights.word_select(k, 8).as_signed()
                if self._dsp:
                    # one multiplier operand: the weight, or for a skip beat 2**lshift (in its
                    # lane) or 0: no second adder path
                    one = Signal(signed(16), name=f"op{k}")  # one 16x16 DSP a lane
                    m.d.comb += one.eq(Mux(self.skip,
                                           Mux(self.lane == k,
                                               Const(1, unsigned(15)) << self.lshift, 0),
                                           wk))
                    m.d.sync += acc[k].eq(acc[k] + one * self.act.as_unsigned())
                    continue
                prod = spike_product(wk, self.act, A)
                with m.If(self.skip):
                    with m.If(self.lane == k):
                        m.d.sync += acc[k].eq(acc[k] + skip_term)
                with m.Else():
                    m.d.sync += acc[k].eq(acc[k] + prod)
        return m


def memories(p: Program, *, spram: bool = False, flash_depth: int | None = None) -> list:
    """The memories :class:`SharedNetwork` builds for program ``p``, as
    :class:`~amos_hw.lib.bram.MemShape`: the main memory (none in block RAM with ``spram``), the
    weight cache, the bias ROM and, with its weights in a flash, the reader's FIFO of
    ``flash_depth`` words (a ``SyncFIFOBuffered`` of ``flash_depth + 1``)."""
    from amos_hw.lib.bram import MemShape

    mems = [MemShape("cache", max(p.cache_depth, 2), LANES * 8),
            MemShape("bias", max(len(p.bias_table), 2), max(p.bias_width, 2), rom=True)]
    if not spram:
        mems.insert(0, MemShape("main", p.depth, WORD_BITS))
    if flash_depth is not None:
        mems.append(MemShape("flash_fifo", flash_depth, WORD_BITS))
    return mems


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

    Members
    -------
    pixels : ``In(stream.Signature(PIXEL_LAYOUT))``
    load : ``In(stream.Signature(LOAD_LAYOUT))``, weight bytes (taken between images)
    result : ``Out(stream.Signature(result_layout(logit_width, num_classes)))``
    frame_errors : ``Out(unsigned(16))``
    busy : ``Out(1)``, high while an image is being computed
    """

    def __init__(self, program: Program, *, preload: bool = True, spram: bool = False,
                 dsp_lanes: bool = False, weights: str = "memory", flash_offset: int = 0,
                 flash_div: int = 1, flash_depth: int = 512):
        self._MustUse__silence = True  # a constructor that raises must not also warn
        self._p = p = program
        self._preload, self._spram, self._dsp = preload, spram, dsp_lanes
        if weights not in ("memory", "flash"):
            raise ValueError(f"weights must be 'memory' or 'flash', not {weights!r}")
        want = "stream" if weights == "flash" else "memory"
        if p.weights != want:
            raise ValueError(f"weights={weights!r} needs a program laid out with "
                             f"weights={want!r} (amos_hw.shared.program.layout), not "
                             f"{p.weights!r}")
        self._weights = weights
        self._flash_depth = flash_depth if weights == "flash" else None
        self._flash = None
        if weights == "flash":
            from amos_hw.lib.spiflash import SpiFlashReader

            self._flash = dict(words=max(p.weight_words, 1), offset=flash_offset,
                               div=flash_div, depth=flash_depth)
            SpiFlashReader.check(**self._flash)
        if spram and p.depth > SPRAM_WORDS:
            raise ValueError(f"{p.depth} words do not fit the {SPRAM_WORDS} of SPRAM")
        Ks = {i.K for i in p.instrs if i.mode == "act"}
        if dsp_lanes and max([s.lshift for i in p.instrs for s in i.sources] + [0]) > 14:
            raise ValueError("dsp_lanes: a skip shift above 14 does not fit a 16-bit operand")
        if len(Ks) > 1:
            raise ValueError(f"the shared engine has one AMOS unit; the layers use K = "
                             f"{sorted(Ks)}")
        self._K = Ks.pop() if Ks else 1
        self._acc_w = p.acc_width
        lo = min(i.acc_range[0] for i in p.instrs if i.mode == "logits")
        hi = max(i.acc_range[1] for i in p.instrs if i.mode == "logits")
        self._logit_w = signed_width(lo, hi)
        H, W, C = p.input_shape
        self._n_bytes = H * W * C
        members = {
            "pixels": In(stream.Signature(PIXEL_LAYOUT)),
            "result": Out(stream.Signature(result_layout(self._logit_w, p.num_classes))),
            "frame_errors": Out(unsigned(16)),
            "busy": Out(1),
        }
        if weights == "memory":
            members["load"] = In(stream.Signature(LOAD_LAYOUT))
        else:
            from amos_hw.lib.spiflash import SPI_FLASH

            members["flash"] = Out(SPI_FLASH)
        super().__init__(members)
        self._MustUse__silence = False

    program = property(lambda self: self._p)
    #: ``"memory"`` or ``"flash"`` (the weights streamed from an SPI flash each image)
    weights = property(lambda self: self._weights)
    #: the flash reader's parameters (``words``, ``offset``, ``div``, ``depth``;
    #: :class:`~amos_hw.lib.spiflash.SpiFlashReader`), None with the weights in memory
    flash_params = property(lambda self: dict(self._flash) if self._flash else None)

    @property
    def stream_timing(self):
        """The flash reader's timing (``weights="flash"``), else None."""
        if self._flash is None:
            return None
        from amos_hw.lib.spiflash import reader_timing

        return reader_timing(self._flash["div"], self._flash["depth"])
    dsp_lanes = property(lambda self: self._dsp)
    #: ``cls`` is a register and the result is held until taken (see HostLink).
    registered_class = True
    logit_width = property(lambda self: self._logit_w)
    num_classes = property(lambda self: self._p.num_classes)
    input_shape = property(lambda self: self._p.input_shape)

    @property
    def cycles_per_image(self) -> int:
        """Cycles from one image's first pixel to the next image's (exact, no stall; with
        ``weights="flash"`` including the waits for the flash)."""
        from amos_hw.shared.program import cycles
        return cycles(self._p, stream=self.stream_timing)

    @property
    def latency_cycles(self) -> int:
        """Images do not overlap: the latency is the interval."""
        return self.cycles_per_image

    @property
    def memories(self) -> list:
        """The memories this engine builds (:func:`memories`)."""
        return memories(self._p, spram=self._spram, flash_depth=self._flash_depth)

    def elaborate(self, platform):
        m = Module()
        p = self._p
        S, A, P = p.slots, p.act_bits, LANES
        K = self._K
        ins_list = p.instrs
        n_ins = len(ins_list)

        # ---------------------------------------------------------------- memories
        init = ([int(w) for w in p.image.tolist()]
                if self._preload and p.weights == "memory" else [])
        m.submodules.main = main = _MainMemory(p.depth, init, self._spram)
        m.submodules.cache = cache = Memory(shape=P * 8, depth=max(p.cache_depth, 2), init=[])
        c_wp = cache.write_port()
        c_rp = cache.read_port(transparent_for=())
        bw = max(p.bias_width, 2)
        m.submodules.bias = bias_mem = Memory(shape=signed(bw), depth=max(len(p.bias_table), 2),
                                              init=[int(v) for v in p.bias_table])
        b_rp = bias_mem.read_port(transparent_for=())

        # ---------------------------------------------------------------- instruction table
        pc = Signal(range(max(n_ins, 2)))

        def field(values, signed_=False):
            vals = [int(v) for v in values]
            if signed_ or min(vals) < 0:
                shape = signed(max(signed_width(min(vals + [0]), max(vals + [0])), 2))
            else:
                shape = unsigned(_u(max(vals + [1])))
            return Array(Const(v, shape) for v in vals)[pc]

        def src_field(k, fn, default=0, signed_=False):
            return field([fn(i.sources[k], i, k) if k < len(i.sources) else default
                          for i in ins_list], signed_)

        f_groups = field([i.groups for i in ins_list])
        f_taps = field([i.taps for i in ins_list])
        f_bbase = field([i.bbase for i in ins_list])
        f_obase = field([i.obase for i in ins_list])
        f_Ho = field([i.out_shape[0] for i in ins_list])
        f_Wo = field([i.out_shape[1] for i in ins_list])
        f_cwo = field([p.words_per_pos(i.out_shape[2]) for i in ins_list])
        f_Co = field([i.out_shape[2] for i in ins_list])
        f_logits = field([i.mode == "logits" for i in ins_list])
        f_shift = field([i.shift for i in ins_list])
        f_nsrc = field([len(i.sources) for i in ins_list])

        def cw_of(s):
            return p.words_per_pos(s.shape[2])

        sf = []
        for k in range(2):
            sf.append({
                "skip": src_field(k, lambda s, i, k: s.kind == "skip"),
                "wrap": src_field(k, lambda s, i, k: s.wrap),
                "H": src_field(k, lambda s, i, k: s.shape[0]),
                "W": src_field(k, lambda s, i, k: s.shape[1]),
                "C": src_field(k, lambda s, i, k: s.shape[2]),
                "cw": src_field(k, lambda s, i, k: cw_of(s)),
                "last_slots": src_field(k, lambda s, i, k: s.shape[2] - (cw_of(s) - 1) * S),
                "kh": src_field(k, lambda s, i, k: s.kernel[0]),
                "kw": src_field(k, lambda s, i, k: s.kernel[1]),
                "row": src_field(k, lambda s, i, k: s.shape[1] * cw_of(s)),
                "step_x": src_field(k, lambda s, i, k: s.stride * cw_of(s)),
                "step_y": src_field(k, lambda s, i, k: s.stride * s.shape[1] * cw_of(s)),
                "stride": src_field(k, lambda s, i, k: s.stride),
                "pad": src_field(k, lambda s, i, k: s.pad),
                "origin": src_field(
                    k, lambda s, i, k: i.src_base[k]
                    - (s.pad * s.shape[1] + s.pad) * cw_of(s), signed_=True),
                "coff": src_field(k, lambda s, i, k: s.coff),
                "lshift": src_field(k, lambda s, i, k: s.lshift),
                "delta": src_field(k, lambda s, i, k: i.src_base[k] - i.obase,
                                   signed_=True),
            })

        # ---------------------------------------------------------------- state
        aw = _u(p.depth) + 2  # signed address arithmetic (padding goes below a map)
        addr_t = signed(aw + 1)
        cbits = _u(max(p.cache_depth, 1)) + 1
        state = Signal(range(6))
        ST_INPUT, ST_FILL, ST_START, ST_RUN, ST_EPI, ST_NEXT = range(6)
        m.d.comb += self.busy.eq(state != ST_INPUT)

        g = Signal(range(max(max(i.groups for i in ins_list), 2) + 1))
        gw = Signal(range(p.depth + 1))  # word of channel g*P within a position
        gs = Signal(range(S))
        max_hw = max(max(i.out_shape[0], i.out_shape[1]) for i in ins_list)
        max_in = max([max(s.shape[0], s.shape[1]) for i in ins_list for s in i.sources] + [2])
        max_k = max([max(s.kernel) for i in ins_list for s in i.sources] + [2])
        max_cw = max([p.words_per_pos(s.shape[2]) for i in ins_list for s in i.sources] + [2])
        oy = Signal(range(max_hw + 1))
        ox = Signal(range(max_hw + 1))
        out_ptr = Signal(range(p.depth + 1))
        wptr = Signal(range(p.depth + 1))
        origin = [Signal(addr_t, name=f"origin{k}") for k in range(2)]
        row_origin = [Signal(addr_t, name=f"row_origin{k}") for k in range(2)]
        coord = signed(_u(2 * max_in + max_k) + 1)
        iy0 = [Signal(coord, name=f"iy0_{k}") for k in range(2)]
        ix0 = [Signal(coord, name=f"ix0_{k}") for k in range(2)]

        # walker
        src = Signal(range(3))
        ky = Signal(range(max_k + 1))
        kx = Signal(range(max_k + 1))
        wi = Signal(range(max_cw + 1))
        iy = Signal(coord)
        ix = Signal(coord)
        row_ptr = Signal(addr_t)
        col_ptr = Signal(addr_t)
        tapc = Signal(cbits)
        lane = Signal(range(P + 1))
        lw = Signal(range(p.depth + 1))
        ls = Signal(range(S))
        wdone = Signal()

        # fetch pipeline
        md_layout = data.StructLayout({
            "n": unsigned(_u(S)), "slot0": unsigned(_u(S)), "cbase": unsigned(cbits),
            "skip": unsigned(1), "lane": unsigned(_u(P)), "lshift": unsigned(6)})
        inflight = Signal()
        md_fl = Signal(md_layout)
        fifo_data = [Signal(WORD_BITS, name=f"fifo_d{k}") for k in range(FIFO_DEPTH)]
        fifo_md = [Signal(md_layout, name=f"fifo_m{k}") for k in range(FIFO_DEPTH)]
        level = Signal(range(FIFO_DEPTH + 1))
        head = Signal(range(FIFO_DEPTH))
        tail = Signal(range(FIFO_DEPTH))
        kbeat = Signal(range(S + 1))
        act_r = Signal(A)
        skip_r = Signal()
        lane_r = Signal(range(P))
        lshift_r = Signal(6)
        valid_r = Signal()
        m.submodules.lanes = lanes = _Lanes(P, A, self._acc_w, self._dsp)

        # epilogue
        e = Signal(range(max(p.cache_depth, 4 + K + 2 * P) + 2))
        n_lanes = Signal(range(P + 1))
        ys = [Signal(A, name=f"y{k}") for k in range(P)]
        ycnt = Signal(range(P + 1))
        rmw_lane = Signal(range(P + 1))
        rmw_phase = Signal()
        rmw_on = Signal()

        # input / load
        in_pos_ptr = Signal(range(p.depth + 1), init=p.maps["input"][0])
        in_c = Signal(range(max(S, 2)))
        in_ch = Signal(range(max(p.input_shape[2], 2)))
        in_cnt = Signal(range(self._n_bytes + 1))
        in_word = Signal(WORD_BITS)
        ld_ptr = Signal(range(p.depth + 1))
        ld_byte = Signal(3)
        ld_word = Signal(WORD_BITS)

        # ---------------------------------------------------------------- defaults
        m.d.comb += [main.we.eq(0), main.addr.eq(0), main.wdata.eq(0),
                     c_wp.en.eq(0), c_rp.en.eq(1)]

        # ---------------------------------------------------------------- input framer
        m.submodules.framer = framer = PixelFramer(self._n_bytes)
        wiring.connect(m, wiring.flipped(self.pixels), framer.i)
        m.d.comb += self.frame_errors.eq(framer.frame_errors)
        H, W, C = p.input_shape
        in_base = p.maps["input"][0]

        # ---------------------------------------------------------------- result path
        # the logits arrive one a cycle in class order: a shift register and a running argmax
        # (lowest index on ties), held until the result is taken
        ncls = p.num_classes
        lg = [Signal(signed(self._logit_w), name=f"logit{k}") for k in range(ncls)]
        best_v = Signal(signed(self._logit_w))
        best_i = Signal(range(max(ncls, 2)))
        lg_cnt = Signal(range(max(ncls, 2)))
        ovalid = Signal()
        lg_in = Signal(signed(self._logit_w))
        lg_take = Signal()
        m.d.comb += [self.result.valid.eq(ovalid), self.result.payload.cls.eq(best_i)]
        m.d.comb += [self.result.payload.logits[k].eq(lg[k]) for k in range(ncls)]
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += ovalid.eq(0)
        with m.If(lg_take):
            m.d.sync += [lg[k].eq(lg[k + 1]) for k in range(ncls - 1)]
            m.d.sync += lg[ncls - 1].eq(lg_in)
            with m.If((lg_cnt == 0) | (lg_in > best_v)):
                m.d.sync += [best_v.eq(lg_in), best_i.eq(lg_cnt)]
            with m.If(lg_cnt == ncls - 1):
                m.d.sync += [lg_cnt.eq(0), ovalid.eq(1)]
            with m.Else():
                m.d.sync += lg_cnt.eq(lg_cnt + 1)

        # ---------------------------------------------------------------- AMOS unit
        unit = IntAmosUnit.relu(K)
        # the unit saturates its input to [0, 2**K - 1]: clamping the requantised value to
        # [-1, 2**K] first changes no output and keeps the K stages K + 2 bits wide
        v_w = K + 2
        m.submodules.unit = au = AmosUnit(unit, v_w)
        m.d.comb += [au.i.valid.eq(0), au.o.ready.eq(1)]

        # ================================================================ INPUT / LOAD
        reader = None
        if self._flash is not None:
            from amos_hw.lib.spiflash import SpiFlashReader

            m.submodules.reader = reader = SpiFlashReader(**self._flash)
            wiring.connect(m, reader.flash, wiring.flipped(self.flash))
        with m.If(state == ST_INPUT):
            at_start = in_cnt == 0
            if reader is None:
                m.d.comb += [framer.o.ready.eq(~(self.load.valid & at_start)),
                             self.load.ready.eq(at_start)]
                loading = self.load.valid & at_start
            else:
                m.d.comb += framer.o.ready.eq(1)
                loading = Const(0, 1)
            with m.If(loading):
                if reader is None:
                    byte = Mux(self.load.payload.first, 0, ld_byte)
                    ptr = Mux(self.load.payload.first, 0, ld_ptr)
                    new = Signal(WORD_BITS)
                    m.d.comb += new.eq(ld_word)
                    for b in range(8):
                        with m.If(byte == b):
                            m.d.comb += new.word_select(b, 8).eq(self.load.payload.data)
                    m.d.sync += [ld_word.eq(new), ld_byte.eq(byte + 1)]
                    with m.If(byte == 7):
                        m.d.comb += [main.addr.eq(ptr), main.wdata.eq(new), main.we.eq(1)]
                        m.d.sync += ld_ptr.eq(ptr + 1)
                    with m.Else():
                        m.d.sync += ld_ptr.eq(ptr)
            with m.Elif(framer.o.valid):
                neww = Signal(WORD_BITS)
                m.d.comb += neww.eq(in_word)
                for s in range(S):
                    with m.If(in_c == s):
                        m.d.comb += neww.word_select(s, A).eq(framer.o.payload)
                m.d.sync += in_word.eq(neww)
                last_c = Signal()
                m.d.comb += last_c.eq((in_c == S - 1) | (in_ch == C - 1))
                m.d.sync += in_ch.eq(Mux(in_ch == C - 1, 0, in_ch + 1))
                with m.If(last_c):
                    m.d.comb += [main.addr.eq(in_pos_ptr), main.wdata.eq(neww), main.we.eq(1)]
                    m.d.sync += [in_pos_ptr.eq(in_pos_ptr + 1), in_c.eq(0), in_word.eq(0)]
                with m.Else():
                    m.d.sync += in_c.eq(in_c + 1)
                with m.If(in_cnt == self._n_bytes - 1):
                    if reader is not None:  # the image's weights: one read of the flash
                        m.d.comb += reader.start.eq(1)
                    m.d.sync += [in_cnt.eq(0), in_pos_ptr.eq(in_base), state.eq(ST_FILL),
                                 pc.eq(0), g.eq(0), gw.eq(0), gs.eq(0), e.eq(0),
                                 wptr.eq(ins_list[0].wbase)]
                with m.Else():
                    m.d.sync += in_cnt.eq(in_cnt + 1)
        with m.Else():
            m.d.comb += framer.o.ready.eq(0)
            if reader is None:
                m.d.comb += self.load.ready.eq(0)

        # ================================================================ FILL
        with m.If(state == ST_FILL):
            if reader is None:
                with m.If(e < f_taps):
                    m.d.comb += main.addr.eq(wptr + e)
                with m.If(e != 0):
                    m.d.comb += [c_wp.addr.eq(e - 1), c_wp.data.eq(main.rdata), c_wp.en.eq(1)]
            else:
                m.d.comb += [reader.o.ready.eq(e < f_taps), c_wp.addr.eq(e),
                             c_wp.data.eq(reader.o.payload),
                             c_wp.en.eq(reader.o.valid & (e < f_taps))]
            with m.If(e == f_taps):
                m.d.sync += [e.eq(0), state.eq(ST_START), wptr.eq(wptr + f_taps),
                             oy.eq(0), ox.eq(0),
                             out_ptr.eq(f_obase)]
                for k in range(2):
                    m.d.sync += [origin[k].eq(sf[k]["origin"]), row_origin[k].eq(sf[k]["origin"]),
                                 iy0[k].eq(-sf[k]["pad"]), ix0[k].eq(-sf[k]["pad"])]
            with m.Elif(Const(1, 1) if reader is None else reader.o.valid):
                m.d.sync += e.eq(e + 1)

        # ================================================================ START
        def load_walker(k):
            """Walker registers for source k at the current position (sync statements)."""
            return [src.eq(k), ky.eq(0), kx.eq(0), wi.eq(0), iy.eq(iy0[k]), ix.eq(ix0[k]),
                    row_ptr.eq(origin[k]), col_ptr.eq(origin[k]), tapc.eq(sf[k]["coff"]),
                    lane.eq(0), lw.eq(gw), ls.eq(gs)]

        with m.If(state == ST_START):
            m.d.sync += load_walker(0)
            m.d.sync += [wdone.eq(0), state.eq(ST_RUN), kbeat.eq(0)]
            m.d.comb += lanes.clear.eq(1)

        # ================================================================ RUN: walker
        sel = {key: Array(sf[k][key] for k in range(2))[src] for key in sf[0]}
        credit = (level + inflight) < FIFO_DEPTH
        issue = Signal()
        issue_md = Signal(md_layout)
        nl_cur = Signal(range(P + 1))
        rem = Signal(signed(16))
        m.d.comb += [rem.eq(f_Co - _times(g, P)),
                     nl_cur.eq(Mux(rem > P, P, rem))]
        with m.If((state == ST_RUN) & ~wdone & credit):
            with m.If(sel["skip"]):
                m.d.comb += [
                    issue.eq(1),
                    main.addr.eq(out_ptr + sel["delta"] + lw),
                    issue_md.n.eq(1), issue_md.slot0.eq(ls), issue_md.cbase.eq(0),
                    issue_md.skip.eq(1), issue_md.lane.eq(lane), issue_md.lshift.eq(sel["lshift"]),
                ]
                with m.If(ls == S - 1):
                    m.d.sync += [ls.eq(0), lw.eq(lw + 1)]
                with m.Else():
                    m.d.sync += ls.eq(ls + 1)
                m.d.sync += lane.eq(lane + 1)
                with m.If(lane == nl_cur - 1):
                    with m.If(src + 1 < f_nsrc):
                        m.d.sync += load_walker(1)
                    with m.Else():
                        m.d.sync += wdone.eq(1)
            with m.Else():
                inb = Signal()
                m.d.comb += inb.eq((iy >= 0) & (iy < sel["H"]) & (ix >= 0) & (ix < sel["W"]))
                last_w = wi == sel["cw"] - 1
                with m.If(inb):
                    m.d.comb += [
                        issue.eq(1),
                        main.addr.eq(col_ptr + wi),
                        issue_md.n.eq(Mux(last_w, sel["last_slots"], S)),
                        issue_md.slot0.eq(0),
                        issue_md.cbase.eq(tapc + _times(wi, S)),
                        issue_md.skip.eq(0), issue_md.lane.eq(0), issue_md.lshift.eq(0),
                    ]
                with m.If(inb & ~last_w):
                    m.d.sync += wi.eq(wi + 1)
                with m.Else():  # next tap
                    m.d.sync += wi.eq(0)
                    with m.If(~sel["wrap"]):
                        m.d.sync += tapc.eq(tapc + sel["C"])
                    with m.If(kx != sel["kw"] - 1):
                        m.d.sync += [kx.eq(kx + 1), ix.eq(ix + 1),
                                     col_ptr.eq(col_ptr + sel["cw"])]
                    with m.Else():
                        m.d.sync += [kx.eq(0), ix.eq(Array(ix0)[src])]
                        with m.If(ky != sel["kh"] - 1):
                            m.d.sync += [ky.eq(ky + 1), iy.eq(iy + 1),
                                         row_ptr.eq(row_ptr + sel["row"]),
                                         col_ptr.eq(row_ptr + sel["row"])]
                        with m.Else():  # source done
                            with m.If(src + 1 < f_nsrc):
                                m.d.sync += load_walker(1)
                            with m.Else():
                                m.d.sync += wdone.eq(1)
        m.d.sync += inflight.eq(issue)
        m.d.sync += md_fl.eq(issue_md)

        # ---------------------------------------------------------------- FIFO and lanes
        push = inflight
        h_md = Array(fifo_md)[head]
        h_data = Array(fifo_data)[head]
        beat = level != 0
        slot = Signal(range(S + 1))
        m.d.comb += slot.eq(h_md.slot0 + kbeat)
        pop = beat & (kbeat == h_md.n - 1)
        with m.If(push):
            for k in range(FIFO_DEPTH):
                with m.If(tail == k):
                    m.d.sync += [fifo_data[k].eq(main.rdata), fifo_md[k].eq(md_fl)]
            m.d.sync += tail.eq(Mux(tail == FIFO_DEPTH - 1, 0, tail + 1))
        with m.If(pop):
            m.d.sync += [head.eq(Mux(head == FIFO_DEPTH - 1, 0, head + 1)), kbeat.eq(0)]
        with m.Elif(beat):
            m.d.sync += kbeat.eq(kbeat + 1)
        m.d.sync += level.eq(level + push - pop)
        act_now = Array(h_data.word_select(s, A) for s in range(S))[slot]
        m.d.comb += c_rp.addr.eq(h_md.cbase + kbeat)
        m.d.sync += [valid_r.eq(beat), act_r.eq(act_now), skip_r.eq(h_md.skip),
                     lane_r.eq(h_md.lane), lshift_r.eq(h_md.lshift)]
        m.d.comb += [lanes.valid.eq(valid_r), lanes.act.eq(act_r), lanes.skip.eq(skip_r),
                     lanes.lane.eq(lane_r), lanes.lshift.eq(lshift_r),
                     lanes.weights.eq(c_rp.data)]
        with m.If((state == ST_RUN) & wdone & ~inflight & (level == 0) & ~valid_r):
            m.d.sync += [state.eq(ST_EPI), e.eq(0), n_lanes.eq(nl_cur), ycnt.eq(0),
                         rmw_lane.eq(0), rmw_phase.eq(0), rmw_on.eq(0), lw.eq(gw), ls.eq(gs)]

        # ================================================================ EPI
        bias_sum = lanes.acc0 + b_rp.data
        m.d.comb += b_rp.addr.eq(f_bbase + _times(g, P) + e)
        b_stall = Signal()
        m.d.comb += b_rp.en.eq(~b_stall)
        shift = f_shift
        rnd = field([(1 << (i.shift - 1)) if i.shift else 0 for i in ins_list])
        v_full = Signal(signed(self._acc_w + 2))
        m.d.comb += v_full.eq((bias_sum + rnd) >> shift)
        v = Signal(signed(v_w))
        m.d.comb += v.eq(Mux(v_full < 0, -1, Mux(v_full > (1 << K), 1 << K, v_full)))
        with m.If(state == ST_EPI):
            feeding = (e >= 1) & (e <= n_lanes)
            with m.If(f_logits):
                with m.If(feeding):
                    m.d.comb += [lg_take.eq(~ovalid), lg_in.eq(bias_sum),
                                 b_stall.eq(ovalid)]
                with m.If(~feeding | ~ovalid):
                    m.d.sync += e.eq(e + 1)
                    with m.If(feeding):
                        m.d.comb += lanes.shift.eq(1)
                    with m.If(e == n_lanes):
                        m.d.sync += state.eq(ST_NEXT)
            with m.Else():
                m.d.sync += e.eq(e + 1)
                with m.If(feeding):
                    m.d.comb += [au.i.valid.eq(1), au.i.payload.x[0].eq(v), lanes.shift.eq(1)]
                with m.If(au.o.valid):
                    for k in range(P):
                        with m.If(ycnt == k):
                            m.d.sync += ys[k].eq(au.o.payload.z[0])
                    m.d.sync += [ycnt.eq(ycnt + 1), rmw_on.eq(1)]
                with m.If(rmw_on):
                    waddr = out_ptr + lw
                    m.d.comb += main.addr.eq(waddr)
                    with m.If(rmw_phase):
                        y_now = Array(ys)[rmw_lane]
                        merged = Signal(WORD_BITS)
                        m.d.comb += merged.eq(main.rdata)
                        for s in range(S):
                            with m.If(ls == s):
                                m.d.comb += merged.word_select(s, A).eq(y_now)
                        m.d.comb += [main.we.eq(1), main.wdata.eq(merged)]
                        m.d.sync += [rmw_phase.eq(0), rmw_lane.eq(rmw_lane + 1)]
                        with m.If(ls == S - 1):
                            m.d.sync += [ls.eq(0), lw.eq(lw + 1)]
                        with m.Else():
                            m.d.sync += ls.eq(ls + 1)
                        with m.If(rmw_lane == n_lanes - 1):
                            m.d.sync += [state.eq(ST_NEXT), rmw_on.eq(0)]
                    with m.Else():
                        m.d.sync += rmw_phase.eq(1)

        # ========================================================= NEXT (position, group, instr)
        with m.If(state == ST_NEXT):
            m.d.sync += e.eq(0)
            last_x = ox == f_Wo - 1
            last_y = oy == f_Ho - 1
            with m.If(~last_x):
                m.d.sync += [ox.eq(ox + 1), out_ptr.eq(out_ptr + f_cwo), state.eq(ST_START)]
                for k in range(2):
                    m.d.sync += [origin[k].eq(origin[k] + sf[k]["step_x"]),
                                 ix0[k].eq(ix0[k] + sf[k]["stride"])]
            with m.Elif(~last_y):
                m.d.sync += [ox.eq(0), oy.eq(oy + 1), out_ptr.eq(out_ptr + f_cwo),
                             state.eq(ST_START)]
                for k in range(2):
                    m.d.sync += [origin[k].eq(row_origin[k] + sf[k]["step_y"]),
                                 row_origin[k].eq(row_origin[k] + sf[k]["step_y"]),
                                 ix0[k].eq(-sf[k]["pad"]),
                                 iy0[k].eq(iy0[k] + sf[k]["stride"])]
            with m.Elif(g != f_groups - 1):
                m.d.sync += [g.eq(g + 1), state.eq(ST_FILL)]
                nw, ns = divmod(P, S)
                with m.If(gs + ns >= S):
                    m.d.sync += [gs.eq(gs + ns - S), gw.eq(gw + nw + 1)]
                with m.Else():
                    m.d.sync += [gs.eq(gs + ns), gw.eq(gw + nw)]
            with m.Elif(pc != n_ins - 1):
                m.d.sync += [pc.eq(pc + 1), g.eq(0), gw.eq(0), gs.eq(0), state.eq(ST_FILL)]
            with m.Else():
                m.d.sync += [state.eq(ST_INPUT), pc.eq(0)]
        return m
