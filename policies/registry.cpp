// Policies by name: what MEMENTO_POLICY and the `policy` key of MEMENTO_CONF resolve to.
#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "memento/error.hpp"
#include "memento/policy.hpp"
#include "policies/policies.hpp"

namespace memento {
namespace {

struct Entry {
  std::string_view name;
  std::unique_ptr<Policy> (*make)();
};

// The order is the one error messages and policy_names() list.
constexpr std::array<Entry, 7> kPolicies{{
    {"lru", &make_lru_policy},
    {"largest", &make_largest_policy},
    {"recompute", &make_recompute_policy},
    {"offload", &make_offload_policy},
    {"dtr", &make_dtr_policy},
    {"capuchin", &make_capuchin_policy},
    {"auto", &make_auto_policy},
}};

}  // namespace

const char* to_string(EvictAction action) noexcept {
  switch (action) {
    case EvictAction::discard:
      return "discard";
    case EvictAction::offload:
      return "offload";
  }
  return "unknown";
}

std::unique_ptr<Policy> make_policy(std::string_view name) {
  for (const Entry& e : kPolicies) {
    if (e.name == name) return e.make();
  }
  std::string accepted;
  for (const Entry& e : kPolicies) {
    if (!accepted.empty()) accepted += ", ";
    accepted += e.name;
  }
  MEMENTO_FAIL(ConfigError, "unknown policy \"" + std::string(name) + "\"; accepted: " + accepted);
}

std::vector<std::string> policy_names() {
  std::vector<std::string> names;
  names.reserve(kPolicies.size());
  for (const Entry& e : kPolicies) names.emplace_back(e.name);
  return names;
}

}  // namespace memento
