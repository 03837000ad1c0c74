// DTR-style operator logs (JSON Lines) read into a plain program: the log's names, aliases,
// copies and reference counts are resolved here, once, so the replayer only creates,
// computes and frees tensors numbered densely from 0.
//
// Accepted instructions (one JSON object per line; every number may also be a string):
//   {"INSTRUCTION":"ANNOTATE","ANNOTATION":"START" | "BACKWARD"}
//   {"INSTRUCTION":"CONSTANT","NAME":id}  then  {"INSTRUCTION":"MEMORY","NAME":id,"MEMORY":bytes}
//   {"INSTRUCTION":"CALL","NAME":op,"ARGS":[ids],"RESULT":[ids],"TIME":ns}  then, per result,
//     {"INSTRUCTION":"MEMORY","NAME":id,"MEMORY":bytes}  and  {"INSTRUCTION":"ALIAS","NAME":id,
//     "ALIAS":k}  (k = -1: fresh storage; k >= 0: the storage of argument k)
//   {"INSTRUCTION":"MUTATE","NAME":op,"ARGS":[ids],"MUTATE":[indices],"TIME":ns}
//   {"INSTRUCTION":"COPY","DST":id,"SRC":id}, {"INSTRUCTION":"COPY_FROM","DST":id,"SRC":id}
//   {"INSTRUCTION":"RELEASE","NAME":id}
// Lines before START are ignored entirely (they need not even be JSON); a file without
// START is an error. Ids are JSON strings or integers; the integer 7 and the string "7" are
// the same id.
#pragma once

#include <cstddef>
#include <istream>
#include <string>
#include <vector>

namespace memento::replay {

/// One storage-owning tensor of the log (an alias is not one: it names another's storage).
struct LogTensor {
  std::size_t bytes = 0;
  /// An input or parameter (CONSTANT, or a new version written by a MUTATE that updates
  /// a constant, such as an optimizer step): always resident, never evicted.
  bool constant = false;
  /// A MUTATE made a new version of it: the real run overwrote its storage in place, so
  /// nothing may be recomputed from it after that.
  bool overwritten = false;
  std::size_t line = 0;  ///< where it was created
};

/// One operator call, as recorded.
struct LogOp {
  std::string name;
  double seconds = 0;  ///< the recorded TIME
  std::size_t line = 0;
};

/// One step of the lowered program.
struct Instruction {
  enum class Kind {
    constant,  ///< create `tensor` (a constant)
    call,      ///< run `op` over `args`, producing `results` (possibly none: an op whose
               ///< results are all aliases still takes its time); a result may be a
               ///< constant (a MUTATE's new version of one)
    free,      ///< `tensor` lost its last reference
  };
  Kind kind = Kind::call;
  std::size_t tensor = 0;            // constant, free
  std::size_t op = 0;                // call: index into ReplayLog::ops
  std::vector<std::size_t> args;     // call: distinct tensors read, in first-use order
  std::vector<std::size_t> results;  // call: fresh tensors written
};

struct ReplayLog {
  std::string source;  ///< file name, for messages
  std::vector<LogTensor> tensors;
  std::vector<LogOp> ops;
  std::vector<Instruction> program;
  /// Index in `program` of the first instruction after the BACKWARD annotation;
  /// program.size() when there is none.
  std::size_t backward_start = 0;
  bool has_backward = false;
  /// Tensors still referenced after the last line: they must be resident at the end.
  std::vector<std::size_t> outputs;
  /// The log's own figures, from its reference counts: the peak of live tensor bytes
  /// (constants included) and the sum of the recorded TIMEs.
  std::size_t peak_live_bytes = 0;
  double total_seconds = 0;
  std::size_t constant_bytes = 0;  ///< bytes of all constants (new versions included)
  std::size_t lines = 0;           ///< lines read (the whole file)
};

/// Parses a log. memento::ConfigError naming `source`, the line number, what is wrong and
/// what is accepted, for malformed JSON, unknown instructions or annotations, missing or
/// ill-typed fields, unknown or redefined ids, negative sizes or times, out-of-range
/// indices, and truncation (no START, the last line cut, a CALL or CONSTANT without its
/// MEMORY / ALIAS lines).
[[nodiscard]] ReplayLog parse_replay_log(std::istream& in, const std::string& source);

/// Reads and parses a file; ConfigError when it cannot be opened.
[[nodiscard]] ReplayLog load_replay_log(const std::string& path);

}  // namespace memento::replay
