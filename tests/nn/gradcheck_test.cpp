// Every backward kernel against central finite differences of its forward, in double.
//
// Each check draws fresh random inputs from a seeded generator (the seed is in the failure
// message), prefills the gradient buffers with random values so that += accumulation is part of
// what is checked, and takes the loss sum(w * out) with random w, so dout = w.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/nn_test_util.hpp"

namespace memento::nn::cpu {
namespace {

using testing::accumulated;
using testing::check_gradient;
using testing::GradCheck;
using testing::random_tokens;
using testing::random_vector;
using testing::weighted_sum;
using Vec = std::vector<double>;

// Small shapes, deliberately unequal so a transposed index shows.
constexpr int kB = 2;
constexpr int kT = 3;
constexpr int kC = 8;
constexpr int kNH = 2;
constexpr int kV = 11;
constexpr int kOC = 5;
constexpr int kN = kB * kT;

std::size_t sz(int n) { return static_cast<std::size_t>(n); }

void expect_ok(const GradCheck& r) { EXPECT_EQ(r.mismatches, 0) << r.report; }

class GradCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A different default per test, so one weak seed cannot hide in all of them.
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    seed_ = testing::test_seed(std::hash<std::string>{}(info->name()) & 0xFFFFFFFFu);
    rng_.seed(seed_);
  }
  std::uint64_t seed_ = 0;
  std::mt19937_64 rng_;
};

TEST_F(GradCheckTest, Matmul) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  Vec inp = random_vector<double>(rng_, sz(kN * kC));
  Vec weight = random_vector<double>(rng_, sz(kOC * kC));
  Vec bias = random_vector<double>(rng_, sz(kOC));
  const Vec w = random_vector<double>(rng_, sz(kN * kOC));
  auto loss = [&] {
    Vec out(sz(kN * kOC));
    matmul_forward(out.data(), inp.data(), weight.data(), bias.data(), kN, kC, kOC);
    return weighted_sum(out, w);
  };
  const Vec dinp0 = random_vector<double>(rng_, inp.size());
  const Vec dweight0 = random_vector<double>(rng_, weight.size());
  const Vec dbias0 = random_vector<double>(rng_, bias.size());
  Vec dinp = dinp0, dweight = dweight0, dbias = dbias0;
  matmul_backward(dinp.data(), dweight.data(), dbias.data(), w.data(), inp.data(), weight.data(),
                  kN, kC, kOC);
  expect_ok(check_gradient("dinp", inp, accumulated(dinp, dinp0), loss));
  expect_ok(check_gradient("dweight", weight, accumulated(dweight, dweight0), loss));
  expect_ok(check_gradient("dbias", bias, accumulated(dbias, dbias0), loss));
}

TEST_F(GradCheckTest, MatmulWithoutBias) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  Vec inp = random_vector<double>(rng_, sz(kN * kC));
  Vec weight = random_vector<double>(rng_, sz(kOC * kC));
  const Vec w = random_vector<double>(rng_, sz(kN * kOC));
  auto loss = [&] {
    Vec out(sz(kN * kOC));
    matmul_forward<double>(out.data(), inp.data(), weight.data(), nullptr, kN, kC, kOC);
    return weighted_sum(out, w);
  };
  Vec dinp(inp.size()), dweight(weight.size());
  matmul_backward<double>(dinp.data(), dweight.data(), nullptr, w.data(), inp.data(), weight.data(),
                          kN, kC, kOC);
  expect_ok(check_gradient("dinp", inp, dinp, loss));
  expect_ok(check_gradient("dweight", weight, dweight, loss));
}

TEST_F(GradCheckTest, Encoder) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  Vec wte = random_vector<double>(rng_, sz(kV * kC));
  Vec wpe = random_vector<double>(rng_, sz(kT * kC));
  std::vector<std::int32_t> tokens = random_tokens(rng_, sz(kN), kV);
  tokens[4] = tokens[1];  // a repeated token must get both rows' gradients
  const Vec w = random_vector<double>(rng_, sz(kN * kC));
  auto loss = [&] {
    Vec out(sz(kN * kC));
    encoder_forward(out.data(), tokens.data(), wte.data(), wpe.data(), kB, kT, kC);
    return weighted_sum(out, w);
  };
  const Vec dwte0 = random_vector<double>(rng_, wte.size());
  const Vec dwpe0 = random_vector<double>(rng_, wpe.size());
  Vec dwte = dwte0, dwpe = dwpe0;
  encoder_backward(dwte.data(), dwpe.data(), w.data(), tokens.data(), kB, kT, kC);
  expect_ok(check_gradient("dwte", wte, accumulated(dwte, dwte0), loss));
  expect_ok(check_gradient("dwpe", wpe, accumulated(dwpe, dwpe0), loss));
}

TEST_F(GradCheckTest, Layernorm) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  Vec inp = random_vector<double>(rng_, sz(kN * kC), -2.0, 2.0);
  Vec weight = random_vector<double>(rng_, sz(kC), 0.5, 1.5);
  Vec bias = random_vector<double>(rng_, sz(kC));
  const Vec w = random_vector<double>(rng_, sz(kN * kC));
  Vec mean(sz(kN)), rstd(sz(kN));
  auto loss = [&] {
    Vec out(sz(kN * kC));
    layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(), bias.data(),
                      kN, kC);
    return weighted_sum(out, w);
  };
  loss();  // mean and rstd of the unperturbed input, for the backward
  const Vec mean_saved = mean, rstd_saved = rstd;
  const Vec dinp0 = random_vector<double>(rng_, inp.size());
  const Vec dweight0 = random_vector<double>(rng_, weight.size());
  const Vec dbias0 = random_vector<double>(rng_, bias.size());
  Vec dinp = dinp0, dweight = dweight0, dbias = dbias0;
  layernorm_backward(dinp.data(), dweight.data(), dbias.data(), w.data(), inp.data(), weight.data(),
                     mean_saved.data(), rstd_saved.data(), kN, kC);
  expect_ok(check_gradient("dinp", inp, accumulated(dinp, dinp0), loss));
  expect_ok(check_gradient("dweight", weight, accumulated(dweight, dweight0), loss));
  expect_ok(check_gradient("dbias", bias, accumulated(dbias, dbias0), loss));
}

TEST_F(GradCheckTest, Gelu) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  const std::size_t n = sz(kN * 4 * kC);
  Vec inp = random_vector<double>(rng_, n, -4.0, 4.0);
  const Vec w = random_vector<double>(rng_, n);
  auto loss = [&] {
    Vec out(n);
    gelu_forward(out.data(), inp.data(), n);
    return weighted_sum(out, w);
  };
  const Vec dinp0 = random_vector<double>(rng_, n);
  Vec dinp = dinp0;
  gelu_backward(dinp.data(), inp.data(), w.data(), n);
  expect_ok(check_gradient("dinp", inp, accumulated(dinp, dinp0), loss));
}

TEST_F(GradCheckTest, Attention) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  const std::size_t att_size = sz(kB * kNH * kT * kT);
  Vec qkv = random_vector<double>(rng_, sz(kN * 3 * kC), -2.0, 2.0);
  const Vec w = random_vector<double>(rng_, sz(kN * kC));
  Vec att;
  auto loss = [&] {
    // NaN prefill: the kernel must write every entry of what it saves, including the zeros.
    Vec out = testing::nan_vector<double>(sz(kN * kC));
    Vec preatt = testing::nan_vector<double>(att_size);
    att = testing::nan_vector<double>(att_size);
    attention_forward(out.data(), preatt.data(), att.data(), qkv.data(), kB, kT, kC, kNH);
    return weighted_sum(out, w);
  };
  loss();
  const Vec att_saved = att;
  const Vec dqkv0 = random_vector<double>(rng_, qkv.size());
  Vec dqkv = dqkv0;
  // NaN scratch: the backward must overwrite it before reading.
  Vec dpreatt = testing::nan_vector<double>(att_size);
  Vec datt = testing::nan_vector<double>(att_size);
  attention_backward(dqkv.data(), dpreatt.data(), datt.data(), w.data(), qkv.data(),
                     att_saved.data(), kB, kT, kC, kNH);
  expect_ok(check_gradient("dqkv", qkv, accumulated(dqkv, dqkv0), loss));
}

TEST_F(GradCheckTest, AttentionOneHeadLongerSequence) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  constexpr int B = 1, T = 7, C = 4, NH = 1;
  const std::size_t att_size = sz(B * NH * T * T);
  Vec qkv = random_vector<double>(rng_, sz(B * T * 3 * C), -2.0, 2.0);
  const Vec w = random_vector<double>(rng_, sz(B * T * C));
  Vec att(att_size);
  auto loss = [&] {
    Vec out(sz(B * T * C)), preatt(att_size);
    attention_forward(out.data(), preatt.data(), att.data(), qkv.data(), B, T, C, NH);
    return weighted_sum(out, w);
  };
  loss();
  const Vec att_saved = att;
  Vec dqkv(qkv.size()), dpreatt(att_size), datt(att_size);
  attention_backward(dqkv.data(), dpreatt.data(), datt.data(), w.data(), qkv.data(),
                     att_saved.data(), B, T, C, NH);
  expect_ok(check_gradient("dqkv", qkv, dqkv, loss));
}

TEST_F(GradCheckTest, Dropout) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  const std::size_t n = sz(kN * kC);
  constexpr float p = 0.3f;
  const std::uint64_t dropout_seed = rng_();
  constexpr std::uint64_t offset = 17;
  Vec inp = random_vector<double>(rng_, n);
  const Vec w = random_vector<double>(rng_, n);
  int dropped = 0;
  auto loss = [&] {
    Vec out(n);
    dropout_forward(out.data(), inp.data(), n, p, dropout_seed, offset);
    dropped = static_cast<int>(std::count(out.begin(), out.end(), 0.0));
    return weighted_sum(out, w);
  };
  loss();
  // With 48 elements at p = 0.3 both kinds occur for any sane mask; the check needs both.
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, static_cast<int>(n));
  const Vec dinp0 = random_vector<double>(rng_, n);
  Vec dinp = dinp0;
  dropout_backward(dinp.data(), w.data(), n, p, dropout_seed, offset);
  expect_ok(check_gradient("dinp", inp, accumulated(dinp, dinp0), loss));
}

TEST_F(GradCheckTest, Residual) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  const std::size_t n = sz(kN * kC);
  Vec a = random_vector<double>(rng_, n);
  Vec b = random_vector<double>(rng_, n);
  const Vec w = random_vector<double>(rng_, n);
  auto loss = [&] {
    Vec out(n);
    residual_forward(out.data(), a.data(), b.data(), n);
    return weighted_sum(out, w);
  };
  const Vec da0 = random_vector<double>(rng_, n);
  const Vec db0 = random_vector<double>(rng_, n);
  Vec da = da0, db = db0;
  residual_backward(da.data(), db.data(), w.data(), n);
  expect_ok(check_gradient("da", a, accumulated(da, da0), loss));
  expect_ok(check_gradient("db", b, accumulated(db, db0), loss));
}

TEST_F(GradCheckTest, CrossEntropy) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  Vec logits = random_vector<double>(rng_, sz(kN * kV), -3.0, 3.0);
  const std::vector<std::int32_t> targets = random_tokens(rng_, sz(kN), kV);
  const Vec dlosses = random_vector<double>(rng_, sz(kN), 0.1, 1.0);
  Vec probs(logits.size());
  auto loss = [&] {
    Vec losses(sz(kN));
    crossentropy_forward(probs.data(), losses.data(), logits.data(), targets.data(), kN, kV);
    return weighted_sum(losses, dlosses);
  };
  loss();
  const Vec probs_saved = probs;
  const Vec dlogits0 = random_vector<double>(rng_, logits.size());
  Vec dlogits = dlogits0;
  crossentropy_backward(dlogits.data(), probs_saved.data(), dlosses.data(), targets.data(), kN, kV);
  expect_ok(check_gradient("dlogits", logits, accumulated(dlogits, dlogits0), loss));
}

// The checker itself must catch a gradient that is slightly off, or the tests above prove nothing.
TEST_F(GradCheckTest, CheckerCatchesSmallErrors) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  Vec inp = random_vector<double>(rng_, sz(kN * kC));
  const Vec weight = random_vector<double>(rng_, sz(kOC * kC));
  const Vec w = random_vector<double>(rng_, sz(kN * kOC));
  auto loss = [&] {
    Vec out(sz(kN * kOC));
    matmul_forward<double>(out.data(), inp.data(), weight.data(), nullptr, kN, kC, kOC);
    return weighted_sum(out, w);
  };
  Vec dinp(inp.size()), dweight(weight.size());
  matmul_backward<double>(dinp.data(), dweight.data(), nullptr, w.data(), inp.data(), weight.data(),
                          kN, kC, kOC);
  EXPECT_EQ(check_gradient("exact", inp, dinp, loss).mismatches, 0);
  Vec off = dinp;
  off[5] *= 1 + 1e-4;
  EXPECT_EQ(check_gradient("off by 1e-4", inp, off, loss).mismatches, 1);
  Vec zero(dinp.size(), 0.0);
  EXPECT_EQ(check_gradient("zero", inp, zero, loss).mismatches, static_cast<int>(dinp.size()));
}

}  // namespace
}  // namespace memento::nn::cpu
