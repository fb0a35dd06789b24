#include "shm/series.h"

#include <fmt/format.h>

#include <algorithm>

namespace shmstats::shm {
namespace {

bool is_name_char(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

// Returns the byte offset of the first invalid UTF-8 sequence, or npos.
std::size_t first_invalid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

Result<void> validate_tag_part(std::string_view what, std::string_view part,
                               std::string_view forbidden) {
  if (part.empty() || part.size() > kMaxTagPartBytes) {
    return Error{Errc::kInvalidTag,
                 fmt::format("tag {} \"{}\" is {} bytes; it must be 1 to {} bytes", what,
                             escape_for_message(part), part.size(), kMaxTagPartBytes)};
  }
  for (std::size_t i = 0; i < part.size(); ++i) {
    const char ch = part[i];
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) {
      return Error{Errc::kInvalidTag,
                   fmt::format("tag {} \"{}\" contains the control character 0x{:02x}", what,
                               escape_for_message(part), c)};
    }
    // C1 controls U+0080..U+009F are C2 80..C2 9F in UTF-8; some terminals act on them.
    if (c == 0xC2 && i + 1 < part.size() && static_cast<unsigned char>(part[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(part[i + 1]) <= 0x9F) {
      return Error{Errc::kInvalidTag,
                   fmt::format("tag {} \"{}\" contains the control character U+{:04X}", what,
                               escape_for_message(part), static_cast<unsigned char>(part[i + 1]))};
    }
    if (forbidden.find(ch) != std::string_view::npos) {
      return Error{Errc::kInvalidTag,
                   fmt::format("tag {} \"{}\" contains '{}', which tag {}s may not contain ({})",
                               what, escape_for_message(part), ch, what, forbidden)};
    }
  }
  if (const auto bad = first_invalid_utf8(part); bad != std::string_view::npos) {
    return Error{Errc::kInvalidTag, fmt::format("tag {} \"{}\" is not valid UTF-8 (at byte {})",
                                                what, escape_for_message(part), bad)};
  }
  return success();
}

constexpr std::string_view kForbiddenInKey = "|#,:";
constexpr std::string_view kForbiddenInValue = "|,";

std::uint64_t mix(std::uint64_t x) noexcept {
  // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::uint64_t fnv1a(std::string_view s, std::uint64_t h) noexcept {
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace

std::string escape_for_message(std::string_view bytes, std::size_t max_bytes) {
  std::string out;
  const std::size_t n = std::min(bytes.size(), max_bytes);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (bytes.size() > max_bytes) out += "...";
  return out;
}

Result<void> validate_series(std::string_view name, std::span<const TagView> tags) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return Error{Errc::kInvalidName,
                 fmt::format("series name \"{}\" is {} bytes; it must be 1 to {} bytes",
                             escape_for_message(name), name.size(), kMaxNameBytes)};
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_name_char(static_cast<unsigned char>(name[i]))) {
      return Error{Errc::kInvalidName,
                   fmt::format("series name \"{}\" has \"{}\" at byte {}; names may only use "
                               "[A-Za-z0-9_.-]",
                               escape_for_message(name), escape_for_message(name.substr(i, 1)), i)};
    }
  }
  if (tags.size() > kMaxTags) {
    return Error{Errc::kTooManyTags, fmt::format("series \"{}\" has {} tags; the limit is {}",
                                                 escape_for_message(name), tags.size(), kMaxTags)};
  }
  std::size_t text_bytes = name.size();
  for (std::size_t i = 0; i < tags.size(); ++i) {
    text_bytes += 2 + tags[i].key.size() + tags[i].value.size();
    if (auto r = validate_tag_part("key", tags[i].key, kForbiddenInKey); !r) return r;
    if (auto r = validate_tag_part("value", tags[i].value, kForbiddenInValue); !r) return r;
    for (std::size_t j = 0; j < i; ++j) {
      if (tags[j].key == tags[i].key) {
        return Error{Errc::kDuplicateTag,
                     fmt::format("series \"{}\" has the tag key \"{}\" twice; keys must be unique",
                                 escape_for_message(name), escape_for_message(tags[i].key))};
      }
    }
  }
  if (text_bytes > kMaxSeriesTextBytes) {
    return Error{Errc::kSeriesTooLarge,
                 fmt::format("series \"{}\" takes {} bytes with its tags; the limit is {} (so that "
                             "its definition fits in one datagram)",
                             escape_for_message(name), text_bytes, kMaxSeriesTextBytes)};
  }
  return success();
}

std::string encode_series_text(std::string_view name, std::span<const TagView> tags) {
  std::array<TagView, kMaxTags> sorted{};
  const std::size_t n = std::min(tags.size(), kMaxTags);
  std::copy_n(tags.begin(), n, sorted.begin());
  std::sort(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(n),
            [](const TagView& a, const TagView& b) { return a.key < b.key; });
  std::string text(name);
  for (std::size_t i = 0; i < n; ++i) {
    text += static_cast<char>(sorted[i].key.size());
    text += sorted[i].key;
    text += static_cast<char>(sorted[i].value.size());
    text += sorted[i].value;
  }
  return text;
}

std::uint64_t series_hash(std::string_view name, std::span<const TagView> tags) noexcept {
  constexpr std::uint64_t kOffset = 0xcbf29ce484222325ULL;
  std::uint64_t h = mix(fnv1a(name, kOffset));
  // Summing mixed per-tag hashes makes the result independent of tag order.
  for (const auto& tag : tags) {
    h += mix(fnv1a(tag.value, fnv1a(tag.key, kOffset) ^ 0x3d));
  }
  return mix(h + tags.size());
}

bool series_text_equals(std::string_view text, std::size_t name_len, std::size_t tag_count,
                        std::string_view name, std::span<const TagView> tags) noexcept {
  if (tag_count != tags.size() || name_len != name.size() || text.size() < name_len ||
      text.substr(0, name_len) != name) {
    return false;
  }
  // Each given tag must appear in the stored (sorted) list; keys are unique on both sides, so
  // equal counts plus inclusion means equal sets.
  for (const auto& tag : tags) {
    bool found = false;
    std::size_t pos = name_len;
    for (std::size_t i = 0; i < tag_count && pos < text.size(); ++i) {
      const std::size_t klen = static_cast<unsigned char>(text[pos]);
      const std::string_view key = text.substr(pos + 1, klen);
      pos += 1 + klen;
      if (pos >= text.size()) return false;
      const std::size_t vlen = static_cast<unsigned char>(text[pos]);
      const std::string_view value = text.substr(pos + 1, vlen);
      pos += 1 + vlen;
      if (key == tag.key) {
        found = value == tag.value;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

Result<DecodedSeries> decode_series_text(std::string_view text, std::size_t name_len,
                                         std::size_t tag_count) {
  DecodedSeries out;
  if (name_len > text.size() || tag_count > kMaxTags) {
    return Error{Errc::kInvalidSegment,
                 fmt::format("series text of {} bytes cannot hold a {}-byte name and {} tags",
                             text.size(), name_len, tag_count)};
  }
  out.name = text.substr(0, name_len);
  std::size_t pos = name_len;
  for (std::size_t i = 0; i < tag_count; ++i) {
    std::size_t part_len[2] = {0, 0};
    std::string_view parts[2];
    for (int p = 0; p < 2; ++p) {
      if (pos >= text.size()) {
        return Error{Errc::kInvalidSegment,
                     fmt::format("series text ends inside tag {} of {}", i + 1, tag_count)};
      }
      part_len[p] = static_cast<unsigned char>(text[pos]);
      if (pos + 1 + part_len[p] > text.size()) {
        return Error{Errc::kInvalidSegment,
                     fmt::format("tag {} length {} runs past the series text", i + 1, part_len[p])};
      }
      parts[p] = text.substr(pos + 1, part_len[p]);
      pos += 1 + part_len[p];
    }
    out.tags[i] = TagView{parts[0], parts[1]};
  }
  if (pos != text.size()) {
    return Error{Errc::kInvalidSegment,
                 fmt::format("series text has {} trailing bytes", text.size() - pos)};
  }
  out.tag_count = tag_count;
  if (auto r = validate_series(out.name, std::span<const TagView>(out.tags.data(), tag_count));
      !r) {
    return Error{Errc::kInvalidSegment, "stored series fails validation: " + r.error().message};
  }
  return out;
}

}  // namespace shmstats::shm
