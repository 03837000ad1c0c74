// Fuzz target: the replay-log parser (memento::replay::parse_replay_log,
// src/replay/replay_log.hpp). The input is the log. It parses or is a ConfigError naming the
// source; a parsed program refers only to tensors and ops it defines, creates each tensor
// before using it, and frees each exactly once unless it is an output (still referenced at
// the end), which it never frees.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "memento/error.hpp"
#include "replay/replay_log.hpp"

namespace {

using memento::replay::Instruction;
using memento::replay::ReplayLog;

void check(const ReplayLog& log) {
  const std::size_t n = log.tensors.size();
  MEMENTO_FUZZ_CHECK(log.backward_start <= log.program.size(), "backward_start in range");
  std::vector<int> created(n, 0), freed(n, 0), output(n, 0);
  for (std::size_t t : log.outputs) {
    MEMENTO_FUZZ_CHECK(t < n, "an output is a tensor");
    ++output[t];
  }
  const auto live = [&](std::size_t t, const char* what) {
    MEMENTO_FUZZ_CHECK(t < n, std::string(what) + " is a tensor");
    MEMENTO_FUZZ_CHECK(created[t] == 1 && freed[t] == 0,
                       std::string(what) + " " + std::to_string(t) + " is live");
  };
  for (const Instruction& ins : log.program) {
    switch (ins.kind) {
      case Instruction::Kind::constant:
        MEMENTO_FUZZ_CHECK(ins.tensor < n && created[ins.tensor] == 0, "a constant is new");
        MEMENTO_FUZZ_CHECK(log.tensors[ins.tensor].constant, "a constant is constant");
        created[ins.tensor] = 1;
        break;
      case Instruction::Kind::call:
        MEMENTO_FUZZ_CHECK(ins.op < log.ops.size(), "a call's op is an op");
        for (std::size_t t : ins.args) live(t, "an argument");
        for (std::size_t t : ins.results) {
          MEMENTO_FUZZ_CHECK(t < n && created[t] == 0, "a result is new");
          created[t] = 1;
        }
        break;
      case Instruction::Kind::free:
        live(ins.tensor, "a freed tensor");
        freed[ins.tensor] = 1;
        break;
    }
  }
  for (std::size_t t = 0; t < n; ++t) {
    MEMENTO_FUZZ_CHECK(created[t] == 1, "tensor " + std::to_string(t) + " is created");
    MEMENTO_FUZZ_CHECK(output[t] <= 1, "an output is listed once");
    MEMENTO_FUZZ_CHECK(freed[t] + output[t] == 1,
                       "tensor " + std::to_string(t) + " is freed or an output, not both");
  }
  MEMENTO_FUZZ_CHECK(log.total_seconds >= 0, "time is not negative");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  try {
    check(memento::replay::parse_replay_log(in, "fuzz.jsonl"));
  } catch (const memento::ConfigError& e) {
    const std::string_view message = e.what();
    MEMENTO_FUZZ_CHECK(message.starts_with("fuzz.jsonl:"),
                       "the message names the log: " + std::string(message));
  }
  return 0;
}
