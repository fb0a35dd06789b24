// shmstats-recv: the receiving end of the collector's native UDP output. Parses arguments, blocks
// SIGINT/SIGTERM (taken synchronously by sigwait) and runs what recv/receiver.h describes.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "common/sd_notify.h"
#include "common/version.h"
#include "recv/protobuf_log.h"
#include "recv/receiver.h"

namespace {

namespace recv = shmstats::recv;

constexpr int kExitBadArguments = 2;
constexpr int kExitFailure = 1;
constexpr std::size_t kMaxQueueLines = std::size_t{1} << 24;
constexpr std::size_t kMaxSenders = 65536;

// One line for stderr: CLI11 messages may span lines.
std::string one_line(std::string text) {
  for (auto& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

int run(int argc, char** argv) {
  recv::ReceiverOptions options;
  CLI::App app{
      "Receives shmstats datagrams over UDP, checks and decodes them, tracks each sender's\n"
      "sequence, and appends one JSON object per event to a file (JSON Lines).",
      "shmstats-recv"};
  app.add_option("--listen", options.listen,
                 "UDP address to receive on (default 127.0.0.1:9125; port 0 picks a free one)")
      ->type_name("HOST:PORT");
  app.add_option("--jsonl", options.jsonl,
                 "File to append JSON Lines to, or - for stdout (the default)")
      ->type_name("FILE");
  app.add_option("--http", options.http,
                 "Serve GET /metrics (Prometheus text) and GET /health here (host defaults to "
                 "127.0.0.1; port 0 picks a free one)")
      ->type_name("HOST:PORT");
  app.add_option("--queue-lines", options.queue_lines,
                 "Lines the writer may fall behind before new ones are dropped (default 65536)")
      ->check(CLI::Range(std::size_t{1}, kMaxQueueLines).description(""))
      ->type_name("N");
  app.add_option("--max-senders", options.max_senders,
                 "Senders tracked at once; the least recent is forgotten (default 1024)")
      ->check(CLI::Range(std::size_t{1}, kMaxSenders).description(""))
      ->type_name("N");
  app.set_version_flag("--version", shmstats::common::version_text("shmstats-recv"),
                       "Print the version (project, segment layout, wire format)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "shmstats-recv: %s (see --help)\n", one_line(e.what()).c_str());
    return kExitBadArguments;
  }

  // Block the stop signals before any thread starts, so every thread inherits the mask and only
  // sigwait below takes them. A closed stdout or HTTP peer is an error to count, not a death.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  if (const int err = pthread_sigmask(SIG_BLOCK, &stop, nullptr); err != 0) {
    std::fprintf(stderr, "shmstats-recv: blocking SIGINT/SIGTERM failed: %s\n", std::strerror(err));
    return kExitFailure;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // Before any datagram is parsed: protobuf would log a line per hostile string field.
  recv::install_protobuf_log_limit();

  auto created = recv::Receiver::create(options);
  if (!created) {
    const auto& error = created.error();
    std::fprintf(stderr, "shmstats-recv: %s\n", one_line(error.message).c_str());
    return error.code == shmstats::shm::Errc::kInvalidOptions ? kExitBadArguments : kExitFailure;
  }
  auto receiver = std::move(created).value();
  receiver->start();

  // Tests and scripts read the bound ports from these lines; keep them off the JSON Lines stream.
  FILE* announce = options.jsonl == "-" ? stderr : stdout;
  std::fprintf(announce, "listening udp %s\n", receiver->udp_address().c_str());
  if (!receiver->http_address().empty()) {
    std::fprintf(announce, "listening http %s\n", receiver->http_address().c_str());
  }
  std::fflush(announce);
  // systemd (Type=notify): listening and writing.
  std::string notify_error;
  if (shmstats::common::notify_systemd("READY=1", &notify_error) ==
      shmstats::common::NotifyResult::kFailed) {
    std::fprintf(stderr, "shmstats-recv: readiness notification: %s\n", notify_error.c_str());
  }

  int sig = 0;
  while (sigwait(&stop, &sig) != 0) {
  }
  (void)shmstats::common::notify_systemd("STOPPING=1");
  receiver->shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmstats-recv: %s\n", one_line(e.what()).c_str());
    return kExitFailure;
  }
}
