#include "cli/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>

namespace memento::cli {

Progress::Progress(std::size_t total, bool interactive, std::FILE* out)
    : total_(total),
      interactive_(interactive),
      out_(out),
      start_(std::chrono::steady_clock::now()) {}

Progress::Progress(std::size_t total) : Progress(total, ::isatty(::fileno(stderr)) != 0) {}

Progress::~Progress() {
  if (open_) std::fputc('\n', out_);
}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::begin(const std::string& name) {
  current_ = name;
  if (interactive_) draw();
}

void Progress::end(const std::string& outcome) {
  ++done_;
  if (interactive_) {
    draw();
    return;
  }
  fmt::print(out_, "[{}/{}] {}: {} ({:.1f} s elapsed)\n", done_, total_, current_, outcome,
             elapsed());
  std::fflush(out_);
}

void Progress::draw() {
  constexpr std::size_t kWidth = 24;
  const std::size_t filled = total_ == 0 ? kWidth : kWidth * std::min(done_, total_) / total_;
  std::string line = fmt::format("[{}{}] {}/{} {} {:.1f}s", std::string(filled, '#'),
                                 std::string(kWidth - filled, '.'), done_, total_,
                                 done_ == total_ ? std::string("done") : current_, elapsed());
  const std::size_t width = line.size();
  if (width < last_width_) line.append(last_width_ - width, ' ');
  last_width_ = width;
  fmt::print(out_, "\r{}", line);
  std::fflush(out_);
  open_ = true;
}

void Progress::finish() {
  if (!open_) return;
  std::fputc('\n', out_);
  std::fflush(out_);
  open_ = false;
}

}  // namespace memento::cli
