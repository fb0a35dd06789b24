#include "shm/layout.h"

namespace shmstats::shm {

const char* to_string(DropReason reason) noexcept {
  switch (reason) {
    case DropReason::kRingFull:
      return "ring_full";
    case DropReason::kOldestOverwritten:
      return "oldest_overwritten";
    case DropReason::kPriorityShed:
      return "priority_shed";
    case DropReason::kSampledOut:
      return "sampled_out";
    case DropReason::kNoRing:
      return "no_ring";
    case DropReason::kInvalidSeries:
      return "invalid_series";
    case DropReason::kDisabled:
      return "disabled";
    case DropReason::kInvalidValue:
      return "invalid_value";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

const char* to_string(Kind kind) noexcept {
  switch (kind) {
    case Kind::kCounter:
      return "counter";
    case Kind::kGauge:
      return "gauge";
    case Kind::kGaugeDelta:
      return "gauge_delta";
    case Kind::kHistogram:
      return "histogram";
    case Kind::kTiming:
      return "timing";
    case Kind::kSet:
      return "set";
  }
  return "unknown";
}

const char* to_string(Overflow overflow) noexcept {
  switch (overflow) {
    case Overflow::kDefault:
      return "default";
    case Overflow::kFold:
      return "fold";
    case Overflow::kDropNewest:
      return "drop_newest";
    case Overflow::kDropOldest:
      return "drop_oldest";
    case Overflow::kPriority:
      return "priority";
    case Overflow::kSampled:
      return "sampled";
  }
  return "unknown";
}

}  // namespace shmstats::shm
