// The input handlers of the fuzzers in this directory. Each takes one input, runs it through the
// code under test and checks what must hold for any input; a broken property aborts, so libFuzzer
// and the corpus replay test (corpus_replay_test.cpp) both report it. fuzz_<target>.cpp wraps
// each handler as a libFuzzer entry point.
//
// Input formats:
//   segment   the bytes of a segment, exactly; the buffer is the mapping.
//   datagram  byte 0 holds fix-ups, the rest is the datagram: bit 0 recomputes the CRC trailer
//             and bit 1 the payload length first, so that mutations reach the protobuf payload.
//   config    byte 0 % 4 picks the path: 0 the rest is TOML text (apply_toml); 1 the rest is
//             argv, one argument per line (load_config); 2 argv lines, a NUL byte, then TOML text
//             for the --config file; 3 a first line KEY=VALUE set as SHMSTATS_COLLECTOR_KEY, then
//             argv lines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace shmstats::fuzz {

int segment_input(const std::uint8_t* data, std::size_t size);
int datagram_input(const std::uint8_t* data, std::size_t size);
int config_input(const std::uint8_t* data, std::size_t size);

// Aborts with `what` on stderr unless `ok`: a property every input must keep.
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz property broken: %s\n", what);
    std::abort();
  }
}

}  // namespace shmstats::fuzz
