// Shared by the replay tests: logs from text, and options for a sim profile.
#pragma once

#include <sstream>
#include <string>

#include "memento/device_profile.hpp"
#include "replay/replay_log.hpp"
#include "replay/replayer.hpp"

namespace memento::replay::testing {

inline ReplayLog log_from(const std::string& text, const std::string& source = "test.log") {
  std::istringstream in(text);
  return parse_replay_log(in, source);
}

inline ReplayOptions options(const std::string& policy, std::size_t budget, MemoryModel model) {
  ReplayOptions o;
  o.policy = policy;
  o.budget = budget;
  o.memory_model = model;
  o.profile = find_device_profile("a100-40gb");
  return o;
}

}  // namespace memento::replay::testing
