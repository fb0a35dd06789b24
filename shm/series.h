// Series identity (name + tag set): validation, the canonical text stored in the string pool, an
// order-insensitive hash, and decoding of untrusted text read back from a segment.
//
// Rules (checked at registration; each failure names the rule, the offending value and the limit):
//   name   1-200 bytes of [A-Za-z0-9_.-]
//   tags   at most 16, keys unique
//   key    1-64 bytes, valid UTF-8, no control characters (C0, DEL, C1), none of | # , :
//   value  1-64 bytes, valid UTF-8, no control characters (C0, DEL, C1), neither | nor ,
//          (':' and '#' are allowed in values: DogStatsD reads them fine; '|' and ',' would split
//          a StatsD line or its tag list)
//   total  name + tags, as stored (one length byte per key and value), at most 1024 bytes, so a
//          series definition always fits in one datagram
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "shm/layout.h"
#include "shm/result.h"

namespace shmstats::shm {

struct TagView {
  std::string_view key;
  std::string_view value;
};

// Validates a name and a tag set. Cold path.
Result<void> validate_series(std::string_view name, std::span<const TagView> tags);

// Canonical text: name, then the tags sorted by key, each as u8 key_len, key, u8 value_len, value.
// Call only after validate_series succeeded.
std::string encode_series_text(std::string_view name, std::span<const TagView> tags);

// Hash of name + tag set that does not depend on tag order and allocates nothing.
std::uint64_t series_hash(std::string_view name, std::span<const TagView> tags) noexcept;

// True when `text` (canonical, trusted: written by this process) holds exactly this name and set.
bool series_text_equals(std::string_view text, std::size_t name_len, std::size_t tag_count,
                        std::string_view name, std::span<const TagView> tags) noexcept;

struct DecodedSeries {
  std::string_view name;
  std::array<TagView, kMaxTags> tags{};
  std::size_t tag_count = 0;
};

// Decodes text read from an untrusted segment; every length is bounds-checked, and names and tags
// are validated again so that nothing a hostile producer wrote reaches an exporter unchecked.
Result<DecodedSeries> decode_series_text(std::string_view text, std::size_t name_len,
                                         std::size_t tag_count);

// Printable, length-capped rendering of untrusted bytes for error messages.
std::string escape_for_message(std::string_view bytes, std::size_t max_bytes = 40);

}  // namespace shmstats::shm
