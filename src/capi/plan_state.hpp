// The decision-only C API's state (memento.h, "Planning for a framework that owns its
// tensors"): the open step as a StepGraph (tensors by creation ordinal, regions as recipes,
// uses and frees as points on the step's clock), the plan made from the last step observed
// with its prefetch schedule, and the tensors' copies to and from pinned host memory on
// memento's own streams. The steps are plan_state.cpp, the copies plan_copies.cpp; one lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "memento/backend.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/memento.h"
#include "memento/pinned_host_pool.hpp"
#include "runtime/step_graph.hpp"
#include "runtime/step_planner.hpp"

namespace memento::capi {

class PlanState {
 public:
  PlanState(Backend& backend, CachingAllocator& allocator, PinnedHostPool& host_pool)
      : backend_(backend), allocator_(allocator), host_pool_(host_pool) {}
  PlanState(const PlanState&) = delete;
  PlanState& operator=(const PlanState&) = delete;
  /// Waits for the copies in flight and returns host buffers and events.
  ~PlanState();

  // The step and its plan (plan_state.cpp).
  void begin();
  void end(memento_step_stats* out);
  std::int64_t add_tensor(const void* ptr, std::size_t bytes);
  void add_region(const std::int64_t* outputs, std::size_t n_outputs, const std::int64_t* inputs,
                  std::size_t n_inputs, double seconds);
  void use(std::int64_t id);
  void free(std::int64_t id);
  void note_seconds(double seconds);
  void note_other_bytes(std::size_t bytes);
  void note_peak(std::size_t bytes);
  void set_link_bandwidth(double d2h_bytes_per_s, double h2d_bytes_per_s);
  [[nodiscard]] TensorDecision decision(std::int64_t id);
  [[nodiscard]] bool following();

  // Copies to and from the host (plan_copies.cpp).
  void offload(std::int64_t id, Stream caller, bool caller_keeps_storage);
  [[nodiscard]] bool offload_done(std::int64_t id, bool block);
  void copy_back(std::int64_t id, void* dst, Stream caller);
  void prefetch(std::int64_t id, void* dst, Stream caller);
  void wait_ready(std::int64_t id, Stream caller);
  [[nodiscard]] std::size_t prefetch_due(std::int64_t* ids, std::size_t cap);

 private:
  struct Tensor {
    const void* ptr = nullptr;
    std::size_t bytes = 0;
    bool live = true;
    void* host = nullptr;              ///< the pinned copy while offloaded
    Event copied_out{};                ///< recorded after the copy out, while offloaded
    std::optional<Event> copied_back;  ///< recorded after a memento_prefetch's copy back
    bool prefetch_returned = false;    ///< memento_prefetch_due named it in this step
  };

  // plan_state.cpp
  void expect_open() const;
  [[nodiscard]] std::int64_t id_of(std::size_t ordinal) const;
  [[nodiscard]] std::size_t ordinal_of(std::int64_t id, const char* role) const;
  [[nodiscard]] std::size_t live_ordinal(std::int64_t id) const;
  [[nodiscard]] double other_bytes() const;
  void add_point();
  void make_plan(const StepGraph& graph);

  // plan_copies.cpp
  void ensure_streams();
  [[nodiscard]] Event take_event();
  void wait_for(Stream waiter, Stream target);
  bool record_use(const void* ptr, Stream stream);
  Tensor& offloaded(std::int64_t id, const void* dst);
  void copy_in(Tensor& t, void* dst, Stream caller);
  void host_copy_done(Tensor& t, void* dst);
  void drop_host_copy(Tensor& t);
  void drop_copy_back(Tensor& t);

  Backend& backend_;
  CachingAllocator& allocator_;
  PinnedHostPool& host_pool_;
  std::mutex mutex_;
  bool open_ = false;
  std::uint64_t step_ = 0;
  StepGraph graph_;              ///< the open (or last) step, as observed
  std::vector<Tensor> tensors_;  ///< the open step's, by ordinal
  double clock_ = 0;             ///< regions' and noted seconds so far in the open step
  std::size_t live_bytes_ = 0;   ///< registered tensors not freed
  double begin_other_ = 0;       ///< the allocator's other bytes at the step's begin
  /// The caller's other bytes (memento_note_other_bytes) in the open step: first and last.
  std::optional<double> first_noted_other_, noted_other_;
  bool following_ = false;                 ///< the open step still matches the plan's
  std::optional<std::size_t> noted_peak_;  ///< memento_note_peak in the open step
  /// The plan's margin below the budget, widened when a planned step peaked above it.
  double margin_ = PlanInputs{}.margin;
  int margin_replans_ = 0;  ///< widenings for the program planned
  bool new_plan_ = false;   ///< a plan was made for or at the end of the step
  StepGraph plan_graph_;    ///< the step the plan was made from
  std::unique_ptr<StepPlan> plan_;
  /// The plan's copies back as (point after which it starts, ordinal), by point; the open
  /// step's memento_prefetch_due has dealt with those before the cursor.
  std::vector<std::pair<std::size_t, std::size_t>> prefetch_order_;
  std::size_t prefetch_cursor_ = 0;
  /// memento_set_link_bandwidth's rates (d2h, h2d), instead of the backend's.
  std::optional<std::pair<double, double>> link_;
  std::optional<Stream> d2h_, h2d_;  ///< memento's copy streams, made on first offload
  std::vector<Event> spare_events_;
};

}  // namespace memento::capi
