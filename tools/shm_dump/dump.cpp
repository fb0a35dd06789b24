#include "tools/shm_dump/dump.h"

#include <fmt/format.h>

#include <array>
#include <chrono>

#include "shm/result.h"

namespace shmstats::tools {
namespace {

using nlohmann::json;

// A switch without default, so a new shm::Errc fails the build (-Wswitch) until it has a name.
const char* known_errc_name(shm::Errc errc) {
  switch (errc) {
    case shm::Errc::kInvalidName:
      return "invalid_name";
    case shm::Errc::kInvalidTag:
      return "invalid_tag";
    case shm::Errc::kTooManyTags:
      return "too_many_tags";
    case shm::Errc::kDuplicateTag:
      return "duplicate_tag";
    case shm::Errc::kSeriesTableFull:
      return "series_table_full";
    case shm::Errc::kStringPoolFull:
      return "string_pool_full";
    case shm::Errc::kKindMismatch:
      return "kind_mismatch";
    case shm::Errc::kInvalidOptions:
      return "invalid_options";
    case shm::Errc::kNoSpace:
      return "no_space";
    case shm::Errc::kExists:
      return "exists";
    case shm::Errc::kSystem:
      return "system";
    case shm::Errc::kNotFound:
      return "not_found";
    case shm::Errc::kInvalidSegment:
      return "invalid_segment";
    case shm::Errc::kVersionMismatch:
      return "version_mismatch";
    case shm::Errc::kSeriesTooLarge:
      return "series_too_large";
    case shm::Errc::kNotReady:
      return "not_ready";
  }
  return nullptr;
}

const char* known_errc_name(std::size_t index) {
  return known_errc_name(static_cast<shm::Errc>(index));
}

std::string segment_state_name(std::uint32_t raw) {
  switch (static_cast<shm::SegmentState>(raw)) {
    case shm::SegmentState::kActive:
      return "active";
    case shm::SegmentState::kClosing:
      return "closing";
    case shm::SegmentState::kClosed:
      return "closed";
  }
  return fmt::format("unknown({})", raw);
}

std::string ring_state_name(shm::RingState state) {
  switch (state) {
    case shm::RingState::kFree:
      return "free";
    case shm::RingState::kOwned:
      return "owned";
    case shm::RingState::kRetired:
      return "retired";
  }
  return fmt::format("unknown({})", static_cast<std::uint32_t>(state));
}

json drops_json(const std::array<std::uint64_t, shm::kDropReasonCount>& dropped) {
  json out = json::object();
  for (std::size_t i = 0; i < dropped.size(); ++i) {
    out[shm::to_string(static_cast<shm::DropReason>(i))] = dropped[i];
  }
  return out;
}

json series_json(const shm::Segment& segment) {
  json out = json::array();
  const std::uint32_t count = segment.series_count();
  for (std::uint32_t id = 0; id < count; ++id) {
    auto series = segment.read_series(id);
    if (!series) {
      out.push_back({{"id", id}, {"error", series.error().message}});
      continue;
    }
    json tags = json::object();
    for (const auto& [key, value] : series.value().tags) tags[key] = value;
    out.push_back({{"id", id},
                   {"kind", shm::to_string(series.value().kind)},
                   {"overflow", shm::to_string(series.value().overflow)},
                   {"name", series.value().name},
                   {"tags", std::move(tags)}});
  }
  return out;
}

// Untrusted text (segment and service names, errors quoting them) with its control characters
// escaped, so a hostile segment cannot send escape sequences to the terminal.
std::string printable(const json& value) {
  std::string out;
  for (const char ch : value.get_ref<const std::string&>()) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
  }
  return out;
}

// "0" or "72 (oldest_overwritten=70 ring_full=2)": only the reasons that happened.
std::string drops_text(const json& dropped) {
  std::uint64_t total = 0;
  std::string reasons;
  for (const auto& [reason, count] : dropped.items()) {
    const auto n = count.get<std::uint64_t>();
    if (n == 0) continue;
    total += n;
    reasons += fmt::format("{}{}={}", reasons.empty() ? "" : " ", reason, n);
  }
  return reasons.empty() ? "0" : fmt::format("{} ({})", total, reasons);
}

void render_segment(const json& s, std::string& out) {
  out += fmt::format("{}  pid {} {}  service \"{}\"  age {:.1f}s  state {}  layout v{}  {} bytes\n",
                     printable(s.at("name")), s.at("pid").get<std::int64_t>(),
                     s.at("alive").get<bool>() ? "alive" : "DEAD", printable(s.at("service")),
                     s.at("age_s").get<double>(), s.at("state").get<std::string>(),
                     s.at("layout_version").get<std::uint64_t>(),
                     s.at("size_bytes").get<std::uint64_t>());
  out += fmt::format(
      "  rings {}/{} in use (capacity {})  series {}  pushed {}  folded {}  dropped {}\n",
      s.at("rings_in_use").get<std::uint64_t>(), s.at("ring_count").get<std::uint64_t>(),
      s.at("ring_capacity").get<std::uint64_t>(), s.at("series_count").get<std::uint64_t>(),
      s.at("pushed").get<std::uint64_t>(), s.at("folded").get<std::uint64_t>(),
      drops_text(s.at("dropped")));
  const json& l = s.at("ledger");
  out += fmt::format(
      "  ledger: pushed {} = drained {} + folded {} + dropped {} + waiting {}  (unaccounted {})\n",
      l.at("pushed").get<std::uint64_t>(), l.at("drained").get<std::uint64_t>(),
      l.at("folded").get<std::uint64_t>(), l.at("dropped").get<std::uint64_t>(),
      l.at("waiting").get<std::uint64_t>(), l.at("unaccounted").get<std::int64_t>());
  const json& c = s.at("segment_counters");
  std::string rejected;
  for (const auto& [reason, count] : c.at("series_rejected").items()) {
    if (count.get<std::uint64_t>() == 0) continue;
    rejected += fmt::format(" {}={}", reason, count.get<std::uint64_t>());
  }
  out += fmt::format("  without a ring: dropped {}  folded {}   series rejected:{}\n",
                     drops_text(c.at("dropped")), c.at("folded_no_ring").get<std::uint64_t>(),
                     rejected.empty() ? " 0" : rejected);
  const json& rings = s.at("rings");
  if (!rings.empty()) {
    out += fmt::format("  {:>5} {:<8} {:>10} {:>13} {:>10} {:>12} {:>10}  {}\n", "ring", "state",
                       "owner_tid", "fill/cap", "high_water", "pushed", "folded", "dropped");
    const auto capacity = s.at("ring_capacity").get<std::uint64_t>();
    for (const auto& r : rings) {
      out +=
          fmt::format("  {:>5} {:<8} {:>10} {:>13} {:>10} {:>12} {:>10}  {}\n",
                      r.at("index").get<std::uint64_t>(), r.at("state").get<std::string>(),
                      r.at("owner_tid").get<std::uint64_t>(),
                      fmt::format("{}/{}", r.at("fill").get<std::uint64_t>(), capacity),
                      r.at("high_water").get<std::uint64_t>(), r.at("pushed").get<std::uint64_t>(),
                      r.at("folded").get<std::uint64_t>(), drops_text(r.at("dropped")));
    }
  }
  if (const auto series = s.find("series"); series != s.end()) {
    out += fmt::format("  series ({}):\n", series->size());
    for (const auto& e : *series) {
      if (const auto error = e.find("error"); error != e.end()) {
        out += fmt::format("  {:>5} unreadable: {}\n", e.at("id").get<std::uint64_t>(),
                           printable(*error));
        continue;
      }
      std::string tags;
      for (const auto& [key, value] : e.at("tags").items()) {
        tags += fmt::format(" {}={}", key, value.get<std::string>());
      }
      out += fmt::format("  {:>5} {:<11} {}{}\n", e.at("id").get<std::uint64_t>(),
                         e.at("kind").get<std::string>(), e.at("name").get<std::string>(), tags);
    }
  }
}

}  // namespace

std::string errc_name(std::size_t index) {
  if (const char* name = known_errc_name(index)) return name;
  return fmt::format("errc_{}", index);
}

std::vector<std::string> segment_names(std::string_view prefix, std::string_view only) {
  if (!only.empty()) return {std::string(only)};
  return shm::list_segments(prefix);
}

json segment_json(const shm::Segment& segment, bool with_series, std::uint64_t now_realtime_ns) {
  // Read-only mapping: only loads from here on.
  const shm::SegmentHeader& h = segment.header();
  const shm::Geometry& g = segment.geometry();
  json s;
  s["name"] = segment.name();
  s["pid"] = h.owner_pid;
  s["alive"] = shm::owner_status(h.owner_pid, h.owner_start_time) == shm::OwnerStatus::kAlive;
  s["service"] = segment.service();
  // Signed: the creation time is untrusted and the realtime clock may have been set back.
  s["age_s"] =
      static_cast<double>(static_cast<std::int64_t>(now_realtime_ns - h.created_realtime_ns)) / 1e9;
  // acquire: pairs with the owner's release stores of the state (closing, closed).
  s["state"] = segment_state_name(h.state.load(std::memory_order_acquire));
  s["layout_version"] = h.layout_version;
  s["size_bytes"] = g.total_size();
  s["ring_count"] = g.ring_count;
  s["ring_capacity"] = g.ring_capacity;
  s["series_count"] = segment.series_count();

  const shm::SegmentCounters counters = segment.counters();
  std::uint64_t pushed = 0;
  std::uint64_t folded = counters.folded_no_ring;
  std::array<std::uint64_t, shm::kDropReasonCount> dropped = counters.dropped;
  std::uint32_t rings_in_use = 0;
  // The ring-side ledger: pushed = drained + folded + dropped + waiting, where drained is what a
  // consumer took (head, less the events drop-oldest discarded, which count as dropped).
  std::uint64_t ledger_drained = 0;
  std::uint64_t ledger_folded = 0;
  std::uint64_t ledger_dropped = 0;
  std::uint64_t ledger_waiting = 0;
  json rings = json::array();
  for (std::uint32_t i = 0; i < g.ring_count; ++i) {
    const shm::RingStats r = segment.ring_stats(i);
    pushed += r.pushed;
    folded += r.folded;
    ledger_drained +=
        r.head - r.dropped[static_cast<std::size_t>(shm::DropReason::kOldestOverwritten)];
    ledger_folded += r.folded;
    ledger_dropped += r.dropped_total();
    ledger_waiting += r.fill();
    for (std::size_t d = 0; d < dropped.size(); ++d) dropped[d] += r.dropped[d];
    if (r.state == shm::RingState::kOwned) ++rings_in_use;
    // A ring never claimed has nothing to show; retired rings may still hold events.
    if (r.state == shm::RingState::kFree && r.claims == 0 && r.pushed == 0) continue;
    rings.push_back({{"index", i},
                     {"state", ring_state_name(r.state)},
                     {"owner_tid", r.owner_tid},
                     {"fill", r.fill()},
                     {"high_water", r.high_water},
                     {"claims", r.claims},
                     {"pushed", r.pushed},
                     {"folded", r.folded},
                     {"dropped", drops_json(r.dropped)}});
  }
  s["rings_in_use"] = rings_in_use;
  s["pushed"] = pushed;
  s["folded"] = folded;
  s["dropped"] = drops_json(dropped);
  s["rings"] = std::move(rings);
  // Unsigned, so hostile counters wrap instead of overflowing; an honest difference is small and
  // reads back signed.
  const auto unaccounted = static_cast<std::int64_t>(
      pushed - (ledger_drained + ledger_folded + ledger_dropped + ledger_waiting));
  // A snapshot of a live producer may be a few pushes ahead (counted before they land).
  s["ledger"] = {{"pushed", pushed},          {"drained", ledger_drained},
                 {"folded", ledger_folded},   {"dropped", ledger_dropped},
                 {"waiting", ledger_waiting}, {"unaccounted", unaccounted}};

  json rejected = json::object();
  for (std::size_t i = 0; i < counters.series_rejected.size(); ++i) {
    // Indices with no Errc are shown only if a (foreign) producer counted something there.
    if (known_errc_name(i) != nullptr || counters.series_rejected[i] != 0) {
      rejected[errc_name(i)] = counters.series_rejected[i];
    }
  }
  s["segment_counters"] = {{"dropped", drops_json(counters.dropped)},
                           {"folded_no_ring", counters.folded_no_ring},
                           {"series_rejected", std::move(rejected)}};
  if (with_series) s["series"] = series_json(segment);
  return s;
}

json snapshot_json(const std::vector<std::string>& names, bool with_series) {
  json snapshot;
  snapshot["tool"] = "shm-dump";
  snapshot["segments"] = json::array();
  snapshot["invalid"] = json::array();
  for (const auto& name : names) {
    auto segment = shm::Segment::attach(name, shm::Segment::Access::kReadOnly);
    if (!segment) {
      snapshot["invalid"].push_back({{"name", name}, {"error", segment.error().message}});
      continue;
    }
    const auto now_ns =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    json described = segment_json(segment.value(), with_series, now_ns);
    // Pages past the end of a file truncated while we read it read as zeros (shm/mapping_guard.h):
    // what was read is not the segment.
    if (const std::uint64_t faults = segment.value().truncation_faults(); faults > 0) {
      snapshot["invalid"].push_back(
          {{"name", name},
           {"error", fmt::format("the file was truncated while it was read: offset {} of {} mapped "
                                 "bytes was past its end ({} pages)",
                                 segment.value().first_truncation_fault_offset(),
                                 segment.value().mapped_size(), faults)}});
      continue;
    }
    snapshot["segments"].push_back(std::move(described));
  }
  return snapshot;
}

std::string render_text(const json& snapshot) {
  std::string out;
  const json& segments = snapshot.at("segments");
  const json& invalid = snapshot.at("invalid");
  for (const auto& s : segments) {
    if (!out.empty()) out += '\n';
    render_segment(s, out);
  }
  if (!invalid.empty() && !out.empty()) out += '\n';
  for (const auto& bad : invalid) {
    out += fmt::format("INVALID {}: {}\n", printable(bad.at("name")), printable(bad.at("error")));
  }
  if (out.empty()) out = "no segments\n";
  return out;
}

}  // namespace shmstats::tools
