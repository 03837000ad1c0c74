// An output directory whose files appear only when everything succeeded: they are written
// into a hidden directory inside it and moved in by commit(), results.json last, so a
// failed sweep leaves no results claiming success (and removes an earlier results.json).
#pragma once

#include <filesystem>
#include <string>

namespace memento::cli {

class Staging {
 public:
  /// Creates `out` if missing; ConfigError when it exists and is not a directory or cannot
  /// be created.
  explicit Staging(const std::string& out);
  ~Staging();
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;

  /// Where to write the files.
  [[nodiscard]] std::string dir() const { return dir_.string(); }
  /// Moves every staged file into the output directory, results.json last.
  void commit();

 private:
  std::filesystem::path out_;
  std::filesystem::path dir_;
};

}  // namespace memento::cli
