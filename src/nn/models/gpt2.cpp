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
      {"gpt2-tiny", 4, 4, 64, 64, 256, 8, 0.1f, DType::f32},
      {"gpt2-124m", 12, 12, 768, 1024, 50257, 8, 0.1f, DType::f32},
      {"gpt2-355m", 24, 16, 1024, 1024, 50257, 8, 0.1f, DType::f32},
      {"gpt2-774m", 36, 20, 1280, 1024, 50257, 8, 0.1f, DType::f32},
      {"gpt2-1.5b", 48, 25, 1600, 1024, 50257, 8, 0.1f, DType::f32},
      {"gpt-j-6b", 28, 16, 4096, 2048, 50400, 1, 0.0f, DType::f32},
  };
  return p;
}

std::size_t z(long long v) { return static_cast<std::size_t>(v); }

struct Block {
  TensorId ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb;
};

class Gpt2 final : public Model {
 public:
  Gpt2(const Gpt2Config& c, Tape& tape, std::uint64_t seed) : c_(c), seed_(seed) {
    MEMENTO_EXPECTS(
        c.layers > 0 && c.heads > 0 && c.channels > 0 && c.seq > 0 && c.vocab > 1 && c.batch > 0,
        fmt::format("{}: every dimension must be positive", c.name));
    MEMENTO_EXPECTS(c.channels % c.heads == 0,
                    fmt::format("{}: channels ({}) must be a multiple of heads ({})", c.name,
                                c.channels, c.heads));
    const bool host_data = tape.backend().info().kind != BackendKind::sim;
    MEMENTO_EXPECTS(c.dtype == DType::f32 || tape.backend().info().kind != BackendKind::host,
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
    shape.roles = {{"ln1", s * btc},    {"qkv", 3 * s * btc}, {"att", s * scores},
                   {"atty", s * btc},   {"x2", s * btc},      {"ln2", s * btc},
                   {"fc", 4 * s * btc}, {"gelu", 4 * s * btc}};
    for (const auto& [role, bytes] : shape.roles) shape.saved_bytes += bytes;
    // Matrix products (qkv, projection, MLP: 24·B·T·C²) and attention (4·B·T²·C).
    shape.block_flops = 24 * bt * C * C + 4 * bt * c_.seq * C;
    // The parameters, the last block's output, the final norm, and the logits with their
    // gradient (both live as the backward starts, with every kept activation).
    shape.backward_bytes = s * (2 * btc + std::max(3 * btc + scores, 8 * btc)) + 4 * 12 * C * C;
    shape.fixed_bytes =
        s * static_cast<double>(count_) + s * (2 * btc + 2 * bt * c_.vocab) + 12 * bt;
    return shape;
  }

  TensorId forward(Tape& tape, std::uint64_t step) override {
    const int B = c_.batch, T = c_.seq, C = c_.channels, NH = c_.heads, V = c_.vocab;
    const int N = B * T;
    const DType dt = c_.dtype;
    const std::size_t s = dtype_bytes(dt);
    const std::size_t btc = z(N) * z(C) * s;
    TensorId tokens = tape.input(z(N) * 4);
    TensorId targets = tape.input(z(N) * 4);
    if (tape.backend().info().kind != BackendKind::sim) {
      std::vector<std::int32_t> tok(z(N));
      std::vector<std::int32_t> tgt(z(N));
      batch(step, tok, tgt);
      tape.write(tokens, tok.data(), tok.size() * 4);
      tape.write(targets, tgt.data(), tgt.size() * 4);
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
      TensorId att = tape.apply(make_attention_probs(B, T, C, NH, dt), {qkv},
                                z(B) * z(NH) * z(T) * z(T) * s, {}, tag("att"));
      TensorId atty =
          tape.apply(make_attention_values(B, T, C, NH, dt), {qkv, att}, btc, {}, tag("atty"));
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
      for (TensorId t : {x, ln1, qkv, att, atty, proj, x2, ln2, fc, g, fcp}) tape.release(t);
      x = x3;
    }
    TensorId lnf = tape.apply(make_layernorm(N, C, dt), {x, lnfw_, lnfb_}, btc);
    TensorId logits = tape.apply(make_linear(N, C, V, false, dt), {lnf, wte_}, z(N) * z(V) * s);
    TensorId losses = tape.apply(make_crossentropy(N, V, dt), {logits, targets}, z(N) * 4);
    for (TensorId t : {x, lnf, logits}) tape.release(t);
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

  Gpt2Config c_;
  std::uint64_t seed_;
  std::size_t count_ = 0;
  TensorId wte_ = 0, wpe_ = 0, lnfw_ = 0, lnfb_ = 0;
  std::vector<Block> blocks_;
};

}  // namespace

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
  // GELU output (4 each): 16 B·T·C; plus the scores B·NH·T². The residual branches'
  // outputs and the dropouts are not kept (their backward reads nothing). After the
  // blocks: the last x, the final norm's output and the logits (B·T·V), plus the fp32 losses
  // and the int32 tokens and targets.
  const double btc = static_cast<double>(c.batch) * c.seq * c.channels;
  const double s = static_cast<double>(dtype_bytes(c.dtype));
  const double per_layer = 16 * btc + static_cast<double>(c.batch) * c.heads * c.seq * c.seq;
  const double bt = static_cast<double>(c.batch) * c.seq;
  return s * (c.layers * per_layer + 2 * btc + bt * c.vocab) + 12 * bt;
}

std::unique_ptr<Model> make_gpt2(const Gpt2Config& config, Tape& tape, std::uint64_t seed) {
  return std::make_unique<Gpt2>(config, tape, seed);
}

}  // namespace memento::nn
