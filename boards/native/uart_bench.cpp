// Native Verilator bench for a board top behind its UART (`host classify --sim`): no Python
// on the clock.
//
// Built and run by boards/native_uart.py (see its docstring). The design is the Verilog of
// boards.top.UartNetworkTop, verilated with `--prefix Vtop`; its ports: clk, rst, rx, tx, led.
// The bench holds rst high for 5 cycles, then low for 5, then plays the host: it sends each
// frame of the input file on rx, bit by bit (8N1: a start bit 0, the 8 data bits LSB first, a
// stop bit 1, each held DIVISOR cycles), and samples tx the way a UART receiver does (a falling
// edge, the middle of the start bit, then every DIVISOR cycles), parsing the received bytes
// into frames by the protocol's framing (A5 5A | CMD | LEN lo, hi | LEN bytes | CRC; the CRC is
// checked in Python). After a frame is sent it waits for one complete answer frame, then sends
// the next (as the host does: one command, one answer).
//
// Usage: uart_bench FRAMES OUT [--watchdog CYCLES]
//
// FRAMES: magic "AMOSUAR1", uint32 LE divisor (clock cycles per bit), uint32 LE frame count,
// then per frame a uint32 LE length and that many bytes (the encoded frame). --watchdog
// CYCLES: fail when an answer has not come that many cycles after its frame was sent.
//
// OUT: a text file, one line per frame, "index sent answered HEX": the cycle its first bit
// started, the cycle its answer's last byte was sampled, the answer's bytes in hex (from its
// A5 5A); then "done COUNT CYCLES". Exit status: 0 after all frames, 2 on bad arguments or a
// bad frames file, 3 when the watchdog fires; the message on stderr says which.

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

namespace {

constexpr char kMagic[8] = {'A', 'M', 'O', 'S', 'U', 'A', 'R', '1'};

[[noreturn]] void fail(int status, const std::string& msg) {
    std::fprintf(stderr, "uart_bench: error: %s\n", msg.c_str());
    std::exit(status);
}

uint32_t le32(const unsigned char* p) {
    return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

struct Frames {
    uint32_t divisor = 0;
    std::vector<std::vector<unsigned char>> frames;
};

Frames read_frames(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail(2, "cannot open frames file " + path + ": " + std::strerror(errno));
    std::vector<unsigned char> d;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) d.insert(d.end(), buf, buf + n);
    std::fclose(f);
    if (d.size() < 16 || std::memcmp(d.data(), kMagic, 8) != 0)
        fail(2, "frames file " + path + " does not start with the AMOSUAR1 header");
    Frames out;
    out.divisor = le32(d.data() + 8);
    const uint32_t count = le32(d.data() + 12);
    if (out.divisor < 4) fail(2, "frames file " + path + ": divisor " +
                                     std::to_string(out.divisor) + " (at least 4 cycles a bit)");
    size_t at = 16;
    for (uint32_t k = 0; k < count; ++k) {
        if (d.size() < at + 4)
            fail(2, "frames file " + path + " is truncated: frame " + std::to_string(k) +
                        " of " + std::to_string(count) + " has no length");
        const uint32_t len = le32(d.data() + at);
        at += 4;
        if (d.size() < at + len)
            fail(2, "frames file " + path + " is truncated: frame " + std::to_string(k) +
                        " announces " + std::to_string(len) + " bytes, " +
                        std::to_string(d.size() - at) + " are left");
        out.frames.emplace_back(d.begin() + at, d.begin() + at + len);
        at += len;
    }
    if (at != d.size())
        fail(2, "frames file " + path + " has " + std::to_string(d.size() - at) +
                    " bytes after its " + std::to_string(count) + " frames");
    if (count == 0) fail(2, "frames file " + path + " holds no frame");
    return out;
}

// 8N1 transmitter on rx: one bit level per cycle
struct Sender {
    const std::vector<unsigned char>* bytes = nullptr;
    size_t byte = 0;
    int bit = 0;         // 0 start, 1..8 data, 9 stop
    uint32_t held = 0;   // cycles the current bit has been on the line
    bool busy = false;
    void start(const std::vector<unsigned char>& b) {
        bytes = &b;
        byte = 0;
        bit = 0;
        held = 0;
        busy = !b.empty();
    }
    int level() const {
        if (!busy) return 1;
        if (bit == 0) return 0;
        if (bit == 9) return 1;
        return ((*bytes)[byte] >> (bit - 1)) & 1;
    }
    void step(uint32_t divisor) {  // after a cycle with level() on the line
        if (!busy || ++held < divisor) return;
        held = 0;
        if (++bit == 10) {
            bit = 0;
            if (++byte == bytes->size()) busy = false;
        }
    }
};

// 8N1 receiver on tx, and the protocol's framing
struct Receiver {
    int prev = 1;
    int state = -1;      // -1 idle; 0 start bit; 1..8 data; 9 stop
    uint32_t wait = 0;   // cycles to the next sample
    unsigned byte = 0;
    std::vector<unsigned char> frame;
    bool complete = false;
    // one cycle of tx (a completed byte goes to take())
    void step(int tx, uint32_t divisor, uint64_t cycle) {
        if (state < 0) {
            if (prev == 1 && tx == 0) {
                state = 0;
                wait = divisor / 2;
            }
        } else if (wait == 0 || --wait == 0) {
            if (state == 0) {
                if (tx != 0) {
                    state = -1;  // a glitch
                } else {
                    state = 1;
                    byte = 0;
                    wait = divisor;
                }
            } else if (state <= 8) {
                byte |= static_cast<unsigned>(tx) << (state - 1);
                ++state;
                wait = divisor;
            } else {
                if (tx != 1)
                    fail(3, "framing error on tx after byte " + std::to_string(byte) +
                                " at cycle " + std::to_string(cycle));
                take(static_cast<unsigned char>(byte));
                state = -1;
            }
        }
        prev = tx;
    }
    void take(unsigned char b) {  // frame hunting: A5 5A CMD LEN LEN PAYLOAD CRC
        if (complete) return;       // the answer is read before the next frame is sent
        frame.push_back(b);
        if (frame.size() == 1 && b != 0xA5) frame.clear();
        else if (frame.size() == 2 && b != 0x5A) frame.clear();
        else if (frame.size() >= 5) {
            const size_t len = frame[3] | (frame[4] << 8);
            if (frame.size() == 6 + len) complete = true;
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> pos;
    uint64_t watchdog = 0;
    for (int i = 1; i < argc; ++i) {
        std::string s = argv[i];
        if (s.rfind("+verilator", 0) == 0) continue;
        if (s == "--watchdog") {
            if (i + 1 >= argc) fail(2, "--watchdog needs a value");
            char* end = nullptr;
            errno = 0;
            watchdog = std::strtoull(argv[++i], &end, 10);
            if (*end || errno) fail(2, std::string("--watchdog must be an integer, not '") +
                                           argv[i] + "'");
        } else if (s.rfind("--", 0) == 0) {
            fail(2, "unknown option " + s);
        } else {
            pos.push_back(s);
        }
    }
    if (pos.size() != 2) fail(2, "usage: uart_bench FRAMES OUT [--watchdog CYCLES]");
    const Frames in = read_frames(pos[0]);
    FILE* out = std::fopen(pos[1].c_str(), "w");
    if (!out) fail(2, "cannot write " + pos[1] + ": " + std::strerror(errno));

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<Vtop>(ctx.get());
    uint64_t cycle = 0;
    auto tick = [&]() {
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
        ++cycle;
    };
    top->rx = 1;
    top->rst = 1;
    for (int i = 0; i < 5; ++i) tick();
    top->rst = 0;
    for (int i = 0; i < 5; ++i) tick();

    Sender tx_host;
    Receiver rx_host;
    const uint32_t d = in.divisor;
    for (size_t k = 0; k < in.frames.size(); ++k) {
        const uint64_t sent = cycle;
        rx_host.frame.clear();
        rx_host.complete = false;
        tx_host.start(in.frames[k]);
        uint64_t sent_end = 0;
        while (!rx_host.complete) {
            top->rx = tx_host.level();
            tick();
            tx_host.step(d);
            if (!tx_host.busy && !sent_end) sent_end = cycle;
            rx_host.step(top->tx, d, cycle);
            if (watchdog && sent_end && cycle - sent_end > watchdog) {
                std::fclose(out);
                fail(3, "watchdog: no answer to frame " + std::to_string(k) + " of " +
                            std::to_string(in.frames.size()) + " within " +
                            std::to_string(watchdog) + " cycles of its last bit (" +
                            std::to_string(rx_host.frame.size()) +
                            " bytes of an answer received, cycle " + std::to_string(cycle) +
                            ")");
            }
        }
        std::fprintf(out, "%zu %llu %llu ", k, static_cast<unsigned long long>(sent),
                     static_cast<unsigned long long>(cycle));
        for (unsigned char b : rx_host.frame) std::fprintf(out, "%02x", b);
        std::fputc('\n', out);
    }
    std::fprintf(out, "done %zu %llu\n", in.frames.size(), static_cast<unsigned long long>(cycle));
    top->final();
    if (std::fclose(out) != 0) fail(2, "cannot write " + pos[1] + ": " + std::strerror(errno));
    return 0;
}
