// What the fuzz targets share: reading an input as values, and reporting a broken invariant
// (abort, which libFuzzer and the corpus driver report as a crash).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace memento::fuzz {

/// A broken invariant: says which and aborts.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

#define MEMENTO_FUZZ_CHECK(cond, msg)                                                 \
  do {                                                                                \
    if (!(cond)) ::memento::fuzz::fail(std::string(#cond) + ": " + std::string(msg)); \
  } while (0)

/// The input as a stream of values; past its end every read is zero.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  [[nodiscard]] bool empty() const { return pos_ >= size_; }

  [[nodiscard]] std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }

  template <typename T>
  [[nodiscard]] T value() {
    static_assert(std::is_trivially_copyable_v<T>);
    unsigned char raw[sizeof(T)] = {};
    for (unsigned char& c : raw) c = byte();
    T out;
    std::memcpy(&out, raw, sizeof(T));
    return out;
  }

  /// A number in [0, n) (0 when n is 0), from one byte when n <= 256.
  [[nodiscard]] std::size_t below(std::size_t n) {
    if (n == 0) return 0;
    if (n <= 256) return byte() % n;
    return value<std::uint32_t>() % n;
  }

  /// Up to `max` bytes, as text.
  [[nodiscard]] std::string_view text(std::size_t max) {
    const std::size_t n = std::min(below(max + 1), size_ - std::min(pos_, size_));
    const std::string_view s(reinterpret_cast<const char*>(data_) + pos_, n);
    pos_ += n;
    return s;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace memento::fuzz
