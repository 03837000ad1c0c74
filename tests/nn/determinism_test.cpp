// Same inputs, same bits: every kernel run twice, matmul and attention under different
// OpenBLAS thread counts, at different buffer addresses, and from several threads at once.
// Recomputed activations must equal the originals exactly, so these compare bytes (memcmp).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/nn_test_util.hpp"

// Declared here rather than through <cblas.h>, whose include directory memento_nn keeps
// private; the symbols come with memento_nn's link to OpenBLAS.
extern "C" void openblas_set_num_threads(int num_threads);
extern "C" int openblas_get_num_threads(void);

namespace memento::nn::cpu {
namespace {

using testing::random_tokens;
using testing::random_vector;
using Vec = std::vector<float>;

std::size_t sz(int n) { return static_cast<std::size_t>(n); }

bool same_bits(const Vec& a, const Vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Shapes big enough for OpenBLAS to split the GEMMs across threads.
constexpr int kB = 4, kT = 128, kC = 128, kNH = 4, kV = 300, kOC = 384;
constexpr int kN = kB * kT;

struct Inputs {
  explicit Inputs(std::uint64_t seed) : rng(seed) {
    x = random_vector<float>(rng, sz(kN * kC));
    weight = random_vector<float>(rng, sz(kOC * kC), -0.1, 0.1);
    bias = random_vector<float>(rng, sz(kOC));
    dout = random_vector<float>(rng, sz(kN * kOC));
    qkv = random_vector<float>(rng, sz(kN * 3 * kC), -2.0, 2.0);
    dattn = random_vector<float>(rng, sz(kN * kC));
    logits = random_vector<float>(rng, sz(kN * kV), -4.0, 4.0);
    tokens = random_tokens(rng, sz(kN), kV);
    wte = random_vector<float>(rng, sz(kV * kC));
    wpe = random_vector<float>(rng, sz(kT * kC));
    ln_w = random_vector<float>(rng, sz(kC), 0.5, 1.5);
    ln_b = random_vector<float>(rng, sz(kC));
    dx = random_vector<float>(rng, sz(kN * kC));
    grad0 = random_vector<float>(rng, sz(kN * 3 * kC));
  }
  std::mt19937_64 rng;
  Vec x, weight, bias, dout, qkv, dattn, logits, wte, wpe, ln_w, ln_b, dx, grad0;
  std::vector<std::int32_t> tokens;
};

// Each run returns every output it wrote, concatenated; backward outputs accumulate into
// buffers prefilled with the same random values so += is covered.
using Run = std::function<Vec(const Inputs&)>;

Vec concat(std::initializer_list<const Vec*> parts) {
  Vec all;
  for (const Vec* p : parts) all.insert(all.end(), p->begin(), p->end());
  return all;
}

Vec prefilled(const Inputs& in, std::size_t n) {
  return Vec(in.grad0.begin(), in.grad0.begin() + static_cast<std::ptrdiff_t>(n));
}

Vec run_matmul(const Inputs& in) {
  Vec out(sz(kN * kOC));
  matmul_forward(out.data(), in.x.data(), in.weight.data(), in.bias.data(), kN, kC, kOC);
  Vec dinp = prefilled(in, in.x.size()), dweight = prefilled(in, in.weight.size()),
      dbias = prefilled(in, in.bias.size());
  matmul_backward(dinp.data(), dweight.data(), dbias.data(), in.dout.data(), in.x.data(),
                  in.weight.data(), kN, kC, kOC);
  return concat({&out, &dinp, &dweight, &dbias});
}

Vec run_attention(const Inputs& in) {
  const std::size_t att_size = sz(kB * kNH * kT * kT);
  Vec out(sz(kN * kC)), preatt(att_size), att(att_size);
  attention_forward(out.data(), preatt.data(), att.data(), in.qkv.data(), kB, kT, kC, kNH);
  Vec dqkv = prefilled(in, in.qkv.size()), dpreatt(att_size), datt(att_size);
  attention_backward(dqkv.data(), dpreatt.data(), datt.data(), in.dattn.data(), in.qkv.data(),
                     att.data(), kB, kT, kC, kNH);
  return concat({&out, &preatt, &att, &dqkv});
}

Vec run_encoder(const Inputs& in) {
  Vec out(sz(kN * kC));
  encoder_forward(out.data(), in.tokens.data(), in.wte.data(), in.wpe.data(), kB, kT, kC);
  Vec dwte = prefilled(in, in.wte.size()), dwpe = prefilled(in, in.wpe.size());
  encoder_backward(dwte.data(), dwpe.data(), in.dx.data(), in.tokens.data(), kB, kT, kC);
  return concat({&out, &dwte, &dwpe});
}

Vec run_layernorm(const Inputs& in) {
  Vec out(sz(kN * kC)), mean(sz(kN)), rstd(sz(kN));
  layernorm_forward(out.data(), mean.data(), rstd.data(), in.x.data(), in.ln_w.data(),
                    in.ln_b.data(), kN, kC);
  Vec dinp = prefilled(in, in.x.size()), dw = prefilled(in, sz(kC)), db = prefilled(in, sz(kC));
  layernorm_backward(dinp.data(), dw.data(), db.data(), in.dx.data(), in.x.data(), in.ln_w.data(),
                     mean.data(), rstd.data(), kN, kC);
  return concat({&out, &mean, &rstd, &dinp, &dw, &db});
}

Vec run_pointwise(const Inputs& in) {
  const std::size_t n = in.x.size();
  Vec gelu(n), drop(n), res(n);
  gelu_forward(gelu.data(), in.x.data(), n);
  dropout_forward(drop.data(), in.x.data(), n, 0.1f, 1234, 99);
  residual_forward(res.data(), in.x.data(), in.dx.data(), n);
  Vec dgelu = prefilled(in, n), ddrop = prefilled(in, n), da = prefilled(in, n),
      db = prefilled(in, n);
  gelu_backward(dgelu.data(), in.x.data(), in.dx.data(), n);
  dropout_backward(ddrop.data(), in.dx.data(), n, 0.1f, 1234, 99);
  residual_backward(da.data(), db.data(), in.dx.data(), n);
  return concat({&gelu, &drop, &res, &dgelu, &ddrop, &da, &db});
}

Vec run_crossentropy(const Inputs& in) {
  Vec probs(in.logits.size()), losses(sz(kN));
  crossentropy_forward(probs.data(), losses.data(), in.logits.data(), in.tokens.data(), kN, kV);
  Vec dlogits = prefilled(in, in.logits.size());
  crossentropy_backward(dlogits.data(), probs.data(), in.dx.data(), in.tokens.data(), kN, kV);
  return concat({&probs, &losses, &dlogits});
}

Vec run_adamw(const Inputs& in) {
  Vec params = in.x, m = in.dx, v(in.x.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = in.dx[i] * in.dx[i];
  for (int t = 1; t <= 3; ++t) {
    adamw_update(params.data(), in.dx.data(), m.data(), v.data(), params.size(), 3e-4f, 0.9f, 0.95f,
                 1e-8f, 0.1f, t);
  }
  return concat({&params, &m, &v});
}

struct Named {
  const char* name;
  Run run;
};

std::vector<Named> all_kernels() {
  return {{"matmul", run_matmul},       {"attention", run_attention},
          {"encoder", run_encoder},     {"layernorm", run_layernorm},
          {"pointwise", run_pointwise}, {"crossentropy", run_crossentropy},
          {"adamw", run_adamw}};
}

// Restores the kernels' thread cap when a test that changes it ends, pass or fail.
class ThreadsGuard {
 public:
  ThreadsGuard() : saved_(num_threads()) {}
  ~ThreadsGuard() { set_num_threads(saved_); }
  ThreadsGuard(const ThreadsGuard&) = delete;
  ThreadsGuard& operator=(const ThreadsGuard&) = delete;

 private:
  int saved_;
};

TEST(DeterminismTest, EveryKernelTwiceGivesTheSameBits) {
  const Inputs in(testing::test_seed(0xD37));
  for (const auto& k : all_kernels()) {
    const Vec first = k.run(in);
    const Vec second = k.run(in);
    EXPECT_TRUE(same_bits(first, second)) << k.name;
  }
}

TEST(DeterminismTest, ThreadCountDoesNotChangeBits) {
  const ThreadsGuard guard;
  const Inputs in(testing::test_seed(0xD38));
  set_num_threads(1);
  ASSERT_EQ(num_threads(), 1);
  std::vector<Vec> refs;
  const auto kernels = all_kernels();
  for (const auto& k : kernels) refs.push_back(k.run(in));
  for (int threads : {2, 3, 4, 7}) {
    set_num_threads(threads);
    for (std::size_t i = 0; i < kernels.size(); ++i) {
      EXPECT_TRUE(same_bits(kernels[i].run(in), refs[i]))
          << kernels[i].name << ", " << threads << " threads";
    }
  }
}

// OpenBLAS's own threading changes the bits (see gemm.cpp), so the kernels keep it at one
// thread even when something else in the process raises it.
TEST(DeterminismTest, OpenBlasThreadCountDoesNotChangeBits) {
  const Inputs in(testing::test_seed(0xD3B));
  const Vec matmul_ref = run_matmul(in);
  const Vec attention_ref = run_attention(in);
  for (int threads : {2, 4}) {
    openblas_set_num_threads(threads);
    EXPECT_TRUE(same_bits(run_matmul(in), matmul_ref)) << threads << " OpenBLAS threads";
    openblas_set_num_threads(threads);
    EXPECT_TRUE(same_bits(run_attention(in), attention_ref)) << threads << " OpenBLAS threads";
  }
  EXPECT_EQ(openblas_get_num_threads(), 1);
}

// A recompute writes to a fresh block, so the bits must not depend on where buffers lie.
TEST(DeterminismTest, BufferAlignmentDoesNotChangeBits) {
  const Inputs in(testing::test_seed(0xD39));
  const Vec ref = run_matmul(in);
  for (std::size_t shift : {1u, 3u, 5u}) {
    Vec x(in.x.size() + shift), w(in.weight.size() + shift), out(sz(kN * kOC) + shift);
    std::copy(in.x.begin(), in.x.end(), x.begin() + static_cast<std::ptrdiff_t>(shift));
    std::copy(in.weight.begin(), in.weight.end(), w.begin() + static_cast<std::ptrdiff_t>(shift));
    matmul_forward(out.data() + shift, x.data() + shift, w.data() + shift, in.bias.data(), kN, kC,
                   kOC);
    EXPECT_EQ(std::memcmp(out.data() + shift, ref.data(), sz(kN * kOC) * sizeof(float)), 0)
        << "shift " << shift;
  }
}

// The host backend runs each stream on its own thread, so kernels are called concurrently.
TEST(DeterminismTest, ConcurrentCallersGetTheSameBits) {
  const Inputs in(testing::test_seed(0xD3A));
  std::vector<Vec> refs;
  const auto kernels = all_kernels();
  for (const auto& k : kernels) refs.push_back(k.run(in));
  constexpr int kThreads = 4, kRounds = 3;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        // Staggered order, so different kernels overlap in different rounds.
        for (std::size_t i = 0; i < kernels.size(); ++i) {
          const std::size_t j = (i + static_cast<std::size_t>(t)) % kernels.size();
          if (!same_bits(kernels[j].run(in), refs[j])) ++mismatches[sz(t)];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[sz(t)], 0) << "thread " << t;
}

}  // namespace
}  // namespace memento::nn::cpu
