// The runtime and allocator under injected faults: thousands of seeded schedules, each
// failing one to three backend calls (allocations, copies, events, kernels; thrown, refused
// or asynchronous) during a step that evicts by offload and discard. After each schedule:
// every error is a memento error that says what failed; the budget held; every tensor is
// bit-identical to a fault-free run or its loss is named; the runtime finishes the program
// once the faults stop; and every segment went back to the backend.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "memento/backends.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"
#include "memento/fault_injection.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/runtime.hpp"
#include "runtime/test_ops.hpp"

namespace memento {
namespace {

constexpr int kOps = 16;
constexpr std::size_t kBytes = 256 * 1024;
constexpr std::size_t kBudget = 9 * kBytes;  // about a third of what the step keeps alive

/// Oldest first; even ids offload, odd ids discard, so both ways out are taken.
class Alternating final : public Policy {
 public:
  std::string name() const override { return "alternating"; }
  double score(const EvictionCandidate& c, const PolicyContext& ctx) const override {
    return static_cast<double>(ctx.now - c.last_access);
  }
  EvictAction action(const EvictionCandidate& c, const PolicyContext&) const override {
    return (static_cast<std::size_t>(c.last_access) % 2 == 0 && c.has_recipe)
               ? EvictAction::discard
               : EvictAction::offload;
  }
};

std::vector<TensorId> op_inputs(int i, const std::vector<std::optional<TensorId>>& out, TensorId x,
                                TensorId w) {
  std::vector<TensorId> in{i == 0 ? x : *out[i - 1]};
  if (i >= 3 && i % 3 == 0) in.push_back(*out[i - 3]);
  if (i % 4 == 1) in.push_back(w);
  return in;
}

bool inputs_ready(int i, const std::vector<std::optional<TensorId>>& out) {
  return (i == 0 || out[i - 1]) && (i < 3 || i % 3 != 0 || out[i - 3]);
}

struct Tally {
  std::map<std::string, std::size_t> injected;  // "site / mode"
  std::size_t schedules = 0;
  std::size_t errors = 0;
  std::size_t lost = 0;
  std::size_t verified = 0;
};

using Reference = std::vector<std::vector<unsigned char>>;

/// Reads a tensor's bytes back through use() (host-addressable backends only).
std::vector<unsigned char> read_back(Runtime& rt, Backend& backend, TensorId id) {
  auto* p = static_cast<unsigned char*>(rt.use(id));
  backend.synchronize(rt.compute_stream());
  std::vector<unsigned char> bytes(p, p + kBytes);
  rt.release(id);
  return bytes;
}

void fill(Runtime& rt, Backend& backend, TensorId id, float scale) {
  auto* p = static_cast<float*>(rt.use(id));
  if (backend.info().host_addressable_memory) {
    backend.synchronize(rt.compute_stream());
    for (std::size_t i = 0; i < kBytes / 4; ++i) p[i] = static_cast<float>(i % 89) * scale;
  }
  rt.release(id);
}

/// An error the faults may legitimately cause; anything else fails the test.
void check_error(const std::exception& e, std::uint64_t seed) {
  const std::string what = e.what();
  const bool named =
      dynamic_cast<const OutOfMemory*>(&e) != nullptr ||
      (dynamic_cast<const BackendError*>(&e) != nullptr &&
       what.find("injected") != std::string::npos) ||
      (dynamic_cast<const DataLost*>(&e) != nullptr && what.find("was lost") != std::string::npos);
  EXPECT_TRUE(named) << "seed " << seed << ": unexpected error: " << what;
}

/// The program: constants, then a step of kOps ops under the budget, with the recipes that
/// read `w` forgotten halfway (an optimizer step on `w`: those tensors can only offload).
/// Phase A runs with the faults until the first error; phase B, disarmed, finishes it.
void run_schedule(Backend& inner, const std::vector<Fault>& faults, std::uint64_t seed,
                  const Reference* ref, Tally& tally,
                  std::array<std::size_t, kFaultSites>* calls = nullptr) {
  const bool data = inner.info().host_addressable_memory && ref != nullptr;
  auto fb = std::make_unique<FaultInjectingBackend>(inner, faults);
  {
    CachingAllocator alloc(*fb, {.budget = kBudget});
    PinnedHostPool pool(*fb, 64 * kBytes);
    Runtime rt(*fb, alloc, &pool, std::make_unique<Alternating>());
    std::optional<TensorId> x;
    std::optional<TensorId> w;
    std::vector<std::optional<TensorId>> out(kOps);
    bool forgot = false;
    bool in_step = false;
    const auto run = [&] {
      if (!x) {
        x = rt.constant(kBytes);
        fill(rt, *fb, *x, 0.25f);
      }
      if (!w) {
        w = rt.constant(kBytes);
        fill(rt, *fb, *w, -0.5f);
      }
      rt.begin_step();
      in_step = true;
      for (int i = 0; i < kOps; ++i) {
        if (i == kOps / 2 && !forgot) {
          rt.forget_recipes_reading(*w);
          forgot = true;
        }
        if (out[i]) continue;
        if (!inputs_ready(i, out)) break;  // an input was lost
        out[i] = rt.compute(std::make_shared<testing::MixOp>(), op_inputs(i, out, *x, *w), kBytes,
                            RngState{static_cast<std::uint64_t>(i) + 1, 0});
      }
      in_step = false;
      (void)rt.end_step();
    };
    // Phase A: with the faults.
    bool failed = false;
    try {
      run();
    } catch (const std::exception& e) {
      failed = true;
      ++tally.errors;
      if (std::getenv("MEMENTO_FAULT_SEED") != nullptr) std::printf("  error: %s\n", e.what());
      check_error(e, seed);
      if (in_step) {
        try {
          (void)rt.end_step();
        } catch (const std::exception& again) {
          check_error(again, seed);
        }
      }
    }
    if (calls != nullptr)
      for (std::size_t s = 0; s < kFaultSites; ++s) (*calls)[s] = fb->calls(FaultSite(s));
    for (const std::string& line : fb->injected_log()) {
      ++tally.injected[line.substr(9, line.find(" call ") - 9)];
      if (std::getenv("MEMENTO_FAULT_SEED") != nullptr) std::printf("  %s\n", line.c_str());
    }
    // Phase B: the faults stop; the runtime must finish what a lost tensor does not block.
    fb->disarm();
    // Recovery's own frees may have met a fault after the last synchronize: the caller
    // that meets the report, here, hands it to the runtime.
    try {
      fb->synchronize_all();
    } catch (const AsyncBackendError& e) {
      check_error(e, seed);
      (void)rt.recover_from_async_error();
    }
    EXPECT_EQ(fb->unreported(), 0u) << "seed " << seed << ": a failure was never reported";
    if (failed) {
      try {
        run();
      } catch (const DataLost& e) {
        check_error(e, seed);
        if (in_step) (void)rt.end_step();
      }
    }
    // Every tensor: bit-identical to the fault-free run, or named as lost.
    for (int i = 0; i < kOps; ++i) {
      if (!out[i]) continue;
      try {
        if (data) {
          EXPECT_TRUE(read_back(rt, *fb, *out[i]) == (*ref)[i])
              << "seed " << seed << ": tensor of op " << i << " (id " << *out[i]
              << ") silently corrupted";
        } else {
          (void)rt.use(*out[i]);
          rt.release(*out[i]);
        }
        ++tally.verified;
      } catch (const DataLost& e) {
        ++tally.lost;
        EXPECT_NE(std::string(e.what()).find("was lost"), std::string::npos) << e.what();
      }
    }
    EXPECT_LE(alloc.stats().reserved.peak, kBudget) << "seed " << seed << ": budget exceeded";
  }
  EXPECT_EQ(inner.segment_bytes(), 0u) << "seed " << seed << ": segments leaked";
  ++tally.schedules;
}

Reference reference_run() {
  auto host = make_host_backend({.capacity = std::size_t{1} << 30, .link_bandwidth = 0});
  CachingAllocator alloc(*host);
  Runtime rt(*host, alloc, nullptr, std::make_unique<Alternating>());
  TensorId x = rt.constant(kBytes);
  fill(rt, *host, x, 0.25f);
  TensorId w = rt.constant(kBytes);
  fill(rt, *host, w, -0.5f);
  std::vector<std::optional<TensorId>> out(kOps);
  Reference ref;
  for (int i = 0; i < kOps; ++i) {
    out[i] = rt.compute(std::make_shared<testing::MixOp>(), op_inputs(i, out, x, w), kBytes,
                        RngState{static_cast<std::uint64_t>(i) + 1, 0});
    ref.push_back(read_back(rt, *host, *out[i]));
  }
  return ref;
}

std::size_t schedules() {
  const char* env = std::getenv("MEMENTO_FAULT_SCHEDULES");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 1000;
}

void run_many(Backend& inner, const Reference* ref, const char* name) {
  Tally tally;
  std::array<std::size_t, kFaultSites> calls{};
  run_schedule(inner, {}, 0, ref, tally, &calls);  // fault-free: how often each site is hit
  ASSERT_EQ(tally.errors, 0u) << "the fault-free run failed";
  ASSERT_EQ(tally.verified, static_cast<std::size_t>(kOps));
  for (std::size_t s = 0; s < kFaultSites; ++s) {
    // The runtime launches no host tasks (the host AdamW does: FaultBackend tests the site).
    if (FaultSite(s) == FaultSite::host_launch) continue;
    EXPECT_GT(calls[s], 0u) << "the program never calls " << to_string(FaultSite(s));
  }
  // MEMENTO_FAULT_SEED=N replays one schedule, printing its faults and what they did.
  const char* only = std::getenv("MEMENTO_FAULT_SEED");
  const std::uint64_t first = only != nullptr ? std::strtoull(only, nullptr, 10) : 1;
  const std::size_t n = only != nullptr ? first : schedules();
  for (std::uint64_t seed = first; seed <= n && !::testing::Test::HasFailure(); ++seed) try {
      run_schedule(inner, random_faults(seed, 1 + seed % 3, calls), seed, ref, tally);
    } catch (const std::exception& e) {
      std::string faults;
      for (const Fault& f : random_faults(seed, 1 + seed % 3, calls))
        faults += std::string(" ") + to_string(f.site) + "#" + std::to_string(f.nth) + "/" +
                  to_string(f.mode);
      ADD_FAILURE() << "seed " << seed << " (" << faults << "): escaped: " << e.what();
    }
  std::string kinds;
  std::size_t injected = 0;
  for (const auto& [kind, count] : tally.injected) {
    kinds += "\n  " + kind + ": " + std::to_string(count);
    injected += count;
  }
  std::printf(
      "[faults] %s: %zu schedules, %zu faults injected, %zu errors surfaced, %zu tensors "
      "verified, %zu named lost; by kind:%s\n",
      name, tally.schedules - 1, injected, tally.errors, tally.verified, tally.lost, kinds.c_str());
  const std::size_t ran = tally.schedules - 1;
  EXPECT_GT(injected, ran);  // most schedules inject more than one
  EXPECT_GT(tally.errors, ran / 2);
}

TEST(FaultSchedules, HostKeepsEveryTensorOrNamesItsLoss) {
  const Reference ref = reference_run();
  auto host = make_host_backend({.capacity = std::size_t{1} << 30, .link_bandwidth = 0});
  run_many(*host, &ref, "host");
}

TEST(FaultSchedules, SimKeepsItsInvariants) {
  auto sim = make_sim_backend(find_device_profile("a100-40gb"));
  run_many(*sim, nullptr, "sim");
}

}  // namespace
}  // namespace memento
