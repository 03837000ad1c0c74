#include "nn/plan_candidates.hpp"

#include <memory>

namespace memento::nn {

std::vector<PlanCandidate> plan_candidates(const ChainShape& shape,
                                           const plan::PlanTarget& target) {
  std::vector<PlanCandidate> out;
  for (const char* name : {"every-layer", "sqrt", "selective", "mixed"}) {
    std::shared_ptr<const Plan> p = plan::make_plan(name, shape, target);
    out.push_back({name, [p](int region, std::string_view role) {
                     switch (p->at_release({region, role})) {
                       case PlanAction::discard:
                         return PlannedAction::discard;
                       case PlanAction::offload:
                         return PlannedAction::offload;
                       case PlanAction::keep:
                         break;
                     }
                     return PlannedAction::keep;
                   }});
  }
  return out;
}

}  // namespace memento::nn
