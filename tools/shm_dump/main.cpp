// shm-dump: shows the shmstats segments in /dev/shm (read-only). Parses arguments, handles
// SIGINT/SIGTERM in watch mode and prints what tools/shm_dump/dump.h describes.
#include <fmt/format.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <string>

#include "common/version.h"
#include "shm/mapping_guard.h"
#include "shm/segment.h"
#include "tools/shm_dump/dump.h"

namespace {

struct Args {
  std::string prefix{shmstats::shm::kDefaultPrefix};
  std::string segment;
  bool series = false;
  bool json = false;
  double watch_s = 0;
  std::uint64_t count = 0;  // 0: until a signal
};

// One line for stderr: CLI11 messages may span lines.
std::string one_line(std::string text) {
  for (auto& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

void print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void show(const Args& args, bool watching, std::uint64_t refresh) {
  const auto snapshot = shmstats::tools::snapshot_json(
      shmstats::tools::segment_names(args.prefix, args.segment), args.series);
  if (args.json) {
    // Watch mode: one document per line. Untrusted bytes that are not UTF-8 are replaced.
    print(snapshot.dump(watching ? -1 : 2, ' ', false, nlohmann::json::error_handler_t::replace) +
          "\n");
    return;
  }
  std::string text;
  if (watching) {
    // Home the cursor and clear the screen, then a title line like watch(1)'s.
    const std::time_t now = std::time(nullptr);
    char clock[32] = "";
    std::tm local{};
    if (::localtime_r(&now, &local) != nullptr) std::strftime(clock, sizeof(clock), "%T", &local);
    text = fmt::format(
        "\x1b[H\x1b[2J"
        "shm-dump  {}  every {}s  refresh {}  {}\n\n",
        args.segment.empty() ? "prefix " + args.prefix : "segment " + args.segment, args.watch_s,
        refresh, clock);
  }
  print(text + shmstats::tools::render_text(snapshot));
}

int run(int argc, char** argv) {
  Args args;
  CLI::App app{
      "Shows the shmstats shared-memory segments: owner, state, rings, drops, series.\n"
      "Maps segments read-only and never changes them.",
      "shm-dump"};
  app.add_option("--prefix", args.prefix, "List the segments /dev/shm/<P>.* (default: shmstats)")
      ->type_name("P")
      ->check(CLI::Validator(
          [](std::string& p) -> std::string {
            if (p.empty() || p.size() > 64 ||
                p.find_first_not_of(
                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                    std::string::npos) {
              return "the prefix must be 1 to 64 characters of [A-Za-z0-9_-]";
            }
            return {};
          },
          ""));
  app.add_option("--segment", args.segment, "Show only the segment NAME (as in /dev/shm)")
      ->type_name("NAME")
      ->check(CLI::Validator(
          [](std::string& n) -> std::string {
            if (n.empty() || n.size() > 255 || n.find('/') != std::string::npos) {
              return "a segment name is 1 to 255 characters without '/'";
            }
            return {};
          },
          ""));
  app.add_flag("--series", args.series, "Also list each segment's series (id, kind, name, tags)");
  app.add_flag("--json", args.json, "Print one JSON document (one per line with --watch)");
  auto* watch = app.add_option("--watch", args.watch_s,
                               "Refresh every SECONDS (0.01 to 86400) until SIGINT or SIGTERM")
                    ->check(CLI::Number.description(""))
                    ->check(CLI::Range(0.01, 86400.0).description(""))
                    ->type_name("SECONDS");
  app.add_option("--count", args.count, "With --watch: stop after N refreshes")
      ->check(CLI::Validator(
          [](std::string& n) -> std::string {
            constexpr std::size_t kMaxDigits = 18;  // fits std::uint64_t
            const bool ok = !n.empty() && n.size() <= kMaxDigits &&
                            n.find_first_not_of("0123456789") == std::string::npos &&
                            n.find_first_not_of('0') != std::string::npos;
            return ok ? std::string() : "N must be a whole number from 1, at most 18 digits";
          },
          ""))
      ->type_name("N")
      ->needs(watch);
  app.set_version_flag("--version", shmstats::common::version_text("shm-dump"),
                       "Print the version (project, segment layout, wire format)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "shm-dump: %s (see --help)\n", one_line(e.what()).c_str());
    return 2;
  }

  // A segment file truncated while we read it must not kill us with SIGBUS: it is listed as
  // invalid instead (shm/mapping_guard.h).
  if (auto guarded = shmstats::shm::install_mapping_fault_handler(); !guarded) {
    std::fprintf(stderr, "shm-dump: %s\n", one_line(guarded.error().message).c_str());
    return 1;
  }
  const bool watching = args.watch_s > 0;
  if (!watching) {
    show(args, false, 1);
    return 0;
  }
  // The stop signals are blocked and taken synchronously by sigtimedwait, which doubles as the
  // interval timer: a signal ends the wait at once, and no handler runs mid-print.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  if (const int err = pthread_sigmask(SIG_BLOCK, &stop, nullptr); err != 0) {
    std::fprintf(stderr, "shm-dump: blocking SIGINT/SIGTERM failed: %s\n", std::strerror(err));
    return 1;
  }
  double whole_s = 0;
  const double frac_s = std::modf(args.watch_s, &whole_s);
  const timespec interval{static_cast<std::time_t>(whole_s), static_cast<long>(frac_s * 1e9)};
  for (std::uint64_t refresh = 1;; ++refresh) {
    show(args, true, refresh);
    if (args.count != 0 && refresh >= args.count) return 0;
    int sig = -1;
    do {
      sig = sigtimedwait(&stop, nullptr, &interval);
    } while (sig < 0 && errno == EINTR);
    if (sig > 0) return 0;
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shm-dump: %s\n", one_line(e.what()).c_str());
    return 1;
  }
}
