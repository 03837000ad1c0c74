// What the sim backend knows about a GPU: built-in datasheet models of real GPUs, and
// profiles measured on a real backend (`memento calibrate`) or fitted from recorded runs,
// read from a JSON file (`--device sim:PROFILE.json`).
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "memento/kernel.hpp"

namespace memento {

/// One kernel measured on a real device: every launch of the same name and cost (the cost
/// tells the shapes of one name apart) takes `seconds` on the sim.
struct MeasuredKernel {
  std::string name;  ///< the kernel's name, e.g. "linear 8192x768x768"
  double flops = 0;  ///< its KernelCost
  double bytes = 0;
  bool tensor_cores = false;
  double seconds = 0;       ///< median device time
  std::size_t samples = 0;  ///< launches the median is over
};

/// Kernels of one name that the table does not hold (other shapes, or a backward whose
/// forward was measured) take their roofline time divided by `efficiency`.
struct KernelEfficiency {
  std::string name;
  double efficiency = 1;  ///< achieved / roofline time ratio's inverse, > 0
};

/// Rates a backend states to the runtime's cost model (DeviceInfo's); 0 where it states none
/// (the runtime then prices compute and memory at 1e12 per second, and, without a link
/// rate, plans no offloads).
struct StatedRates {
  double matrix_flops = 0;
  double vector_flops = 0;
  double memory_bandwidth = 0;
  double h2d_bandwidth = 0;
  double d2h_bandwidth = 0;
  bool operator==(const StatedRates&) const = default;
};

/// What the sim backend needs to know about a GPU. Rates are per second.
struct DeviceProfile {
  std::string name;           ///< e.g. "h100-sxm", or the file for a profile read from one
  std::string description;    ///< e.g. "NVIDIA H100 SXM5 80GB"
  std::size_t capacity = 0;   ///< device memory, bytes
  double matrix_flops = 0;    ///< dense bf16 tensor-core FLOP/s
  double vector_flops = 0;    ///< fp32 (non-tensor) FLOP/s
  double hbm_bandwidth = 0;   ///< device memory bytes/s
  double h2d_bandwidth = 0;   ///< host-to-device bytes/s achievable with pinned memory
  double d2h_bandwidth = 0;   ///< device-to-host bytes/s achievable with pinned memory
  double launch_latency = 0;  ///< seconds of host time per kernel launch or copy issue

  // ---- measured: what `memento calibrate` adds to the rates above ----
  /// Where the figures come from: "datasheet", or the device, date and method measured.
  std::string source = "datasheet";
  /// Device seconds every kernel outside `kernels` takes beyond its roofline time.
  double kernel_overhead = 0;
  /// Device seconds between two kernels queued back to back on the compute engine (a CPU
  /// stream worker's hand-over and the host's issue; a GPU's launch gap): the mean gap
  /// between the device spans of the measured steps, waits left out. 0 on a datasheet
  /// profile.
  double kernel_gap = 0;
  /// Host seconds one allocate_segment / free_segment takes (cudaMalloc / cudaFree).
  double segment_allocate_seconds = 0;
  double segment_free_seconds = 0;
  /// How much of a host-device copy hides under kernels: 1 where copies run beside them
  /// (separate DMA engines on a GPU); less where they share the compute engine (a CPU with
  /// few cores: the copies take cores from the kernels), whose rest the sim charges to the
  /// compute engine. Measured as the fraction of the shorter of the two that hid under the
  /// other.
  double copy_overlap = 1;
  /// How many times longer a host-device copy takes while kernels run than alone (measured
  /// under a run of kernels longer than the copy): 1 on a GPU (its DMA engines are its own);
  /// more on a CPU "device", whose copies need cores and memory bandwidth its kernels use.
  double copy_slowdown_under_kernels = 1;
  /// How many times slower a copy moves while the other direction's engine is busy: 1 for a
  /// full-duplex link with an engine each way; large where both directions share one (a
  /// CPU's memory bus). The sim slows the later-issued copy of two, so calibrate converts
  /// the pair it times (sim::both_ways_factor: exact for copies of equal length alone, as
  /// the probe's are). Both factors apply to the part of a copy beside the busy engine.
  double copy_slowdown_both_ways = 1;
  /// Host seconds from the end of the work a blocking synchronize waited for to the host
  /// going on (a thread woken on a CPU; the driver's completion signal on a GPU). The
  /// round trip of an empty kernel less the launch latency; 0 on a datasheet profile.
  double sync_latency = 0;
  /// Whether each new device segment lies below the previous one (the host backend's mmap
  /// hands out falling addresses; cudaMalloc rising ones). The caching allocator breaks ties
  /// between equal free blocks by address, so the order decides which block a request
  /// gets, and with it fragmentation and evictions: the sim follows the measured device's.
  bool segments_fall = false;
  /// Bytes/s of the host CPU's AdamW update (its memory traffic); 0 when not measured.
  double host_optimizer_bandwidth = 0;
  /// What the measured backend stated to the runtime's cost model when it was measured (the
  /// host backend: none; cuda: its datasheet's). The sim states these instead of the
  /// figures above, so that the runtime on the sim decides as it did on the device. Empty
  /// on a datasheet profile: the sim states the figures above.
  std::optional<StatedRates> stated_rates = {};
  std::vector<MeasuredKernel> kernels = {};
  std::vector<KernelEfficiency> efficiencies = {};

  /// Seconds a kernel named `name` with `cost` takes on this device: cost.seconds when set;
  /// else a measured kernel of that name and cost; else its roofline (matrix_flops,
  /// vector_flops, hbm_bandwidth) divided by the efficiency of its name, or of the forward
  /// kernel when `name` ends in " backward", plus kernel_overhead. A datasheet profile has
  /// no table, efficiencies or overhead: there it is the roofline.
  [[nodiscard]] double kernel_seconds(std::string_view name, const KernelCost& cost) const;
};

/// Every built-in profile.
[[nodiscard]] std::span<const DeviceProfile> device_profiles() noexcept;

/// The built-in profile of the GPU the CUDA driver names `product` (cudaDeviceProp::name,
/// e.g. "NVIDIA H200", "NVIDIA A100-SXM4-80GB"), matched by family: H200, H100, A100 (80GB or
/// 40GB), RTX 4090, L4. nullptr for any other GPU (GH200 included: its host link is not
/// PCIe). What the cuda backend reports as its rates.
[[nodiscard]] const DeviceProfile* datasheet_profile_of_gpu(std::string_view product);

/// The built-in profile with this name, or, for a name ending in ".json", the profile in
/// that file (read each time; the returned reference stays valid). ConfigError listing the
/// known names, or naming the file and what is wrong with it, otherwise.
[[nodiscard]] const DeviceProfile& find_device_profile(std::string_view name);

/// Reads a profile written by write_device_profile. ConfigError naming the file and the
/// field that is missing or wrong.
[[nodiscard]] DeviceProfile read_device_profile(const std::filesystem::path& path);
/// Writes `profile` as JSON, atomically (a temporary file beside it, then renamed).
/// memento::Error naming the file when it cannot be written.
void write_device_profile(const DeviceProfile& profile, const std::filesystem::path& path);
/// The profile as the JSON text write_device_profile writes.
[[nodiscard]] std::string device_profile_json(const DeviceProfile& profile);
/// The profile in `text` (from `origin`, for messages); ConfigError when malformed.
[[nodiscard]] DeviceProfile parse_device_profile(std::string_view text, std::string_view origin);

}  // namespace memento
