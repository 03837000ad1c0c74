// `memento train`: N training steps of a model under a budget and a policy, one line per
// step (loss, peak memory, evictions, step time), on host, sim or cuda.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "cli/environment.hpp"

namespace memento::cli {

struct TrainOptions {
  std::string model = "gpt2-tiny";  // a GPT-2 preset, or mlp
  std::string device = "host:4GiB";
  std::optional<std::string> budget;       // MEMENTO_BUDGET syntax; none: the device's
  std::optional<std::string> host_budget;  // pinned host memory for offloads
  std::string policy = "auto";
  /// observe: the budget-only path (observe the first step, plan, apply from the second);
  /// none: the dynamic policy alone.
  std::string plan = "observe";
  std::string dtype = "fp32";              // fp32, bf16 or auto (as compare's)
  std::string attention = "eager";         // GPT-2's: eager or fused
  std::string optimizer = "device";        // where AdamW lives: device, host or auto
  bool link_bf16 = false;                  // host AdamW: bf16 gradients on the link
  std::optional<double> host_update_gbps;  // host AdamW on sim: the CPU step's rate
  int steps = 10;
  int batch = 0;  // 0: the preset's
  int seq = 0;    // 0: the preset's
  float lr = 3e-3f;
  std::uint64_t seed = 1234;
  bool summary = false;  // end with one machine-readable line
  /// Write the first step as an operator log (JSON Lines, the format `memento replay`
  /// reads) to this file; its TIMEs are roofline times on `record_profile` (default: the
  /// sim backend's own profile, else a100-40gb).
  std::optional<std::string> record_trace;
  std::optional<std::string> record_profile;
  /// A Chrome trace of the run (MEMENTO_TRACE); empty: none.
  std::string trace_file;
  OptionSources sources;
};

int run_train(const TrainOptions& options);

}  // namespace memento::cli
