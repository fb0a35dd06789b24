// libFuzzer entry point of the datagram fuzzer (see fuzz_inputs.h for the input format).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return shmstats::fuzz::datagram_input(data, size);
}
