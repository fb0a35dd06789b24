#include "collector/exporters/prometheus/view.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "collector/exporters/prometheus/names.h"

namespace shmstats::collector {
namespace {

namespace text = common::prometheus;
using aggregate::SeriesState;

namespace text = common::prometheus;
using aggregate::SeriesState;

text::MetricType type_of(model::Kind kind) noexcept {
  switch (kind) {
    case model::Kind::kCounter:
      return text::MetricType::kCounter;
    case model::Kind::kHistogram:
    case model::Kind::kTiming:
      return text::MetricType::kHistogram;
    default:
      return text::MetricType::kGauge;
  }
}

// One series as it goes on the page.
struct Entry {
  const SeriesState* state = nullptr;
  std::string family;
  text::MetricType type = text::MetricType::kGauge;
  std::vector<std::pair<std::string, std::string>> labels;  // sorted by name
  std::string labels_key;  // labels as the page writes them, joined: sorting, duplicates
  std::string original;    // service, name and tags as pushed: the tie-break
};

std::vector<std::pair<std::string, std::string>> labels_of(const model::SeriesDef& def,
                                                           const ViewOptions& options) {
  std::vector<std::pair<std::string, std::string>> labels;
  for (const auto& [key, value] : def.tags) {
    std::string name = prometheus::label_name(key);
    // Keys that meet after mapping: the first (in original key order) keeps the name.
    const auto taken = [&](const std::string& n) {
      return std::any_of(labels.begin(), labels.end(), [&](const auto& l) { return l.first == n; });
    };
    if (taken(name)) {
      int n = 2;
      while (taken(fmt::format("{}_{}", name, n))) ++n;
      name = fmt::format("{}_{}", name, n);
    }
    labels.emplace_back(std::move(name), value);
  }
  const auto has = [&](std::string_view n) {
    return std::any_of(labels.begin(), labels.end(), [&](const auto& l) { return l.first == n; });
  };
  if (options.service_label && !has("service")) labels.emplace_back("service", def.service);
  if (options.host_label && !has("host")) labels.emplace_back("host", options.host);
  std::sort(labels.begin(), labels.end());
  return labels;
}

std::string original_of(const model::SeriesDef& def) {
  std::string key = def.service + '\0' + def.name;
  for (const auto& [k, v] : def.tags) key += '\0' + k + '=' + v;
  return key;
}

}  // namespace

const char* to_string(HiddenReason reason) noexcept {
  switch (reason) {
    case HiddenReason::kKindConflict:
      return "kind_conflict";
    case HiddenReason::kReservedName:
      return "reserved_name";
    case HiddenReason::kDuplicate:
      return "duplicate";
    case HiddenReason::kCount:
      break;
  }
  return "?";
}

std::vector<ViewFamily> build_view(const aggregate::Stage& stage, const ViewOptions& options,
                                   std::uint64_t (&hidden)[kHiddenReasonCount]) {
  for (auto& h : hidden) h = 0;
  std::map<std::string, std::vector<Entry>> families;
  for (const auto& state : stage.series()) {
    Entry e;
    e.state = state.get();
    e.family = prometheus::metric_name(state->def->name, state->kind);
    e.type = type_of(state->kind);
    e.labels = labels_of(*state->def, options);
    // The key is the labels as written: values that differ only in bytes that are not UTF-8
    // are written alike (common/prometheus_text.h), so they are one series on the page.
    for (const auto& [k, v] : e.labels) {
      e.labels_key += k;
      e.labels_key += '\0';
      e.labels_key += text::escape_label_value(v);
      e.labels_key += '\0';
    }
    e.original = original_of(*state->def);
    families[e.family].push_back(std::move(e));
  }
  // One type per family: the lowest kind's.
  for (auto& [name, entries] : families) {
    const auto lowest = std::min_element(entries.begin(), entries.end(), [](auto& a, auto& b) {
      return a.state->kind < b.state->kind;
    });
    const text::MetricType type = lowest->type;
    const auto before = entries.size();
    std::erase_if(entries, [&](const Entry& e) { return e.type != type; });
    hidden[static_cast<std::size_t>(HiddenReason::kKindConflict)] += before - entries.size();
  }
  // A histogram's sample names are not free for other families.
  for (const auto& [name, entries] : families) {
    if (entries.empty() || entries.front().type != text::MetricType::kHistogram) continue;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const auto it = families.find(name + suffix);
      if (it == families.end()) continue;
      hidden[static_cast<std::size_t>(HiddenReason::kReservedName)] += it->second.size();
      it->second.clear();
    }
  }
  std::vector<ViewFamily> view;
  for (auto& [name, entries] : families) {
    if (entries.empty()) continue;
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.labels_key, a.original) < std::tie(b.labels_key, b.original);
    });
    const auto first_original = std::min_element(
        entries.begin(), entries.end(), [](auto& a, auto& b) { return a.original < b.original; });
    const SeriesState& help_of = *first_original->state;
    ViewFamily family{
        name,
        entries.front().type,
        fmt::format("shmstats {} {}", shm::to_string(help_of.kind), help_of.def->name),
        {}};
    const std::string* previous = nullptr;
    for (Entry& e : entries) {
      if (previous != nullptr && *previous == e.labels_key) {
        ++hidden[static_cast<std::size_t>(HiddenReason::kDuplicate)];
        continue;
      }
      previous = &e.labels_key;
      for (auto& [k, v] : e.labels) v = text::valid_utf8(v);
      family.series.push_back(ViewSeries{e.state, std::move(e.labels)});
    }
    view.push_back(std::move(family));
  }
  return view;
}

}  // namespace shmstats::collector
