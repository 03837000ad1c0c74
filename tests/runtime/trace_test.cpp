// The runtime's Chrome trace: what a step under pressure computed, evicted and copied back.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "memento/backends.hpp"
#include "memento/runtime.hpp"
#include "runtime/test_ops.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

TEST(RuntimeTrace, RecordsComputeEvictionsCopiesMemoryAndSteps) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("memento_trace_" +
                     std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".json");
  {
    auto backend = make_sim_backend(find_device_profile("a100-40gb"));
    CachingAllocator alloc(*backend, {.budget = 6 * 64 * MiB});
    PinnedHostPool pool(*backend, std::size_t{8} << 30);
    Runtime rt(*backend, alloc, &pool, make_policy("auto"), {.trace_file = path.string()});
    auto op = std::make_shared<testing::MixOp>(2e10);
    for (int step = 0; step < 2; ++step) {
      rt.begin_step();
      std::vector<TensorId> acts{rt.compute(op, {}, 64 * MiB)};
      for (int i = 0; i < 12; ++i)
        acts.push_back(rt.compute(op, {acts.back()}, 64 * MiB, {3, std::uint64_t(i)}));
      for (auto it = acts.rbegin(); it != acts.rend(); ++it) {
        (void)rt.use(*it);
        rt.release(*it);
        rt.free(*it);
      }
      (void)rt.end_step();
    }
  }  // the runtime writes the trace when it goes
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "no trace at " << path;
  nlohmann::json trace = nlohmann::json::parse(in);
  std::filesystem::remove(path);
  std::set<std::string> names;
  std::set<std::string> phases;
  for (const auto& e : trace.at("traceEvents")) {
    names.insert(e.at("name").get<std::string>());
    phases.insert(e.at("ph").get<std::string>());
  }
  for (const char* name : {"mix", "step 0", "step 1", "device memory"})
    EXPECT_TRUE(names.count(name)) << "no \"" << name << "\" event";
  EXPECT_TRUE(names.count("offload") || names.count("early offload") || names.count("discard"))
      << "no eviction in a step twice the budget";
  for (const char* ph : {"X", "i", "C", "M"}) EXPECT_TRUE(phases.count(ph)) << "no phase " << ph;
  EXPECT_EQ(trace.at("otherData").at("policy"), "auto");
  EXPECT_EQ(trace.at("otherData").at("device"), "sim:a100-40gb");
}

}  // namespace
}  // namespace memento
