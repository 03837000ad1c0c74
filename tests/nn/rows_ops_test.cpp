// The row-slice ops: make_rows copies a block of rows and its backward accumulates into only
// those rows; make_concat_rows concatenates fp32 inputs and splits the gradient back. Their
// host kernels directly (gradients into pre-filled buffers), then through the tape on the
// host backend.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "memento/error.hpp"
#include "nn/nn_rig.hpp"
#include "nn/ops/ops.hpp"

namespace memento::nn {
namespace {

Storage st(std::vector<float>& v) { return {v.data(), v.size() * sizeof(float)}; }

std::vector<float> iota(std::size_t n, float from) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), from);
  return v;
}

TEST(RowsOp, ForwardCopiesExactlyItsRows) {
  constexpr int total = 7, width = 5, row0 = 2, rows = 3;
  std::vector<float> in = iota(total * width, 0.25f);
  std::vector<float> out(rows * width, -1.0f);
  const OpPtr op = make_rows(total, row0, rows, width, DType::f32);
  const std::vector<Storage> ins = {st(in)};
  op->make_kernel(ins, st(out), {}).host();
  EXPECT_EQ(0, std::memcmp(out.data(), in.data() + row0 * width, out.size() * sizeof(float)));
  EXPECT_EQ(op->cost({}, 0).bytes, 2.0 * rows * width * 4);
  EXPECT_FALSE(op->backward_reads_input(0));
  EXPECT_EQ(op->grad_inputs(), std::vector<bool>{true});
}

TEST(RowsOp, BackwardAccumulatesIntoOnlyItsRows) {
  constexpr int total = 6, width = 4, row0 = 1, rows = 3;
  const OpPtr op = make_rows(total, row0, rows, width, DType::f32);
  std::vector<float> dout = iota(rows * width, 1.0f);
  std::vector<float> din(total * width, 10.0f);  // earlier gradients: kept and added to
  const std::vector<Storage> none(1);
  const std::vector<Storage> dins = {st(din)};
  op->make_backward(none, {}, st(dout), dins, {}).host();
  for (int r = 0; r < total; ++r) {
    for (int c = 0; c < width; ++c) {
      const float got = din[static_cast<std::size_t>(r * width + c)];
      if (r < row0 || r >= row0 + rows) {
        EXPECT_EQ(got, 10.0f) << "row " << r << " is not the op's and changed";
      } else {
        EXPECT_EQ(got, 10.0f + dout[static_cast<std::size_t>((r - row0) * width + c)])
            << "row " << r << " col " << c;
      }
    }
  }
}

TEST(RowsOp, RejectsRowsOutsideTheTensor) {
  EXPECT_THROW((void)make_rows(4, 2, 3, 8, DType::f32), LogicError);
  EXPECT_THROW((void)make_rows(4, -1, 2, 8, DType::f32), LogicError);
  EXPECT_THROW((void)make_rows(4, 0, 0, 8, DType::f32), LogicError);
  EXPECT_THROW((void)make_concat_rows({}, 1), LogicError);
  EXPECT_THROW((void)make_concat_rows({2, 0}, 1), LogicError);
}

TEST(ConcatRowsOp, ForwardConcatenatesAndBackwardSplits) {
  constexpr int width = 2;
  const std::vector<int> rows = {3, 1, 2};
  std::vector<std::vector<float>> in = {iota(6, 0), iota(2, 100), iota(4, 200)};
  std::vector<Storage> ins;
  for (auto& v : in) ins.push_back(st(v));
  std::vector<float> out(12, -1.0f);
  const OpPtr op = make_concat_rows(rows, width);
  op->make_kernel(ins, st(out), {}).host();
  std::vector<float> want;
  for (auto& v : in) want.insert(want.end(), v.begin(), v.end());
  EXPECT_EQ(out, want);
  EXPECT_EQ(op->grad_inputs(), (std::vector<bool>{true, true, true}));
  for (std::size_t i = 0; i < rows.size(); ++i) EXPECT_FALSE(op->backward_reads_input(i));

  std::vector<float> dout = iota(12, 1.0f);
  std::vector<std::vector<float>> din = {std::vector<float>(6, 0.5f), std::vector<float>(2, 0.5f),
                                         std::vector<float>(4, 0.5f)};
  std::vector<Storage> dins;
  for (auto& v : din) dins.push_back(st(v));
  const std::vector<Storage> none(3);
  op->make_backward(none, {}, st(dout), dins, {}).host();
  std::size_t at = 0;
  for (std::size_t k = 0; k < din.size(); ++k)
    for (float g : din[k]) EXPECT_EQ(g, 0.5f + dout[at++]) << "input " << k;
}

TEST(RowsOp, BackwardThroughTheTapeOnHost) {
  // A parameter p[6,3] split into rows 0..3 and 4..5, concatenated back: the output equals p,
  // and the gradient of sum(scale · out) is scale on every row, reached through both slices.
  // A third slice of rows 1..2 alone adds to those rows only.
  testing::Rig rig(testing::host_backend(), 0, "lru");
  constexpr int total = 6, width = 3;
  Tape& tape = rig.tape;
  const TensorId p = tape.parameter(total * width * 4, total * width * 4);
  const std::vector<float> values = iota(total * width, -4.0f);
  tape.write(p, values.data(), values.size() * 4);
  const TensorId a = tape.apply(make_rows(total, 0, 4, width, DType::f32), {p}, 4 * width * 4);
  const TensorId b = tape.apply(make_rows(total, 4, 2, width, DType::f32), {p}, 2 * width * 4);
  const TensorId c = tape.apply(make_rows(total, 1, 2, width, DType::f32), {p}, 2 * width * 4);
  const TensorId out =
      tape.apply(make_concat_rows({4, 2, 2}, width), {a, b, c}, (total + 2) * width * 4);
  for (TensorId t : {a, b, c}) tape.release(t);
  std::vector<float> got((total + 2) * width);
  tape.read(out, got.data(), got.size() * 4);
  EXPECT_EQ(0, std::memcmp(got.data(), values.data(), values.size() * 4));
  EXPECT_EQ(0, std::memcmp(got.data() + total * width, values.data() + width, 2 * width * 4));
  tape.backward(out, 0.5f);
  rig.backend->synchronize_all();
  const auto* g = static_cast<const float*>(tape.grad(p));
  ASSERT_NE(g, nullptr);
  for (int r = 0; r < total; ++r)
    for (int col = 0; col < width; ++col)
      EXPECT_EQ(g[r * width + col], r == 1 || r == 2 ? 1.0f : 0.5f) << "row " << r;
  tape.clear();
}

#if MEMENTO_HAS_CUDA
TEST(RowsOp, EveryKernelHasACudaImplementation) {
  const std::vector<Storage> in(2);
  for (DType dt : {DType::f32, DType::bf16}) {
    const OpPtr op = make_rows(4, 1, 2, 8, dt);
    EXPECT_TRUE(static_cast<bool>(op->make_kernel(in, {}, {}).cuda));
    EXPECT_TRUE(static_cast<bool>(op->make_backward(in, {}, {}, in, {}).cuda));
  }
  const OpPtr concat = make_concat_rows({1, 3}, 1);
  EXPECT_TRUE(static_cast<bool>(concat->make_kernel(in, {}, {}).cuda));
  EXPECT_TRUE(static_cast<bool>(concat->make_backward(in, {}, {}, in, {}).cuda));
}
#endif

}  // namespace
}  // namespace memento::nn
