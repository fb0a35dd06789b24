// The text every binary prints for --version (three lines, without the last newline): the project
// version (CMakeLists.txt, passed as SHMSTATS_VERSION) and the two format versions that move on
// their own, the segment layout's (shm/layout.h) and the wire format's (proto/datagram.h). A
// collector and its producers must agree on the layout version; a collector and its receivers on
// the wire format version.
#pragma once

#include <string>
#include <string_view>

#include "proto/datagram.h"
#include "shm/layout.h"

namespace shmstats::common {

inline std::string version_text(std::string_view program) {
  std::string text(program);
  text += " " SHMSTATS_VERSION "\nsegment layout version ";
  text += std::to_string(shm::kLayoutVersion);
  text += "\nwire format version ";
  text += std::to_string(proto::kFormatVersion);
  return text;
}

}  // namespace shmstats::common
