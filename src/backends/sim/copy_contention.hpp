// How long a copy takes on the sim when other engines it shares resources with are busy.
#pragma once

#include <initializer_list>

namespace memento::sim {

/// An engine that is busy until `until` (virtual seconds) and slows a copy running beside
/// it `factor` times (>= 1) while it is.
struct Busy {
  double until;
  double factor;
};

/// The duration of a copy that starts at `start` and takes `seconds` alone: each part of it
/// runs slower by the product of the factors of the engines still busy then; the rest, once
/// none is, goes at the full rate.
[[nodiscard]] double stretched(double start, double seconds, std::initializer_list<Busy> busy);

}  // namespace memento::sim
