// The remote_write output: the aggregation stage written to a Prometheus remote-write 1.0 endpoint
// (Prometheus, VictoriaMetrics, Mimir, Thanos, ...) every interval.
//
// Every interval (flush) each series the stage holds becomes one sample, at the flush's time, of
// the series the scrape page would show (prometheus/view.h: the same names, labels and meeting
// rules; histograms as _bucket/_sum/_count). The samples of one interval go out in requests of at
// most max_samples samples and about max_bytes bytes (protobuf WriteRequest, snappy block
// compressed, POST with Content-Encoding: snappy, Content-Type: application/x-protobuf and
// X-Prometheus-Remote-Write-Version: 0.1.0, over one kept-alive connection).
//
// Delivery: requests wait in a queue of at most max_pending and a sending thread sends them in
// order, one at a time, so each series' samples arrive in time order (Prometheus fails a whole
// request on one out-of-order sample). An answer 5xx or 429, or no answer (connect, TLS, timeout),
// is retried with exponential back-off and jitter from 100 ms up to max_backoff (a 429's or 503's
// Retry-After is honoured), for at most retry_for per request; then the request is dropped and
// counted (retries_exhausted). Other 4xx answers are not retried: dropped and counted as rejected
// by status, with the first line of the body logged (rate-limited). When the queue is full the
// oldest request is dropped (queue_full). Every interval is therefore delivered or counted: an
// outage shorter than the queue leaves no gap once the destination is back.
//
// Concurrency: an Exporter. send (merge) and flush (snapshot, encode, queue) run on the runner's
// thread; the sending thread takes from the queue under its mutex. describe_metrics reads atomics.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "collector/aggregate/stage.h"
#include "collector/exporter.h"
#include "collector/exporters/http_sender.h"
#include "collector/exporters/prometheus/view.h"
#include "common/rate_limited_log.h"
#include "shm/result.h"

namespace shmstats::collector {

struct RemoteWriteOptions {
  // The defaults below are the keys' defaults too (register.cpp declares them from these).
  std::string name = "remote_write";
  std::string url;  // required
  std::chrono::milliseconds interval{10000};
  std::chrono::milliseconds timeout{10000};     // one request, connect to answer
  std::chrono::milliseconds retry_for{300000};  // a request is retried at most this long
  std::chrono::milliseconds max_backoff{5000};  // the longest wait between two attempts
  std::size_t max_samples = 2000;               // per request
  std::size_t max_bytes = 1 << 20;              // per request, before compression (about)
  std::size_t max_pending = 1000;               // requests waiting to be sent
  std::string ca_file;                          // https: CA bundle; empty: the system's
  std::string basic_auth_user;                  // with basic_auth_password_file
  std::string basic_auth_password_file;
  std::string bearer_token_file;
  HttpSender::Headers headers;        // extra headers, e.g. a tenant header
  bool fault_corrupt_bodies = false;  // collector/fault.h: bodies sent without compression
  aggregate::StageOptions stage;
  ViewOptions view;
};

// "Name: value; Name2: value2" -> headers; an error names the bad part.
shm::Result<HttpSender::Headers> parse_headers(std::string_view text);

struct EncodedRequest {
  std::string body;  // a WriteRequest, uncompressed
  std::uint64_t samples = 0;
};

// Every sample of one interval of `stage` as remote-write requests, each at most `max_samples`
// samples and, unless one sample alone is larger, about `max_bytes`. `hidden` as build_view's.
std::vector<EncodedRequest> encode_interval(const aggregate::Stage& stage, const ViewOptions& view,
                                            std::int64_t timestamp_ms, std::size_t max_samples,
                                            std::size_t max_bytes,
                                            std::uint64_t (&hidden)[kHiddenReasonCount]);

class RemoteWriteExporter final : public Exporter {
 public:
  static shm::Result<std::unique_ptr<RemoteWriteExporter>> create(RemoteWriteOptions options);
  ~RemoteWriteExporter() override;  // stops the sending thread (bounded by one timeout)

  const std::string& name() const override { return options_.name; }
  SendResult send(const Batch& batch) override;
  SendResult flush() override;  // one interval: encode, queue, roll the stage
  std::chrono::milliseconds flush_interval() const override { return options_.interval; }
  void describe_metrics(std::vector<ExporterSample>& out) const override;

  // For tests: requests waiting or being sent now; the headers every request carries.
  std::size_t pending() const;
  const HttpSender::Headers& request_headers() const noexcept { return request_headers_; }

 private:
  explicit RemoteWriteExporter(RemoteWriteOptions options);
  void run_sender();
  // Sends one request until it is accepted, rejected or out of retries. False when stopping.
  bool deliver(const std::string& body, std::uint64_t samples);
  std::chrono::milliseconds backoff(int attempt);

  struct Pending {
    std::string body;  // snappy-compressed
    std::uint64_t samples = 0;
  };

  RemoteWriteOptions options_;
  HttpSender::Headers request_headers_;  // the protocol's, auth, then the extra ones
  aggregate::Stage stage_;
  std::unique_ptr<HttpSender> http_;
  common::RateLimitedLog log_{1, std::chrono::seconds(10)};

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  bool sending_ = false;  // a request is out of the queue and being sent
  bool stopping_ = false;
  std::thread sender_;

  struct Counters {
    std::atomic<std::uint64_t> intervals{0};
    std::atomic<std::uint64_t> requests_ok{0};
    std::atomic<std::uint64_t> samples_sent{0};
    std::atomic<std::uint64_t> samples_dropped{0};
    std::atomic<std::uint64_t> requests_dropped_queue_full{0};
    std::atomic<std::uint64_t> requests_dropped_retries_exhausted{0};
    std::atomic<std::uint64_t> requests_dropped_shutdown{0};
    std::atomic<std::uint64_t> requests_rejected_4xx{0};
    std::atomic<std::uint64_t> retries{0};
    std::atomic<std::uint64_t> transport_errors{0};
    std::atomic<std::uint64_t> status_5xx{0};
    std::atomic<std::uint64_t> status_429{0};
    std::atomic<std::uint64_t> bytes_sent{0};
    std::atomic<std::uint64_t> series{0};
    std::atomic<std::uint64_t> pending{0};
    std::atomic<std::uint64_t> dropped[aggregate::kDropReasonCount] = {};
    std::atomic<std::uint64_t> hidden[kHiddenReasonCount] = {};
    std::atomic<int> last_rejected_status{0};
  };
  Counters counters_;
};

}  // namespace shmstats::collector
