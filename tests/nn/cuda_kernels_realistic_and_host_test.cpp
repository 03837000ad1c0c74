// The CUDA kernels at GPT-2 small sized shapes (two runs, same bits), and the host-side checks
// of the CUDA kernel layer that run everywhere: bf16 conversion and argument validation. Without
// a GPU the device test skips with the reason; without the cuda backend the single placeholder
// below skips instead.
#include <gtest/gtest.h>

#if MEMENTO_HAS_CUDA

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <vector>

#include "memento/error.hpp"
#include "nn/cuda_kernels_test_util.hpp"

namespace memento::nn::cuda::kernel_test {
namespace {

// GPT-2 small sized shapes, where cuBLAS picks its real kernels and every reduction runs over
// many blocks: two runs, same bits.
TYPED_TEST(CudaKernelsTest, RealisticShapesAreDeterministic) {
  using S = TypeParam;
  constexpr int B = 4, T = 256, C = 768, NH = 12, V = 50257;
  constexpr int N = B * T;
  auto& rng = this->rng_;
  DeviceBuffer<S> inp(random_vector<S>(std::size_t{N} * C, rng));
  DeviceBuffer<S> weight(random_vector<S>(std::size_t{3} * C * C, rng, -0.05f, 0.05f));
  DeviceBuffer<S> bias(random_vector<S>(std::size_t{3} * C, rng));
  DeviceBuffer<S> ln_w(random_vector<S>(C, rng)), ln_b(random_vector<S>(C, rng));
  DeviceBuffer<S> dout3(random_vector<S>(std::size_t{N} * 3 * C, rng));
  DeviceBuffer<S> dout(random_vector<S>(std::size_t{N} * C, rng));
  DeviceBuffer<S> logits(random_vector<S>(std::size_t{256} * V, rng, -5.0f, 5.0f));
  DeviceBuffer<std::int32_t> tokens(random_ints(N, V, rng));
  DeviceBuffer<S> wte(random_vector<S>(std::size_t{V} * C, rng)),
      wpe(random_vector<S>(std::size_t{T} * C, rng));
  const std::size_t TT = std::size_t{B} * NH * T * T;

  auto run = [&] {
    DeviceBuffer<S> ln(std::size_t{N} * C), qkv(std::size_t{N} * 3 * C),
        att_out(std::size_t{N} * C);
    DeviceBuffer<S> dinp(std::vector<S>(std::size_t{N} * C, S{}));
    DeviceBuffer<S> dqkv(std::vector<S>(std::size_t{N} * 3 * C, S{}));
    DeviceBuffer<S> preatt(TT), att(TT), dpreatt(TT), datt(TT), probs(std::size_t{256} * V),
        enc(std::size_t{N} * C);
    DeviceBuffer<float> mean(N), rstd(N), losses(256);
    DeviceBuffer<float> dweight(std::vector<float>(std::size_t{3} * C * C, 0.0f)),
        dbias(std::vector<float>(std::size_t{3} * C, 0.0f)), dln_w(std::vector<float>(C, 0.0f)),
        dln_b(std::vector<float>(C, 0.0f)), dwte(std::vector<float>(std::size_t{V} * C, 0.0f)),
        dwpe(std::vector<float>(std::size_t{T} * C, 0.0f));
    void* s = this->stream();
    layernorm_forward<S>(ln.get(), mean.get(), rstd.get(), inp.get(), ln_w.get(), ln_b.get(), N, C,
                         s);
    matmul_forward<S>(*this->blas_, qkv.get(), ln.get(), weight.get(), bias.get(), N, C, 3 * C);
    attention_forward<S>(*this->blas_, att_out.get(), preatt.get(), att.get(), qkv.get(), B, T, C,
                         NH);
    attention_backward<S>(*this->blas_, dqkv.get(), dpreatt.get(), datt.get(), dout.get(),
                          qkv.get(), att.get(), B, T, C, NH);
    matmul_backward<S>(*this->blas_, dinp.get(), dweight.get(), dbias.get(), dout3.get(), ln.get(),
                       weight.get(), N, C, 3 * C);
    layernorm_backward<S>(dinp.get(), dln_w.get(), dln_b.get(), dout.get(), inp.get(), ln_w.get(),
                          mean.get(), rstd.get(), N, C, s);
    crossentropy_forward<S>(probs.get(), losses.get(), logits.get(), tokens.get(), 256, V, s);
    encoder_forward<S>(enc.get(), tokens.get(), wte.get(), wpe.get(), B, T, C, s);
    encoder_backward<S>(dwte.get(), dwpe.get(), dout.get(), tokens.get(), B, T, C, s);
    this->sync();
    return std::make_tuple(
        std::vector<std::vector<S>>{ln.download(), qkv.download(), att_out.download(),
                                    att.download(), dqkv.download(), dinp.download(),
                                    probs.download(), enc.download()},
        std::vector<std::vector<float>>{mean.download(), rstd.download(), dweight.download(),
                                        dbias.download(), dln_w.download(), dln_b.download(),
                                        losses.download(), dwte.download(), dwpe.download()});
  };
  const auto [acts, grads] = run();
  const auto [acts2, grads2] = run();
  for (std::size_t i = 0; i < acts.size(); ++i)
    EXPECT_TRUE(same_bits(acts[i], acts2[i])) << "activation " << i;
  for (std::size_t i = 0; i < grads.size(); ++i)
    EXPECT_TRUE(same_bits(grads[i], grads2[i])) << "fp32 output " << i;
}

// ---- host-side checks: no GPU needed ----------------------------------------------------
TEST(CudaKernelsHost, Bf16RoundsToNearestEven) {
  EXPECT_EQ(to_bf16(1.0f).bits, 0x3F80);
  EXPECT_EQ(to_float(to_bf16(-2.5f)), -2.5f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even mantissa (1).
  EXPECT_EQ(to_bf16(1.0f + 0x1p-8f).bits, 0x3F80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
  EXPECT_EQ(to_bf16(1.0f + 3 * 0x1p-8f).bits, 0x3F82);
  EXPECT_EQ(to_bf16(1.0f + 0x1p-8f + 0x1p-12f).bits, 0x3F81);  // above halfway: up
  EXPECT_EQ(to_bf16(std::nanf("")).bits, 0x7FFF);
  EXPECT_EQ(to_float(to_bf16(INFINITY)), INFINITY);
  static_assert(to_bf16(2.0f).bits == 0x4000);
}

TEST(CudaKernelsHost, RejectsBadArguments) {
  // Validated on the host before anything is launched, so this runs without a GPU.
  EXPECT_THROW(dropout_forward<float>(nullptr, nullptr, 1, 1.0f, 0, 0, nullptr), LogicError);
  EXPECT_THROW(dropout_backward<bf16>(nullptr, nullptr, 1, -0.1f, 0, 0, nullptr), LogicError);
  EXPECT_THROW(adamw_step<float>(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 1e-3f, 0.9f,
                                 0.999f, 1e-8f, 0.0f, 0, nullptr),
               LogicError);
  EXPECT_THROW(
      layernorm_forward<float>(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 4, 0, nullptr),
      LogicError);
}

}  // namespace
}  // namespace memento::nn::cuda::kernel_test

#else  // !MEMENTO_HAS_CUDA

TEST(CudaKernels, NeedTheCudaBuild) {
  GTEST_SKIP() << "memento was built without the cuda backend: no CUDA kernels to test";
}

#endif  // MEMENTO_HAS_CUDA
