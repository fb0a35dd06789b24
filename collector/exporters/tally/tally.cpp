#include "collector/exporters/tally/tally.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

namespace shmstats::collector {

shm::Result<std::unique_ptr<TallyExporter>> TallyExporter::create(TallyOptions options) {
  if (options.path.empty()) {
    return shm::Error{shm::Errc::kInvalidOptions, "exporter " + options.name + ": path is empty"};
  }
  // Not make_unique: the constructor is private.
  return std::unique_ptr<TallyExporter>(new TallyExporter(std::move(options)));
}

TallyExporter::Totals* TallyExporter::totals_for(const model::SeriesDef& def) {
  Key key{def.service, def.name, def.tags, static_cast<int>(def.kind)};
  if (const auto it = totals_.find(key); it != totals_.end()) return &it->second;
  if (totals_.size() >= options_.max_series) return nullptr;
  Totals* t = &totals_[std::move(key)];
  series_.store(totals_.size(), std::memory_order_relaxed);
  return t;
}

SendResult TallyExporter::send(const Batch& batch) {
  SendResult r;
  for (const auto& p : batch.points) {
    Totals* t = totals_for(*p.series);
    if (t == nullptr) {
      ++r.events_dropped;
      continue;
    }
    ++t->points;
    t->sum += p.value;
    ++r.events_merged;
  }
  for (const auto& a : batch.aggregates) {
    Totals* t = totals_for(*a.series);
    if (t == nullptr) {
      ++r.events_dropped;
      continue;
    }
    t->folded_count += a.count;
    t->folded_sum += a.sum;
    ++r.events_merged;
  }
  dropped_series_cap_.fetch_add(r.events_dropped, std::memory_order_relaxed);
  return r;
}

SendResult TallyExporter::flush() {
  SendResult r;
  ++flushes_;
  nlohmann::json doc;
  doc["flushes"] = flushes_;
  doc["series"] = nlohmann::json::array();
  for (const auto& [key, t] : totals_) {
    nlohmann::json tags = nlohmann::json::object();
    for (const auto& [k, v] : std::get<2>(key)) tags[k] = v;
    doc["series"].push_back({{"service", std::get<0>(key)},
                             {"name", std::get<1>(key)},
                             {"tags", tags},
                             {"kind", shm::to_string(static_cast<shm::Kind>(std::get<3>(key)))},
                             {"points", t.points},
                             {"sum", t.sum},
                             {"folded_count", t.folded_count},
                             {"folded_sum", t.folded_sum}});
  }
  const std::string text = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const std::string tmp = options_.path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "we");
  bool ok = f != nullptr;
  if (ok) {
    ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    ok = (std::fclose(f) == 0) && ok;
  }
  ok = ok && std::rename(tmp.c_str(), options_.path.c_str()) == 0;
  if (ok) {
    writes_ok_.fetch_add(1, std::memory_order_relaxed);
    r.requests = 1;
    r.bytes = text.size();
  } else {
    const int err = errno;
    if (writes_failed_.fetch_add(1, std::memory_order_relaxed) == 0) {
      spdlog::error("exporter {}: cannot write {}: {}", options_.name, options_.path,
                    std::strerror(err));
    }
    std::remove(tmp.c_str());
    r.send_errors = 1;
  }
  return r;
}

void TallyExporter::describe_metrics(std::vector<ExporterSample>& out) const {
  out.push_back({"shmstats_exporter_tally_series",
                 "gauge",
                 "Series the tally output holds.",
                 {},
                 static_cast<double>(series_.load(std::memory_order_relaxed))});
  out.push_back({"shmstats_exporter_tally_writes_total",
                 "counter",
                 "Writes of the tally file, by result.",
                 {{"result", "ok"}},
                 static_cast<double>(writes_ok_.load(std::memory_order_relaxed))});
  out.push_back({"shmstats_exporter_tally_writes_total",
                 "counter",
                 "Writes of the tally file, by result.",
                 {{"result", "failed"}},
                 static_cast<double>(writes_failed_.load(std::memory_order_relaxed))});
  out.push_back({"shmstats_exporter_tally_dropped_events_total",
                 "counter",
                 "Events the tally output dropped, by reason.",
                 {{"reason", "series_cap"}},
                 static_cast<double>(dropped_series_cap_.load(std::memory_order_relaxed))});
}

}  // namespace shmstats::collector
