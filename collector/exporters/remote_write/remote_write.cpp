#include "collector/exporters/remote_write/remote_write.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <snappy.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <random>
#include <sstream>

#include "common/endpoint.h"
#include "common/prometheus_text.h"
#include "proto/remote_write.pb.h"

namespace shmstats::collector {
namespace {

namespace text = common::prometheus;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::size_t kMaxLoggedBodyBytes = 200;

// One time series of the request: the view's labels with __name__, sorted by name.
void add_series(remote::WriteRequest& request, const std::string& name,
                const std::vector<std::pair<std::string, std::string>>& labels,
                const std::pair<std::string, std::string>* extra, double value,
                std::int64_t timestamp_ms) {
  remote::TimeSeries* ts = request.add_timeseries();
  std::vector<std::pair<std::string_view, std::string_view>> all;
  all.reserve(labels.size() + 2);
  all.emplace_back("__name__", name);
  for (const auto& [k, v] : labels) all.emplace_back(k, v);
  if (extra != nullptr) all.emplace_back(extra->first, extra->second);
  std::sort(all.begin(), all.end());
  for (const auto& [k, v] : all) {
    remote::Label* label = ts->add_labels();
    label->set_name(std::string(k));
    label->set_value(std::string(v));
  }
  remote::Sample* sample = ts->add_samples();
  sample->set_value(value);
  sample->set_timestamp(timestamp_ms);
}

std::string read_secret(const std::string& path, std::string_view what, shm::Error& error) {
  std::ifstream in(path);
  if (!in) {
    error = shm::Error{shm::Errc::kInvalidOptions,
                       fmt::format("{} \"{}\" cannot be read", what, common::shown(path))};
    return {};
  }
  std::stringstream s;
  s << in.rdbuf();
  std::string secret = s.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty() || secret.find_first_of("\r\n") != std::string::npos) {
    error = shm::Error{
        shm::Errc::kInvalidOptions,
        fmt::format("{} \"{}\" must hold one non-empty line", what, common::shown(path))};
    return {};
  }
  return secret;
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string first_line(const std::string& body) {
  std::string line = body.substr(0, body.find('\n'));
  if (line.size() > kMaxLoggedBodyBytes) line.resize(kMaxLoggedBodyBytes);
  return common::shown(line, kMaxLoggedBodyBytes);
}

}  // namespace

shm::Result<HttpSender::Headers> parse_headers(std::string_view text) {
  HttpSender::Headers headers;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t semi = text.find(';', pos);
    std::string_view part =
        text.substr(pos, semi == std::string_view::npos ? std::string_view::npos : semi - pos);
    pos = semi == std::string_view::npos ? text.size() : semi + 1;
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (part.empty()) continue;
    const std::size_t colon = part.find(':');
    std::string_view name = part.substr(0, colon);
    if (colon == std::string_view::npos || name.empty() ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") !=
            std::string_view::npos) {
      return shm::Error{shm::Errc::kInvalidOptions,
                        fmt::format("header \"{}\" is not Name: value", common::shown(part))};
    }
    std::string_view value = part.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    for (const char c : value) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        return shm::Error{
            shm::Errc::kInvalidOptions,
            fmt::format("header \"{}\" holds a control character", common::shown(name))};
      }
    }
    headers.emplace_back(std::string(name), std::string(value));
  }
  return headers;
}

std::vector<EncodedRequest> encode_interval(const aggregate::Stage& stage, const ViewOptions& view,
                                            std::int64_t timestamp_ms, std::size_t max_samples,
                                            std::size_t max_bytes,
                                            std::uint64_t (&hidden)[kHiddenReasonCount]) {
  std::vector<EncodedRequest> bodies;
  remote::WriteRequest request;
  std::size_t request_bytes = 0;
  const auto seal = [&] {
    if (request.timeseries_size() == 0) return;
    bodies.emplace_back();
    request.SerializeToString(&bodies.back().body);
    bodies.back().samples = static_cast<std::uint64_t>(request.timeseries_size());
    request.Clear();
    request_bytes = 0;
  };
  // Adds one sample; seals the request first when it would pass a cap.
  const auto add = [&](const std::string& name,
                       const std::vector<std::pair<std::string, std::string>>& labels,
                       const std::pair<std::string, std::string>* extra, double value) {
    std::size_t series_bytes = name.size() + 24;
    for (const auto& [k, v] : labels) series_bytes += k.size() + v.size() + 4;
    if (request.timeseries_size() > 0 &&
        (static_cast<std::size_t>(request.timeseries_size()) >= max_samples ||
         request_bytes + series_bytes > max_bytes)) {
      seal();
    }
    add_series(request, name, labels, extra, value, timestamp_ms);
    request_bytes += series_bytes;
  };
  for (const ViewFamily& family : build_view(stage, view, hidden)) {
    for (const ViewSeries& series : family.series) {
      const aggregate::SeriesState& s = *series.state;
      switch (s.kind) {
        case model::Kind::kCounter:
        case model::Kind::kGauge:
        case model::Kind::kGaugeDelta:
          add(family.name, series.labels, nullptr, s.value);
          break;
        case model::Kind::kSet:
          add(family.name, series.labels, nullptr, static_cast<double>(s.last_distinct));
          break;
        case model::Kind::kHistogram:
        case model::Kind::kTiming: {
          const std::string bucket = family.name + "_bucket";
          double cumulative = 0;
          for (std::size_t i = 0; i < s.bounds->size(); ++i) {
            cumulative += s.buckets[i];
            const std::pair<std::string, std::string> le{"le", text::format_value((*s.bounds)[i])};
            add(bucket, series.labels, &le, cumulative);
          }
          const std::pair<std::string, std::string> inf{"le", "+Inf"};
          add(bucket, series.labels, &inf, s.count);
          add(family.name + "_sum", series.labels, nullptr, s.sum);
          add(family.name + "_count", series.labels, nullptr, s.count);
          break;
        }
      }
    }
  }
  seal();
  return bodies;
}

shm::Result<std::unique_ptr<RemoteWriteExporter>> RemoteWriteExporter::create(
    RemoteWriteOptions options) {
  auto url = parse_http_url(options.url);
  if (!url) return url.error();
  std::unique_ptr<RemoteWriteExporter> e(new RemoteWriteExporter(std::move(options)));
  const RemoteWriteOptions& o = e->options_;
  e->request_headers_ = {{"Content-Encoding", "snappy"},
                         {"Content-Type", "application/x-protobuf"},
                         {"X-Prometheus-Remote-Write-Version", "0.1.0"}};
  shm::Error error{shm::Errc::kInvalidOptions, ""};
  if (!o.basic_auth_user.empty()) {
    const std::string password =
        read_secret(o.basic_auth_password_file, "basic_auth_password_file", error);
    if (!error.message.empty()) return error;
    e->request_headers_.emplace_back("Authorization",
                                     "Basic " + base64(o.basic_auth_user + ":" + password));
  } else if (!o.basic_auth_password_file.empty()) {
    return shm::Error{shm::Errc::kInvalidOptions,
                      "basic_auth_password_file is set but basic_auth_user is not"};
  }
  if (!o.bearer_token_file.empty()) {
    if (!o.basic_auth_user.empty()) {
      return shm::Error{shm::Errc::kInvalidOptions,
                        "basic auth and a bearer token cannot both be set"};
    }
    const std::string token = read_secret(o.bearer_token_file, "bearer_token_file", error);
    if (!error.message.empty()) return error;
    e->request_headers_.emplace_back("Authorization", "Bearer " + token);
  }
  for (const auto& h : o.headers) e->request_headers_.push_back(h);
  auto http = HttpSender::create(std::move(url).value(), TlsOptions{o.ca_file},
                                 "shmstats-collector remote_write");
  if (!http) return http.error();
  e->http_ = std::move(http).value();
  e->sender_ = std::thread([self = e.get()] { self->run_sender(); });
  return e;
}

RemoteWriteExporter::RemoteWriteExporter(RemoteWriteOptions options)
    : options_(std::move(options)), stage_(options_.stage) {}

RemoteWriteExporter::~RemoteWriteExporter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (sender_.joinable()) sender_.join();
}

SendResult RemoteWriteExporter::send(const Batch& batch) {
  const std::size_t merged = stage_.merge(batch);
  const auto& c = stage_.counters();
  counters_.series.store(stage_.series().size(), std::memory_order_relaxed);
  for (std::size_t i = 0; i < aggregate::kDropReasonCount; ++i) {
    counters_.dropped[i].store(c.dropped[i], std::memory_order_relaxed);
  }
  SendResult r;
  r.events_merged = merged;
  r.events_dropped = batch.size() - merged;
  return r;
}

SendResult RemoteWriteExporter::flush() {
  const std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  std::uint64_t hidden[kHiddenReasonCount] = {};
  std::vector<EncodedRequest> bodies = encode_interval(
      stage_, options_.view, now_ms, options_.max_samples, options_.max_bytes, hidden);
  for (std::size_t i = 0; i < kHiddenReasonCount; ++i) {
    counters_.hidden[i].store(hidden[i], std::memory_order_relaxed);
  }
  stage_.roll();
  counters_.series.store(stage_.series().size(), std::memory_order_relaxed);
  counters_.intervals.fetch_add(1, std::memory_order_relaxed);
  if (bodies.empty()) return {};
  std::deque<Pending> ready;
  for (const EncodedRequest& request : bodies) {
    Pending p;
    if (options_.fault_corrupt_bodies) {
      p.body = request.body;  // fault injection (collector/fault.h): not snappy
    } else {
      snappy::Compress(request.body.data(), request.body.size(), &p.body);
    }
    p.samples = request.samples;
    ready.push_back(std::move(p));
  }
  {
    std::lock_guard lock(mutex_);
    for (auto& p : ready) {
      if (queue_.size() >= options_.max_pending) {
        counters_.requests_dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
        counters_.samples_dropped.fetch_add(queue_.front().samples, std::memory_order_relaxed);
        queue_.pop_front();
      }
      queue_.push_back(std::move(p));
    }
    counters_.pending.store(queue_.size() + (sending_ ? 1 : 0), std::memory_order_relaxed);
  }
  wake_.notify_one();
  return {};
}

std::size_t RemoteWriteExporter::pending() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + (sending_ ? 1 : 0);
}

std::chrono::milliseconds RemoteWriteExporter::backoff(int attempt) {
  thread_local std::minstd_rand random{std::random_device{}()};
  const auto full = std::min<std::int64_t>(options_.max_backoff.count(),
                                           kFirstBackoff.count() << std::min(attempt, 20));
  // Full jitter over the upper half: senders that failed together do not retry together.
  std::uniform_int_distribution<std::int64_t> pick(full / 2, std::max<std::int64_t>(full, 1));
  return std::chrono::milliseconds(pick(random));
}

bool RemoteWriteExporter::deliver(const std::string& body, std::uint64_t samples) {
  const auto started = Clock::now();
  for (int attempt = 0;; ++attempt) {
    const HttpSender::Reply reply = http_->post(request_headers_, body, options_.timeout);
    if (reply.status >= 200 && reply.status < 300) {
      counters_.requests_ok.fetch_add(1, std::memory_order_relaxed);
      counters_.samples_sent.fetch_add(samples, std::memory_order_relaxed);
      counters_.bytes_sent.fetch_add(body.size(), std::memory_order_relaxed);
      return true;
    }
    const bool retryable = reply.status == 0 || reply.status == 429 || reply.status >= 500;
    if (reply.status == 0) {
      counters_.transport_errors.fetch_add(1, std::memory_order_relaxed);
      log_.log(spdlog::level::warn, "transport", "exporter {}: {} (retrying)", options_.name,
               reply.error);
    } else if (reply.status == 429) {
      counters_.status_429.fetch_add(1, std::memory_order_relaxed);
    } else if (reply.status >= 500) {
      counters_.status_5xx.fetch_add(1, std::memory_order_relaxed);
    }
    if (!retryable) {
      counters_.requests_rejected_4xx.fetch_add(1, std::memory_order_relaxed);
      counters_.last_rejected_status.store(reply.status, std::memory_order_relaxed);
      counters_.samples_dropped.fetch_add(samples, std::memory_order_relaxed);
      log_.log(spdlog::level::err, "rejected",
               "exporter {}: {} rejected a request of {} samples with {}: {} (not retried)",
               options_.name, http_->url().text(), samples, reply.status, first_line(reply.body));
      return true;
    }
    auto wait = backoff(attempt);
    if (!reply.retry_after.empty()) {
      std::uint64_t seconds = 0;
      const auto* end = reply.retry_after.data() + reply.retry_after.size();
      if (const auto [ptr, ec] = std::from_chars(reply.retry_after.data(), end, seconds);
          ec == std::errc() && ptr == end) {
        wait = std::chrono::seconds(std::min<std::uint64_t>(seconds, 3600));
      }
    }
    std::unique_lock lock(mutex_);
    if (stopping_ || Clock::now() + wait - started > options_.retry_for) {
      lock.unlock();
      if (stopping_) return false;
      counters_.requests_dropped_retries_exhausted.fetch_add(1, std::memory_order_relaxed);
      counters_.samples_dropped.fetch_add(samples, std::memory_order_relaxed);
      return true;
    }
    counters_.retries.fetch_add(1, std::memory_order_relaxed);
    if (wake_.wait_for(lock, wait, [this] { return stopping_; })) return false;
  }
}

void RemoteWriteExporter::run_sender() {
  for (;;) {
    Pending next;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      next = std::move(queue_.front());
      queue_.pop_front();
      sending_ = true;
      counters_.pending.store(queue_.size() + 1, std::memory_order_relaxed);
    }
    const bool done = deliver(next.body, next.samples);
    std::lock_guard lock(mutex_);
    sending_ = false;
    if (!done) queue_.push_front(std::move(next));  // stopping: one last try below
    counters_.pending.store(queue_.size(), std::memory_order_relaxed);
  }
  // Stopping: one attempt each for what waits (the last interval among it), no retries, within
  // one request timeout in all; the rest is counted.
  const auto deadline = Clock::now() + options_.timeout;
  std::deque<Pending> rest;
  {
    std::lock_guard lock(mutex_);
    rest.swap(queue_);
  }
  for (auto& p : rest) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const HttpSender::Reply reply =
        left.count() > 0 ? http_->post(request_headers_, p.body, left) : HttpSender::Reply{};
    if (reply.status >= 200 && reply.status < 300) {
      counters_.requests_ok.fetch_add(1, std::memory_order_relaxed);
      counters_.samples_sent.fetch_add(p.samples, std::memory_order_relaxed);
      counters_.bytes_sent.fetch_add(p.body.size(), std::memory_order_relaxed);
    } else {
      counters_.requests_dropped_shutdown.fetch_add(1, std::memory_order_relaxed);
      counters_.samples_dropped.fetch_add(p.samples, std::memory_order_relaxed);
    }
  }
  counters_.pending.store(0, std::memory_order_relaxed);
}

void RemoteWriteExporter::describe_metrics(std::vector<ExporterSample>& out) const {
  const auto load = [](const auto& a) {
    return static_cast<double>(a.load(std::memory_order_relaxed));
  };
  const char* requests = "shmstats_exporter_remote_write_requests_total";
  const char* requests_help =
      "Remote-write requests by outcome: ok, rejected (4xx, not retried), "
      "dropped (queue full, retries exhausted, shutdown).";
  out.push_back(
      {requests, "counter", requests_help, {{"result", "ok"}}, load(counters_.requests_ok)});
  out.push_back({requests,
                 "counter",
                 requests_help,
                 {{"result", "rejected"}},
                 load(counters_.requests_rejected_4xx)});
  out.push_back({requests,
                 "counter",
                 requests_help,
                 {{"result", "dropped_queue_full"}},
                 load(counters_.requests_dropped_queue_full)});
  out.push_back({requests,
                 "counter",
                 requests_help,
                 {{"result", "dropped_retries_exhausted"}},
                 load(counters_.requests_dropped_retries_exhausted)});
  out.push_back({requests,
                 "counter",
                 requests_help,
                 {{"result", "dropped_shutdown"}},
                 load(counters_.requests_dropped_shutdown)});
  const char* failures = "shmstats_exporter_remote_write_failed_attempts_total";
  const char* failures_help = "Attempts that failed and were retried: no answer, 429, 5xx.";
  out.push_back({failures,
                 "counter",
                 failures_help,
                 {{"cause", "no_answer"}},
                 load(counters_.transport_errors)});
  out.push_back(
      {failures, "counter", failures_help, {{"cause", "429"}}, load(counters_.status_429)});
  out.push_back(
      {failures, "counter", failures_help, {{"cause", "5xx"}}, load(counters_.status_5xx)});
  out.push_back({"shmstats_exporter_remote_write_retries_total",
                 "counter",
                 "Waits before another attempt of a request.",
                 {},
                 load(counters_.retries)});
  out.push_back({"shmstats_exporter_remote_write_samples_total",
                 "counter",
                 "Samples by outcome: sent (accepted), dropped (in a dropped or rejected request).",
                 {{"result", "sent"}},
                 load(counters_.samples_sent)});
  out.push_back({"shmstats_exporter_remote_write_samples_total",
                 "counter",
                 "Samples by outcome: sent (accepted), dropped (in a dropped or rejected request).",
                 {{"result", "dropped"}},
                 load(counters_.samples_dropped)});
  out.push_back({"shmstats_exporter_remote_write_sent_bytes_total",
                 "counter",
                 "Compressed bytes of accepted requests.",
                 {},
                 load(counters_.bytes_sent)});
  out.push_back({"shmstats_exporter_remote_write_intervals_total",
                 "counter",
                 "Intervals encoded and queued (one sample per series each).",
                 {},
                 load(counters_.intervals)});
  out.push_back({"shmstats_exporter_remote_write_pending_requests",
                 "gauge",
                 "Requests waiting to be sent or being sent.",
                 {},
                 load(counters_.pending)});
  out.push_back({"shmstats_exporter_remote_write_last_rejected_status",
                 "gauge",
                 "HTTP status of the last rejected request (0: none).",
                 {},
                 load(counters_.last_rejected_status)});
  out.push_back({"shmstats_exporter_remote_write_series",
                 "gauge",
                 "Series the aggregation stage holds.",
                 {},
                 load(counters_.series)});
  for (std::size_t i = 0; i < aggregate::kDropReasonCount; ++i) {
    out.push_back({"shmstats_exporter_remote_write_dropped_events_total",
                   "counter",
                   "Events the aggregation stage refused, by reason.",
                   {{"reason", aggregate::to_string(static_cast<aggregate::DropReason>(i))}},
                   load(counters_.dropped[i])});
  }
  for (std::size_t i = 0; i < kHiddenReasonCount; ++i) {
    out.push_back({"shmstats_exporter_remote_write_hidden_series",
                   "gauge",
                   "Series left out of the last interval, by reason (names that met after "
                   "mapping).",
                   {{"reason", to_string(static_cast<HiddenReason>(i))}},
                   load(counters_.hidden[i])});
  }
}

}  // namespace shmstats::collector
