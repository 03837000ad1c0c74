// Device profiles as JSON files: what `memento calibrate` writes and `--device
// sim:PROFILE.json` reads; and the one duration formula of a profile (kernel_seconds).
#include <fmt/format.h>

#include <cmath>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "common/files.hpp"
#include "common/text.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kBackward = " backward";
constexpr int kFormatVersion = 1;

bool same_cost(double a, double b) { return std::abs(a - b) <= 1e-9 * std::max(1.0, std::abs(a)); }

const KernelEfficiency* efficiency_of(const DeviceProfile& p, std::string_view name) {
  for (const KernelEfficiency& e : p.efficiencies)
    if (e.name == name) return &e;
  return nullptr;
}

}  // namespace

double DeviceProfile::kernel_seconds(std::string_view kernel, const KernelCost& cost) const {
  if (cost.seconds) return *cost.seconds;
  for (const MeasuredKernel& k : kernels) {
    if (k.name == kernel && same_cost(k.flops, cost.flops) && same_cost(k.bytes, cost.bytes))
      return k.seconds;
  }
  const double roofline = roofline_seconds(cost, matrix_flops, vector_flops, hbm_bandwidth);
  if (roofline == 0) return 0;  // an empty kernel: no device time, as on the datasheet
  const KernelEfficiency* e = efficiency_of(*this, kernel);
  if (e == nullptr && kernel.ends_with(kBackward))
    e = efficiency_of(*this, kernel.substr(0, kernel.size() - kBackward.size()));
  return roofline / (e != nullptr ? e->efficiency : 1.0) + kernel_overhead;
}

std::string device_profile_json(const DeviceProfile& p) {
  Json kernels = Json::array();
  for (const MeasuredKernel& k : p.kernels) {
    kernels.push_back({{"name", k.name},
                       {"flops", k.flops},
                       {"bytes", k.bytes},
                       {"tensor_cores", k.tensor_cores},
                       {"seconds", k.seconds},
                       {"samples", k.samples}});
  }
  Json efficiencies = Json::object();
  for (const KernelEfficiency& e : p.efficiencies) efficiencies[e.name] = e.efficiency;
  Json j = {{"memento_device_profile", kFormatVersion},
            {"name", p.name},
            {"description", p.description},
            {"source", p.source},
            {"capacity_bytes", p.capacity},
            {"matrix_flops", p.matrix_flops},
            {"vector_flops", p.vector_flops},
            {"memory_bandwidth", p.hbm_bandwidth},
            {"h2d_bandwidth", p.h2d_bandwidth},
            {"d2h_bandwidth", p.d2h_bandwidth},
            {"launch_latency_s", p.launch_latency},
            {"kernel_overhead_s", p.kernel_overhead},
            {"kernel_gap_s", p.kernel_gap},
            {"segment_allocate_s", p.segment_allocate_seconds},
            {"segment_free_s", p.segment_free_seconds},
            {"copy_overlap", p.copy_overlap},
            {"copy_slowdown_under_kernels", p.copy_slowdown_under_kernels},
            {"copy_slowdown_both_ways", p.copy_slowdown_both_ways},
            {"sync_latency_s", p.sync_latency},
            {"segment_order", p.segments_fall ? "falling" : "rising"},
            {"host_optimizer_bandwidth", p.host_optimizer_bandwidth},
            {"efficiencies", std::move(efficiencies)},
            {"kernels", std::move(kernels)}};
  if (p.stated_rates) {
    const StatedRates& r = *p.stated_rates;
    j["stated_rates"] = {{"matrix_flops", r.matrix_flops},
                         {"vector_flops", r.vector_flops},
                         {"memory_bandwidth", r.memory_bandwidth},
                         {"h2d_bandwidth", r.h2d_bandwidth},
                         {"d2h_bandwidth", r.d2h_bandwidth}};
  }
  return j.dump(1) + "\n";
}

DeviceProfile parse_device_profile(std::string_view text, std::string_view origin) {
  const auto fail = [&](const std::string& what) -> void {
    MEMENTO_FAIL(ConfigError, fmt::format("device profile {}: {}", origin, what));
  };
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    fail(fmt::format("not JSON: {}", text::printable(e.what())));
  }
  if (!j.is_object() || !j.contains("memento_device_profile"))
    fail(
        "not a memento device profile (no \"memento_device_profile\" version key); profiles "
        "come from `memento calibrate`");
  if (j["memento_device_profile"] != kFormatVersion)
    fail(fmt::format("format version {} is not supported; accepted: {}",
                     text::printable(j["memento_device_profile"].dump()), kFormatVersion));
  DeviceProfile p;
  const auto number = [&](const Json& o, const char* key, bool positive) {
    if (!o.contains(key) || !o[key].is_number())
      fail(fmt::format("\"{}\" is missing or not a number", key));
    const double v = o[key].get<double>();
    if (!std::isfinite(v) || v < 0 || (positive && v == 0))
      fail(fmt::format("\"{}\" is {}; accepted: a finite number {}", key, v,
                       positive ? "> 0" : ">= 0"));
    return v;
  };
  const auto string = [&](const Json& o, const char* key) {
    if (!o.contains(key) || !o[key].is_string())
      fail(fmt::format("\"{}\" is missing or not a string", key));
    return o[key].get<std::string>();
  };
  try {
    p.name = string(j, "name");
    p.description = string(j, "description");
    p.source = string(j, "source");
    const double capacity = number(j, "capacity_bytes", true);
    if (capacity >= 0x1p63) fail("\"capacity_bytes\" is too large");
    p.capacity = static_cast<std::size_t>(capacity);
    p.matrix_flops = number(j, "matrix_flops", true);
    p.vector_flops = number(j, "vector_flops", true);
    p.hbm_bandwidth = number(j, "memory_bandwidth", true);
    p.h2d_bandwidth = number(j, "h2d_bandwidth", true);
    p.d2h_bandwidth = number(j, "d2h_bandwidth", true);
    p.launch_latency = number(j, "launch_latency_s", false);
    p.kernel_overhead = number(j, "kernel_overhead_s", false);
    p.segment_allocate_seconds = number(j, "segment_allocate_s", false);
    p.segment_free_seconds = number(j, "segment_free_s", false);
    p.copy_overlap = number(j, "copy_overlap", false);
    if (p.copy_overlap > 1)
      fail(fmt::format("\"copy_overlap\" is {}; accepted: 0 to 1", p.copy_overlap));
    // Absent: 1 (profiles written before they were measured).
    const auto slowdown = [&](const char* key) {
      if (!j.contains(key)) return 1.0;
      const double v = number(j, key, true);
      if (v < 1)
        fail(
            fmt::format("\"{}\" is {}; accepted: a number >= 1 (how many times longer a copy "
                        "takes than alone)",
                        key, v));
      return v;
    };
    p.copy_slowdown_under_kernels = slowdown("copy_slowdown_under_kernels");
    p.copy_slowdown_both_ways = slowdown("copy_slowdown_both_ways");
    // Absent: 0 (profiles written before they were measured).
    if (j.contains("sync_latency_s")) p.sync_latency = number(j, "sync_latency_s", false);
    if (j.contains("kernel_gap_s")) p.kernel_gap = number(j, "kernel_gap_s", false);
    if (j.contains("segment_order")) {  // absent: rising (profiles written before it)
      const std::string order = string(j, "segment_order");
      if (order != "rising" && order != "falling")
        fail(fmt::format("\"segment_order\" is \"{}\"; accepted: rising, falling",
                         text::printable(order)));
      p.segments_fall = order == "falling";
    }
    p.host_optimizer_bandwidth = number(j, "host_optimizer_bandwidth", false);
    if (!j.contains("efficiencies") || !j["efficiencies"].is_object())
      fail("\"efficiencies\" is missing or not an object of kernel name: efficiency");
    for (const auto& [name, value] : j["efficiencies"].items()) {
      if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() <= 0)
        fail(fmt::format("efficiency of \"{}\" is {}; accepted: a finite number > 0",
                         text::printable(name), text::printable(value.dump())));
      p.efficiencies.push_back({name, value.get<double>()});
    }
    if (j.contains("stated_rates")) {
      const Json& r = j["stated_rates"];
      if (!r.is_object())
        fail(
            "\"stated_rates\" is not an object of matrix_flops, vector_flops, "
            "memory_bandwidth, h2d_bandwidth, d2h_bandwidth (0: not stated)");
      const auto rate = [&](const char* key) {
        if (!r.contains(key) || !r[key].is_number() || !std::isfinite(r[key].get<double>()) ||
            r[key].get<double>() < 0)
          fail(
              fmt::format("\"stated_rates\".\"{}\" is missing or not a finite number >= 0 "
                          "(0: not stated)",
                          key));
        return r[key].get<double>();
      };
      p.stated_rates =
          StatedRates{rate("matrix_flops"), rate("vector_flops"), rate("memory_bandwidth"),
                      rate("h2d_bandwidth"), rate("d2h_bandwidth")};
    }
    if (!j.contains("kernels") || !j["kernels"].is_array())
      fail("\"kernels\" is missing or not an array");
    for (const Json& k : j["kernels"]) {
      if (!k.is_object()) fail("an entry of \"kernels\" is not an object");
      MeasuredKernel m;
      m.name = string(k, "name");
      m.flops = number(k, "flops", false);
      m.bytes = number(k, "bytes", false);
      if (!k.contains("tensor_cores") || !k["tensor_cores"].is_boolean())
        fail(fmt::format("kernel \"{}\": \"tensor_cores\" is missing or not true/false",
                         text::printable(m.name)));
      m.tensor_cores = k["tensor_cores"].get<bool>();
      m.seconds = number(k, "seconds", false);
      m.samples = static_cast<std::size_t>(number(k, "samples", false));
      p.kernels.push_back(std::move(m));
    }
  } catch (const Json::exception& e) {
    fail(text::printable(e.what()));
  }
  return p;
}

DeviceProfile read_device_profile(const std::filesystem::path& path) {
  const std::string origin = fmt::format("\"{}\"", path.string());
  return parse_device_profile(files::read(path, "device profile"), origin);
}

void write_device_profile(const DeviceProfile& profile, const std::filesystem::path& path) {
  files::write_atomically(path, device_profile_json(profile), "device profile");
}

const DeviceProfile& loaded_device_profile(std::string_view path) {
  // Kept for the life of the process, so references handed out stay valid; profiles are
  // small and read a few times per run.
  static std::mutex mutex;
  static std::deque<DeviceProfile> loaded;
  DeviceProfile p = read_device_profile(std::filesystem::path(path));
  p.name = std::string(path);  // what the device is called: sim:PATH
  std::lock_guard lock(mutex);
  return loaded.emplace_back(std::move(p));
}

}  // namespace memento
