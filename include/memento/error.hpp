// Exceptions and the macros that raise them. Every error memento reports derives from
// memento::Error. what() is the message a user reads; where() is the file:line where it was
// raised, kept apart for debugging (the CLI shows it with MEMENTO_LOG_LEVEL=debug).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace memento {

/// Base of every exception memento throws.
class Error : public std::runtime_error {
 public:
  /// `file` must outlive the exception (a string literal such as __FILE__): it is kept as a
  /// pointer so that copying an exception cannot throw.
  explicit Error(const std::string& message, const char* file = nullptr, int line = 0)
      : std::runtime_error(message), file_(file != nullptr ? file : ""), line_(line) {}
  explicit Error(const char* message, const char* file = nullptr, int line = 0)
      : std::runtime_error(message), file_(file != nullptr ? file : ""), line_(line) {}

  /// The source file that raised it, relative to the project ("src/config/bytes.cpp"), or ""
  /// when constructed without one.
  [[nodiscard]] const char* file() const noexcept { return file_; }
  /// Its line, 0 without a file.
  [[nodiscard]] int line() const noexcept { return line_; }
  /// "file:line", or "" without a file.
  [[nodiscard]] std::string where() const {
    return *file_ == '\0' ? std::string() : std::string(file_) + ":" + std::to_string(line_);
  }

 private:
  const char* file_;
  int line_;
};

/// A precondition on an argument or on the call sequence was violated.
class LogicError : public Error {
 public:
  using Error::Error;
};

/// A value in the configuration (environment variable or option) is malformed or out of range.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A backend call failed (a CUDA runtime error, a missing device, a dead worker thread).
class BackendError : public Error {
 public:
  using Error::Error;
};

/// Work queued earlier failed on its stream and a synchronize or an event query is reporting
/// it now: the data that work was writing (a copy's destination, a kernel's outputs) cannot
/// be trusted. The runtime answers it by recomputing or naming what that work produced.
class AsyncBackendError : public BackendError {
 public:
  using BackendError::BackendError;
};

/// A tracked tensor's data is gone: the copy that held its only up-to-date bytes failed, and
/// it has no recipe to recompute it from. The message names the tensor and the failure.
class DataLost : public Error {
 public:
  using Error::Error;
};

/// The caching allocator's state when a request could not be met: what OutOfMemory reports.
struct OomFigures {
  std::string device{};               // the backend's name
  std::size_t requested = 0;          // the bytes asked for
  std::uint32_t stream = 0;           // the stream's id
  std::size_t budget = 0;             //
  std::size_t allocated = 0;          // in live blocks
  std::size_t live_blocks = 0;        //
  std::size_t reserved = 0;           // in segments, live or cached
  std::size_t segments = 0;           //
  std::size_t cached = 0;             // reserved but free
  std::size_t unevictable = 0;        // allocated bytes no eviction can free
  std::size_t freed_by_eviction = 0;  // what the pressure handlers freed for this request
  std::string reason{};               // why it failed ("nothing left to evict")

  /// How far the request missed the budget: reserved + requested - budget (what a larger
  /// budget would have had to hold at that moment), 0 when it failed within the reserved
  /// bytes. Saturates rather than wraps for absurd requests.
  [[nodiscard]] std::size_t shortfall() const noexcept {
    if (reserved <= budget)
      return requested > budget - reserved ? requested - (budget - reserved) : 0;
    const std::size_t over = reserved - budget;
    return requested > std::numeric_limits<std::size_t>::max() - over
               ? std::numeric_limits<std::size_t>::max()
               : over + requested;
  }
};

/// The message of an OutOfMemory with figures: the one place its wording lives, so the text
/// and the figures cannot disagree.
[[nodiscard]] std::string describe(const OomFigures& figures);

/// An allocation could not be satisfied within the budget, even after eviction.
class OutOfMemory : public Error {
 public:
  /// Without figures: a failure that is not one request against the allocator's budget (a
  /// runtime whose evictions keep undoing each other, a refused pinned host allocation).
  using Error::Error;
  /// The allocator's: the message is describe(figures).
  explicit OutOfMemory(OomFigures figures, const char* file = nullptr, int line = 0);

  /// The allocator's state at the failure, or null when raised without figures.
  [[nodiscard]] const OomFigures* figures() const noexcept { return figures_.get(); }

 private:
  std::shared_ptr<const OomFigures> figures_;  // shared: copying the exception cannot throw
};

namespace detail {

/// `file` (a __FILE__) relative to the project root, else its base name: users and logs need
/// not see the build machine's directories. The root is what precedes include/memento/ in
/// this header's own __FILE__, spelled as the build spells every __FILE__ (absolute, or
/// relative to the build directory under ccache's base_dir), so no configured prefix is needed.
constexpr const char* project_path(const char* file) noexcept {
  const std::string_view path(file);
  constexpr std::string_view kSelf = __FILE__;
  constexpr std::string_view kSuffix = "include/memento/error.hpp";
  if (kSelf.ends_with(kSuffix)) {
    // Empty when built from the root itself: then any relative path is the project's.
    const std::string_view root = kSelf.substr(0, kSelf.size() - kSuffix.size());
    if (path.size() > root.size() && path.starts_with(root) && (!root.empty() || path[0] != '/'))
      return file + root.size();
  }
  const std::size_t slash = path.find_last_of('/');
  return slash == std::string_view::npos ? file : file + slash + 1;
}

template <typename E>
[[noreturn]] void raise(const char* file, int line, const std::string& msg) {
  throw E(msg, project_path(file), line);
}
}  // namespace detail

}  // namespace memento

/// Throws `memento::LogicError` (or the exception type given as third argument) when `cond`
/// is false. The message is any expression convertible to std::string.
#define MEMENTO_EXPECTS_2(cond, msg)                                              \
  do {                                                                            \
    if (!(cond)) [[unlikely]]                                                     \
      ::memento::detail::raise<::memento::LogicError>(__FILE__, __LINE__, (msg)); \
  } while (0)
#define MEMENTO_EXPECTS_3(cond, msg, type)                       \
  do {                                                           \
    if (!(cond)) [[unlikely]]                                    \
      ::memento::detail::raise<type>(__FILE__, __LINE__, (msg)); \
  } while (0)
#define MEMENTO_GET_MACRO(_1, _2, _3, NAME, ...) NAME
#define MEMENTO_EXPECTS(...) \
  MEMENTO_GET_MACRO(__VA_ARGS__, MEMENTO_EXPECTS_3, MEMENTO_EXPECTS_2, unused)(__VA_ARGS__)

/// Unconditionally throws the given exception type, recording file:line.
#define MEMENTO_FAIL(type, msg) ::memento::detail::raise<type>(__FILE__, __LINE__, (msg))
