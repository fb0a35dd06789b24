#include "collector/options.h"

#include <gtest/gtest.h>

#include <string>

namespace shmstats::collector {
namespace {

constexpr std::uint64_t kMin = 512;
constexpr std::uint64_t kMax = 1472;

OptionSpec uint_spec(std::string zero_means = {}) {
  return OptionSpec{.key = "bytes",
                    .kind = OptionKind::kUint,
                    .min = kMin,
                    .max = kMax,
                    .zero_means = std::move(zero_means)};
}

bool accepts(const OptionSpec& spec, const std::string& text) {
  return static_cast<bool>(check_option(spec, text));
}

TEST(OptionCheckTest, WholeNumberRangeIncludesBothEnds) {
  const OptionSpec sut = uint_spec();

  EXPECT_TRUE(accepts(sut, std::to_string(kMin)));
  EXPECT_TRUE(accepts(sut, std::to_string(kMax)));
  EXPECT_FALSE(accepts(sut, std::to_string(kMin - 1)));
  EXPECT_FALSE(accepts(sut, std::to_string(kMax + 1)));
}

TEST(OptionCheckTest, ZeroBelowTheRangeIsTakenOnlyWhenTheKeyGivesItAMeaning) {
  const OptionSpec plain = uint_spec();
  const OptionSpec with_zero = uint_spec("the family's default");

  EXPECT_FALSE(accepts(plain, "0"));
  EXPECT_TRUE(accepts(with_zero, "0"));
}

TEST(OptionCheckTest, DurationRangeIncludesBothEndsInMilliseconds) {
  constexpr std::uint64_t kMinMs = 10;
  constexpr std::uint64_t kMaxMs = 2000;
  const OptionSpec sut{.key = "open", .kind = OptionKind::kDuration, .min = kMinMs, .max = kMaxMs};

  EXPECT_TRUE(accepts(sut, "10ms"));
  EXPECT_TRUE(accepts(sut, "2s"));
  EXPECT_FALSE(accepts(sut, "9ms"));
  EXPECT_FALSE(accepts(sut, "2001"));
}

}  // namespace
}  // namespace shmstats::collector
