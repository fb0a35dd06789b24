// The configuration fuzzer: TOML text through apply_toml, and argv (with or without a --config
// file, with or without an environment variable) through load_config. Bounded per process: the
// --config file is one memfd, rewritten for each input, and the environment is one putenv entry
// in a fixed buffer, rewritten for each input; no file is left behind.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "collector/config.h"
#include "collector/exporters/registry.h"
#include "tests/fuzz/fuzz_inputs.h"

namespace shmstats::fuzz {
namespace {

enum class Path { kToml = 0, kArgv = 1, kArgvAndFile = 2, kEnvAndArgv = 3 };

// The --config file: an anonymous memory file, reached by its /proc/self/fd path.
class ConfigFile {
 public:
  ConfigFile() : fd_(::memfd_create("shmstats-fuzz-config", MFD_CLOEXEC)) {
    require(fd_ >= 0, "memfd_create for the --config file");
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ConfigFile(const ConfigFile&) = delete;
  ConfigFile& operator=(const ConfigFile&) = delete;
  ~ConfigFile() { ::close(fd_); }

  const std::string& write(std::string_view text) {
    require(::ftruncate(fd_, 0) == 0, "truncating the --config file");
    std::size_t done = 0;
    while (done < text.size()) {
      const ssize_t n =
          ::pwrite(fd_, text.data() + done, text.size() - done, static_cast<off_t>(done));
      require(n > 0, "writing the --config file");
      done += static_cast<std::size_t>(n);
    }
    return path_;
  }

 private:
  int fd_;
  std::string path_;
};

// One SHMSTATS_COLLECTOR_* variable, in a buffer that stays in the environment (putenv): each
// input rewrites it, so the environment never grows.
class EnvironmentEntry {
 public:
  EnvironmentEntry() {
    clear();
    require(::putenv(entry_) == 0, "putenv");
  }
  void set(std::string_view key_value) {
    constexpr std::string_view kPrefix = "SHMSTATS_COLLECTOR_";
    const std::size_t n = std::min(key_value.size(), sizeof(entry_) - kPrefix.size() - 1);
    std::memcpy(entry_, kPrefix.data(), kPrefix.size());
    std::memcpy(entry_ + kPrefix.size(), key_value.data(), n);
    entry_[kPrefix.size() + n] = '\0';
  }
  // A name load_config never reads.
  void clear() { std::strcpy(entry_, "SHMSTATS_FUZZ_UNUSED="); }

 private:
  char entry_[512] = {};
};

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    const std::size_t end = std::min(text.find('\n'), text.size());
    lines.emplace_back(text.substr(0, end));
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return lines;
}

void run_load_config(std::vector<std::string> args, const std::string* config_path) {
  // --config is the fuzzer's to give: a fuzzed path could name /dev/zero or a FIFO and hang.
  std::erase_if(args, [](const std::string& a) { return a.rfind("--config", 0) == 0; });
  args.insert(args.begin(), "shmstats-collector");
  if (config_path != nullptr) {
    args.emplace_back("--config");
    args.push_back(*config_path);
  }
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::string help;
  auto config = collector::load_config(static_cast<int>(argv.size()), argv.data(), help);
  if (!config) {
    require(config.error().code == shm::Errc::kInvalidOptions ||
                (config.error().code == shm::Errc::kNotFound && !help.empty()),
            "load_config fails with a bad option or with the help text");
    return;
  }
  const collector::Config& c = config.value();
  require(c.batch_size >= 1 && c.exporter_queue >= 1, "accepted sizes are in range");
  for (const auto& output : c.outputs) {
    const collector::ExporterType* type = collector::find_exporter_type(output.type);
    require(type != nullptr, "every output has a registered type");
    for (const auto& [key, value] : output.values.all()) {
      const collector::OptionSpec* spec = collector::find_output_option(*type, key);
      require(spec != nullptr, "every output key is declared by its type");
      require(static_cast<bool>(collector::check_option(*spec, value)),
              "every accepted output value passes its key's check");
    }
  }
  require(c.sender_id != 0 || c.host.empty(), "a sender id is chosen");
}

}  // namespace

int config_input(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static ConfigFile file;
  static EnvironmentEntry env;
  const auto path = static_cast<Path>(data[0] % 4);
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (path) {
    case Path::kToml: {
      collector::Config config;
      auto applied = collector::apply_toml(rest, "fuzz.toml", config);
      require(applied || !applied.error().message.empty(), "a TOML error explains itself");
      break;
    }
    case Path::kArgv:
      run_load_config(split_lines(rest), nullptr);
      break;
    case Path::kArgvAndFile: {
      const std::size_t nul = std::min(rest.find('\0'), rest.size());
      const std::string& config_path = file.write(rest.substr(std::min(nul + 1, rest.size())));
      run_load_config(split_lines(rest.substr(0, nul)), &config_path);
      break;
    }
    case Path::kEnvAndArgv: {
      const std::size_t eol = std::min(rest.find('\n'), rest.size());
      env.set(rest.substr(0, eol));
      run_load_config(split_lines(rest.substr(std::min(eol + 1, rest.size()))), nullptr);
      env.clear();
      break;
    }
  }
  return 0;
}

}  // namespace shmstats::fuzz
