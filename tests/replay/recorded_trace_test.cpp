// A gpt2-tiny training step recorded on sim (`memento train --record-trace`) and replayed:
// without a budget the replay reproduces the recorder's peak and kernel time exactly; under
// budgets every policy stays within its budget, in both memory models.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "memento/backends.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/policy.hpp"
#include "memento/runtime.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/tape.hpp"
#include "nn/trace_recorder.hpp"
#include "nn/train.hpp"
#include "replay/replay_test_util.hpp"

namespace memento::replay {
namespace {

struct Recorded {
  std::string text;
  std::size_t peak = 0;
  std::int64_t nanoseconds = 0;
};

Recorded record_gpt2_tiny() {
  const DeviceProfile& profile = find_device_profile("a100-40gb");
  auto backend = make_sim_backend(profile);
  CachingAllocator alloc(*backend);
  PinnedHostPool pool(*backend, std::size_t{1} << 30);
  Runtime rt(*backend, alloc, &pool, make_policy("lru"));
  nn::Tape tape(rt, alloc, *backend);
  auto model = nn::make_gpt2(nn::gpt2_preset("gpt2-tiny"), tape, 1234);
  nn::Trainer trainer(tape, *model);
  nn::TraceRecorder recorder(profile);
  tape.set_recorder(&recorder);
  (void)trainer.step();
  tape.set_recorder(nullptr);
  return {recorder.text(), recorder.peak_bytes(), recorder.total_nanoseconds()};
}

TEST(RecordedTrace, Gpt2TinyReplaysExactlyWithoutABudgetAndWithinEveryBudget) {
  const Recorded rec = record_gpt2_tiny();
  const ReplayLog log = testing::log_from(rec.text, "gpt2-tiny.jsonl");
  EXPECT_TRUE(log.has_backward);
  EXPECT_EQ(log.peak_live_bytes, rec.peak);
  EXPECT_NEAR(log.total_seconds, static_cast<double>(rec.nanoseconds) * 1e-9, 1e-15);

  const ReplayResult u = run_replay(log, testing::options("dtr", 0, MemoryModel::counted));
  ASSERT_TRUE(u.fits) << u.error;
  EXPECT_EQ(u.peak_bytes, rec.peak);
  EXPECT_EQ(u.seconds, log.total_seconds);
  fmt::print("gpt2-tiny: {} lines, {} ops, peak {} bytes, {:.3f} us recorded\n", log.lines,
             log.ops.size(), log.peak_live_bytes, log.total_seconds * 1e6);

  for (MemoryModel model : {MemoryModel::counted, MemoryModel::allocator}) {
    for (const std::string& policy : policy_names()) {
      std::string row = fmt::format("{:>9} {:>9}", to_string(model), policy);
      for (double ratio : {0.7, 0.5, 0.3}) {
        const auto budget = static_cast<std::size_t>(ratio * static_cast<double>(rec.peak));
        const ReplayResult r = run_replay(log, testing::options(policy, budget, model));
        EXPECT_LE(r.peak_bytes, budget) << policy << " " << to_string(model) << " " << ratio;
        EXPECT_TRUE(r.fits || r.thrashed || r.error.find("out of memory") != std::string::npos)
            << r.error;
        row += r.fits ? fmt::format(" {:>8.3f}", *r.slowdown)
                      : fmt::format(" {:>8}", r.thrashed ? "thrash" : "OOM");
      }
      fmt::print("{}\n", row);
    }
  }
}

}  // namespace
}  // namespace memento::replay
