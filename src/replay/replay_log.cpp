#include "replay/replay_log.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>
#include <utility>

#include "memento/error.hpp"

namespace memento::replay {
namespace {

using Json = nlohmann::json;

constexpr const char* kInstructions =
    "ANNOTATE, CONSTANT, MEMORY, CALL, ALIAS, MUTATE, COPY, COPY_FROM, RELEASE";

struct Line {
  Json json;
  std::size_t number = 0;
};

class Parser {
 public:
  Parser(std::istream& in, std::string source) : in_(in) { log_.source = std::move(source); }

  ReplayLog run() {
    const bool started = skip_to_start();
    while (std::optional<Line> line = next()) dispatch(*line, field_string(*line, "INSTRUCTION"));
    MEMENTO_EXPECTS(started,
                    fmt::format("{}: no {{\"INSTRUCTION\":\"ANNOTATE\",\"ANNOTATION\":\"START\"}} "
                                "line in {} line(s): the log is truncated or not a DTR-style "
                                "operator log",
                                log_.source, log_.lines),
                    ConfigError);
    if (!log_.has_backward) log_.backward_start = log_.program.size();
    for (std::size_t t = 0; t < refs_.size(); ++t)
      if (refs_[t] > 0) log_.outputs.push_back(t);
    return std::move(log_);
  }

 private:
  [[noreturn]] void fail(std::size_t line, const std::string& what) const {
    MEMENTO_FAIL(ConfigError, fmt::format("{}:{}: {}", log_.source, line, what));
  }

  // Reads up to and including the START line; false when there is none. Everything before
  // it is setup the log's writer did not mean to replay: ignored, JSON or not.
  bool skip_to_start() {
    std::string text;
    while (std::getline(in_, text)) {
      ++log_.lines;
      const Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (!json.is_object()) continue;
      const auto instruction = json.find("INSTRUCTION");
      const auto annotation = json.find("ANNOTATION");
      if (instruction != json.end() && *instruction == "ANNOTATE" && annotation != json.end() &&
          *annotation == "START")
        return true;
    }
    return false;
  }

  // The next non-blank line as a JSON object; nullopt at the end of the file.
  std::optional<Line> next() {
    std::string text;
    while (std::getline(in_, text)) {
      const std::size_t number = ++log_.lines;
      if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
      Line line{{}, number};
      try {
        line.json = Json::parse(text);
      } catch (const Json::exception& e) {
        // parse_error, and out_of_range for a number beyond a double ("1e310").
        const bool last = in_.peek() == std::char_traits<char>::eof();
        fail(number,
             fmt::format("not valid JSON ({}){}; accepted: one JSON object per line", e.what(),
                         last ? " -- the last line: is the file truncated?" : ""));
      }
      if (!line.json.is_object())
        fail(number, fmt::format("{} is not a JSON object; accepted: one JSON object per line",
                                 line.json.dump()));
      return line;
    }
    return std::nullopt;
  }

  const Json& field(const Line& line, const char* key) const {
    auto it = line.json.find(key);
    if (it == line.json.end())
      fail(line.number, fmt::format("field \"{}\" is missing in {}", key, line.json.dump()));
    return *it;
  }

  std::string field_string(const Line& line, const char* key) const {
    const Json& v = field(line, key);
    if (!v.is_string())
      fail(line.number, fmt::format("field \"{}\" is {}; accepted: a string", key, v.dump()));
    return v.get<std::string>();
  }

  std::string annotation(const Line& line) const { return field_string(line, "ANNOTATION"); }

  // A number given as a JSON number or as a string holding one.
  double number(const Line& line, const Json& v, const std::string& what) const {
    double x = std::numeric_limits<double>::quiet_NaN();
    if (v.is_number()) {
      x = v.get<double>();
    } else if (v.is_string()) {
      const std::string s = v.get<std::string>();
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
      if (ec != std::errc() || end != s.data() + s.size() || s.empty()) x = std::nan("");
    }
    if (!std::isfinite(x))
      fail(line.number, fmt::format("{} is {}; accepted: a finite number (or a string holding "
                                    "one)",
                                    what, v.dump()));
    return x;
  }

  long long integer(const Line& line, const Json& v, const std::string& what) const {
    const double x = number(line, v, what);
    if (x != std::floor(x) || std::fabs(x) > 9e15)
      fail(line.number, fmt::format("{} is {}; accepted: an integer", what, v.dump()));
    return static_cast<long long>(x);
  }

  std::size_t bytes(const Line& line) const {
    const long long b = integer(line, field(line, "MEMORY"), "MEMORY");
    if (b < 0) fail(line.number, fmt::format("MEMORY is {}; accepted: bytes >= 0", b));
    return static_cast<std::size_t>(b);
  }

  double seconds(const Line& line) const {
    const double ns = number(line, field(line, "TIME"), "TIME");
    if (ns < 0) fail(line.number, fmt::format("TIME is {}; accepted: nanoseconds >= 0", ns));
    return ns * 1e-9;
  }

  std::string id(const Line& line, const Json& v, const char* what) const {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer()) return v.dump();
    fail(line.number,
         fmt::format("{} is {}; accepted: an id (a JSON string or integer)", what, v.dump()));
  }

  const Json& list(const Line& line, const char* key) const {
    const Json& v = field(line, key);
    if (!v.is_array())
      fail(line.number, fmt::format("field \"{}\" is {}; accepted: a list", key, v.dump()));
    return v;
  }

  std::size_t bound(const Line& line, const std::string& name) const {
    auto it = names_.find(name);
    if (it == names_.end())
      fail(line.number, fmt::format("unknown id \"{}\": not defined by an earlier CONSTANT, CALL "
                                    "result or COPY, or already released",
                                    name));
    return it->second;
  }

  void expect_unbound(const Line& line, const std::string& name) const {
    if (names_.count(name))
      fail(line.number, fmt::format("id \"{}\" is already defined; a new tensor needs a new id "
                                    "(or RELEASE the old one first)",
                                    name));
  }

  // The line that must follow `owner`: `instruction` about `name`.
  Line follow(const Line& owner, const char* instruction, const std::string& name) {
    std::optional<Line> line = next();
    if (!line)
      fail(owner.number,
           fmt::format("the file ends before the {} line for \"{}\" that this line needs: the "
                       "log is truncated",
                       instruction, name));
    if (field_string(*line, "INSTRUCTION") != instruction ||
        id(*line, field(*line, "NAME"), "NAME") != name)
      fail(line->number, fmt::format("expected the {} line for \"{}\" (of line {}), found {}",
                                     instruction, name, owner.number, line->json.dump()));
    return *line;
  }

  std::size_t new_tensor(std::size_t bytes, bool constant, std::size_t line) {
    log_.tensors.push_back({.bytes = bytes, .constant = constant, .line = line});
    refs_.push_back(0);
    live_bytes_ += bytes;
    return log_.tensors.size() - 1;
  }

  void note_peak() { log_.peak_live_bytes = std::max(log_.peak_live_bytes, live_bytes_); }

  void bind(const std::string& name, std::size_t tensor) {
    names_[name] = tensor;
    ++refs_[tensor];
  }

  void unref(std::size_t tensor) {
    if (--refs_[tensor] > 0) return;
    live_bytes_ -= log_.tensors[tensor].bytes;
    Instruction free;
    free.kind = Instruction::Kind::free;
    free.tensor = tensor;
    log_.program.push_back(std::move(free));
  }

  std::size_t add_op(const Line& line) {
    const Json& name = field(line, "NAME");
    log_.ops.push_back(
        {name.is_string() ? name.get<std::string>() : name.dump(), seconds(line), line.number});
    log_.total_seconds += log_.ops.back().seconds;
    return log_.ops.size() - 1;
  }

  // The arguments: their tensors by position, and the distinct ones in first-use order.
  std::vector<std::size_t> args(const Line& line, Instruction& call) {
    std::vector<std::size_t> by_position;
    for (const Json& a : list(line, "ARGS")) {
      const std::size_t t = bound(line, id(line, a, "an ARGS entry"));
      by_position.push_back(t);
      if (std::find(call.args.begin(), call.args.end(), t) == call.args.end())
        call.args.push_back(t);
    }
    return by_position;
  }

  void dispatch(const Line& line, const std::string& instruction) {
    if (instruction == "ANNOTATE") return annotate(line);
    if (instruction == "CONSTANT") return constant(line);
    if (instruction == "CALL") return call(line);
    if (instruction == "MUTATE") return mutate(line);
    if (instruction == "COPY" || instruction == "COPY_FROM") return copy(line, instruction);
    if (instruction == "RELEASE") {
      const std::string name = id(line, field(line, "NAME"), "NAME");
      const std::size_t t = bound(line, name);
      names_.erase(name);
      return unref(t);
    }
    if (instruction == "MEMORY" || instruction == "ALIAS")
      fail(line.number, fmt::format("{} line without the CONSTANT or CALL it belongs to; it must "
                                    "directly follow one",
                                    instruction));
    fail(line.number,
         fmt::format("unknown instruction \"{}\"; accepted: {}", instruction, kInstructions));
  }

  void annotate(const Line& line) {
    const std::string a = annotation(line);
    if (a == "BACKWARD") {
      if (log_.has_backward) fail(line.number, "a second BACKWARD annotation; accepted: one");
      log_.has_backward = true;
      log_.backward_start = log_.program.size();
      return;
    }
    if (a == "START") fail(line.number, "a second START annotation; accepted: one");
    fail(line.number, fmt::format("unknown annotation \"{}\"; accepted: START, BACKWARD", a));
  }

  void constant(const Line& line) {
    const std::string name = id(line, field(line, "NAME"), "NAME");
    expect_unbound(line, name);
    const std::size_t b = bytes(follow(line, "MEMORY", name));
    const std::size_t t = new_tensor(b, true, line.number);
    log_.constant_bytes += b;
    note_peak();
    bind(name, t);
    Instruction c;
    c.kind = Instruction::Kind::constant;
    c.tensor = t;
    log_.program.push_back(std::move(c));
  }

  void call(const Line& line) {
    Instruction call;
    call.op = add_op(line);
    const std::vector<std::size_t> by_position = args(line, call);
    std::vector<std::string> results;
    for (const Json& r : list(line, "RESULT")) {
      std::string name = id(line, r, "a RESULT entry");
      expect_unbound(line, name);
      if (std::find(results.begin(), results.end(), name) != results.end())
        fail(line.number, fmt::format("RESULT names \"{}\" twice", name));
      results.push_back(std::move(name));
    }
    std::vector<std::pair<std::string, std::size_t>> bindings;
    for (const std::string& name : results) {
      const std::size_t b = bytes(follow(line, "MEMORY", name));
      const Line alias = follow(line, "ALIAS", name);
      const long long k = integer(alias, field(alias, "ALIAS"), "ALIAS");
      if (k < -1 || k >= static_cast<long long>(by_position.size()))
        fail(alias.number,
             fmt::format("ALIAS is {}; accepted: -1 (fresh storage) or an argument index in [0, "
                         "{})",
                         k, by_position.size()));
      if (k >= 0) {
        bindings.emplace_back(name, by_position[static_cast<std::size_t>(k)]);
      } else {
        const std::size_t t = new_tensor(b, false, line.number);
        call.results.push_back(t);
        bindings.emplace_back(name, t);
      }
    }
    note_peak();
    log_.program.push_back(std::move(call));
    for (const auto& [name, t] : bindings) bind(name, t);
  }

  void mutate(const Line& line) {
    Instruction call;
    call.op = add_op(line);
    std::vector<std::string> arg_names;
    for (const Json& a : list(line, "ARGS")) arg_names.push_back(id(line, a, "an ARGS entry"));
    const std::vector<std::size_t> by_position = args(line, call);
    std::vector<std::size_t> indices;
    for (const Json& m : list(line, "MUTATE")) {
      const long long k = integer(line, m, "a MUTATE entry");
      if (k < 0 || k >= static_cast<long long>(by_position.size()))
        fail(line.number, fmt::format("MUTATE entry {} is not an argument index; accepted: [0, "
                                      "{})",
                                      k, by_position.size()));
      const auto i = static_cast<std::size_t>(k);
      for (std::size_t j : indices)
        if (arg_names[j] == arg_names[i])
          fail(line.number, fmt::format("MUTATE names argument \"{}\" twice", arg_names[i]));
      indices.push_back(i);
    }
    // Each mutated argument gets a new version with storage of its own, computed from all
    // the arguments; the name moves to it and the old version loses that reference. An
    // update of a constant (an optimizer step on a parameter) makes every new version it
    // writes a constant (the parameter and its optimizer state): never evicted, so with no
    // recipe that would keep the old versions' memory alive.
    bool persistent = false;
    for (std::size_t i : indices) persistent |= log_.tensors[by_position[i]].constant;
    for (std::size_t i : indices) {
      const std::size_t b = log_.tensors[by_position[i]].bytes;
      call.results.push_back(new_tensor(b, persistent, line.number));
      if (persistent) log_.constant_bytes += b;
    }
    note_peak();
    const std::vector<std::size_t> versions = call.results;
    log_.program.push_back(std::move(call));
    for (std::size_t j = 0; j < indices.size(); ++j) {
      const std::size_t old = by_position[indices[j]];
      log_.tensors[old].overwritten = true;
      bind(arg_names[indices[j]], versions[j]);
      unref(old);
    }
  }

  void copy(const Line& line, const std::string& instruction) {
    const std::string dst = id(line, field(line, "DST"), "DST");
    const std::size_t src = bound(line, id(line, field(line, "SRC"), "SRC"));
    if (instruction == "COPY") {
      expect_unbound(line, dst);
      bind(dst, src);
      return;
    }
    const std::size_t old = bound(line, dst);
    bind(dst, src);  // first: DST and SRC may already share the tensor
    unref(old);
  }

  std::istream& in_;
  ReplayLog log_;
  std::unordered_map<std::string, std::size_t> names_;
  std::vector<std::size_t> refs_;
  std::size_t live_bytes_ = 0;
};

}  // namespace

ReplayLog parse_replay_log(std::istream& in, const std::string& source) {
  return Parser(in, source).run();
}

ReplayLog load_replay_log(const std::string& path) {
  std::ifstream in(path);
  MEMENTO_EXPECTS(in.good(), fmt::format("cannot open the replay log \"{}\"", path), ConfigError);
  return parse_replay_log(in, path);
}

}  // namespace memento::replay
