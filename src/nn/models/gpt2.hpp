// The GPT-2 family (llm.c layout): token and learned position embeddings, pre-norm blocks of
// causal self-attention and a GELU MLP, a final layer norm, and logits tied to the token
// embedding. GPT-J-6B is given by its shapes only: its rotary position embeddings are
// approximated by learned positions and its parallel attention/MLP by GPT-2's sequential
// block, so its memory and FLOPs are close to the real model's but it is not GPT-J.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "nn/models/model.hpp"

namespace memento::nn {

/// How a block computes attention. eager: two ops, with the scores att[B,NH,T,T] an activation
/// the runtime keeps, drops or offloads (Hugging Face's "eager"). fused: one op whose scores
/// are scratch, recomputed by its backward (FlashAttention, PyTorch's SDPA).
enum class Attention : std::uint8_t { eager, fused };

[[nodiscard]] const char* to_string(Attention a) noexcept;
/// "eager" or "fused"; ConfigError naming the accepted values otherwise.
[[nodiscard]] Attention parse_attention(std::string_view text);

struct Gpt2Config {
  std::string name = "custom";
  int layers = 2;
  int heads = 4;
  int channels = 64;
  int seq = 64;
  int vocab = 256;
  int batch = 4;
  float dropout = 0.0f;
  DType dtype = DType::f32;
  /// The head (logits and cross-entropy) runs in this many chunks of ceil(B·T / K) rows (the
  /// last shorter; fewer chunks when K does not divide the rows evenly enough): only one
  /// chunk's logits gradient is live at a time. 0: the fewest chunks whose logits are at most
  /// 256 MiB each. 1: the whole head at once.
  int head_chunks = 0;
  Attention attention = Attention::eager;
};

/// gpt2-tiny, gpt2-124m, gpt2-355m, gpt2-774m, gpt2-1.5b, gpt-j-6b; ConfigError listing
/// them otherwise. Batch and sequence are the presets' defaults; change them after.
[[nodiscard]] Gpt2Config gpt2_preset(std::string_view name);
[[nodiscard]] std::vector<std::string> gpt2_preset_names();

/// The number of chunks the head runs in (head_chunks resolved; see Gpt2Config).
[[nodiscard]] int gpt2_head_chunks(const Gpt2Config& c);

/// Activation bytes the forward keeps for the backward, in closed form (see gpt2.cpp).
[[nodiscard]] double gpt2_activation_bytes(const Gpt2Config& c);

/// Builds the model's parameters on `tape` (initialised on host and cuda; the sim backend
/// holds no data). The batch of each step is a synthetic text: a first-order Markov chain
/// over the vocabulary (mostly a fixed successor per token, sometimes a random one), which
/// the model can learn, so the loss falls.
std::unique_ptr<Model> make_gpt2(const Gpt2Config& config, Tape& tape, std::uint64_t seed);

}  // namespace memento::nn
