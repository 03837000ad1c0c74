// Exceptions and the macros that raise them. Every error memento reports derives from
// memento::Error and carries the file:line where it was raised.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace memento {

/// Base of every exception memento throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
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

/// An allocation could not be satisfied within the budget, even after eviction.
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

namespace detail {

template <typename E>
[[noreturn]] void raise(const char* file, int line, const std::string& msg) {
  throw E(std::string(file) + ":" + std::to_string(line) + ": " + msg);
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

/// Unconditionally throws the given exception type with file:line.
#define MEMENTO_FAIL(type, msg) ::memento::detail::raise<type>(__FILE__, __LINE__, (msg))
