#include "tools/loadgen/metrics_page.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>

#include "common/http_client.h"

namespace shmstats::tools::loadgen {
namespace {

constexpr auto kHttpTimeout = std::chrono::seconds(2);

}  // namespace

MetricsPage scrape(std::uint16_t port) {
  // One bound for the whole exchange: the connect and the read timeouts it replaced, together.
  auto response = common::http_get("127.0.0.1", port, "/metrics", 2 * kHttpTimeout);
  if (!response || response.value().status != 200) return {};
  return common::prometheus::parse_text(response.value().body);
}

Cumulative prom_histogram(const MetricsPage& samples, std::string_view bucket_name) {
  Cumulative out;
  for (const auto& s : samples) {
    if (s.name != bucket_name) continue;
    const auto le = s.label("le");
    if (!le) continue;
    double bound = HUGE_VAL;
    if (*le != "+Inf") {
      const auto [ptr, ec] = std::from_chars(le->data(), le->data() + le->size(), bound);
      if (ec != std::errc{}) continue;
    }
    out.emplace_back(bound, s.value);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Cumulative histogram_delta(const Cumulative& later, const Cumulative& earlier) {
  Cumulative out = later;
  if (earlier.size() != later.size()) return out;
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i].second = std::max(0.0, later[i].second - earlier[i].second);
  }
  return out;
}

std::optional<double> histogram_quantile(const Cumulative& histogram, double q) {
  if (histogram.empty()) return std::nullopt;
  const double total = histogram.back().second;
  if (total <= 0) return std::nullopt;
  const double rank = q * total;
  double lower_bound = 0;
  double lower_count = 0;
  double last_finite = 0;
  for (const auto& [bound, count] : histogram) {
    if (std::isfinite(bound)) last_finite = bound;
    if (count >= rank && count > lower_count) {
      if (!std::isfinite(bound)) return last_finite;
      return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count);
    }
    if (std::isfinite(bound)) lower_bound = bound;
    lower_count = count;
  }
  return last_finite;
}

}  // namespace shmstats::tools::loadgen
