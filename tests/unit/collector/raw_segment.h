// Segments made with shm::Segment::create (no producer library, whose close would write to them)
// with a collector Source attached, for tests that play a hostile producer. Header-only; test code.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "collector/source.h"
#include "shm/segment.h"

namespace shmstats::testing {

inline shm::SegmentOptions raw_options(const std::string& prefix) {
  shm::SegmentOptions o;
  o.prefix = prefix;
  o.service = "source-test";
  o.ring_count = 2;
  o.ring_capacity = 1024;
  o.series_capacity = 8;
  o.strings_size = 4096;
  return o;
}

// A segment and a Source attached to it.
struct RawSegment {
  shm::Segment segment;
  std::unique_ptr<collector::Source> source;
};

inline std::optional<RawSegment> make_raw(const std::string& prefix) {
  auto created = shm::Segment::create(raw_options(prefix));
  EXPECT_TRUE(created) << created.error().message;
  if (!created) return std::nullopt;
  auto opened = collector::Source::open(created.value().name(), collector::AttachPolicy{});
  EXPECT_TRUE(opened) << opened.error().message;
  if (!opened) return std::nullopt;
  return RawSegment{std::move(created).value(), std::move(opened).value()};
}

inline ::testing::AssertionResult truncate_file(const std::string& name, off_t bytes) {
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
  if (fd < 0) return ::testing::AssertionFailure() << "shm_open: " << std::strerror(errno);
  const int rc = ::ftruncate(fd, bytes);
  ::close(fd);
  if (rc != 0) return ::testing::AssertionFailure() << "ftruncate failed";
  return ::testing::AssertionSuccess();
}

}  // namespace shmstats::testing
