// The progress of a sweep of runs on stderr: on a terminal one bar redrawn in place (runs
// done / total, the current run, elapsed time) and ended with a newline; otherwise (a log
// file, a pipe) one line per finished run.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>

namespace memento::cli {

class Progress {
 public:
  /// `interactive`: redraw a bar with \r (a terminal); else one line per finished run.
  Progress(std::size_t total, bool interactive, std::FILE* out = stderr);
  /// Interactive when stderr is a terminal.
  explicit Progress(std::size_t total);
  ~Progress();  // ends the bar's line if finish() was not called (an exception)
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// A run starts: the bar shows its name.
  void begin(const std::string& name);
  /// The run ended; `outcome` is a few words ("fits, 12.3 ms/step", "OOM").
  void end(const std::string& outcome);
  /// Ends the bar's line.
  void finish();

 private:
  void draw();
  [[nodiscard]] double elapsed() const;

  std::size_t total_;
  std::size_t done_ = 0;
  bool interactive_;
  std::FILE* out_;
  std::string current_;
  std::chrono::steady_clock::time_point start_;
  std::size_t last_width_ = 0;  // of the bar last drawn, to blank what a shorter one leaves
  bool open_ = false;           // a bar is on the line
};

}  // namespace memento::cli
