// Native Verilator testbench for a whole generated network: no Python on the clock.
//
// Built and run by rtl_tests/native.py (see its docstring). The design is the Verilog of
// amos_hw's NetworkTop or SharedNetwork (weights in memory) inside native.py's bench top, which
// ties the network's rst low (every register starts at its reset value), verilated with
// `--prefix Vtop`. Its ports: clk, pixels__{payload,valid,ready} (payload:
// data[7:0], first[8], last[9]), result__{payload,valid,ready} (payload: cls[3:0], then
// num_classes signed logits of logit_width bits), and, on the shared engine,
// load__{payload,valid,ready} (tied off: the weights are preloaded). Verilator escapes a
// double underscore in a port name as "___05F" (pixels__valid is the member
// pixels___05Fvalid).
//
// The geometry comes from the generator as defines: AMOS_IMAGE_SIZE (bytes per image),
// AMOS_LOGIT_WIDTH, AMOS_NUM_CLASSES, AMOS_HAS_LOAD (the shared engine's weight port) and
// AMOS_SPIKE_LAYERS (a network generated with spike counters: the result payload ends with the
// image's 32-bit spike count, and the layer_spikes port holds AMOS_SPIKE_LAYERS 32-bit counts,
// the split per layer, valid with the result beat).
//
// Usage: bench IMAGES OUT [--seed N] [--idle P] [--stall P] [--watchdog CYCLES]
//
// IMAGES: a 16-byte header (magic "AMOSIMG1", uint32 LE image count, uint32 LE image size)
// followed by count * size pixel bytes (HWC order). --idle P: the probability that the bench
// leaves a cycle idle before offering a pixel; --stall P: the probability that result__ready
// is low in a cycle (both from a seeded xorshift generator, so a run is reproducible).
// --watchdog CYCLES: fail when no result beat comes for that many cycles.
//
// OUT: a text file, one line per image, "index cls latency interval logit0 ... logitN-1",
// where latency is the cycles from the image's first pixel accepted to its result beat and
// interval the cycles since the previous result beat (-1 for the first); with AMOS_SPIKE_LAYERS
// the line goes on with "spikes layer0 ... layerL-1"; then a last line "done COUNT CYCLES". Exit status: 0 after all images, 2 on bad arguments or a bad image
// file, 3 when the watchdog fires; the message on stderr says which.

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

#if !defined(AMOS_IMAGE_SIZE) || !defined(AMOS_LOGIT_WIDTH) || !defined(AMOS_NUM_CLASSES)
#error "build with -DAMOS_IMAGE_SIZE=.. -DAMOS_LOGIT_WIDTH=.. -DAMOS_NUM_CLASSES=.."
#endif

static_assert(AMOS_LOGIT_WIDTH >= 1 && AMOS_LOGIT_WIDTH <= 63, "logit width 1..63");

namespace {

constexpr char kMagic[8] = {'A', 'M', 'O', 'S', 'I', 'M', 'G', '1'};
constexpr size_t kHeader = 16;
#ifdef AMOS_SPIKE_LAYERS
constexpr int kPayloadBits = 4 + AMOS_NUM_CLASSES * AMOS_LOGIT_WIDTH + 32;
constexpr int kLayerWords = AMOS_SPIKE_LAYERS + 2;
#else
constexpr int kPayloadBits = 4 + AMOS_NUM_CLASSES * AMOS_LOGIT_WIDTH;
#endif
constexpr int kPayloadWords = (kPayloadBits + 31) / 32 + 2;  // room for a 63-bit read

[[noreturn]] void fail(int status, const std::string& msg) {
    std::fprintf(stderr, "bench: error: %s\n", msg.c_str());
    std::exit(status);
}

// xorshift64*: a small, portable, seeded generator (the same pattern on every machine)
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL) {
        if (s == 0) s = 1;
    }
    uint32_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return static_cast<uint32_t>((s * 0x2545F4914F6CDD1DULL) >> 32);
    }
};

// probability p in [0, 1] as a threshold on a 32-bit draw
uint64_t threshold(double p) { return static_cast<uint64_t>(p * 4294967296.0); }

// the result payload as 32-bit words, whatever C++ type Verilator gave the port
template <typename T>
void to_words(const T& v, uint32_t* w) {
    static_assert(std::is_integral<T>::value, "an integral port");
    const uint64_t x = static_cast<uint64_t>(v);
    w[0] = static_cast<uint32_t>(x);
    w[1] = static_cast<uint32_t>(x >> 32);
}
template <std::size_t N>
void to_words(const VlWide<N>& v, uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) w[i] = v[i];
}

uint64_t bits(const uint32_t* w, int lo, int width) {
    const int i = lo / 32, sh = lo % 32;
    const uint64_t x = (static_cast<uint64_t>(w[i]) >> sh) |
                       (static_cast<uint64_t>(w[i + 1]) << (32 - sh)) |
                       (sh ? static_cast<uint64_t>(w[i + 2]) << (64 - sh) : 0);
    return width == 64 ? x : x & ((1ULL << width) - 1);
}

struct Args {
    std::string images, out;
    uint64_t seed = 0;
    double idle = 0.0, stall = 0.0;
    uint64_t watchdog = 0;
};

Args parse(int argc, char** argv) {
    Args a;
    std::vector<std::string> pos;
    for (int i = 1; i < argc; ++i) {
        std::string s = argv[i];
        if (s.rfind("+verilator", 0) == 0) continue;
        if (s == "--seed" || s == "--idle" || s == "--stall" || s == "--watchdog") {
            if (i + 1 >= argc) fail(2, s + " needs a value");
            char* end = nullptr;
            const char* v = argv[++i];
            errno = 0;
            if (s == "--idle" || s == "--stall") {
                const double p = std::strtod(v, &end);
                if (*end || errno || !(p >= 0.0 && p < 1.0))
                    fail(2, s + " must be a probability in [0, 1), not '" + v + "'");
                (s == "--idle" ? a.idle : a.stall) = p;
            } else {
                const unsigned long long n = std::strtoull(v, &end, 10);
                if (*end || errno || !*v) fail(2, s + " must be an integer, not '" + v + "'");
                (s == "--seed" ? a.seed : a.watchdog) = n;
            }
        } else if (s.rfind("--", 0) == 0) {
            fail(2, "unknown option " + s);
        } else {
            pos.push_back(s);
        }
    }
    if (pos.size() != 2) fail(2, "usage: bench IMAGES OUT [--seed N] [--idle P] [--stall P] "
                                 "[--watchdog CYCLES]");
    a.images = pos[0];
    a.out = pos[1];
    return a;
}

uint32_t le32(const unsigned char* p) {
    return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// the whole image file, checked against its header and the design's image size
std::vector<unsigned char> read_images(const std::string& path, uint32_t& count) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail(2, "cannot open image file " + path + ": " + std::strerror(errno));
    std::vector<unsigned char> data;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.insert(data.end(), buf, buf + n);
    std::fclose(f);
    if (data.size() < kHeader || std::memcmp(data.data(), kMagic, 8) != 0)
        fail(2, "image file " + path + " does not start with the AMOSIMG1 header");
    count = le32(data.data() + 8);
    const uint32_t size = le32(data.data() + 12);
    if (size != AMOS_IMAGE_SIZE)
        fail(2, "image file " + path + " holds images of " + std::to_string(size) +
                    " bytes; this bench was built for " + std::to_string(AMOS_IMAGE_SIZE));
    const uint64_t want = kHeader + static_cast<uint64_t>(count) * size;
    if (data.size() < want)
        fail(2, "image file " + path + " is truncated: its header announces " +
                    std::to_string(count) + " images of " + std::to_string(size) + " bytes (" +
                    std::to_string(want) + " bytes with the header), the file has " +
                    std::to_string(data.size()));
    if (data.size() > want)
        fail(2, "image file " + path + " has " + std::to_string(data.size() - want) +
                    " bytes after its " + std::to_string(count) + " images");
    if (count == 0) fail(2, "image file " + path + " holds no image");
    return data;
}

}  // namespace

int main(int argc, char** argv) {
    const Args a = parse(argc, argv);
    uint32_t count = 0;
    const std::vector<unsigned char> data = read_images(a.images, count);
    const unsigned char* px = data.data() + kHeader;
    const uint64_t total = static_cast<uint64_t>(count) * AMOS_IMAGE_SIZE;

    FILE* out = std::fopen(a.out.c_str(), "w");
    if (!out) fail(2, "cannot write " + a.out + ": " + std::strerror(errno));
    static char outbuf[1 << 20];
    std::setvbuf(out, outbuf, _IOFBF, sizeof outbuf);

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<Vtop>(ctx.get());

    top->clk = 0;
    top->pixels___05Fvalid = 0;
    top->pixels___05Fpayload = 0;
    top->result___05Fready = 0;
#ifdef AMOS_HAS_LOAD
    top->load___05Fvalid = 0;
    top->load___05Fpayload = 0;
#endif
    top->eval();
    for (int i = 0; i < 2; ++i) {  // two idle clock edges before the first pixel
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
    }

    Rng rng(a.seed);
    const uint64_t idle_t = threshold(a.idle), stall_t = threshold(a.stall);
    std::vector<uint64_t> first_accept(count, 0);
    uint32_t w[kPayloadWords] = {0};
#ifdef AMOS_SPIKE_LAYERS
    uint32_t layers[kLayerWords] = {0};
#endif
    uint64_t k = 0;           // next pixel to offer
    uint32_t done = 0;        // result beats received
    uint64_t cycle = 0;       // rising edges since reset
    uint64_t last_result = 0, last_progress = 0;
    bool offering = false;

    while (done < count) {
        // inputs for this cycle, with the clock low
        if (!offering && k < total) offering = idle_t == 0 || rng.next() >= idle_t;
        const uint64_t pos = k % AMOS_IMAGE_SIZE;
        if (offering)
            top->pixels___05Fpayload =
                px[k] | ((pos == 0) << 8) | ((pos == AMOS_IMAGE_SIZE - 1) << 9);
        top->pixels___05Fvalid = offering;
        top->result___05Fready = stall_t == 0 || rng.next() >= stall_t;
        top->clk = 0;
        top->eval();
        const bool px_fire = offering && top->pixels___05Fready;
        const bool res_fire = top->result___05Fvalid && top->result___05Fready;
        if (res_fire) {
            to_words(top->result___05Fpayload, w);
#ifdef AMOS_SPIKE_LAYERS
            to_words(top->layer_spikes, layers);
#endif
        }
        top->clk = 1;
        top->eval();
        ++cycle;
        if (px_fire) {
            if (pos == 0) first_accept[k / AMOS_IMAGE_SIZE] = cycle;
            ++k;
            offering = false;
        }
        if (res_fire) {
            const long long interval = done ? static_cast<long long>(cycle - last_result) : -1;
            std::fprintf(out, "%u %u %llu %lld", done, static_cast<unsigned>(bits(w, 0, 4)),
                         static_cast<unsigned long long>(cycle - first_accept[done]), interval);
            for (int c = 0; c < AMOS_NUM_CLASSES; ++c) {
                int64_t v = static_cast<int64_t>(bits(w, 4 + c * AMOS_LOGIT_WIDTH,
                                                      AMOS_LOGIT_WIDTH));
                if (v >> (AMOS_LOGIT_WIDTH - 1)) v -= static_cast<int64_t>(1) << AMOS_LOGIT_WIDTH;
                std::fprintf(out, " %lld", static_cast<long long>(v));
            }
#ifdef AMOS_SPIKE_LAYERS
            std::fprintf(out, " %llu", static_cast<unsigned long long>(
                                           bits(w, 4 + AMOS_NUM_CLASSES * AMOS_LOGIT_WIDTH, 32)));
            for (int l = 0; l < AMOS_SPIKE_LAYERS; ++l)
                std::fprintf(out, " %u", layers[l]);
#endif
            std::fputc('\n', out);
            last_result = last_progress = cycle;
            ++done;
        }
        if (a.watchdog && cycle - last_progress > a.watchdog) {
            std::fclose(out);
            fail(3, "watchdog: no result beat for " + std::to_string(a.watchdog) +
                        " cycles (image " + std::to_string(done) + " of " +
                        std::to_string(count) + ", " + std::to_string(k) + " of " +
                        std::to_string(total) + " pixels accepted, cycle " +
                        std::to_string(cycle) + ")");
        }
    }
    std::fprintf(out, "done %u %llu\n", done, static_cast<unsigned long long>(cycle));
    top->final();
    if (std::fclose(out) != 0) fail(2, "cannot write " + a.out + ": " + std::strerror(errno));
    return 0;
}
