// Built-in GPU profiles for the sim backend, from the vendors' datasheets.
//
// Conventions, so that the profiles are comparable with each other:
// - capacity: the marketed "NN GB" of HBM/GDDR is in practice binary (HBM stacks come in
//   powers of two GiB), so 40 GB is modelled as 40 GiB. The one exception is H200, whose
//   "141 GB" is not a power-of-two stack size; it is taken literally as 141e9 bytes, which is
//   conservative (a smaller device makes the sim predict OOM earlier, never later).
// - matrix_flops: dense BF16 tensor-core rate, i.e. the datasheet's "with sparsity" figure
//   halved. Training does not use 2:4 sparsity.
// - vector_flops: FP32 on the CUDA cores (non-tensor).
// - h2d/d2h bandwidth: ACHIEVABLE rates with pinned memory, not the link's theoretical rate.
//   PCIe 4.0 x16 carries 31.5 GB/s per direction (16 GT/s x 16 lanes, 128b/130b) and PCIe
//   5.0 x16 63 GB/s; TLP headers, flow-control packets and DMA setup leave about 80% of that
//   to payload, which is what cudaMemcpyAsync measures (bandwidthTest: ~25 GB/s on Gen4,
//   ~50 GB/s on Gen5). Offload decisions hinge on this number, so the optimistic theoretical
//   figure would make the sim hide transfers that a real run cannot hide.
// - launch_latency: host-side cost of one cudaLaunchKernel / cudaMemcpyAsync, typically
//   2-5 us; 4 us is used for every device because it is a property of the host driver path
//   more than of the GPU.
#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <vector>

#include "memento/device_profile.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

constexpr std::size_t kGiB = std::size_t{1} << 30;
constexpr double kPcie4Achievable = 25e9;  // of 31.5 GB/s theoretical per direction
constexpr double kPcie5Achievable = 50e9;  // of 63 GB/s theoretical per direction
constexpr double kLaunchLatency = 4e-6;

const std::array<DeviceProfile, 6>& profiles() noexcept {
  static const std::array<DeviceProfile, 6> kProfiles = {{
      // NVIDIA A100 Tensor Core GPU datasheet (2021): 40GB HBM2 at 1,555 GB/s; BF16 tensor
      // 312 TFLOPS dense (624 sparse); FP32 19.5 TFLOPS; PCIe Gen4 host link.
      {.name = "a100-40gb",
       .description = "NVIDIA A100 40GB",
       .capacity = 40 * kGiB,
       .matrix_flops = 312e12,
       .vector_flops = 19.5e12,
       .hbm_bandwidth = 1555e9,
       .h2d_bandwidth = kPcie4Achievable,
       .d2h_bandwidth = kPcie4Achievable,
       .launch_latency = kLaunchLatency},
      // Same datasheet, A100 80GB SXM column: 80GB HBM2e at 2,039 GB/s (the PCIe card is
      // 1,935 GB/s); compute as the 40GB part; the SXM4 board still reaches the host over
      // PCIe Gen4.
      {.name = "a100-80gb",
       .description = "NVIDIA A100 SXM4 80GB",
       .capacity = 80 * kGiB,
       .matrix_flops = 312e12,
       .vector_flops = 19.5e12,
       .hbm_bandwidth = 2039e9,
       .h2d_bandwidth = kPcie4Achievable,
       .d2h_bandwidth = kPcie4Achievable,
       .launch_latency = kLaunchLatency},
      // NVIDIA H100 Tensor Core GPU datasheet, H100 SXM column: 80GB HBM3 at 3.35 TB/s; BF16
      // tensor 1,979 TFLOPS with sparsity -> 989 dense; FP32 67 TFLOPS; PCIe Gen5 host link.
      {.name = "h100-sxm",
       .description = "NVIDIA H100 SXM5 80GB",
       .capacity = 80 * kGiB,
       .matrix_flops = 989e12,
       .vector_flops = 67e12,
       .hbm_bandwidth = 3.35e12,
       .h2d_bandwidth = kPcie5Achievable,
       .d2h_bandwidth = kPcie5Achievable,
       .launch_latency = kLaunchLatency},
      // NVIDIA H200 Tensor Core GPU datasheet, H200 SXM column: 141GB HBM3e at 4.8 TB/s;
      // compute as H100 SXM (same GH100 die): BF16 989 dense, FP32 67 TFLOPS; PCIe Gen5.
      {.name = "h200",
       .description = "NVIDIA H200 SXM 141GB",
       .capacity = std::size_t{141'000'000'000},
       .matrix_flops = 989e12,
       .vector_flops = 67e12,
       .hbm_bandwidth = 4.8e12,
       .h2d_bandwidth = kPcie5Achievable,
       .d2h_bandwidth = kPcie5Achievable,
       .launch_latency = kLaunchLatency},
      // NVIDIA Ada Lovelace GPU Architecture whitepaper, GeForce RTX 4090 column: 24GB GDDR6X
      // at 1,008 GB/s; peak FP16/BF16 tensor with FP32 accumulate 165.2 TFLOPS dense (the
      // 330 TFLOPS headline is FP16 accumulate, which training does not use); FP32 82.6
      // TFLOPS; PCIe Gen4 x16.
      {.name = "rtx4090",
       .description = "NVIDIA GeForce RTX 4090 24GB",
       .capacity = 24 * kGiB,
       .matrix_flops = 165.2e12,
       .vector_flops = 82.6e12,
       .hbm_bandwidth = 1008e9,
       .h2d_bandwidth = kPcie4Achievable,
       .d2h_bandwidth = kPcie4Achievable,
       .launch_latency = kLaunchLatency},
      // NVIDIA L4 Tensor Core GPU datasheet: 24GB GDDR6 at 300 GB/s; BF16 tensor 242 TFLOPS
      // with sparsity -> 121 dense; FP32 30.3 TFLOPS; PCIe Gen4 x16.
      {.name = "l4",
       .description = "NVIDIA L4 24GB",
       .capacity = 24 * kGiB,
       .matrix_flops = 121e12,
       .vector_flops = 30.3e12,
       .hbm_bandwidth = 300e9,
       .h2d_bandwidth = kPcie4Achievable,
       .d2h_bandwidth = kPcie4Achievable,
       .launch_latency = kLaunchLatency},
  }};
  return kProfiles;
}

}  // namespace

std::span<const DeviceProfile> device_profiles() noexcept { return profiles(); }

const DeviceProfile* datasheet_profile_of_gpu(std::string_view product) {
  // Upper-case words split at spaces and hyphens: "NVIDIA A100-SXM4-80GB" -> NVIDIA, A100,
  // SXM4, 80GB. Whole words, so that "L40" is not an L4 and "GH200" not an H200.
  std::vector<std::string> words(1);
  for (const char c : product) {
    if (c == ' ' || c == '-') {
      if (!words.back().empty()) words.emplace_back();
    } else {
      words.back() += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
  }
  const auto has = [&](std::string_view w) {
    return std::find(words.begin(), words.end(), w) != words.end();
  };
  const char* name = nullptr;
  if (has("H200"))
    name = "h200";
  else if (has("H100"))
    name = "h100-sxm";  // PCIe and NVL parts are slower, in about the same ratios
  else if (has("A100"))
    name = has("80GB") ? "a100-80gb" : "a100-40gb";
  else if (has("RTX") && has("4090"))
    name = "rtx4090";
  else if (has("L4"))
    name = "l4";
  return name != nullptr ? &find_device_profile(name) : nullptr;
}

const DeviceProfile& loaded_device_profile(std::string_view path);  // profile_file.cpp

const DeviceProfile& find_device_profile(std::string_view name) {
  if (name.ends_with(".json")) return loaded_device_profile(name);
  for (const DeviceProfile& profile : profiles()) {
    if (profile.name == name) return profile;
  }
  std::string known;
  for (const DeviceProfile& profile : profiles()) {
    if (!known.empty()) known += ", ";
    known += profile.name;
  }
  MEMENTO_FAIL(ConfigError, "unknown device profile '" + std::string(name) +
                                "'; known profiles (exact, lower case): " + known +
                                "; or a profile file PATH.json from `memento calibrate`");
}

}  // namespace memento
