// The CUDA kernels of the nn layer, after the shared nn kernels specification (the CPU kernels
// in nn/kernels/cpu implement the same ops with the same conventions, in one scalar type).
//
// A plain C++ header: it compiles with g++ and without the CUDA headers. Streams are passed as
// `void*` (a cudaStream_t; nullptr is the legacy default stream) and the cuBLAS handle is held
// by the opaque `Blas` object.
//
// Storage type S. Every launcher that touches activations is a template on the storage type S
// of the activations and their gradients, explicitly instantiated for exactly two types:
//   - float: plain fp32;
//   - bf16:  the 16-bit brain float below, bit-compatible with CUDA's __nv_bfloat16 (the .cu
//            files reinterpret it). Host code sees only this small struct.
// All arithmetic and every accumulation is in fp32 (mixed precision: bf16 storage, fp32 math;
// each stored value is rounded once, to nearest even). Parameters are read in S (the forward
// copy of the weights), their gradients are fp32, and the AdamW step updates fp32 master
// parameters (optionally writing an S copy for the next forward).
//
// Conventions (llm.c style): row-major and contiguous; B batch, T sequence, C channels, NH
// heads (hs = C / NH), V vocab, N = B * T rows, OC output channels. Every gradient output
// ACCUMULATES (+=) into its destination: callers zero it first. Scratch buffers are explicit
// arguments. All launchers are asynchronous on their stream and throw memento::BackendError
// when a launch or a cuBLAS call fails.
//
// Determinism: every kernel produces the same bits on every run for the same inputs and sizes.
// No kernel uses atomics on floats; every reduction has a fixed order that does not depend on
// timing (per-thread loops in index order, then a fixed warp-shuffle / shared-memory tree).
// The GEMMs use cuBLAS (cublasGemmEx / cublasGemmStridedBatchedEx, CUBLAS_COMPUTE_32F, no
// TF32) through a `Blas` that owns its own workspace and is bound to a single stream; under
// those conditions cuBLAS guarantees bit-wise reproducible results for a given toolkit version
// and GPU model (see Blas). Keep device buffers 256-byte aligned (the caching allocator does) so
// cuBLAS's alignment-dependent kernel choice is the same for a buffer and its recomputation.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace memento::nn::cuda {

/// bfloat16 as host code sees it: the upper 16 bits of an IEEE-754 float. Same size and
/// layout as __nv_bfloat16, which the kernels use on the device.
struct bf16 {
  std::uint16_t bits = 0;
};
static_assert(sizeof(bf16) == 2 && alignof(bf16) == 2);

/// float -> bf16, round to nearest even, NaN -> the canonical NaN 0x7FFF: the same bits as
/// __float2bfloat16_rn on the device.
[[nodiscard]] constexpr bf16 to_bf16(float f) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return bf16{0x7FFF};
  const std::uint32_t rounded = u + 0x7FFFu + ((u >> 16) & 1u);
  return bf16{static_cast<std::uint16_t>(rounded >> 16)};
}

/// bf16 -> float (exact).
[[nodiscard]] constexpr float to_float(bf16 h) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h.bits) << 16);
}

/// A cuBLAS handle bound to one stream, with a workspace it owns (cublasSetWorkspace), atomics
/// disallowed and CUBLAS_DEFAULT_MATH (fp32 GEMMs run without TF32 because the launchers ask
/// for CUBLAS_COMPUTE_32F explicitly; bf16 GEMMs use tensor cores with fp32 accumulation).
/// cuBLAS is bit-wise reproducible for one toolkit version and GPU model when a single stream
/// is active per handle and the workspace is user-owned: hence one Blas per stream. The GEMM
/// launchers run on blas.stream(), their helper kernels too. Not thread-safe; create it on
/// the device (current CUDA context) that will use it.
class Blas {
 public:
  /// Workspace size: 32 MiB, what NVIDIA recommends for Hopper (more than enough elsewhere).
  static constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20;

  /// Creates the handle on the current device and binds it to `stream`.
  explicit Blas(void* stream = nullptr);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  /// Rebinds to another stream (and re-attaches the workspace, which cublasSetStream drops).
  /// The caller orders the streams: work queued on the old stream is not waited for.
  void set_stream(void* stream);
  [[nodiscard]] void* stream() const noexcept { return stream_; }
  /// The cublasHandle_t.
  [[nodiscard]] void* handle() const noexcept { return handle_; }

 private:
  void* handle_ = nullptr;
  void* workspace_ = nullptr;
  void* stream_ = nullptr;
};

// ---- 1. matmul (cuBLAS) -----------------------------------------------------------------
/// out[N,OC] = inp[N,C] * weight[OC,C]^T + bias[OC]; bias may be null. With a bias, `out` is
/// first filled with it and the GEMM adds with beta = 1, so each output is rounded once.
template <typename S>
void matmul_forward(Blas& blas, S* out, const S* inp, const S* weight, const S* bias, int N, int C,
                    int OC);
/// dinp[N,C] += dout * weight; dweight[OC,C] += dout^T * inp; dbias[OC] += sum_n dout (dbias
/// may be null; summed in a fixed order, no atomics).
template <typename S>
void matmul_backward(Blas& blas, S* dinp, float* dweight, float* dbias, const S* dout, const S* inp,
                     const S* weight, int N, int C, int OC);

// ---- 2. encoder -------------------------------------------------------------------------
/// out[B,T,C] = wte[tokens[b,t],:] + wpe[t,:]; tokens int32 in [0, V).
template <typename S>
void encoder_forward(S* out, const std::int32_t* tokens, const S* wte, const S* wpe, int B, int T,
                     int C, void* stream);
/// dwte[V,C] += scatter of dout by token; dwpe[T,C] += sum over b. Deterministic: for each
/// (v, c) the contributions are added in increasing (b, t) order, for each (t, c) in
/// increasing b; no atomics.
template <typename S>
void encoder_backward(float* dwte, float* dwpe, const S* dout, const std::int32_t* tokens, int B,
                      int T, int C, void* stream);

// ---- 3. layernorm (eps = 1e-5) ----------------------------------------------------------
/// out[N,C], mean[N], rstd[N] from inp[N,C], weight[C], bias[C].
template <typename S>
void layernorm_forward(S* out, float* mean, float* rstd, const S* inp, const S* weight,
                       const S* bias, int N, int C, void* stream);
/// dinp[N,C] +=, dweight[C] +=, dbias[C] += from dout, inp, weight, mean, rstd.
template <typename S>
void layernorm_backward(S* dinp, float* dweight, float* dbias, const S* dout, const S* inp,
                        const S* weight, const float* mean, const float* rstd, int N, int C,
                        void* stream);

// ---- 4. gelu (tanh approximation) -------------------------------------------------------
template <typename S>
void gelu_forward(S* out, const S* inp, std::size_t n, void* stream);
/// dinp[i] += dout[i] * gelu'(inp[i]).
template <typename S>
void gelu_backward(S* dinp, const S* inp, const S* dout, std::size_t n, void* stream);

// ---- 5. causal self-attention -----------------------------------------------------------
/// qkv[B,T,3C] -> out[B,T,C]; saves preatt[B,NH,T,T] (scores scaled by 1/sqrt(hs)) and
/// att[B,NH,T,T] (softmax over the causal prefix; exactly 0 above the diagonal). The entries
/// of preatt above the diagonal hold the unmasked scaled scores (they are never read).
template <typename S>
void attention_forward(Blas& blas, S* out, S* preatt, S* att, const S* qkv, int B, int T, int C,
                       int NH);
/// dqkv[B,T,3C] += from dout[B,T,C], qkv, att; dpreatt and datt [B,NH,T,T] are scratch
/// (overwritten).
template <typename S>
void attention_backward(Blas& blas, S* dqkv, S* dpreatt, S* datt, const S* dout, const S* qkv,
                        const S* att, int B, int T, int C, int NH);

// ---- 6. dropout -------------------------------------------------------------------------
/// out[i] = keep(i) ? inp[i] / (1 - p) : 0 with keep(i) = dropout_keep(seed, offset + i, p)
/// (nn/kernels/dropout_rng.hpp); p in [0, 1).
template <typename S>
void dropout_forward(S* out, const S* inp, std::size_t n, float p, std::uint64_t seed,
                     std::uint64_t offset, void* stream);
/// dinp[i] += keep(i) ? dout[i] / (1 - p) : 0; the mask is recomputed, never stored.
template <typename S>
void dropout_backward(S* dinp, const S* dout, std::size_t n, float p, std::uint64_t seed,
                      std::uint64_t offset, void* stream);

// ---- 7. residual ------------------------------------------------------------------------
template <typename S>
void residual_forward(S* out, const S* a, const S* b, std::size_t n, void* stream);
/// da += dout; db += dout.
template <typename S>
void residual_backward(S* da, S* db, const S* dout, std::size_t n, void* stream);

// ---- 8. softmax cross-entropy -----------------------------------------------------------
/// probs[N,V] = softmax(logits[N,V]); losses[N] = -log probs[n, targets[n]], computed in fp32
/// as log(sum exp(x - max)) - (x[target] - max), not from the probs rounded to S (NaN for a
/// target outside [0, V)).
template <typename S>
void crossentropy_forward(S* probs, float* losses, const S* logits, const std::int32_t* targets,
                          int N, int V, void* stream);
/// dlogits[N,V] += (probs - onehot(targets)) * dlosses[n].
template <typename S>
void crossentropy_backward(S* dlogits, const S* probs, const float* dlosses,
                           const std::int32_t* targets, int N, int V, void* stream);

// ---- 9. AdamW ---------------------------------------------------------------------------
/// One AdamW step (decoupled weight decay, bias correction, step t >= 1) on fp32 master
/// params[n] with fp32 grads, m, v:
///   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
///   params -= lr * ((m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + wd * params)
/// When `params_copy` is not null it receives the updated params in S (the forward copy).
template <typename S>
void adamw_step(float* params, S* params_copy, const float* grads, float* m, float* v,
                std::size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                int t, void* stream);

// ---- 10. row slices ----------------------------------------------------------------------
/// out[i] = in[i] for i < n (a device-to-device copy on the stream).
template <typename S>
void copy(S* out, const S* in, std::size_t n, void* stream);
/// dst[i] += src[i] for i < n (the gradient of a row slice).
template <typename S>
void accumulate(S* dst, const S* src, std::size_t n, void* stream);

// ---- 11. helpers (not templates) --------------------------------------------------------
/// out[i] = value for i < n (fp32).
void fill_f32(float* out, std::size_t n, float value, void* stream);
/// out[i] = to_float(in[i]) for i < n (exact): fp32 master weights from bf16 parameters.
void bf16_to_f32(float* out, const bf16* in, std::size_t n, void* stream);
/// out[i] = to_bf16(in[i]) for i < n (round to nearest even): gradients for the link.
void f32_to_bf16(bf16* out, const float* in, std::size_t n, void* stream);

}  // namespace memento::nn::cuda
