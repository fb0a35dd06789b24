#include "tools/loadgen/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <stdexcept>

namespace shmstats::tools::loadgen {
namespace {

using nlohmann::json;

double tenths_to_double(std::uint64_t tenths) noexcept {
  return static_cast<double>(tenths) / 10.0;
}

}  // namespace

json report_json(const WorkerReport& r) {
  json series = json::array();
  for (const auto& t : r.series) {
    series.push_back({{"pushed", t.pushed},
                      {"accepted", t.accepted},
                      {"refused", t.refused},
                      {"pushed_sum_tenths", t.pushed_sum_tenths},
                      {"accepted_sum_tenths", t.accepted_sum_tenths}});
  }
  return {{"index", r.index},
          {"pid", r.pid},
          {"segment", r.segment},
          {"elapsed_s", r.elapsed_s},
          {"push_s", r.push_s},
          {"series", std::move(series)},
          {"producer",
           {{"pushed", r.producer.pushed},
            {"folded", r.producer.folded},
            {"dropped", r.producer.dropped}}},
          {"dropped_by_reason", r.dropped_by_reason}};
}

namespace {

// Field readers for parse_report: throw std::invalid_argument naming the field.
const json& field(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key)) {
    throw std::invalid_argument(fmt::format("missing field \"{}\"", key));
  }
  return object.at(key);
}

std::uint64_t u64(const json& object, const char* key) {
  const json& v = field(object, key);
  if (!v.is_number_unsigned()) {
    throw std::invalid_argument(fmt::format("field \"{}\" is not a whole number", key));
  }
  return v.get<std::uint64_t>();
}

}  // namespace

shm::Result<WorkerReport> parse_report(std::string_view text) {
  const json doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded()) {
    return shm::Error{shm::Errc::kInvalidOptions, "worker report is not JSON"};
  }
  try {
    WorkerReport r;
    const json& index = field(doc, "index");
    const json& pid = field(doc, "pid");
    const json& segment = field(doc, "segment");
    const json& elapsed = field(doc, "elapsed_s");
    const json& push_s = field(doc, "push_s");
    if (!index.is_number_integer() || !pid.is_number_integer() || !segment.is_string() ||
        !elapsed.is_number() || !push_s.is_number()) {
      throw std::invalid_argument("index, pid, segment, elapsed_s or push_s has the wrong type");
    }
    r.index = index.get<int>();
    r.pid = pid.get<std::int64_t>();
    r.segment = segment.get<std::string>();
    r.elapsed_s = elapsed.get<double>();
    r.push_s = push_s.get<double>();
    const json& series = field(doc, "series");
    if (!series.is_array()) throw std::invalid_argument("field \"series\" is not an array");
    for (const auto& s : series) {
      r.series.push_back(SeriesTally{u64(s, "pushed"), u64(s, "accepted"), u64(s, "refused"),
                                     u64(s, "pushed_sum_tenths"), u64(s, "accepted_sum_tenths")});
    }
    const json& producer = field(doc, "producer");
    r.producer =
        ProducerTotals{u64(producer, "pushed"), u64(producer, "folded"), u64(producer, "dropped")};
    const json& dropped = field(doc, "dropped_by_reason");
    if (!dropped.is_array() || dropped.size() != shm::kDropReasonCount) {
      throw std::invalid_argument(
          fmt::format("field \"dropped_by_reason\" is not an array of {}", shm::kDropReasonCount));
    }
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
      if (!dropped[i].is_number_unsigned()) {
        throw std::invalid_argument("field \"dropped_by_reason\" holds a non-count");
      }
      r.dropped_by_reason[i] = dropped[i].get<std::uint64_t>();
    }
    return r;
  } catch (const std::exception& e) {
    return shm::Error{shm::Errc::kInvalidOptions, fmt::format("worker report: {}", e.what())};
  }
}

shm::Result<Summary> merge(const std::vector<WorkerReport>& reports, std::size_t series_count,
                           double elapsed_s) {
  std::vector<const WorkerReport*> ordered;
  for (const auto& r : reports) ordered.push_back(&r);
  std::sort(ordered.begin(), ordered.end(),
            [](const WorkerReport* a, const WorkerReport* b) { return a->index < b->index; });
  Summary s;
  s.elapsed_s = elapsed_s;
  s.series.resize(series_count);
  std::set<int> seen;
  for (const WorkerReport* r : ordered) {
    if (!seen.insert(r->index).second) {
      return shm::Error{shm::Errc::kInvalidOptions,
                        fmt::format("two reports from worker {}", r->index)};
    }
    if (r->series.size() != series_count) {
      return shm::Error{shm::Errc::kInvalidOptions,
                        fmt::format("worker {} reported {} series; expected {}", r->index,
                                    r->series.size(), series_count)};
    }
    for (std::size_t k = 0; k < series_count; ++k) s.series[k] += r->series[k];
    s.push_s += r->push_s;
    s.producer.pushed += r->producer.pushed;
    s.producer.folded += r->producer.folded;
    s.producer.dropped += r->producer.dropped;
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
      s.dropped_by_reason[i] += r->dropped_by_reason[i];
    }
    s.segments.push_back(r->segment);
  }
  return s;
}

nlohmann::ordered_json summary_json(const Config& config, const Summary& summary) {
  using ojson = nlohmann::ordered_json;
  const auto specs = make_series(config);
  ojson series = ojson::array();
  SeriesTally total;
  for (std::size_t k = 0; k < summary.series.size(); ++k) {
    const SeriesTally& t = summary.series[k];
    total += t;
    ojson entry;
    entry["name"] = k < specs.size() ? specs[k].name : fmt::format("loadgen.s{}", k);
    entry["tags"] = {{"shard", k < specs.size() ? specs[k].shard : std::to_string(k % kShards)}};
    entry["kind"] = k < specs.size() ? shm::to_string(specs[k].kind) : "unknown";
    entry["pushed"] = t.pushed;
    entry["accepted"] = t.accepted;
    entry["refused"] = t.refused;
    entry["accepted_sum"] = tenths_to_double(t.accepted_sum_tenths);
    entry["pushed_sum"] = tenths_to_double(t.pushed_sum_tenths);
    series.push_back(std::move(entry));
  }
  ojson dropped = ojson::object();
  for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
    dropped[shm::to_string(static_cast<shm::DropReason>(i))] = summary.dropped_by_reason[i];
  }
  const bool by_events = config.events_per_thread > 0;
  ojson doc;
  doc["processes"] = config.processes;
  doc["threads"] = config.threads;
  doc["rate"] = config.rate;
  doc["duration_s"] = by_events ? ojson(nullptr) : ojson(config.duration_s);
  doc["events_per_thread"] = by_events ? ojson(config.events_per_thread) : ojson(nullptr);
  doc["elapsed_s"] = summary.elapsed_s;
  doc["series"] = std::move(series);
  doc["totals"] = {
      {"pushed", total.pushed},
      {"accepted", total.accepted},
      {"refused", total.refused},
      {"offered_rate",
       summary.elapsed_s > 0 ? static_cast<double>(total.pushed) / summary.elapsed_s : 0.0}};
  doc["producer_stats"] = {{"pushed", summary.producer.pushed},
                           {"folded", summary.producer.folded},
                           {"dropped", summary.producer.dropped}};
  doc["dropped_by_reason"] = std::move(dropped);
  doc["segments"] = summary.segments;
  doc["producer_cpu"] = {{"push_seconds", summary.push_s}, {"cpu_seconds", summary.cpu_s}};
  return doc;
}

}  // namespace shmstats::tools::loadgen
