#include "collector/fault.h"

#include <chrono>
#include <cstdlib>
#include <thread>

namespace shmstats::collector {
namespace {

// Passes everything to the exporter it wraps, except that send() never returns.
class HangingExporter final : public Exporter {
 public:
  explicit HangingExporter(std::unique_ptr<Exporter> inner) : inner_(std::move(inner)) {}
  const std::string& name() const override { return inner_->name(); }
  SendResult send(const Batch& /*batch*/) override {
    // Only the process's exit ends this thread (ExporterRunner::stop detaches it).
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  SendResult flush() override { return inner_->flush(); }
  std::chrono::milliseconds flush_interval() const override { return inner_->flush_interval(); }
  BreakerStatus breaker() const override { return inner_->breaker(); }
  std::string listen_address() const override { return inner_->listen_address(); }
  void describe_metrics(std::vector<ExporterSample>& out) const override {
    inner_->describe_metrics(out);
  }

 private:
  std::unique_ptr<Exporter> inner_;
};

}  // namespace

FaultOptions FaultOptions::from_environment() {
  FaultOptions faults;
  if (const char* name = std::getenv(kFaultHangExporterEnv)) faults.hang_exporter = name;
  if (const char* name = std::getenv(kFaultCorruptRequestsEnv)) faults.corrupt_requests = name;
  return faults;
}

std::unique_ptr<Exporter> with_faults(std::unique_ptr<Exporter> exporter,
                                      const FaultOptions& faults) {
  if (exporter && !faults.hang_exporter.empty() && exporter->name() == faults.hang_exporter) {
    return std::make_unique<HangingExporter>(std::move(exporter));
  }
  return exporter;
}

}  // namespace shmstats::collector
