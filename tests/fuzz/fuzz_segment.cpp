// libFuzzer entry point of the segment fuzzer (see fuzz_inputs.h for the input format).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return shmstats::fuzz::segment_input(data, size);
}
