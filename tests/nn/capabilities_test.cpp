// The nn layer asks DeviceInfo's capabilities, not the backend kind: over every backend, a
// bf16 model builds exactly where supports_bf16, and a step has a loss exactly where
// executes_kernels.
#include <gtest/gtest.h>

#include <cmath>

#include "backend_types.hpp"
#include "memento/error.hpp"
#include "nn/models/mlp.hpp"
#include "nn/nn_rig.hpp"
#include "nn/train.hpp"

namespace memento::nn {
namespace {

using testing::Rig;

template <typename T>
class NnCapabilities : public ::testing::Test {
 protected:
  void SetUp() override { MEMENTO_SKIP_UNAVAILABLE(T); }
  static MlpConfig small(DType dtype) {
    return {.layers = 2, .width = 32, .batch = 8, .classes = 4, .dtype = dtype};
  }
};
TYPED_TEST_SUITE(NnCapabilities, memento::testing::AllBackendTypes,
                 memento::testing::BackendTypeNames);

TYPED_TEST(NnCapabilities, Bf16ModelsBuildExactlyWhereSupported) {
  Rig s(TypeParam::make(), 0, "lru");
  const bool bf16 = s.backend->info().supports_bf16;
  if (bf16) {
    EXPECT_NO_THROW(s.model = make_mlp(this->small(DType::bf16), s.tape, 1));
  } else {
    EXPECT_THROW(s.model = make_mlp(this->small(DType::bf16), s.tape, 1), Error);
  }
}

TYPED_TEST(NnCapabilities, StepsHaveALossExactlyWhereKernelsRun) {
  Rig s(TypeParam::make(), 0, "lru");
  s.model = make_mlp(this->small(DType::f32), s.tape, 1);
  Trainer trainer(s.tape, *s.model);
  const StepReport r = trainer.step();
  if (s.backend->info().executes_kernels) {
    EXPECT_TRUE(std::isfinite(r.loss)) << r.loss;
  } else {
    EXPECT_TRUE(std::isnan(r.loss)) << "no kernel ran, so no loss was computed";
  }
}

}  // namespace
}  // namespace memento::nn
