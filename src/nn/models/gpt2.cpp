#include "nn/models/gpt2.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "memento/error.hpp"
#include "nn/kernels/dropout_rng.hpp"
#include "nn/ops/ops.hpp"

namespace memento::nn {
namespace {

const std::vector<Gpt2Config>& presets() {
  // Shapes from the GPT-2 paper / Hugging Face configs; GPT-J-6B from EleutherAI's.
  static const std::vector<Gpt2Config> p = {
      {"gpt2-tiny", 4, 4, 64, 64, 256, 8, 0.1f, DType::f32, 0},
      {"gpt2-124m", 12, 12, 768, 1024, 50257, 8, 0.1f, DType::f32, 0},
      {"gpt2-355m", 24, 16, 1024, 1024, 50257, 8, 0.1f, DType::f32, 0},
      {"gpt2-774m", 36, 20, 1280, 1024, 50257, 8, 0.1f, DType::f32, 0},
      {"gpt2-1.5b", 48, 25, 1600, 1024, 50257, 8, 0.1f, DType::f32, 0},
      {"gpt-j-6b", 28, 16, 4096, 2048, 50400, 1, 0.0f, DType::f32, 0},
  };
  return p;
}

std::size_t z(long long v) { return static_cast<std::size_t>(v); }

/// The most logits bytes of one chunk of the head when head_chunks is 0 (auto).
constexpr double kHeadChunkBytes = 256.0 * 1024 * 1024;

/// Rows per chunk of the head: ceil(N / K), with K = head_chunks or, for 0, the smallest K
/// whose chunk's logits (ceil(N / K) · V · dtype bytes) fit kHeadChunkBytes, at most N.
int head_chunk_rows(const Gpt2Config& c) {
  const long long N = static_cast<long long>(c.batch) * c.seq;
  MEMENTO_EXPECTS(N > 0 && c.vocab > 0,
                  fmt::format("{}: every dimension must be positive", c.name));
  MEMENTO_EXPECTS(c.head_chunks >= 0 && c.head_chunks <= N,
                  fmt::format("{}: head_chunks ({}) must be 0 (auto) or 1 to the B·T = {} rows",
                              c.name, c.head_chunks, N),
                  ConfigError);
  long long K = c.head_chunks;
  if (K == 0) {
    const double row = static_cast<double>(c.vocab) * static_cast<double>(dtype_bytes(c.dtype));
    const auto fit = std::max(1LL, static_cast<long long>(std::floor(kHeadChunkBytes / row)));
    K = std::min(N, (N + fit - 1) / fit);
  }
  return static_cast<int>((N + K - 1) / K);
}

struct Block {
  TensorId ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb;
};

class Gpt2 final : public Model {
 public:
  Gpt2(const Gpt2Config& c, Tape& tape, std::uint64_t seed) : c_(c), seed_(seed) {
    MEMENTO_EXPECTS(
        c.layers > 0 && c.heads > 0 && c.channels > 0 && c.seq > 0 && c.vocab > 1 && c.batch > 0,
        fmt::format("{}: every dimension must be positive", c.name));
    head_rows_ = head_chunk_rows(c);
    MEMENTO_EXPECTS(c.channels % c.heads == 0,
                    fmt::format("{}: channels ({}) must be a multiple of heads ({})", c.name,
                                c.channels, c.heads));
    const bool host_data = tape.backend().info().holds_data;  // else writes are pointless
    MEMENTO_EXPECTS(c.dtype == DType::f32 || tape.backend().info().supports_bf16,
                    fmt::format("{}: bf16 needs the cuda or sim backend; the host backend's "
                                "kernels are fp32",
                                c.name));
    const long long C = c.channels;
    std::uint64_t k = 0;
    auto param = [&](long long count, float stddev, float fill) {
      const std::size_t n = z(count);
      TensorId id = tape.parameter(n * dtype_bytes(c.dtype), n * 4);
      count_ += n;
      if (host_data) {
        std::vector<float> v(n, fill);
        if (stddev > 0) init_normal(v, mix64(seed ^ ++k), stddev);
        write_values(tape, id, v, c.dtype);
      }
      return id;
    };
    // GPT-2's init: N(0, 0.02); projections into the residual stream scaled by 1/sqrt(2L).
    const float proj_std = 0.02f / std::sqrt(2.0f * static_cast<float>(c.layers));
    wte_ = param(c.vocab * C, 0.02f, 0);
    wpe_ = param(c.seq * C, 0.01f, 0);
    for (int l = 0; l < c.layers; ++l) {
      blocks_.push_back(Block{param(C, 0, 1), param(C, 0, 0), param(3 * C * C, 0.02f, 0),
                              param(3 * C, 0, 0), param(C * C, proj_std, 0), param(C, 0, 0),
                              param(C, 0, 1), param(C, 0, 0), param(4 * C * C, 0.02f, 0),
                              param(4 * C, 0, 0), param(4 * C * C, proj_std, 0), param(C, 0, 0)});
    }
    lnfw_ = param(C, 0, 1);
    lnfb_ = param(C, 0, 0);
  }

  std::string name() const override { return c_.name; }
  std::size_t loss_count() const override { return z(c_.batch) * z(c_.seq); }
  std::size_t parameter_count() const override { return count_; }

  ChainShape chain_shape() const override {
    const double s = static_cast<double>(dtype_bytes(c_.dtype));
    const double btc = static_cast<double>(c_.batch) * c_.seq * c_.channels;
    const double bt = static_cast<double>(c_.batch) * c_.seq;
    const double scores = bt * c_.heads * c_.seq;
    const double C = c_.channels;
    ChainShape shape;
    shape.blocks = c_.layers;
    shape.input_bytes = s * btc;
    const int B = c_.batch, T = c_.seq, Ci = c_.channels, NH = c_.heads, N = B * T;
    const auto cost = [](const OpPtr& op) { return op->cost({}, 0); };
    const KernelCost ln = cost(make_layernorm(N, Ci, c_.dtype));
    const KernelCost probs = cost(make_attention_probs(B, T, Ci, NH, c_.dtype));
    const KernelCost gelu = cost(make_gelu(z(N) * z(4 * Ci), c_.dtype));
    const KernelCost dropout = cost(make_dropout(z(N) * z(Ci), c_.dropout, c_.dtype));
    const KernelCost residual = cost(make_residual(z(N) * z(Ci), c_.dtype));
    const KernelCost qkv = cost(make_linear(N, Ci, 3 * Ci, true, c_.dtype));
    const KernelCost values = cost(make_attention_values(B, T, Ci, NH, c_.dtype));
    const KernelCost fused = cost(make_fused_attention(B, T, Ci, NH, c_.dtype));
    const bool eager = c_.attention == Attention::eager;
    const KernelCost proj = cost(make_linear(N, Ci, Ci, true, c_.dtype));
    const KernelCost fc = cost(make_linear(N, Ci, 4 * Ci, true, c_.dtype));
    // Each role with what recomputes it from the tensors it reads (the scores from qkv, the
    // norms from the block's input and x2, x2 from the attention's output through the
    // projection, ...): a selective plan drops the cheapest per byte first; dropping them
    // all is checkpointing the block.
    std::vector<KernelCost> x2 = {proj, residual};
    if (c_.dropout > 0) x2.push_back(dropout);
    // With fused attention there are no scores to keep, and the attention's output is
    // recomputed by the fused op from qkv.
    shape.roles = {{"ln1", s * btc, {ln}}, {"qkv", 3 * s * btc, {qkv}}};
    if (eager) shape.roles.push_back({"att", s * scores, {probs}});
    shape.roles.push_back({"atty", s * btc, {eager ? values : fused}});
    shape.roles.insert(shape.roles.end(), {{"x2", s * btc, x2},
                                           {"ln2", s * btc, {ln}},
                                           {"fc", 4 * s * btc, {fc}},
                                           {"gelu", 4 * s * btc, {gelu}}});
    for (const BlockRole& r : shape.roles) shape.saved_bytes += r.bytes;
    // What recomputing a checkpointed block reruns: everything up to its last saved role
    // (gelu), not the MLP's output projection and residual, whose outputs no backward reads.
    shape.recompute_kernels = {ln, qkv};
    if (eager) {
      shape.recompute_kernels.insert(shape.recompute_kernels.end(), {probs, values});
    } else {
      shape.recompute_kernels.push_back(fused);
    }
    shape.recompute_kernels.insert(shape.recompute_kernels.end(), {proj, residual, ln, fc, gelu});
    if (c_.dropout > 0) shape.recompute_kernels.push_back(dropout);
    shape.block_kernels = shape.recompute_kernels;
    shape.block_kernels.push_back(cost(make_linear(N, 4 * Ci, Ci, true, c_.dtype)));
    shape.block_kernels.push_back(residual);
    if (c_.dropout > 0) shape.block_kernels.push_back(dropout);
    // Matrix products (qkv, projection, MLP: 24·B·T·C²) and attention (4·B·T²·C; fused: on
    // the causal triangle only).
    shape.block_flops = 24 * bt * C * C + (eager ? 4 : 2) * bt * c_.seq * C;
    // The backward's gradient buffers: the residual stream's gradient in and out, the
    // largest op's (the GELU's: its output's and input's gradients, 4 each) and the block's
    // fp32 parameter gradients. (The attention's scores and their gradients are kernel
    // scratch.)
    shape.backward_bytes = s * (2 * btc + 8 * btc) + 4 * 12 * C * C;
    // The head: every chunk's logits (kept unless a plan discards them) and the cost of
    // recomputing them all from the final norm's output.
    shape.head_chunks = chunks();
    shape.head_logits_bytes = s * bt * c_.vocab;
    for (int k = 0; k < shape.head_chunks; ++k)
      shape.head_recompute.push_back(
          cost(make_linear(chunk_rows(k), Ci, c_.vocab, false, c_.dtype)));
    // The parameters, the last block's output, the final norm, every chunk's logits and one
    // chunk's logits gradient (live as the backward starts, with every kept activation), and
    // the fp32 losses with the int32 tokens and targets.
    shape.fixed_bytes = s * static_cast<double>(count_) + s * 2 * btc + shape.head_logits_bytes +
                        s * static_cast<double>(head_rows_) * c_.vocab + 12 * bt;
    return shape;
  }

  TensorId forward(Tape& tape, std::uint64_t step) override {
    const int B = c_.batch, T = c_.seq, C = c_.channels, NH = c_.heads, V = c_.vocab;
    const int N = B * T;
    const DType dt = c_.dtype;
    const std::size_t s = dtype_bytes(dt);
    const std::size_t btc = z(N) * z(C) * s;
    const int K = chunks();
    TensorId tokens = tape.input(z(N) * 4);
    std::vector<TensorId> targets;  // one per chunk of the head
    for (int k = 0; k < K; ++k) targets.push_back(tape.input(z(chunk_rows(k)) * 4));
    if (tape.backend().info().holds_data) {
      std::vector<std::int32_t> tok(z(N));
      std::vector<std::int32_t> tgt(z(N));
      batch(step, tok, tgt);
      tape.write(tokens, tok.data(), tok.size() * 4);
      for (int k = 0; k < K; ++k)
        tape.write(targets[z(k)], tgt.data() + z(k) * z(head_rows_), z(chunk_rows(k)) * 4);
    }
    std::uint64_t site = 0;
    auto dropout = [&](TensorId x) {
      if (c_.dropout <= 0) return x;
      TensorId y = tape.apply(make_dropout(z(N) * z(C), c_.dropout, dt), {x}, btc,
                              RngState{mix64(seed_ ^ step), ++site << 40});
      tape.release(x);
      return y;
    };
    TensorId x = tape.apply(make_encoder(B, T, C, V, dt), {tokens, wte_, wpe_}, btc, {},
                            TensorTag{0, "input"});
    const int L = static_cast<int>(blocks_.size());
    for (int l = 0; l < L; ++l) {
      const Block& b = blocks_[static_cast<std::size_t>(l)];
      auto tag = [l](std::string_view role) { return TensorTag{l, role}; };
      TensorId ln1 = tape.apply(make_layernorm(N, C, dt), {x, b.ln1w, b.ln1b}, btc, {}, tag("ln1"));
      TensorId qkv = tape.apply(make_linear(N, C, 3 * C, true, dt), {ln1, b.qkvw, b.qkvb}, 3 * btc,
                                {}, tag("qkv"));
      TensorId att = 0;  // eager attention's scores
      TensorId atty = 0;
      if (c_.attention == Attention::eager) {
        att = tape.apply(make_attention_probs(B, T, C, NH, dt), {qkv},
                         z(B) * z(NH) * z(T) * z(T) * s, {}, tag("att"));
        atty = tape.apply(make_attention_values(B, T, C, NH, dt), {qkv, att}, btc, {}, tag("atty"));
      } else {
        atty = tape.apply(make_fused_attention(B, T, C, NH, dt), {qkv}, btc, {}, tag("atty"));
      }
      TensorId proj =
          dropout(tape.apply(make_linear(N, C, C, true, dt), {atty, b.projw, b.projb}, btc));
      TensorId x2 = tape.apply(make_residual(z(N) * z(C), dt), {x, proj}, btc, {}, tag("x2"));
      TensorId ln2 =
          tape.apply(make_layernorm(N, C, dt), {x2, b.ln2w, b.ln2b}, btc, {}, tag("ln2"));
      TensorId fc = tape.apply(make_linear(N, C, 4 * C, true, dt), {ln2, b.fcw, b.fcb}, 4 * btc, {},
                               tag("fc"));
      TensorId g = tape.apply(make_gelu(z(N) * z(4 * C), dt), {fc}, 4 * btc, {}, tag("gelu"));
      TensorId fcp =
          dropout(tape.apply(make_linear(N, 4 * C, C, true, dt), {g, b.fcprojw, b.fcprojb}, btc));
      // The next block's input; after the last block, the head's (not planned).
      TensorId x3 = tape.apply(make_residual(z(N) * z(C), dt), {x2, fcp}, btc, {},
                               l + 1 < L ? TensorTag{l + 1, "input"} : TensorTag{});
      // The eager scores are released in their old place among the rest: the order of
      // releases is when plans drop or copy tensors, and the published figures rest on it.
      std::vector<TensorId> done = {x, ln1, qkv, atty, proj, x2, ln2, fc, g, fcp};
      if (c_.attention == Attention::eager) done.insert(done.begin() + 3, att);
      for (TensorId t : done) tape.release(t);
      x = x3;
    }
    TensorId lnf = tape.apply(make_layernorm(N, C, dt), {x, lnfw_, lnfb_}, btc);
    const TensorTag logits_tag{-1, "logits"};
    if (K == 1) {
      TensorId logits =
          tape.apply(make_linear(N, C, V, false, dt), {lnf, wte_}, z(N) * z(V) * s, {}, logits_tag);
      TensorId losses = tape.apply(make_crossentropy(N, V, dt), {logits, targets[0]}, z(N) * 4);
      for (TensorId t : {x, lnf, logits}) tape.release(t);
      return losses;
    }
    // The head in chunks of rows: each chunk's logits and losses from its rows of lnf. The
    // backward then holds one chunk's logits gradient at a time.
    std::vector<TensorId> chunk_losses;
    std::vector<int> rows;
    for (int k = 0; k < K; ++k) {
      const int r = chunk_rows(k);
      TensorId lnf_c = tape.apply(make_rows(N, k * head_rows_, r, C, dt), {lnf}, z(r) * z(C) * s);
      TensorId logits = tape.apply(make_linear(r, C, V, false, dt), {lnf_c, wte_}, z(r) * z(V) * s,
                                   {}, logits_tag);
      chunk_losses.push_back(
          tape.apply(make_crossentropy(r, V, dt), {logits, targets[z(k)]}, z(r) * 4));
      rows.push_back(r);
      for (TensorId t : {lnf_c, logits}) tape.release(t);
    }
    TensorId losses = tape.apply(make_concat_rows(rows, 1), chunk_losses, z(N) * 4);
    for (TensorId t : chunk_losses) tape.release(t);
    for (TensorId t : {x, lnf}) tape.release(t);
    return losses;
  }

 private:
  /// Sequence b of step: a Markov chain where token t is followed by (7t + 3) mod V with
  /// probability 7/8, else by a uniformly random token. The best achievable loss is about
  /// 0.13 + ln(V) / 8 nats; a model that learnt nothing scores ln(V).
  void batch(std::uint64_t step, std::vector<std::int32_t>& tok,
             std::vector<std::int32_t>& tgt) const {
    const auto V = static_cast<std::uint64_t>(c_.vocab);
    for (int b = 0; b < c_.batch; ++b) {
      std::uint64_t state = mix64(seed_ ^ mix64(step * 131 + static_cast<std::uint64_t>(b)));
      std::uint64_t cur = state % V;
      for (int t = 0; t <= c_.seq; ++t) {
        const std::size_t i = z(b) * z(c_.seq) + z(t);
        if (t < c_.seq) tok[i] = static_cast<std::int32_t>(cur);
        if (t > 0) tgt[i - 1] = static_cast<std::int32_t>(cur);
        state = mix64(state);
        cur = (state & 7) != 0 ? (7 * cur + 3) % V : (state >> 8) % V;
      }
    }
  }

  /// Chunks of the head: ceil(N / rows per chunk).
  int chunks() const { return gpt2_head_chunks(c_); }
  /// Rows of chunk k (the last may be shorter).
  int chunk_rows(int k) const { return std::min(head_rows_, c_.batch * c_.seq - k * head_rows_); }

  Gpt2Config c_;
  std::uint64_t seed_;
  int head_rows_ = 1;  // rows per chunk of the head
  std::size_t count_ = 0;
  TensorId wte_ = 0, wpe_ = 0, lnfw_ = 0, lnfb_ = 0;
  std::vector<Block> blocks_;
};

}  // namespace

const char* to_string(Attention a) noexcept { return a == Attention::eager ? "eager" : "fused"; }

Attention parse_attention(std::string_view text) {
  if (text == "eager") return Attention::eager;
  if (text == "fused") return Attention::fused;
  MEMENTO_FAIL(ConfigError,
               fmt::format("attention \"{}\" is not accepted; accepted: eager (the scores are an "
                           "activation), fused (one op, the scores are scratch)",
                           text));
}

Gpt2Config gpt2_preset(std::string_view name) {
  for (const Gpt2Config& c : presets())
    if (c.name == name) return c;
  MEMENTO_FAIL(ConfigError, fmt::format("unknown model preset \"{}\"; accepted: {}", name,
                                        fmt::join(gpt2_preset_names(), ", ")));
}

std::vector<std::string> gpt2_preset_names() {
  std::vector<std::string> names;
  for (const Gpt2Config& c : presets()) names.push_back(c.name);
  return names;
}

double gpt2_activation_bytes(const Gpt2Config& c) {
  // Kept for the backward, per layer: its input x and x2 (read by the layer norms'
  // backward), ln1 and ln2 outputs, qkv (3), the attention output, the MLP's fc output and
  // GELU output (4 each): 16 B·T·C; plus, with eager attention, the scores B·NH·T². The
  // residual branches'
  // outputs and the dropouts are not kept (their backward reads nothing). After the
  // blocks: the last x, the final norm's output and the logits (B·T·V), plus the fp32 losses
  // and the int32 tokens and targets.
  const double btc = static_cast<double>(c.batch) * c.seq * c.channels;
  const double s = static_cast<double>(dtype_bytes(c.dtype));
  const double scores = static_cast<double>(c.batch) * c.heads * c.seq * c.seq;
  const double per_layer = 16 * btc + (c.attention == Attention::eager ? scores : 0);
  const double bt = static_cast<double>(c.batch) * c.seq;
  return s * (c.layers * per_layer + 2 * btc + bt * c.vocab) + 12 * bt;
}

int gpt2_head_chunks(const Gpt2Config& c) {
  const long long N = static_cast<long long>(c.batch) * c.seq;
  const long long rows = head_chunk_rows(c);
  return static_cast<int>((N + rows - 1) / rows);
}

std::unique_ptr<Model> make_gpt2(const Gpt2Config& config, Tape& tape, std::uint64_t seed) {
  return std::make_unique<Gpt2>(config, tape, seed);
}

}  // namespace memento::nn
