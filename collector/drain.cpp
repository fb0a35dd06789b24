#include "collector/drain.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>
#include <thread>

namespace shmstats::collector {

using Clock = std::chrono::steady_clock;

namespace {
std::uint64_t monotonic_ns() { return shm::clock_ns(CLOCK_MONOTONIC); }
// A segment still short or without its magic after this long is quarantined.
constexpr auto kNotReadyGrace = std::chrono::seconds(5);
constexpr auto kHousekeepingInterval = std::chrono::milliseconds(50);

// True if `name` has the shape shm::make_segment_name gives it ("<prefix>.<pid>.<start_time>.<n>")
// and the process it names is gone. Read from the right, since a prefix may hold dots.
bool named_owner_is_dead(std::string_view name) {
  std::uint64_t fields[3] = {};  // pid, start time, n
  for (int i = 2; i >= 0; --i) {
    const auto dot = name.rfind('.');
    if (dot == std::string_view::npos) return false;
    const std::string_view digits = name.substr(dot + 1);
    const char* end = digits.data() + digits.size();
    const auto [stop, ec] = std::from_chars(digits.data(), end, fields[i]);
    if (digits.empty() || ec != std::errc{} || stop != end) return false;
    name = name.substr(0, dot);
  }
  const auto pid = fields[0];
  if (name.empty() || pid == 0 ||
      pid > static_cast<std::uint64_t>(std::numeric_limits<pid_t>::max())) {
    return false;
  }
  return shm::owner_status(static_cast<pid_t>(pid), fields[1]) == shm::OwnerStatus::kDead;
}
}  // namespace

DrainLoop::DrainLoop(DrainOptions options, std::vector<ExporterRunner*> exporters,
                     DeliveryTracker* delivery)
    : options_(std::move(options)),
      exporters_(std::move(exporters)),
      delivery_(delivery),
      discovery_(options_.prefix, options_.rescan_interval),
      clock_(ClockMap::calibrate()),
      batch_(std::make_unique<Batch>()) {}

void DrainLoop::discover() {
  for (const auto& name : discovery_.poll(known_)) {
    QuarantineReason refusal = QuarantineReason::kInvalid;
    auto source = Source::open(name, options_.policy, &refusal);
    if (!source) {
      const auto code = source.error().code;
      if (code == shm::Errc::kNotFound) continue;  // removed meanwhile
      if (code == shm::Errc::kNotReady) {
        // A producer killed while making its segment (file created, header not yet published)
        // leaves a file that never becomes ready, but its name still says whose it is: once that
        // process is gone, the file is removed like any dead producer's segment (issue #5).
        if (named_owner_is_dead(name) && shm::unlink_segment(name)) {
          pending_since_.erase(name);
          counters_.segments_reclaimed.fetch_add(1, std::memory_order_relaxed);
          spdlog::info("removed segment {}: its producer died while creating it", name);
          continue;
        }
        // Being created: retry on the next discovery, but not forever.
        const auto first = pending_since_.try_emplace(name, Clock::now()).first->second;
        if (Clock::now() - first < kNotReadyGrace) continue;
      }
      pending_since_.erase(name);
      quarantine(name, refusal, source.error().message);
      continue;
    }
    pending_since_.erase(name);
    known_.insert(name);
    counters_.segments_attached.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("attached segment {} ({} rings of {})", name, source.value()->ring_count(),
                 source.value()->ring_capacity());
    source.value()->set_origin_id(next_origin_id_++);
    sources_.push_back(std::move(source).value());
  }
  counters_.segments_active.store(sources_.size(), std::memory_order_relaxed);
}

void DrainLoop::quarantine(const std::string& name, QuarantineReason reason,
                           const std::string& message) {
  known_.insert(name);
  quarantine_reasons_[name] = fmt::format("{}: {}", to_string(reason), message);
  counters_.segments_quarantined.fetch_add(1, std::memory_order_relaxed);
  counters_.segments_quarantined_by_reason[static_cast<std::size_t>(reason)].fetch_add(
      1, std::memory_order_relaxed);
  // Rate-limited: whoever can create files in /dev/shm can make segments to be refused. The
  // segments left without a line are counted in the next line (and all of them on /health).
  quarantine_log_.log(spdlog::level::warn, {}, "quarantined segment {} ({}): {}", name,
                      to_string(reason), message);
}

void DrainLoop::detach_corrupt() {
  for (auto it = sources_.begin(); it != sources_.end();) {
    const Quarantine* q = (*it)->check();
    if (q == nullptr) {
      ++it;
      continue;
    }
    // Detached: the mapping goes with the Source. What was drained before is in the batch (its
    // series definitions are shared with it); the segment itself is left in place, untrusted.
    quarantine((*it)->name(), q->reason, q->message);
    retired_invalid_events_ += (*it)->invalid_events();
    it = sources_.erase(it);
  }
  counters_.segments_active.store(sources_.size(), std::memory_order_relaxed);
}

void DrainLoop::forget_vanished_quarantined() {
  const auto now = Clock::now();
  if (now - last_quarantine_prune_ < options_.rescan_interval) return;
  last_quarantine_prune_ = now;
  for (auto it = quarantine_reasons_.begin(); it != quarantine_reasons_.end();) {
    struct stat st {};
    const std::string path = std::string(shm::kShmDirectory) + "/" + it->first;
    if (::lstat(path.c_str(), &st) == 0 || errno != ENOENT) {
      ++it;
      continue;
    }
    known_.erase(it->first);
    it = quarantine_reasons_.erase(it);
  }
}

std::size_t DrainLoop::round(bool& pressure) {
  std::size_t total = 0;
  pressure = false;
  for (auto& source : sources_) {
    const auto capacity = static_cast<double>(source->ring_capacity());
    for (std::uint32_t r = 0; r < source->ring_count(); ++r) {
      // Turned corrupt: nothing more is read from it; the next housekeeping pass detaches it.
      if (source->quarantine() != nullptr) break;
      // A ring that was over the pressure mark last time gets the large quota this time.
      const std::size_t quota = take_tokens(options_.ring_quota);
      const DrainResult res = source->drain_ring(r, quota, clock_, batch_id_, *batch_);
      std::size_t drained = res.events;
      if (static_cast<double>(res.fill_before) > options_.pressure_fill * capacity) {
        pressure = true;
        if (quota > 0 && res.events == quota) {
          drained +=
              source
                  ->drain_ring(r, take_tokens(options_.pressure_quota), clock_, batch_id_, *batch_)
                  .events;
        }
      }
      // Unused tokens go back (a ring had fewer events than its quota).
      if (options_.max_events_per_second != 0 && res.events < quota) {
        tokens_ += static_cast<double>(quota - res.events);
      }
      // The segment's quarantine (its reason names the ring) is logged when it is detached.
      if (res.corrupt) counters_.rings_quarantined.fetch_add(1, std::memory_order_relaxed);
      total += drained;
      if (batch_->size() >= options_.batch_size) {
        flush(FlushReason::kSize);
        // Every queue full: stop here and leave the rest in the rings (back-pressure).
        if (!exporters_have_room()) return total;
      }
    }
  }
  return total;
}

void DrainLoop::take_folds() {
  const std::int64_t now = clock_.now_unix_ns();
  for (auto& source : sources_) source->take_folds(now, batch_id_, *batch_);
}

void DrainLoop::flush(FlushReason reason) {
  if (batch_->size() == 0) return;
  batch_->created_monotonic_ns = monotonic_ns();
  batch_->id = batch_id_;
  counters_.events_received.fetch_add(batch_->points.size(), std::memory_order_relaxed);
  counters_.aggregates_received.fetch_add(batch_->aggregates.size(), std::memory_order_relaxed);
  std::uint64_t folded = 0;
  for (const auto& a : batch_->aggregates) folded += a.count;
  counters_.folded_values_received.fetch_add(folded, std::memory_order_relaxed);
  counters_.batches.fetch_add(1, std::memory_order_relaxed);
  counters_.flushes[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
  BatchPtr sealed(std::move(batch_));
  if (delivery_ != nullptr) delivery_->expect(sealed->id, exporters_.size());
  for (ExporterRunner* e : exporters_) e->offer(sealed);
  batch_ = std::make_unique<Batch>();
  batch_->points.reserve(options_.batch_size);
  batch_first_at_ = Clock::time_point{};
  ++batch_id_;
}

void DrainLoop::reclaim() {
  for (auto it = sources_.begin(); it != sources_.end();) {
    Source& s = **it;
    // Order matters: check that the producer is gone first, then that nothing waits. A producer
    // that is gone pushes no more, so empty now means empty for good.
    if (!s.producer_finished() || s.waiting() != 0) {
      ++it;
      continue;
    }
    s.take_folds(clock_.now_unix_ns(), batch_id_, *batch_);
    const std::string name = s.name();
    const auto st = s.stats();
    if (auto r = shm::unlink_segment(name); !r) {
      spdlog::warn("reclaiming {}: {}", name, r.error().message);
    } else {
      // Gone from /dev/shm, so discovery cannot list it again: forget the name, or known_ would
      // grow by one name per producer for the collector's whole life (issue #5).
      known_.erase(name);
    }
    spdlog::info("reclaimed segment {} (service {}, pid {}, {}; drained {} events)", name,
                 st.service, st.pid, st.owner_alive ? "closed" : "owner dead", st.drained);
    counters_.segments_reclaimed.fetch_add(1, std::memory_order_relaxed);
    retired_invalid_events_ += st.invalid_events;
    it = sources_.erase(it);
  }
  counters_.segments_active.store(sources_.size(), std::memory_order_relaxed);
}

void DrainLoop::refresh_stats(bool force) {
  const auto now = Clock::now();
  if (!force && now - last_stats_ < options_.stats_interval) return;
  last_stats_ = now;
  std::vector<SourceStats> fresh;
  fresh.reserve(sources_.size());
  std::uint64_t invalid = 0;
  for (const auto& s : sources_) {
    fresh.push_back(s->stats());
    invalid += fresh.back().invalid_events;
  }
  std::vector<std::pair<std::string, std::string>> q(quarantine_reasons_.begin(),
                                                     quarantine_reasons_.end());
  std::sort(q.begin(), q.end());
  std::lock_guard lock(stats_mutex_);
  stats_.swap(fresh);
  quarantined_copy_.swap(q);
  // Those of detached and reclaimed segments too, so the counter never goes down.
  counters_.invalid_events.store(retired_invalid_events_ + invalid, std::memory_order_relaxed);
}

std::size_t DrainLoop::take_tokens(std::size_t want) noexcept {
  if (options_.max_events_per_second == 0) return want;
  const auto now = Clock::now();
  const double rate = static_cast<double>(options_.max_events_per_second);
  if (tokens_at_ != Clock::time_point{}) {
    // Refill for the time passed, holding at most a tenth of a second's worth.
    tokens_ = std::min(rate / 10 + 1,
                       tokens_ + rate * std::chrono::duration<double>(now - tokens_at_).count());
  }
  tokens_at_ = now;
  const double granted = std::min(tokens_, static_cast<double>(want));
  tokens_ -= std::floor(granted);
  return static_cast<std::size_t>(granted);
}

bool DrainLoop::exporters_have_room() const noexcept {
  if (exporters_.empty()) return true;
  for (const ExporterRunner* e : exporters_) {
    if (e->has_room()) return true;
  }
  return false;
}

std::size_t DrainLoop::step(bool shutting_down) {
  // Discovery and reclaim make system calls (inotify read, kill(pid, 0), /proc): every round
  // would waste them under load, so they run every housekeeping interval.
  const auto started = Clock::now();
  const bool housekeeping = shutting_down || started - last_housekeeping_ >= kHousekeepingInterval;
  if (housekeeping) {
    last_housekeeping_ = started;
    discover();
  }
  bool pressure = false;
  std::size_t drained = 0;
  if (exporters_have_room()) {
    drained = round(pressure);
  } else {
    counters_.backpressure_rounds.fetch_add(1, std::memory_order_relaxed);
  }
  counters_.rounds.fetch_add(1, std::memory_order_relaxed);
  const auto now = Clock::now();
  if (shutting_down || now - last_folds_ >= options_.fold_interval) {
    last_folds_ = now;
    take_folds();
  }
  // The linger starts when the batch gets its first item, not at the last flush: an event that
  // finds an empty batch waits flush_interval at most, never a leftover of someone else's.
  if (batch_->size() == 0) {
    batch_first_at_ = Clock::time_point{};
  } else if (batch_first_at_ == Clock::time_point{}) {
    batch_first_at_ = now;
  }
  const bool aged = batch_->size() > 0 && now - batch_first_at_ >= options_.flush_interval;
  if (shutting_down) {
    flush(FlushReason::kShutdown);
  } else if (!exporters_have_room()) {
    // Back-pressure: offering the batch now would drop it. Its events were taken from the rings
    // already, so it waits here for queue room (the drain is paused meanwhile, so it cannot grow
    // past one round's worth).
  } else if (pressure && batch_->size() > 0) {
    flush(FlushReason::kPressure);
  } else if (aged) {
    flush(FlushReason::kAge);
  }
  if (housekeeping) {
    // Before reclaim: a segment that turned corrupt is detached, never reclaimed (unlinked) on
    // the word of its rewritten header.
    detach_corrupt();
    forget_vanished_quarantined();
    reclaim();
    for (auto& source : sources_) {
      counters_.slot_bytes_released.fetch_add(source->release_drained_pages(),
                                              std::memory_order_relaxed);
    }
  }
  refresh_stats(shutting_down);
  return drained;
}

void DrainLoop::run(const std::atomic<bool>& stop) {
  auto sleep = options_.idle_sleep_min;
  while (!stop.load(std::memory_order_relaxed)) {
    const std::size_t drained = step(false);
    if (drained > 0) {
      sleep = options_.idle_sleep_min;
      continue;  // under load: no sleep
    }
    counters_.idle_rounds.fetch_add(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(sleep);
    sleep = std::min(sleep * 2, options_.idle_sleep_max);
  }
  // Shutdown: drain until every ring is empty (bounded: producers may still be pushing).
  for (int i = 0; i < 1000; ++i) {
    if (step(true) == 0) break;
  }
  step(true);
}

std::vector<SourceStats> DrainLoop::source_stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

std::vector<std::pair<std::string, std::string>> DrainLoop::quarantined() const {
  std::lock_guard lock(stats_mutex_);
  return quarantined_copy_;
}

}  // namespace shmstats::collector
