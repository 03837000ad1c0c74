#include "memento/residency.hpp"

#include <fmt/format.h>

#include "memento/error.hpp"

namespace memento {

const char* to_string(Residency state) noexcept {
  switch (state) {
    case Residency::resident:
      return "Resident";
    case Residency::offloading:
      return "Offloading";
    case Residency::on_host:
      return "OnHost";
    case Residency::prefetching:
      return "Prefetching";
    case Residency::discarded:
      return "Discarded";
    case Residency::recomputing:
      return "Recomputing";
  }
  return "Unknown";
}

bool is_legal_transition(Residency from, Residency to) noexcept {
  using R = Residency;
  switch (from) {
    case R::resident:
      return to == R::offloading || to == R::discarded;
    case R::offloading:
      return to == R::on_host || to == R::resident;
    case R::on_host:
      return to == R::prefetching || to == R::discarded;
    case R::prefetching:
      return to == R::resident;
    case R::discarded:
      return to == R::recomputing;
    case R::recomputing:
      return to == R::resident;
  }
  return false;
}

void check_transition(TensorId id, Residency from, Residency to) {
  MEMENTO_EXPECTS(is_legal_transition(from, to),
                  fmt::format("tensor {}: illegal residency transition {} -> {}", id,
                              to_string(from), to_string(to)));
}

}  // namespace memento
