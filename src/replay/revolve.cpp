#include "replay/revolve.hpp"

#include <fmt/format.h>

#include <limits>

namespace memento::replay {

std::size_t binomial(std::size_t n, std::size_t k) noexcept {
  constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max();
  if (k > n) return 0;
  if (k > n - k) k = n - k;
  std::size_t c = 1;
  for (std::size_t i = 1; i <= k; ++i) {
    // c * (n - k + i) / i is exact at every step (it is C(n - k + i, i)); saturate first.
    const std::size_t m = n - k + i;
    if (c > kMax / m) return kMax;
    c = c * m / i;
  }
  return c;
}

std::size_t revolve_forward_steps(std::size_t l, std::size_t s) noexcept {
  if (l <= 1) return 0;
  if (s == 0) return std::numeric_limits<std::size_t>::max();
  std::size_t r = 0;
  while (binomial(s + r, s) < l) ++r;
  return r * l - binomial(s + r, s + 1);
}

std::string uniform_chain_log(std::size_t n, std::size_t bytes, double forward_ns,
                              double backward_ns) {
  std::string out;
  const auto line = [&](const std::string& json) { out += json + "\n"; };
  const auto call = [&](const std::string& op, const std::string& args, const std::string& result,
                        double ns) {
    line(
        fmt::format(R"({{"INSTRUCTION":"CALL","NAME":"{}","ARGS":[{}],"RESULT":["{}"],"TIME":{}}})",
                    op, args, result, ns));
    line(fmt::format(R"({{"INSTRUCTION":"MEMORY","NAME":"{}","MEMORY":{}}})", result, bytes));
    line(fmt::format(R"({{"INSTRUCTION":"ALIAS","NAME":"{}","ALIAS":-1}})", result));
  };
  const auto release = [&](const std::string& id) {
    line(fmt::format(R"({{"INSTRUCTION":"RELEASE","NAME":"{}"}})", id));
  };
  line(R"({"INSTRUCTION":"ANNOTATE","ANNOTATION":"START"})");
  line(R"({"INSTRUCTION":"CONSTANT","NAME":"a0"})");
  line(fmt::format(R"({{"INSTRUCTION":"MEMORY","NAME":"a0","MEMORY":{}}})", bytes));
  for (std::size_t i = 1; i <= n; ++i)
    call("forward", fmt::format(R"("a{}")", i - 1), fmt::format("a{}", i), forward_ns);
  line(R"({"INSTRUCTION":"ANNOTATE","ANNOTATION":"BACKWARD"})");
  // The loss gradient from the last activation, then one backward step per forward step.
  call("loss_backward", fmt::format(R"("a{}")", n), fmt::format("g{}", n), backward_ns);
  release(fmt::format("a{}", n));
  for (std::size_t i = n; i >= 1; --i) {
    call("backward", fmt::format(R"("g{}","a{}")", i, i - 1), fmt::format("g{}", i - 1),
         backward_ns);
    release(fmt::format("g{}", i));
    if (i > 1) release(fmt::format("a{}", i - 1));  // a0 is the input: kept
  }
  release("g0");
  return out;
}

}  // namespace memento::replay
