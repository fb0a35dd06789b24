// Replays every committed corpus file through its fuzzer's input handler once, so the corpus
// (seeds and inputs the fuzzers found) runs in the dev, ASan+UBSan and TSan suites too (issue #5).
// An input that breaks a property aborts the test; stderr names the file being replayed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "shm/segment.h"
#include "tests/fuzz/fuzz_inputs.h"

namespace shmstats::fuzz {
namespace {

namespace fs = std::filesystem;
using Handler = int (*)(const std::uint8_t*, std::size_t);

std::vector<fs::path> corpus_files(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::uint8_t> read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in),
                                   std::istreambuf_iterator<char>());
}

void replay(const std::string& target, Handler handler) {
  const fs::path dir = fs::path(SHMSTATS_FUZZ_CORPUS_DIR) / target;
  const auto files = corpus_files(dir);
  ASSERT_FALSE(files.empty()) << "no corpus files in " << dir;
  for (const auto& file : files) {
    std::fprintf(stderr, "replaying %s\n", file.c_str());
    const auto bytes = read_bytes(file);
    EXPECT_EQ(handler(bytes.data(), bytes.size()), 0) << file;
  }
}

TEST(FuzzCorpusTest, SegmentCorpusReplaysCleanly) { replay("segment", &segment_input); }

TEST(FuzzCorpusTest, DatagramCorpusReplaysCleanly) { replay("datagram", &datagram_input); }

TEST(FuzzCorpusTest, ConfigCorpusReplaysCleanly) { replay("config", &config_input); }

// Segment seeds that the validator rejects would keep the fuzzer at the header: after a layout
// change, make them again with `shmstats-fuzz-seeds tests/fuzz/corpus`.
TEST(FuzzCorpusTest, SegmentSeedsPassValidation) {
  struct alignas(shm::kCacheLine) Mapping {
    std::uint8_t bytes[64 * 1024];
  };
  auto mapping = std::make_unique<Mapping>();
  for (const char* seed : {"seed-min-empty", "seed-min-one-event", "seed-two-rings"}) {
    const auto bytes = read_bytes(fs::path(SHMSTATS_FUZZ_CORPUS_DIR) / "segment" / seed);
    ASSERT_FALSE(bytes.empty()) << seed;
    ASSERT_LE(bytes.size(), sizeof(mapping->bytes)) << seed;
    std::copy(bytes.begin(), bytes.end(), mapping->bytes);
    const auto sut = shm::validate_segment(mapping->bytes, bytes.size());
    EXPECT_TRUE(sut) << seed << ": " << sut.error().message
                     << "; regenerate with shmstats-fuzz-seeds tests/fuzz/corpus";
  }
}

}  // namespace
}  // namespace shmstats::fuzz
