// Fuzz target: the C API (include/memento/memento.h) as a program of calls with arbitrary
// arguments, on the host backend (MEMENTO_DEVICE=host:64MiB, MEMENTO_BUDGET=32MiB,
// MEMENTO_HOST_BUDGET=16MiB). Each input is a sequence of (opcode, arguments) read from its
// bytes in order (into locals first: C++ leaves the order of a call's arguments unspecified,
// and a seed must be the same program with every compiler); memento_shutdown ends it, so
// inputs are independent.
//
// What the header promises, and so what is checked: every call returns its value or -1 /
// NULL with memento_last_error() set (and "" after a success); nothing crashes, whatever the
// sizes, budgets, ids, seconds, rates or streams; memento_free and memento_record_stream take
// any pointer (double frees, offsets into blocks and foreign pointers are reported).
//
// What the header leaves to the caller, and so what the fuzzer keeps to:
//  - memento_tensor_register's pointer is storage the caller owns, at least `bytes` long and
//    alive until the copies that read it are done: a fresh buffer of this program, or a
//    memento_malloc block the program then never frees (memento_shutdown does), each used as
//    one tensor's storage at most once (two tensors on the same bytes would race).
//  - memento_copy_back and memento_prefetch write the tensor's bytes to `dst`: a fresh buffer
//    or an unused block at least kMaxTensor long (the largest tensor), or NULL.
#include <sys/types.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "memento/memento.h"

namespace {

using memento::fuzz::Reader;

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kMaxTensor = std::size_t{64} << 10;  // a tensor's bytes, at most
constexpr std::size_t kMaxBuffers = 64;                    // fresh buffers per program
constexpr std::size_t kMaxCalls = 256;                     // calls per program
constexpr std::size_t kMaxIds = 64;                        // region and prefetch_due arrays

struct Block {
  void* ptr = nullptr;
  ssize_t size = 0;
  bool storage = false;  // a tensor's storage or a copy's destination: never freed by us
};

class Program {
 public:
  explicit Program(Reader& in) : in_(in) {}
  ~Program() {
    memento_shutdown();  // waits for the copies, then frees what is left
  }
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  void run() {
    for (std::size_t n = 0; n < kMaxCalls && !in_.empty(); ++n) call(in_.byte());
  }

 private:
  // ---- arguments ----
  std::size_t size_arg() {
    switch (in_.byte() % 5) {
      case 0:
        return in_.byte();
      case 1:
        return in_.value<std::uint16_t>();
      case 2:
        return in_.value<std::uint32_t>() % (8 * kMiB);
      case 3:
        return in_.value<std::uint32_t>() % (64 * kMiB + 2);
      default:
        return in_.value<std::size_t>();  // anything, to be refused
    }
  }

  double double_arg() {
    switch (in_.byte() % 6) {
      case 0:
        return 0;
      case 1:
        return static_cast<double>(in_.value<std::uint16_t>()) * 1e-6;
      case 2:
        return static_cast<double>(in_.value<std::uint32_t>()) * 1e3;
      case 3:
        return -1;
      case 4:
        return std::numeric_limits<double>::quiet_NaN();
      default:
        return in_.value<double>();  // any bits: huge, tiny, inf, NaN, denormal
    }
  }

  memento_stream_t stream_arg() {
    static int anything;
    switch (in_.byte() % 8) {
      case 0:
        return reinterpret_cast<memento_stream_t>(std::uintptr_t{1});
      case 1:
        return reinterpret_cast<memento_stream_t>(&anything);
      case 2:
        return reinterpret_cast<memento_stream_t>(in_.value<std::uintptr_t>());
      default:
        return nullptr;  // the default stream
    }
  }

  int device_arg() { return in_.byte() % 8 == 0 ? in_.value<int>() : 0; }

  // Any pointer memento_free or memento_record_stream may be given.
  void* pointer_arg() {
    const std::uint8_t how = in_.byte() % 6;
    if (how == 5 || blocks_.empty()) {
      switch (in_.byte() % 3) {
        case 0:
          return nullptr;
        case 1:
          return buffers_.empty() ? nullptr : buffers_[in_.below(buffers_.size())].get();
        default:
          return reinterpret_cast<void*>(in_.value<std::uintptr_t>());
      }
    }
    const Block& b = blocks_[in_.below(blocks_.size())];
    if (how == 4) return static_cast<char*>(b.ptr) + 1 + in_.below(4096);  // inside it
    return b.ptr;
  }

  std::int64_t id_arg() {
    switch (in_.byte() % 8) {
      case 0:
        return in_.value<std::int64_t>();
      case 1:
        return -1;
      case 2:
        return ids_.empty() ? 0 : ids_[in_.below(ids_.size())] + 1;
      default:
        return ids_.empty() ? in_.byte() : ids_[in_.below(ids_.size())];
    }
  }

  // Storage of at least `bytes` no one else uses: a fresh buffer, or a block of ours.
  void* storage(std::size_t bytes) {
    if (in_.byte() % 2 == 0) {
      for (Block& b : blocks_)
        if (!b.storage && static_cast<std::size_t>(b.size) >= bytes) {
          b.storage = true;
          return b.ptr;
        }
    }
    if (buffers_.size() == kMaxBuffers) return nullptr;
    buffers_.push_back(std::make_unique<unsigned char[]>(kMaxTensor));
    return buffers_.back().get();
  }

  // ---- checks ----
  // -1 with a message, or success without one.
  void check_rc(const char* call, long long rc) {
    const std::string error = memento_last_error();
    if (rc == -1)
      MEMENTO_FUZZ_CHECK(!error.empty(), std::string(call) + " returned -1 without a message");
    else
      MEMENTO_FUZZ_CHECK(
          error.empty() && rc >= 0,
          std::string(call) + " returned " + std::to_string(rc) + " with the message: " + error);
  }

  // ---- the calls ----
  void call(std::uint8_t op) {
    switch (op % 28) {
      case 0: {
        const std::size_t raw = size_arg();
        const auto size = static_cast<ssize_t>(raw);
        const int device = device_arg();
        void* p = memento_malloc(size, device, stream_arg());
        const std::string error = memento_last_error();
        if (p != nullptr) {
          MEMENTO_FUZZ_CHECK(error.empty() && size > 0, "memento_malloc succeeded with an error");
          blocks_.push_back({p, size, false});
        } else if (size != 0) {
          MEMENTO_FUZZ_CHECK(!error.empty(), "memento_malloc returned NULL without a message");
        }
        break;
      }
      case 1: {
        if (!blocks_.empty() && in_.byte() % 2 == 0) {
          // One of ours, with its size or another.
          const std::size_t i = in_.below(blocks_.size());
          if (blocks_[i].storage) break;
          const ssize_t size =
              in_.byte() % 4 == 0 ? static_cast<ssize_t>(size_arg()) : blocks_[i].size;
          const int device = device_arg();
          memento_free(blocks_[i].ptr, size, device, stream_arg());
          if (*memento_last_error() == '\0')
            blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          void* p = pointer_arg();
          bool ours = false;
          for (const Block& b : blocks_) ours = ours || b.ptr == p;
          if (ours) break;  // freed above, where its entry is kept right
          const auto size = static_cast<ssize_t>(size_arg());
          const int device = device_arg();
          memento_free(p, size, device, stream_arg());
          if (p != nullptr)
            MEMENTO_FUZZ_CHECK(*memento_last_error() != '\0',
                               "memento_free of a foreign pointer succeeded");
        }
        break;
      }
      case 2: {
        void* p = pointer_arg();
        check_rc("memento_record_stream", memento_record_stream(p, stream_arg()));
        break;
      }
      case 3: {
        memento_stats s{};
        const int rc = memento_get_stats(in_.byte() % 8 == 0 ? nullptr : &s);
        check_rc("memento_get_stats", rc);
        if (rc == 0)
          MEMENTO_FUZZ_CHECK(s.allocated <= s.reserved && s.reserved <= 64 * kMiB,
                             "stats: allocated <= reserved <= capacity");
        break;
      }
      case 4:
        check_rc("memento_set_budget", memento_set_budget(size_arg()));
        break;
      case 5: {
        const std::size_t b = memento_get_budget();
        MEMENTO_FUZZ_CHECK((b == 0) == (*memento_last_error() != '\0'),
                           "memento_get_budget: 0 with a message, or a budget");
        MEMENTO_FUZZ_CHECK(b <= 64 * kMiB, "memento_get_budget: at most the capacity");
        break;
      }
      case 6:
        check_rc("memento_empty_cache", memento_empty_cache());
        break;
      case 7:
        check_rc("memento_step_begin", memento_step_begin());
        break;
      case 8: {
        memento_step_stats s{};
        const int rc = memento_step_end(in_.byte() % 4 == 0 ? nullptr : &s);
        check_rc("memento_step_end", rc);
        if (rc == 0)
          MEMENTO_FUZZ_CHECK(
              (s.phase == MEMENTO_STEP_OBSERVED || s.phase == MEMENTO_STEP_PLANNED) &&
                  s.margin >= 0 && s.margin < 1,
              "memento_step_end: phase and margin");
        break;
      }
      case 9: {
        std::size_t bytes = 1 + in_.below(kMaxTensor);
        if (in_.byte() % 16 == 0) bytes = 0;  // refused
        void* p = in_.byte() % 16 == 0 ? nullptr : storage(bytes);
        const std::int64_t id = memento_tensor_register(p, bytes, stream_arg());
        check_rc("memento_tensor_register", id);
        if (id >= 0) ids_.push_back(id);
        break;
      }
      case 10: {
        const std::size_t n_out = in_.below(5);
        const std::size_t n_in = in_.below(5);
        std::vector<std::int64_t> outs(n_out), ins(n_in);
        for (std::int64_t& id : outs) id = id_arg();
        for (std::int64_t& id : ins) id = id_arg();
        const std::uint8_t nulls = in_.byte();
        // An array is NULL only when it is empty, unless the call must refuse it.
        const std::int64_t* o = (nulls & 1) != 0 || outs.empty() ? nullptr : outs.data();
        const std::int64_t* i = (nulls & 2) != 0 || ins.empty() ? nullptr : ins.data();
        check_rc("memento_region_register",
                 memento_region_register(o, n_out, i, n_in, double_arg()));
        break;
      }
      case 11:
        check_rc("memento_tensor_use", memento_tensor_use(id_arg()));
        break;
      case 12:
        check_rc("memento_tensor_free", memento_tensor_free(id_arg()));
        break;
      case 13: {
        int action = -1;
        std::uint32_t after = 0;
        const std::uint8_t nulls = in_.byte() % 8;
        const int rc = memento_plan_action(id_arg(), nulls == 1 ? nullptr : &action,
                                           nulls == 2 ? nullptr : &after);
        check_rc("memento_plan_action", rc);
        if (rc == 0)
          MEMENTO_FUZZ_CHECK(
              action == MEMENTO_KEEP || action == MEMENTO_OFFLOAD || action == MEMENTO_RECOMPUTE,
              "memento_plan_action: an action");
        break;
      }
      case 14: {
        const std::int64_t id = id_arg();
        check_rc("memento_offload", memento_offload(id, stream_arg()));
        break;
      }
      case 15: {
        const std::int64_t id = id_arg();
        check_rc("memento_offload_async", memento_offload_async(id, stream_arg()));
        break;
      }
      case 16: {
        const std::int64_t id = id_arg();
        const int rc = memento_offload_done(id, in_.byte() % 2);
        if (rc != 1) check_rc("memento_offload_done", rc);
        break;
      }
      case 17: {
        const std::int64_t id = id_arg();
        void* dst = in_.byte() % 8 == 0 ? nullptr : storage(kMaxTensor);
        check_rc("memento_copy_back", memento_copy_back(id, dst, stream_arg()));
        break;
      }
      case 18:
        check_rc("memento_note_seconds", memento_note_seconds(double_arg()));
        break;
      case 19:
        check_rc("memento_note_other_bytes", memento_note_other_bytes(size_arg()));
        break;
      case 20:
        check_rc("memento_note_peak", memento_note_peak(size_arg()));
        break;
      case 21: {
        const double d2h = double_arg();
        const double h2d = double_arg();
        check_rc("memento_set_link_bandwidth", memento_set_link_bandwidth(d2h, h2d));
        break;
      }
      case 22: {
        const int rc = memento_step_following();
        if (rc != 1) check_rc("memento_step_following", rc);
        break;
      }
      case 23: {
        std::vector<std::int64_t> ids(kMaxIds);
        const std::size_t cap = in_.below(kMaxIds + 1);
        const bool null = in_.byte() % 8 == 0;
        const int n = memento_prefetch_due(null ? nullptr : ids.data(), cap);
        check_rc("memento_prefetch_due", n);
        MEMENTO_FUZZ_CHECK(n <= static_cast<int>(cap), "memento_prefetch_due: at most cap ids");
        break;
      }
      case 24: {
        const std::int64_t id = id_arg();
        void* dst = in_.byte() % 8 == 0 ? nullptr : storage(kMaxTensor);
        check_rc("memento_prefetch", memento_prefetch(id, dst, stream_arg()));
        break;
      }
      case 25: {
        const std::int64_t id = id_arg();
        check_rc("memento_wait_ready", memento_wait_ready(id, stream_arg()));
        break;
      }
      case 26:
        check_rc("memento_synchronize", memento_synchronize(stream_arg()));
        break;
      default:
        // Start again: memento frees what is left, and every id is from another instance.
        memento_shutdown();
        blocks_.clear();
        break;
    }
  }

  Reader& in_;
  std::vector<Block> blocks_;
  std::vector<std::int64_t> ids_;
  // Freed after memento_shutdown (members are destroyed after the destructor's body).
  std::vector<std::unique_ptr<unsigned char[]>> buffers_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool environment = [] {
    ::setenv("MEMENTO_DEVICE", "host:64MiB", 1);
    ::setenv("MEMENTO_BUDGET", "32MiB", 1);
    ::setenv("MEMENTO_HOST_BUDGET", "16MiB", 1);
    for (const char* name : {"MEMENTO_CONF", "MEMENTO_POLICY", "MEMENTO_TRACE"}) ::unsetenv(name);
    return true;
  }();
  (void)environment;
  memento_shutdown();  // from the environment above, whatever ran before
  Reader in(data, size);
  Program program(in);
  program.run();
  return 0;
}
