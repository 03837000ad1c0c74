// The static planners' vocabulary, as the nn layer speaks it: a model reports its ChainShape,
// the tape tags activations (TensorTag) and carries a Plan out (PlanAction, BlockAccess). The
// planners themselves are policies/plan (namespace memento::plan) and know nothing of nn.
#pragma once

#include "policies/plan/plan.hpp"

namespace memento::nn {

using plan::BlockAccess;
using plan::BlockRole;
using plan::ChainShape;
using plan::Plan;
using plan::PlanAction;
using plan::TensorTag;

}  // namespace memento::nn
