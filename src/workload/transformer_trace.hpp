// A synthetic allocation trace with the shape of transformer training: parameters, then a
// forward pass that keeps each layer's activations for backward and frees temporaries, then
// a backward pass that frees activations in reverse while gradient temporaries come and go.
// Used by the allocator demo and benchmark until real workloads (src/nn) exist.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace memento::workload {

struct TraceShape {
  std::size_t layers = 12;
  std::size_t batch = 8;
  std::size_t seq = 1024;
  std::size_t hidden = 768;
  std::size_t heads = 12;
  std::size_t vocab = 50257;
  std::size_t dtype_bytes = 4;
  std::size_t steps = 3;
};

struct TraceOp {
  enum class Kind : std::uint8_t { alloc, free } kind;
  std::uint32_t id;
  std::size_t bytes;  // for alloc
};

/// The trace of `shape.steps` training steps; ids are unique per allocation.
inline std::vector<TraceOp> transformer_trace(const TraceShape& s) {
  std::vector<TraceOp> ops;
  std::uint32_t next = 0;
  auto alloc = [&](std::size_t elems) {
    ops.push_back({TraceOp::Kind::alloc, next, elems * s.dtype_bytes});
    return next++;
  };
  auto release = [&](std::uint32_t id) { ops.push_back({TraceOp::Kind::free, id, 0}); };
  const std::size_t tokens = s.batch * s.seq;
  const std::size_t h = s.hidden;
  const std::size_t scores = s.batch * s.heads * s.seq * s.seq;

  std::vector<std::size_t> param_elems = {s.vocab * h, s.seq * h};  // embeddings (tied head)
  for (std::size_t l = 0; l < s.layers; ++l) {
    for (std::size_t n : {3 * h * h, h * h, 4 * h * h, 4 * h * h}) param_elems.push_back(n);
    for (int i = 0; i < 6; ++i) param_elems.push_back(h);  // biases, layer norms
  }
  for (std::size_t n : param_elems) alloc(n);  // parameters live for the whole trace
  bool have_grads = false;
  for (std::size_t step = 0; step < s.steps; ++step) {
    std::vector<std::vector<std::uint32_t>> saved(s.layers);
    std::uint32_t x = alloc(tokens * h);  // embeddings
    for (std::size_t l = 0; l < s.layers; ++l) {
      auto& keep = saved[l];
      keep.push_back(x);
      keep.push_back(alloc(tokens * h));       // ln1 out
      keep.push_back(alloc(tokens * 3 * h));   // qkv
      keep.push_back(alloc(scores));           // attention scores
      keep.push_back(alloc(scores));           // softmax probabilities
      keep.push_back(alloc(tokens * h));       // attention output
      std::uint32_t proj = alloc(tokens * h);  // projection, consumed by the residual add
      std::uint32_t resid = alloc(tokens * h);
      release(proj);
      keep.push_back(resid);
      keep.push_back(alloc(tokens * h));      // ln2 out
      keep.push_back(alloc(tokens * 4 * h));  // fc1 out
      keep.push_back(alloc(tokens * 4 * h));  // gelu out
      std::uint32_t fc2 = alloc(tokens * h);
      x = alloc(tokens * h);  // block output
      release(fc2);
    }
    std::uint32_t logits = alloc(tokens * s.vocab);
    std::uint32_t dlogits = alloc(tokens * s.vocab);
    release(logits);
    std::uint32_t dx = alloc(tokens * h);
    release(dlogits);
    release(x);
    if (!have_grads)  // gradients appear in the first backward and stay
      for (std::size_t n : param_elems) alloc(n);
    have_grads = true;
    for (std::size_t l = s.layers; l-- > 0;) {
      // Gradient temporaries of the MLP then attention, freeing what backward consumed.
      std::uint32_t d4a = alloc(tokens * 4 * h);
      std::uint32_t d4b = alloc(tokens * 4 * h);
      release(d4a);
      std::uint32_t dscores = alloc(scores);
      std::uint32_t dprobs = alloc(scores);
      release(dscores);
      std::uint32_t dqkv = alloc(tokens * 3 * h);
      release(dprobs);
      release(d4b);
      std::uint32_t dnext = alloc(tokens * h);
      release(dqkv);
      release(dx);
      dx = dnext;
      for (std::uint32_t id : saved[l]) release(id);
    }
    release(dx);
  }
  return ops;
}

}  // namespace memento::workload
