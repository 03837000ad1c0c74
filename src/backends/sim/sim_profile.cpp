// What the sim backend reports of a device profile, and the checks a profile passes first.
#include "backends/sim/sim_profile.hpp"

#include <fmt/format.h>

#include <cmath>
#include <utility>

#include "memento/error.hpp"

namespace memento::sim {
namespace {

bool positive_finite(double x) { return std::isfinite(x) && x > 0; }

}  // namespace

DeviceInfo sim_info(const DeviceProfile& profile) {
  DeviceInfo info;
  info.kind = BackendKind::sim;
  info.name = "sim:" + profile.name;
  info.capacity = profile.capacity;
  info.numa_node = -1;
  // The rates the modelled device's own backend states, so that the runtime decides as it
  // would there (a measured profile records them); else the profile's figures.
  const StatedRates stated = profile.stated_rates.value_or(
      StatedRates{profile.matrix_flops, profile.vector_flops, profile.hbm_bandwidth,
                  profile.h2d_bandwidth, profile.d2h_bandwidth});
  info.matrix_flops = stated.matrix_flops;
  info.vector_flops = stated.vector_flops;
  info.memory_bandwidth = stated.memory_bandwidth;
  info.h2d_bandwidth = stated.h2d_bandwidth;
  info.d2h_bandwidth = stated.d2h_bandwidth;
  info.rates_source = profile.stated_rates
                          ? "what the measured device's backend stated: " + profile.source
                          : "the sim profile's figures: " + profile.source;
  // A model: kernels and copies only advance clocks, memory is address space.
  info.executes_kernels = false;
  info.holds_data = false;
  info.host_addressable_memory = false;
  info.virtual_clock = true;
  info.supports_bf16 = true;
  info.numa_node_nearest_device = false;
  return info;
}

const DeviceProfile& checked_profile(const DeviceProfile& profile) {
  const auto field = [&](double value, const char* name) {
    MEMENTO_EXPECTS(positive_finite(value),
                    fmt::format("device profile '{}': {} is {}; it must be positive and finite",
                                profile.name, name, value),
                    ConfigError);
  };
  MEMENTO_EXPECTS(
      profile.capacity > 0,
      fmt::format("device profile '{}': capacity is 0; it must be positive bytes", profile.name),
      ConfigError);
  field(profile.matrix_flops, "matrix_flops");
  field(profile.vector_flops, "vector_flops");
  field(profile.hbm_bandwidth, "hbm_bandwidth");
  field(profile.h2d_bandwidth, "h2d_bandwidth");
  field(profile.d2h_bandwidth, "d2h_bandwidth");
  const auto seconds = [&](double value, const char* name) {
    MEMENTO_EXPECTS(std::isfinite(value) && value >= 0,
                    fmt::format("device profile '{}': {} is {}; it must be finite seconds >= 0",
                                profile.name, name, value),
                    ConfigError);
  };
  seconds(profile.launch_latency, "launch_latency");
  seconds(profile.kernel_overhead, "kernel_overhead");
  seconds(profile.segment_allocate_seconds, "segment_allocate_seconds");
  seconds(profile.segment_free_seconds, "segment_free_seconds");
  seconds(profile.sync_latency, "sync_latency");
  seconds(profile.kernel_gap, "kernel_gap");
  MEMENTO_EXPECTS(profile.copy_overlap >= 0 && profile.copy_overlap <= 1,
                  fmt::format("device profile '{}': copy_overlap is {}; accepted: 0 to 1",
                              profile.name, profile.copy_overlap),
                  ConfigError);
  for (const auto& [what, v] :
       {std::pair{"copy_slowdown_under_kernels", profile.copy_slowdown_under_kernels},
        std::pair{"copy_slowdown_both_ways", profile.copy_slowdown_both_ways}})
    MEMENTO_EXPECTS(std::isfinite(v) && v >= 1,
                    fmt::format("device profile '{}': {} is {}; accepted: a finite number >= 1",
                                profile.name, what, v),
                    ConfigError);
  return profile;
}

}  // namespace memento::sim
