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

/// The factor that makes `stretched` reproduce a pair of copies timed together: the first,
/// `first` seconds alone, runs unslowed (issued first, its end is fixed); the second,
/// `second` alone, runs slowed beside it and ends `together` after both started. At least
/// 1 (no contention); at most 100 (the two all but serialise).
[[nodiscard]] double both_ways_factor(double first, double second, double together);

}  // namespace memento::sim
