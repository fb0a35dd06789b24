#include "shm/layout.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <set>
#include <string>

namespace shmstats::shm {
namespace {

TEST(DropReasonTest, EveryReasonHasItsOwnName) {
  std::set<std::string> names;

  for (std::size_t i = 0; i < kDropReasonCount; ++i) {
    const std::string name = to_string(static_cast<DropReason>(i));
    EXPECT_NE(name, "unknown") << "reason " << i;
    EXPECT_TRUE(names.insert(name).second) << name << " twice";
  }

  EXPECT_STREQ(to_string(DropReason::kInvalidValue), "invalid_value");
  EXPECT_STREQ(to_string(DropReason::kDisabled), "disabled");
  EXPECT_STREQ(to_string(DropReason::kCount), "unknown");
}

}  // namespace
}  // namespace shmstats::shm
