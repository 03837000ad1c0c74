// The host AdamW step as HostAdamW runs it: the update of cpu::adamw_update<float>, the same
// float operations in the same order (so the same bits), written for the compiler to
// vectorise, on a range of a parameter so that a thread pool can share one parameter; fused
// with widening a bf16 gradient and writing the parameter back in its dtype.
#pragma once

#include <cstddef>
#include <cstdint>

namespace memento::nn::cpu {

struct AdamWScalars {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  int t = 1;  ///< the step, from 1
};

/// One parameter's buffers. Exactly one of grad_f32 / grad_bf16 is set; out_f32 and out_bf16
/// (the parameter in the model's dtype, for the upload) may both be null.
struct AdamWBuffers {
  float* master = nullptr;  ///< fp32 master weights, updated in place
  float* m = nullptr;
  float* v = nullptr;
  const float* grad_f32 = nullptr;
  const std::uint16_t* grad_bf16 = nullptr;  ///< bf16 bits, widened exactly
  float* out_f32 = nullptr;
  std::uint16_t* out_bf16 = nullptr;  ///< rounded to nearest even, NaN -> 0x7FFF (to_bf16)
};

/// AdamW step s.t over elements [begin, end) of `b`. Bit-identical to adamw_update<float> on
/// the same range (and, for out_bf16, to cuda::to_bf16 of its result).
void adamw_host_update(const AdamWBuffers& b, std::size_t begin, std::size_t end,
                       const AdamWScalars& s);

/// out[i] = to_bf16(in[i]) (round to nearest even, NaN -> 0x7FFF), vectorised.
void f32_to_bf16(std::uint16_t* out, const float* in, std::size_t n);

}  // namespace memento::nn::cpu
