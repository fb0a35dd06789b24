#include "collector/aggregate/stage.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>

#include "common/endpoint.h"

namespace shmstats::collector::aggregate {
namespace {

constexpr std::size_t kMaxBounds = 64;
constexpr double kMillisecondsPerSecond = 1000.0;

std::string series_key(const model::SeriesDef& def) {
  std::string key;
  key.reserve(def.service.size() + def.name.size() + 8 + def.tags.size() * 16);
  key += def.service;
  key += '\0';
  key += def.name;
  key += '\0';
  key += static_cast<char>(def.kind);
  for (const auto& [k, v] : def.tags) {
    key += '\0';
    key += k;
    key += '=';
    key += v;
  }
  return key;
}

bool is_histogram(model::Kind kind) noexcept {
  return kind == model::Kind::kHistogram || kind == model::Kind::kTiming;
}

// Timings are pushed in milliseconds and kept in seconds.
double scale_of(model::Kind kind) noexcept {
  return kind == model::Kind::kTiming ? 1.0 / kMillisecondsPerSecond : 1.0;
}

}  // namespace

Bounds default_bounds() { return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}; }

const char* to_string(DropReason reason) noexcept {
  switch (reason) {
    case DropReason::kNegativeCounter:
      return "negative_counter";
    case DropReason::kCardinalityCap:
      return "cardinality_cap";
    case DropReason::kSetMembersCap:
      return "set_members_cap";
    case DropReason::kUnsupported:
      return "unsupported";
    case DropReason::kNonFinite:
      return "non_finite";
    case DropReason::kCount:
      break;
  }
  return "?";
}

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  // Iterative match with one backtrack point per '*': linear for the patterns operators write.
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star = std::string_view::npos;
  std::size_t resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

shm::Result<Bounds> parse_bounds(std::string_view text) {
  Bounds bounds;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = text.find(',', pos);
    const std::string_view part =
        text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    double v = 0;
    const auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || ptr != part.data() + part.size() ||
        !std::isfinite(v)) {
      return shm::Error{
          shm::Errc::kInvalidOptions,
          fmt::format("bucket bound \"{}\" is not a finite number", common::shown(part))};
    }
    if (!bounds.empty() && v <= bounds.back()) {
      return shm::Error{shm::Errc::kInvalidOptions,
                        fmt::format("bucket bounds must increase: {} after {}", v, bounds.back())};
    }
    bounds.push_back(v);
    if (bounds.size() > kMaxBounds) {
      return shm::Error{shm::Errc::kInvalidOptions,
                        fmt::format("more than {} bucket bounds", kMaxBounds)};
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return bounds;
}

shm::Result<std::vector<BucketRule>> parse_bucket_rules(std::string_view text) {
  std::vector<BucketRule> rules;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t semi = text.find(';', pos);
    const std::string_view rule =
        text.substr(pos, semi == std::string_view::npos ? std::string_view::npos : semi - pos);
    pos = semi == std::string_view::npos ? text.size() : semi + 1;
    if (rule.empty()) continue;
    const std::size_t eq = rule.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return shm::Error{
          shm::Errc::kInvalidOptions,
          fmt::format("bucket rule \"{}\" is not PATTERN=b1,b2,...", common::shown(rule))};
    }
    auto bounds = parse_bounds(rule.substr(eq + 1));
    if (!bounds) {
      return shm::Error{
          shm::Errc::kInvalidOptions,
          fmt::format("bucket rule \"{}\": {}", common::shown(rule), bounds.error().message)};
    }
    rules.push_back(BucketRule{std::string(rule.substr(0, eq)), std::move(bounds).value()});
  }
  return rules;
}

Stage::Stage(StageOptions options) : options_(std::move(options)) {}

const Bounds* Stage::bounds_for(const std::string& name) const {
  // Called when a series is made, not per event: no cache (one kept every histogram name seen).
  for (const auto& rule : options_.rules) {
    if (glob_match(rule.pattern, name)) return &rule.bounds;
  }
  return &options_.default_bounds;
}

SeriesState* Stage::state_for(const std::shared_ptr<const model::SeriesDef>& def,
                              Clock::time_point now) {
  if (const auto it = by_def_.find(def.get()); it != by_def_.end()) return it->second.second;
  std::string key = series_key(*def);
  SeriesState* state = nullptr;
  if (const auto it = by_key_.find(key); it != by_key_.end()) {
    state = it->second;
  } else {
    if (series_.size() >= options_.max_series) return nullptr;
    auto created = std::make_unique<SeriesState>();
    created->def = def;
    created->kind = def->kind;
    created->updated = now;
    if (is_histogram(def->kind)) {
      created->bounds = bounds_for(def->name);
      created->buckets.assign(created->bounds->size() + 1, 0.0);
    }
    state = created.get();
    series_.push_back(std::move(created));
    by_key_.emplace(std::move(key), state);
    ++counters_.series_created;
  }
  by_def_.emplace(def.get(), std::make_pair(def, state));
  return state;
}

void Stage::observe(SeriesState& s, double value, double weight) {
  s.count += weight;
  s.sum += value * weight;
  const auto it = std::lower_bound(s.bounds->begin(), s.bounds->end(), value);
  s.buckets[static_cast<std::size_t>(it - s.bounds->begin())] += weight;
  if (!s.interval_seen) {
    s.interval_min = s.interval_max = value;
    s.interval_seen = true;
  } else {
    s.interval_min = std::min(s.interval_min, value);
    s.interval_max = std::max(s.interval_max, value);
  }
}

void Stage::merge_point(SeriesState& s, const model::Point& p) {
  const double weight = 1.0 / static_cast<double>(p.sample_rate);
  switch (s.kind) {
    case model::Kind::kCounter: {
      const double increment = p.value * weight;
      if (increment < 0) {
        drop(DropReason::kNegativeCounter);
        return;
      }
      if (!std::isfinite(s.value + increment)) {
        drop(DropReason::kNonFinite);
        return;
      }
      s.value += increment;
      break;
    }
    case model::Kind::kGauge:
    case model::Kind::kGaugeDelta: {
      const bool delta = p.kind == model::Kind::kGaugeDelta || s.kind == model::Kind::kGaugeDelta;
      const double next = delta ? s.value + p.value : p.value;
      if (!std::isfinite(next)) {
        drop(DropReason::kNonFinite);
        return;
      }
      s.value = next;
      break;
    }
    case model::Kind::kHistogram:
    case model::Kind::kTiming: {
      const double v = p.value * scale_of(s.kind);
      if (!std::isfinite(s.sum + v * weight)) {
        drop(DropReason::kNonFinite);
        return;
      }
      observe(s, v, weight);
      break;
    }
    case model::Kind::kSet: {
      const auto member = std::bit_cast<std::uint64_t>(p.value);
      if (s.members.size() >= options_.max_set_members && s.members.count(member) == 0) {
        drop(DropReason::kSetMembersCap);
        return;
      }
      s.members.insert(member);
      break;
    }
    default:
      drop(DropReason::kUnsupported);
      return;
  }
  s.last_event_unix_ns = std::max(s.last_event_unix_ns, p.time_unix_ns);
  ++counters_.events_merged;
}

void Stage::merge_aggregate(SeriesState& s, const model::Aggregate& a) {
  if (a.count == 0) {
    ++counters_.aggregates_merged;  // carries nothing
    return;
  }
  const auto n = static_cast<double>(a.count);
  switch (s.kind) {
    case model::Kind::kCounter:
      if (a.sum < 0) {
        drop(DropReason::kNegativeCounter);
        return;
      }
      if (!std::isfinite(s.value + a.sum)) {
        drop(DropReason::kNonFinite);
        return;
      }
      s.value += a.sum;
      break;
    case model::Kind::kGauge:
      if (!std::isfinite(a.last)) {
        drop(DropReason::kNonFinite);
        return;
      }
      s.value = a.last;
      break;
    case model::Kind::kGaugeDelta:
      if (!std::isfinite(s.value + a.sum)) {
        drop(DropReason::kNonFinite);
        return;
      }
      s.value += a.sum;
      break;
    case model::Kind::kHistogram:
    case model::Kind::kTiming: {
      const double scale = scale_of(s.kind);
      const double sum = a.sum * scale;
      const double min = a.min * scale;
      const double max = a.max * scale;
      if (!std::isfinite(s.sum + sum) || !std::isfinite(min) || !std::isfinite(max)) {
        drop(DropReason::kNonFinite);
        return;
      }
      // The group's samples go into the bucket of its mean; count and sum stay exact.
      const double mean = sum / n;
      const auto it = std::lower_bound(s.bounds->begin(), s.bounds->end(), mean);
      s.buckets[static_cast<std::size_t>(it - s.bounds->begin())] += n;
      s.count += n;
      s.sum += sum;
      if (!s.interval_seen) {
        s.interval_min = min;
        s.interval_max = max;
        s.interval_seen = true;
      } else {
        s.interval_min = std::min(s.interval_min, min);
        s.interval_max = std::max(s.interval_max, max);
      }
      counters_.placed_at_mean += a.count;
      break;
    }
    default:
      drop(DropReason::kUnsupported);
      return;
  }
  s.last_event_unix_ns = std::max(s.last_event_unix_ns, a.time_unix_ns);
  ++counters_.aggregates_merged;
}

std::size_t Stage::merge(const model::Batch& batch, Clock::time_point now) {
  for (const auto& def : batch.series) {
    if (def) (void)state_for(def, now);
  }
  std::size_t merged = 0;
  const auto merge_one = [&](const model::SeriesDef* def, auto&& apply) {
    const auto it = by_def_.find(def);
    SeriesState* s = it == by_def_.end() ? nullptr : it->second.second;
    if (s == nullptr) {
      drop(DropReason::kCardinalityCap);
      return;
    }
    const std::uint64_t before = counters_.events_merged + counters_.aggregates_merged;
    apply(*s);
    if (counters_.events_merged + counters_.aggregates_merged != before) {
      s->updated = now;
      ++merged;
    }
  };
  for (const auto& p : batch.points) {
    merge_one(p.series, [&](SeriesState& s) { merge_point(s, p); });
  }
  for (const auto& a : batch.aggregates) {
    merge_one(a.series, [&](SeriesState& s) { merge_aggregate(s, a); });
  }
  return merged;
}

void Stage::roll(Clock::time_point now) {
  ++counters_.rolls;
  // Expired series leave the indexes in one pass over each, however many expire at once (a pass
  // over the definitions per expired series made a roll quadratic in the series held).
  std::unordered_set<const SeriesState*> expired;
  for (const auto& s : series_) {
    if (now - s->updated > options_.expiry) expired.insert(s.get());
  }
  if (!expired.empty()) {
    std::erase_if(by_def_,
                  [&](const auto& entry) { return expired.count(entry.second.second) != 0; });
    for (const SeriesState* s : expired) by_key_.erase(series_key(*s->def));
    std::erase_if(series_, [&](const auto& s) { return expired.count(s.get()) != 0; });
    counters_.series_expired += expired.size();
  }
  for (const auto& state : series_) {
    SeriesState& s = *state;
    s.last_seen = s.interval_seen;
    s.last_min = s.interval_min;
    s.last_max = s.interval_max;
    s.interval_seen = false;
    if (s.kind == model::Kind::kSet) {
      s.last_distinct = s.members.size();
      std::unordered_set<std::uint64_t>().swap(s.members);  // give the interval's memory back
    }
  }
  // Definitions of segments that are gone are held only here now: let them go.
  std::erase_if(by_def_, [](const auto& entry) {
    const auto& [def, state] = entry.second;
    const long holders = state->def.get() == def.get() ? 2 : 1;  // this map, and the state
    return def.use_count() <= holders;
  });
}

std::size_t Stage::memory_estimate() const noexcept {
  std::size_t bytes = 0;
  for (const auto& s : series_) {
    bytes += sizeof(SeriesState) + sizeof(model::SeriesDef) + s->def->service.capacity() +
             s->def->name.capacity() + s->buckets.capacity() * sizeof(double) +
             s->members.size() * (sizeof(std::uint64_t) + 2 * sizeof(void*));
    for (const auto& [k, v] : s->def->tags) bytes += k.capacity() + v.capacity() + 2 * 32;
    bytes += 2 * 64;  // the key string and its map node
  }
  bytes += by_def_.size() * 64;
  return bytes;
}

}  // namespace shmstats::collector::aggregate
