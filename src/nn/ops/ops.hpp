// The ops of the nn layer. Each is an NnOp: a forward the runtime can rerun, a backward, and
// a cost formula (FLOPs and bytes, what the sim backend and the policies see). Shapes follow
// the kernels' conventions (nn/kernels/cpu/kernels_cpu.hpp): row-major, B batch, T
// sequence, C channels, NH heads, V vocab, N = B * T rows. The host backend runs the CPU
// kernels (fp32 only); the cuda backend (when built) runs the CUDA kernels
// (nn/kernels/cuda/kernels_cuda.hpp) in fp32 or bf16, with the parameters' gradients in fp32;
// the sim backend runs nothing and times the cost.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "nn/nn_op.hpp"

namespace memento::nn {

using OpPtr = std::shared_ptr<const NnOp>;

/// out[N,OC] = inp[N,C] · weight[OC,C]ᵀ (+ bias[OC]). Inputs: inp, weight(, bias).
OpPtr make_linear(int N, int C, int OC, bool bias, DType dtype);
/// out[B,T,C] = wte[tokens] + wpe. Inputs: tokens (int32), wte[V,C], wpe[T,C].
OpPtr make_encoder(int B, int T, int C, int V, DType dtype);
/// Layer normalisation over C (eps 1e-5). Inputs: inp[N,C], weight[C], bias[C]. The
/// backward recomputes the row statistics instead of keeping them.
OpPtr make_layernorm(int N, int C, DType dtype);
/// Causal softmax attention scores att[B,NH,T,T] from qkv[B,T,3C]: the large activation
/// that is cheap to recompute. Its gradient flows through attention_values' backward.
OpPtr make_attention_probs(int B, int T, int C, int NH, DType dtype);
/// out[B,T,C] = att · V. Inputs: qkv, att. Its backward produces the whole gradient of qkv
/// (through the scores too), so attention_probs has no backward of its own.
OpPtr make_attention_values(int B, int T, int C, int NH, DType dtype);
/// out[B,T,C] = causal softmax attention of qkv[B,T,3C], as one op whose scores are scratch
/// of at most max(`max_scratch`, one sequence's) bytes (a group of sequences at a time):
/// FlashAttention's memory behaviour, the same bits as attention_probs + attention_values. Its
/// backward recomputes the scores from qkv; the sim backend times it as a fused (FlashAttention-2)
/// kernel.
OpPtr make_fused_attention(int B, int T, int C, int NH, DType dtype,
                           std::size_t max_scratch = std::size_t{64} << 20);
/// GELU, tanh approximation.
OpPtr make_gelu(std::size_t n, DType dtype);
/// out = a + b.
OpPtr make_residual(std::size_t n, DType dtype);
/// Dropout with drop probability p; the mask is a function of the recorded RNG state.
OpPtr make_dropout(std::size_t n, float p, DType dtype);
/// losses[N] (fp32) = -log softmax(logits[N,V])[targets]. Inputs: logits, targets (int32).
OpPtr make_crossentropy(int N, int V, DType dtype);
/// out[rows,width] = in[row0 : row0 + rows, :] of in[total_rows,width]. Its backward
/// accumulates dout into rows row0..row0+rows-1 of the input's gradient (the other rows are
/// untouched) and reads no forward data.
OpPtr make_rows(int total_rows, int row0, int rows, int width, DType dtype);
/// out = the concatenation of K fp32 inputs of rows[k]·width values each (the per-chunk
/// losses). Its backward accumulates the matching slice of dout into each input's gradient
/// and reads no forward data.
OpPtr make_concat_rows(std::vector<int> rows, int width);

}  // namespace memento::nn
