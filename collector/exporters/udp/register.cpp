// The udp output's keys and factory (collector/exporters/registry.h).
#include <fmt/format.h>

#include "collector/exporters/registry.h"
#include "collector/exporters/udp/udp.h"
#include "proto/datagram.h"

namespace shmstats::collector::outputs {

const ExporterType& udp() {
  static const ExporterType type{
      .type = "udp",
      .summary = "native protobuf datagrams for shmstats-recv",
      .short_key = "destination",
      .options =
          {
              {.key = "destination",
               .kind = OptionKind::kDestination,
               .help = "HOST:PORT, [IPV6]:PORT or unix:///path of the receiver",
               .required = true},
              {.key = "max_datagram_bytes",
               .kind = OptionKind::kUint,
               .default_value = std::to_string(UdpExporterOptions{}.max_datagram_bytes),
               .help = "largest datagram in bytes",
               .min = proto::kMinDatagramBytes,
               .max = proto::kMaxDatagramBytesIpv4,
               .zero_means =
                   fmt::format("{} on IPv4 and Unix sockets, {} on IPv6",
                               proto::kMaxDatagramBytesIpv4, proto::kMaxDatagramBytesIpv6)},
          },
      .create = [](const OptionValues& v,
                   const ExporterContext& context) -> shm::Result<std::unique_ptr<Exporter>> {
        UdpExporterOptions o;
        o.name = context.instance_name;
        o.destination = v.text("destination");
        o.sender_id = context.sender_id;
        o.sender_epoch = context.sender_epoch;
        o.host = context.host;
        o.max_datagram_bytes = v.uint("max_datagram_bytes");
        o.breaker_failures = static_cast<std::uint32_t>(v.uint(kCommonBreakerFailuresKey));
        o.breaker_open = v.duration(kCommonBreakerOpenKey);
        auto e = UdpExporter::create(o);
        if (!e) return e.error();
        return std::unique_ptr<Exporter>(std::move(e).value());
      }};
  return type;
}

}  // namespace shmstats::collector::outputs
