#include "nn/models/mlp.hpp"

#include <fmt/format.h>

#include <cmath>

#include "memento/error.hpp"
#include "nn/kernels/dropout_rng.hpp"
#include "nn/ops/ops.hpp"

namespace memento::nn {
namespace {

std::size_t z(int v) { return static_cast<std::size_t>(v); }

class Mlp final : public Model {
 public:
  Mlp(const MlpConfig& c, Tape& tape, std::uint64_t seed) : c_(c), seed_(seed) {
    MEMENTO_EXPECTS(c.layers > 0 && c.width > 0 && c.batch > 0 && c.classes > 1,
                    "mlp: every dimension must be positive (and at least 2 classes)");
    MEMENTO_EXPECTS(c.dtype == DType::f32 || tape.backend().info().supports_bf16,
                    "mlp: bf16 needs the cuda or sim backend; the host backend's kernels are fp32");
    host_data_ = tape.backend().info().holds_data;
    std::uint64_t k = 0;
    auto param = [&](int rows, int cols, float stddev) {
      const std::size_t n = z(rows) * z(cols);
      TensorId id = tape.parameter(n * dtype_bytes(c.dtype), n * 4);
      count_ += n;
      if (host_data_) {
        std::vector<float> v(n, 0.0f);
        if (stddev > 0) init_normal(v, mix64(seed ^ ++k), stddev);
        write_values(tape, id, v, c.dtype);
      }
      return id;
    };
    const float he = std::sqrt(2.0f / static_cast<float>(c.width));
    for (int l = 0; l < c.layers; ++l)
      layers_.push_back({param(c.width, c.width, he), param(1, c.width, 0)});
    head_ = {param(c.classes, c.width, 0.02f), param(1, c.classes, 0)};
    teacher_.resize(z(c.classes) * z(c.width));
    init_normal(teacher_, mix64(seed ^ 0x7eac4e7), 1.0f);
  }

  std::string name() const override { return fmt::format("mlp-{}x{}", c_.layers, c_.width); }
  std::size_t loss_count() const override { return z(c_.batch); }
  std::size_t parameter_count() const override { return count_; }

  ChainShape chain_shape() const override {
    const double act =
        static_cast<double>(c_.batch) * c_.width * static_cast<double>(dtype_bytes(c_.dtype));
    ChainShape shape;
    shape.blocks = c_.layers;
    shape.input_bytes = act;
    shape.saved_bytes = act;  // h (read by the GELU's backward)
    shape.roles = {{"h", act}};
    shape.block_flops = 2.0 * c_.batch * c_.width * c_.width;
    shape.block_kernels = {make_linear(c_.batch, c_.width, c_.width, true, c_.dtype)->cost({}, 0),
                           make_gelu(z(c_.batch) * z(c_.width), c_.dtype)->cost({}, 0)};
    shape.recompute_kernels = {shape.block_kernels.front()};     // h: the GELU's input
    shape.backward_bytes = 2 * act + 4.0 * c_.width * c_.width;  // dx in and out, dW
    shape.fixed_bytes = static_cast<double>(count_) * static_cast<double>(dtype_bytes(c_.dtype)) +
                        static_cast<double>(c_.batch) * (c_.classes * 4.0 + 8.0);
    return shape;
  }

  TensorId forward(Tape& tape, std::uint64_t step) override {
    const int B = c_.batch, W = c_.width;
    const DType dt = c_.dtype;
    const std::size_t act = z(B) * z(W) * dtype_bytes(dt);
    TensorId x = tape.input(act);
    TensorId labels = tape.input(z(B) * 4);
    if (host_data_) {
      std::vector<float> data(z(B) * z(W));
      init_normal(data, mix64(seed_ ^ mix64(step + 1)), 1.0f);
      std::vector<std::int32_t> y(z(B));
      for (int b = 0; b < B; ++b) {  // the teacher's argmax
        float best = -INFINITY;
        for (int k = 0; k < c_.classes; ++k) {
          float dot = 0;
          for (int i = 0; i < W; ++i)
            dot += teacher_[z(k) * z(W) + z(i)] * data[z(b) * z(W) + z(i)];
          if (dot > best) {
            best = dot;
            y[z(b)] = k;
          }
        }
      }
      write_values(tape, x, data, dt);
      tape.write(labels, y.data(), y.size() * 4);
    }
    const int L = static_cast<int>(layers_.size());
    for (int l = 0; l < L; ++l) {
      const auto& [w, bias] = layers_[static_cast<std::size_t>(l)];
      TensorId h =
          tape.apply(make_linear(B, W, W, true, dt), {x, w, bias}, act, {}, TensorTag{l, "h"});
      // The next block's input; after the last block, the head's (not planned).
      TensorId g = tape.apply(make_gelu(z(B) * z(W), dt), {h}, act, {},
                              l + 1 < L ? TensorTag{l + 1, "input"} : TensorTag{});
      tape.release(x);
      tape.release(h);
      x = g;
    }
    TensorId logits =
        tape.apply(make_linear(B, W, c_.classes, true, dt), {x, head_.first, head_.second},
                   z(B) * z(c_.classes) * dtype_bytes(dt));
    TensorId losses = tape.apply(make_crossentropy(B, c_.classes, dt), {logits, labels}, z(B) * 4);
    tape.release(x);
    tape.release(logits);
    return losses;
  }

 private:
  MlpConfig c_;
  std::uint64_t seed_;
  bool host_data_ = true;
  std::size_t count_ = 0;
  std::vector<std::pair<TensorId, TensorId>> layers_;
  std::pair<TensorId, TensorId> head_;
  std::vector<float> teacher_;
};

}  // namespace

std::unique_ptr<Model> make_mlp(const MlpConfig& config, Tape& tape, std::uint64_t seed) {
  return std::make_unique<Mlp>(config, tape, seed);
}

}  // namespace memento::nn
