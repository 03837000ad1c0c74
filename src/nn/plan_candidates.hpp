// The static planners' plans for a model, offered to the runtime's budget-only path as
// starting points of its search (Runtime::set_plan_candidates): every-layer, sqrt,
// selective and mixed, each made for the budget and device of `target`.
#pragma once

#include <vector>

#include "memento/step_plan.hpp"
#include "nn/planning.hpp"

namespace memento::nn {

[[nodiscard]] std::vector<PlanCandidate> plan_candidates(const ChainShape& shape,
                                                         const plan::PlanTarget& target);

}  // namespace memento::nn
