#include "shm/series.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace shmstats::shm {
namespace {

Result<void> check(std::string_view name, std::vector<TagView> tags = {}) {
  return validate_series(name, tags);
}

TEST(SeriesValidationTest, AcceptsNameAtLimitsAndTypicalTags) {
  EXPECT_TRUE(check("a"));
  EXPECT_TRUE(check(std::string(kMaxNameBytes, 'x')));
  EXPECT_TRUE(check("http.requests_total-v2", {{"route", "/api:v1#x"}, {"code", "200"}}));
  EXPECT_TRUE(check("utf8", {{"city", "Z\xC3\xBCrich"}}));  // valid two-byte sequence
}

TEST(SeriesValidationTest, RejectsEmptyAndTooLongNames) {
  const auto empty = check("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Errc::kInvalidName);
  const auto long_name = check(std::string(kMaxNameBytes + 1, 'x'));
  ASSERT_FALSE(long_name);
  EXPECT_EQ(long_name.error().code, Errc::kInvalidName);
  EXPECT_NE(long_name.error().message.find("201 bytes"), std::string::npos);
  EXPECT_NE(long_name.error().message.find("200"), std::string::npos);
}

TEST(SeriesValidationTest, RejectsNameCharactersOutsideTheSet) {
  for (const char* bad : {"a b", "a/b", "a:b", "a|b", "a#b", "caf\xC3\xA9", "tab\t"}) {
    const auto r = check(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::kInvalidName) << bad;
    EXPECT_NE(r.error().message.find("[A-Za-z0-9_.-]"), std::string::npos);
  }
}

TEST(SeriesValidationTest, RejectsMoreThanSixteenTags) {
  std::vector<std::string> keys;
  for (std::size_t i = 0; i <= kMaxTags; ++i) keys.push_back("k" + std::to_string(i));
  std::vector<TagView> tags;
  for (const auto& k : keys) tags.push_back({k, "v"});
  const auto r = check("m", tags);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTooManyTags);
  EXPECT_NE(r.error().message.find("17 tags; the limit is 16"), std::string::npos);
  tags.pop_back();
  EXPECT_TRUE(check("m", tags));
}

TEST(SeriesValidationTest, RejectsTagPartsOutOfLength) {
  const std::string at_limit(kMaxTagPartBytes, 'k');
  const std::string over(kMaxTagPartBytes + 1, 'k');
  EXPECT_TRUE(check("m", {{at_limit, at_limit}}));
  for (const auto& tags :
       std::vector<std::vector<TagView>>{{{"", "v"}}, {{"k", ""}}, {{over, "v"}}, {{"k", over}}}) {
    const auto r = check("m", tags);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kInvalidTag);
  }
}

TEST(SeriesValidationTest, RejectsReservedCharactersInKeys) {
  for (const char* key : {"a|b", "a#b", "a,b", "a:b"}) {
    const auto r = check("m", {{key, "v"}});
    ASSERT_FALSE(r) << key;
    EXPECT_EQ(r.error().code, Errc::kInvalidTag);
    EXPECT_NE(r.error().message.find("key"), std::string::npos);
  }
}

TEST(SeriesValidationTest, RejectsPipeAndCommaInValuesButAcceptsColonAndHash) {
  for (const char* value : {"a|b", "a,b"}) {
    const auto r = check("m", {{"k", value}});
    ASSERT_FALSE(r) << value;
    EXPECT_EQ(r.error().code, Errc::kInvalidTag);
  }
  EXPECT_TRUE(check("m", {{"k", "a:b#c"}}));
}

TEST(SeriesValidationTest, TagPartLimitCountsBytesNotCharacters) {
  std::string at_limit;
  for (std::size_t i = 0; i < kMaxTagPartBytes / 2; ++i) at_limit += "\xC3\xA9";  // U+00E9
  const std::string over = at_limit + "a";

  EXPECT_TRUE(check("m", {{"k", at_limit}}));
  const auto r = check("m", {{"k", over}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidTag);
  EXPECT_NE(r.error().message.find("65 bytes"), std::string::npos) << r.error().message;
}

TEST(SeriesValidationTest, RejectsControlCharactersInKeys) {
  for (const std::string& bad :
       {std::string("a\tb"), std::string("\0", 1), std::string("\x7f"), std::string("a\xC2\x85")}) {
    const auto r = check("m", {{bad, "v"}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kInvalidTag);
    EXPECT_NE(r.error().message.find("key"), std::string::npos);
    EXPECT_NE(r.error().message.find("control character"), std::string::npos);
  }
}

TEST(SeriesValidationTest, RejectsC1ControlCharactersButAcceptsTheNextCodePoint) {
  // U+0080 .. U+009F are C2 80 .. C2 9F; U+00A0 (no-break space) is C2 A0.
  for (const char* bad : {"\xC2\x80", "x\xC2\x85y", "\xC2\x9F"}) {
    const auto r = check("m", {{"k", bad}});
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::kInvalidTag);
    EXPECT_NE(r.error().message.find("control character U+00"), std::string::npos)
        << r.error().message;
  }
  EXPECT_TRUE(check("m", {{"k", "\xC2\xA0"}}));
}

TEST(SeriesValidationTest, RejectsControlCharacters) {
  for (const std::string& bad :
       {std::string("a\nb"), std::string("a\0b", 3), std::string("\x7f")}) {
    const auto r = check("m", {{"k", bad}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kInvalidTag);
    EXPECT_NE(r.error().message.find("control character"), std::string::npos);
  }
}

TEST(SeriesValidationTest, RejectsInvalidUtf8) {
  for (const char* bad :
       {"\xC3", "\xC3\x28", "\xE2\x82", "\xC0\xAF" /* overlong */, "\xED\xA0\x80" /* surrogate */,
        "\xF4\x90\x80\x80" /* > U+10FFFF */, "\xFF"}) {
    const auto r = check("m", {{"k", bad}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kInvalidTag);
    EXPECT_NE(r.error().message.find("UTF-8"), std::string::npos);
  }
}

TEST(SeriesValidationTest, RejectsEveryFormOfInvalidUtf8InKeysAndValues) {
  for (const char* bad :
       {"\xE0\x80\xAF" /* overlong 3-byte '/' */, "\xF0\x80\x80\xAF" /* overlong 4-byte '/' */,
        "\xED\xBF\xBF" /* low surrogate U+DFFF */, "\xF0\x9F\x98" /* truncated 4-byte */,
        "a\xE2" /* truncated at end */, "\x80" /* continuation without a lead byte */,
        "\xF8\x88\x80\x80\x80"
        /* 5-byte form */}) {
    const auto as_value = check("m", {{"k", bad}});
    const auto as_key = check("m", {{bad, "v"}});
    ASSERT_FALSE(as_value);
    ASSERT_FALSE(as_key);
    EXPECT_NE(as_value.error().message.find("not valid UTF-8"), std::string::npos);
    EXPECT_NE(as_key.error().message.find("not valid UTF-8"), std::string::npos);
  }
}

TEST(SeriesValidationTest, AcceptsUtf8AtTheCodePointBoundaries) {
  for (const char* good :
       {"\xC2\xA0" /* U+00A0 */, "\xDF\xBF" /* U+07FF */, "\xE0\xA0\x80" /* U+0800 */,
        "\xED\x9F\xBF" /* U+D7FF */, "\xEE\x80\x80" /* U+E000 */, "\xEF\xBF\xBF" /* U+FFFF */,
        "\xF0\x90\x80\x80" /* U+10000 */, "\xF4\x8F\xBF\xBF" /* U+10FFFF */}) {
    const auto r = check("m", {{good, good}});
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
  }
}

TEST(SeriesValidationTest, RejectsSeriesWhoseTextExceedsTheDatagramBudget) {
  const std::string name(kMaxNameBytes, 'n');
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < kMaxTags; ++i)
    keys.push_back(std::string(60, 'a' + static_cast<char>(i)));
  std::vector<TagView> tags;
  for (const auto& k : keys) tags.push_back({k, k});  // 200 + 16 * 122 = 2152 bytes
  const auto r = check(name, tags);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kSeriesTooLarge);
  EXPECT_NE(r.error().message.find("2152 bytes"), std::string::npos);
  EXPECT_NE(r.error().message.find("limit is 1024"), std::string::npos);
  // A 200-byte name with 16 short tags is well inside the budget.
  std::vector<TagView> short_tags;
  for (const auto& k : keys) short_tags.push_back({std::string_view(k).substr(0, 8), "v"});
  const auto fits = check(name, short_tags);
  EXPECT_TRUE(fits) << (fits ? "" : fits.error().message);
}

TEST(SeriesValidationTest, SeriesTextExactlyAtTheBudgetIsAcceptedAndOneByteMoreIsNot) {
  // 200-byte name + 8 tags of (1 + 64 + 1 + 37) bytes = 1024.
  constexpr std::size_t kTags = 8;
  constexpr std::size_t kValueBytes = 37;
  const std::string name(kMaxNameBytes, 'n');
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < kTags; ++i) {
    keys.push_back(std::string(kMaxTagPartBytes, static_cast<char>('a' + i)));
  }
  const std::string value(kValueBytes, 'v');
  const std::string longer(kValueBytes + 1, 'v');
  std::vector<TagView> tags;
  for (const auto& k : keys) tags.push_back({k, value});

  const auto at_budget = check(name, tags);
  tags.back().value = longer;
  const auto over = check(name, tags);

  EXPECT_TRUE(at_budget) << (at_budget ? "" : at_budget.error().message);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, Errc::kSeriesTooLarge);
  EXPECT_NE(over.error().message.find("1025 bytes"), std::string::npos) << over.error().message;
}

TEST(SeriesValidationTest, RejectsDuplicateKeys) {
  const auto r = check("m", {{"k", "1"}, {"k", "2"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kDuplicateTag);
}

TEST(SeriesValidationTest, EscapesOffendingBytesInMessages) {
  const auto r = check("m", {{"k", "a\x01"}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("\\x01"), std::string::npos);
  EXPECT_EQ(r.error().message.find('\x01'), std::string::npos);
}

TEST(SeriesTextTest, HashAndEqualityIgnoreTagOrder) {
  const std::vector<TagView> ab{{"a", "1"}, {"b", "2"}};
  const std::vector<TagView> ba{{"b", "2"}, {"a", "1"}};
  EXPECT_EQ(series_hash("m", ab), series_hash("m", ba));
  EXPECT_NE(series_hash("m", ab), series_hash("n", ab));
  EXPECT_NE(series_hash("m", ab), series_hash("m", std::vector<TagView>{{"a", "1"}, {"b", "3"}}));
  const std::string text = encode_series_text("m", ba);
  EXPECT_TRUE(series_text_equals(text, 1, 2, "m", ab));
  EXPECT_TRUE(series_text_equals(text, 1, 2, "m", ba));
  EXPECT_FALSE(series_text_equals(text, 1, 2, "m", std::vector<TagView>{{"a", "1"}}));
}

TEST(SeriesTextTest, DecodeRoundTripsSortedTags) {
  const std::vector<TagView> tags{{"zone", "eu"}, {"app", "x:y"}};
  const std::string text = encode_series_text("requests", tags);
  const auto decoded = decode_series_text(text, 8, 2);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded.value().name, "requests");
  ASSERT_EQ(decoded.value().tag_count, 2U);
  EXPECT_EQ(decoded.value().tags[0].key, "app");
  EXPECT_EQ(decoded.value().tags[0].value, "x:y");
  EXPECT_EQ(decoded.value().tags[1].key, "zone");
}

TEST(SeriesTextTest, DecodeRejectsLengthsPastTheText) {
  std::string text = encode_series_text("m", std::vector<TagView>{{"k", "v"}});
  text[1] = static_cast<char>(200);  // key length runs past the end
  const auto r = decode_series_text(text, 1, 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidSegment);
  EXPECT_FALSE(decode_series_text("m", 5, 0));   // name longer than text
  EXPECT_FALSE(decode_series_text("m", 1, 17));  // too many tags
  EXPECT_FALSE(decode_series_text("mx", 1, 0));  // trailing bytes
}

TEST(SeriesTextTest, DecodeRejectsStoredTextThatFailsValidation) {
  const auto r = decode_series_text("bad name", 8, 0);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("fails validation"), std::string::npos);
}

}  // namespace
}  // namespace shmstats::shm
