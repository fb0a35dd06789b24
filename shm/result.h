// The one Result alias for cold-path boundaries inside shmstats (shm, collector, proto, tools).
// The producer's public header has its own small Result so services never see Boost types.
#pragma once

#include <boost/outcome/policy/terminate.hpp>
#include <boost/outcome/result.hpp>
#include <string>

namespace shmstats::shm {

enum class Errc {
  kInvalidName,  // series name: length or character set
  kInvalidTag,   // tag key/value: length, character set, UTF-8
  kTooManyTags,
  kDuplicateTag,
  kSeriesTableFull,
  kStringPoolFull,
  kKindMismatch,    // same name+tags registered with another kind
  kInvalidOptions,  // segment options out of range
  kNoSpace,         // the shared-memory filesystem is full
  kExists,          // a segment of that name exists already
  kSystem,          // any other OS error (message has errno text)
  kNotFound,
  kInvalidSegment,  // validation of an untrusted segment failed
  kVersionMismatch,
  kSeriesTooLarge,  // name + tags together exceed kMaxSeriesTextBytes
  kNotReady,        // the segment is still being created (magic not published yet): retry
};

struct Error {
  Errc code;
  std::string message;
};

template <class T>
using Result = boost::outcome_v2::result<T, Error, boost::outcome_v2::policy::terminate>;

inline auto success() { return boost::outcome_v2::success(); }

}  // namespace shmstats::shm
