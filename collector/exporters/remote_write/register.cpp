// The remote_write output's keys and factory (collector/exporters/registry.h).
#include "collector/exporters/http_sender.h"
#include "collector/exporters/prometheus/keys.h"
#include "collector/exporters/registry.h"
#include "collector/exporters/remote_write/remote_write.h"
#include "collector/fault.h"

namespace shmstats::collector::outputs {
const ExporterType& remote_write() {
  static const ExporterType type = [] {
    const RemoteWriteOptions d;
    ExporterType t{
        .type = "remote_write",
        .summary = "Prometheus remote-write 1.0 of aggregated series",
        .short_key = "url",
        .options =
            {
                {.key = "url",
                 .kind = OptionKind::kText,
                 .help = "http:// or https:// URL of the remote-write endpoint",
                 .max = 4096,
                 .required = true,
                 .check = [](const std::string& v) -> shm::Result<void> {
                   auto url = parse_http_url(v);
                   if (!url) return url.error();
                   return shm::success();
                 }},
                {.key = "interval",
                 .kind = OptionKind::kDuration,
                 .default_value = duration_text(d.interval),
                 .help = "one sample per series per interval",
                 .min = 100,
                 .max = 3'600'000},
                {.key = "timeout",
                 .kind = OptionKind::kDuration,
                 .default_value = duration_text(d.timeout),
                 .help = "one request, from connecting to the answer",
                 .min = 10,
                 .max = 600'000},
                {.key = "retry_for",
                 .kind = OptionKind::kDuration,
                 .default_value = duration_text(d.retry_for),
                 .help = "a request answered 5xx/429 or not at all is retried at most this long",
                 .max = 86'400'000},
                {.key = "max_backoff",
                 .kind = OptionKind::kDuration,
                 .default_value = duration_text(d.max_backoff),
                 .help = "the longest wait between two attempts (back-off doubles from 100ms)",
                 .min = 100,
                 .max = 600'000},
                {.key = "max_samples",
                 .kind = OptionKind::kUint,
                 .default_value = std::to_string(d.max_samples),
                 .help = "samples per request at most",
                 .min = 1,
                 .max = 1'000'000},
                {.key = "max_bytes",
                 .kind = OptionKind::kUint,
                 .default_value = std::to_string(d.max_bytes),
                 .help = "bytes per request at most before compression (about)",
                 .min = 1024,
                 .max = 256ULL << 20},
                {.key = "max_pending",
                 .kind = OptionKind::kUint,
                 .default_value = std::to_string(d.max_pending),
                 .help = "requests waiting to be sent; beyond it the oldest is dropped, counted",
                 .min = 1,
                 .max = 1'000'000},
                {.key = "ca_file",
                 .kind = OptionKind::kText,
                 .help = "https: CA bundle (PEM) to verify the server with; empty: the system's",
                 .max = 4096},
                {.key = "basic_auth_user",
                 .kind = OptionKind::kText,
                 .help =
                     "basic auth user name (the password is read from basic_auth_password_file)",
                 .max = 256},
                {.key = "basic_auth_password_file",
                 .kind = OptionKind::kText,
                 .help = "file holding the basic auth password (one line)",
                 .max = 4096},
                {.key = "bearer_token_file",
                 .kind = OptionKind::kText,
                 .help = "file holding a bearer token (one line)",
                 .max = 4096},
                {.key = "headers",
                 .kind = OptionKind::kText,
                 .help = "extra headers, \"Name: value; Name2: value2\" (e.g. a tenant header)",
                 .max = 65536,
                 .check = [](const std::string& v) -> shm::Result<void> {
                   auto h = parse_headers(v);
                   if (!h) return h.error();
                   return shm::success();
                 }},
            },
        .create = [](const OptionValues& v,
                     const ExporterContext& context) -> shm::Result<std::unique_ptr<Exporter>> {
          RemoteWriteOptions o;
          o.name = context.instance_name;
          o.view.host = context.host;
          o.url = v.text("url");
          o.interval = v.duration("interval");
          o.timeout = v.duration("timeout");
          o.retry_for = v.duration("retry_for");
          o.max_backoff = v.duration("max_backoff");
          o.max_samples = v.uint("max_samples");
          o.max_bytes = v.uint("max_bytes");
          o.max_pending = v.uint("max_pending");
          o.ca_file = v.text("ca_file");
          o.basic_auth_user = v.text("basic_auth_user");
          o.basic_auth_password_file = v.text("basic_auth_password_file");
          o.bearer_token_file = v.text("bearer_token_file");
          auto headers = parse_headers(v.text("headers"));
          if (!headers) return headers.error();
          o.headers = std::move(headers).value();
          if (auto r = apply_aggregation_keys(v, o.stage, o.view); !r) return r.error();
          o.fault_corrupt_bodies = FaultOptions::from_environment().corrupt_requests == o.name;
          auto e = RemoteWriteExporter::create(std::move(o));
          if (!e) return e.error();
          return std::unique_ptr<Exporter>(std::move(e).value());
        }};
    for (auto& key : aggregation_keys()) t.options.push_back(std::move(key));
    return t;
  }();
  return type;
}

}  // namespace shmstats::collector::outputs
