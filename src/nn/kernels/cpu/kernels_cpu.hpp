// CPU kernels of the nn layer, after the shared nn kernels specification (llm.c conventions):
// row-major contiguous tensors, B batch, seq sequence length (T in the spec), C channels,
// NH heads, V vocabulary, N = B*seq rows, OC output channels.
//
// Contract shared with the CUDA kernels:
// - Every gradient output ACCUMULATES (+=) into its destination; callers zero it first. This
//   lets several uses of one tensor add their gradients.
// - Scratch arguments (attention's dpreatt, datt) are overwritten, never read first.
// - Deterministic: each output element is reduced in a fixed order, so the same inputs give the
//   same bits on every call, whatever the thread counts and whichever thread calls (see
//   gemm.cpp). Recomputed activations and gradients under eviction rely on this being exact.
//
// Every function is a template on the scalar type T, explicitly instantiated for float (the
// training type) and double (used by the finite-difference tests).
#pragma once

#include <cstddef>
#include <cstdint>

namespace memento::nn::cpu {

/// out[N,OC] = inp[N,C] * weight[OC,C]^T + bias[OC]; bias may be null.
template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC);

/// dinp[N,C] += dout*weight; dweight[OC,C] += dout^T*inp; dbias[OC] += sum over rows of dout
/// (dbias may be null).
template <typename T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                     int N, int C, int OC);

/// out[B,seq,C] = wte[tokens[b,t],:] + wpe[t,:]; tokens must lie in [0, V).
template <typename T>
void encoder_forward(T* out, const std::int32_t* tokens, const T* wte, const T* wpe, int B, int seq,
                     int C);

/// dwte[tokens[b,t],:] += dout[b,t,:]; dwpe[t,:] += dout[b,t,:], summed in (b, t) order.
template <typename T>
void encoder_backward(T* dwte, T* dwpe, const T* dout, const std::int32_t* tokens, int B, int seq,
                      int C);

/// Layer normalisation over the last dim (eps 1e-5); also saves mean[N] and rstd[N].
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                       int N, int C);

/// dinp[N,C] +=, dweight[C] +=, dbias[C] += from the forward's saved mean and rstd.
template <typename T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const T* mean, const T* rstd, int N, int C);

/// GELU, tanh approximation (GPT-2).
template <typename T>
void gelu_forward(T* out, const T* inp, std::size_t n);

/// dinp[i] += dout[i] * gelu'(inp[i]).
template <typename T>
void gelu_backward(T* dinp, const T* inp, const T* dout, std::size_t n);

/// Causal self-attention: qkv[B,seq,3C] -> out[B,seq,C]; saves preatt[B,NH,seq,seq] (scores
/// scaled by 1/sqrt(C/NH)) and att[B,NH,seq,seq] (causal softmax). Entries above the diagonal
/// are 0 in both. C must be a multiple of NH.
template <typename T>
void attention_forward(T* out, T* preatt, T* att, const T* qkv, int B, int seq, int C, int NH);

/// out[b,t,h·hs+i] = Σ_{u ≤ t} att[b,h,t,u] · v[b,u,h·hs+i], summed in u order: the attention
/// output from probabilities att (attention_forward's) alone, fp32.
void attention_values(float* out, const float* qkv, const float* att, int B, int seq, int C,
                      int NH);

/// dqkv[B,seq,3C] += from dout, qkv and the forward's att; dpreatt and datt [B,NH,seq,seq] are
/// scratch.
template <typename T>
void attention_backward(T* dqkv, T* dpreatt, T* datt, const T* dout, const T* qkv, const T* att,
                        int B, int seq, int C, int NH);

/// out[i] = keep(i) ? inp[i] / (1-p) : 0 with keep(i) = dropout_keep(seed, offset + i, p);
/// p in [0, 1).
template <typename T>
void dropout_forward(T* out, const T* inp, std::size_t n, float p, std::uint64_t seed,
                     std::uint64_t offset);

/// dinp[i] += keep(i) ? dout[i] / (1-p) : 0, the mask redrawn from (seed, offset).
template <typename T>
void dropout_backward(T* dinp, const T* dout, std::size_t n, float p, std::uint64_t seed,
                      std::uint64_t offset);

/// out[i] = a[i] + b[i].
template <typename T>
void residual_forward(T* out, const T* a, const T* b, std::size_t n);

/// da[i] += dout[i]; db[i] += dout[i].
template <typename T>
void residual_backward(T* da, T* db, const T* dout, std::size_t n);

/// probs[N,V] = softmax(logits) row-wise; losses[n] = -log probs[n, targets[n]].
template <typename T>
void crossentropy_forward(T* probs, T* losses, const T* logits, const std::int32_t* targets, int N,
                          int V);

/// dlogits[n,:] += (probs[n,:] - onehot(targets[n])) * dlosses[n]. (probs before dlosses, as in
/// the CUDA kernel: both are const T*, so a swap would compile.)
template <typename T>
void crossentropy_backward(T* dlogits, const T* probs, const T* dlosses,
                           const std::int32_t* targets, int N, int V);

/// One AdamW step (decoupled weight decay, bias correction for step t >= 1), in place on
/// params, m and v.
template <typename T>
void adamw_update(T* params, const T* grads, T* m, T* v, std::size_t n, T lr, T beta1, T beta2,
                  T eps, T weight_decay, int t);

/// The most threads one kernel call may use (default: the hardware's). Results do not depend
/// on it. OpenBLAS itself is kept single-threaded (see gemm.cpp): do not raise its thread count
/// with openblas_set_num_threads, the kernels set it back to 1.
int num_threads();

/// Sets that cap for all later calls, from any thread (n < 1 means 1).
void set_num_threads(int n);

}  // namespace memento::nn::cpu
