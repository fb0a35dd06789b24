// The example configuration: every key the collector reads, with its default and help, as a TOML
// file whose assignments are commented out (`shmstats-collector --print-config`). It is made from
// the global keys (config.h) and the output registry (exporters/registry.h), so it lists a new key
// or output type as soon as it exists; the build installs its output as the example file, and a
// test checks that the installed file is what the binary prints.
#pragma once

#include <string>

namespace shmstats::collector {

// Assignments are lines `#key = value` (no space after '#'); removing that '#' from all of them
// gives a file the collector accepts with the same meaning as no file at all. Required keys
// without a default, and the [[exporter]] example, are comments with a space after '#'.
std::string example_config_toml();

}  // namespace shmstats::collector
