// The decision-only C API's steps: the caller's registrations, uses, frees and noted seconds
// and bytes build the open step's StepGraph; an observed step is planned with plan_step at
// its end, and a step that follows the plan gets its answers (and prefetch schedule) from it.
#include "capi/plan_state.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "common/cpu_time.hpp"
#include "common/log.hpp"
#include "memento/error.hpp"

namespace memento::capi {
namespace {

// An id is the step (31 bits) above the creation ordinal (32 bits): ids kept past their step
// are caught instead of naming another step's tensor.
constexpr int kOrdinalBits = 32;
constexpr std::uint64_t kOrdinalMask = (std::uint64_t{1} << kOrdinalBits) - 1;
constexpr std::uint64_t kStepMask = (std::uint64_t{1} << 31) - 1;
// A planned step over its budget widens the margin, within these bounds.
constexpr double kMaxMargin = 0.5;
constexpr int kMaxMarginReplans = 4;

}  // namespace

PlanState::~PlanState() {
  std::lock_guard lock(mutex_);
  try {
    for (Tensor& t : tensors_) {
      drop_host_copy(t);
      drop_copy_back(t);
    }
    if (d2h_) backend_.synchronize(*d2h_);
    if (h2d_) backend_.synchronize(*h2d_);
  } catch (const std::exception& e) {
    log::error(fmt::format("memento_shutdown: waiting for the plan API's copies: {}", e.what()));
  }
  for (Event e : spare_events_) backend_.destroy_event(e);
}

void PlanState::begin() {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(!open_,
                  "a step is already open: memento_step_begin was called twice "
                  "without memento_step_end");
  ++step_;
  graph_.clear();
  tensors_.clear();
  clock_ = 0;
  live_bytes_ = 0;
  new_plan_ = false;
  begin_other_ = static_cast<double>(allocator_.active_bytes());
  first_noted_other_.reset();
  noted_other_.reset();
  noted_peak_.reset();
  // A new budget: plan again for it from the step already seen, before this one runs.
  if (plan_ && plan_->summary.budget_bytes != allocator_.budget()) {
    make_plan(plan_graph_);
    new_plan_ = true;
  }
  following_ = plan_ != nullptr;
  prefetch_cursor_ = 0;
  open_ = true;
}

void PlanState::end(memento_step_stats* out) {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(open_, "no step is open: memento_step_end without memento_step_begin");
  open_ = false;
  std::size_t tensor_bytes = 0;
  for (Tensor& t : tensors_) {
    drop_host_copy(t);
    drop_copy_back(t);
    tensor_bytes += t.bytes;
  }
  const bool followed = following_ && graph_.same_program(plan_graph_);
  if (!followed) {
    // Memory the step left allocated beyond what it started with (an optimizer's state
    // made at its first update) is there throughout the next steps: count it everywhere.
    // The caller's figures when it gave them, the allocator's otherwise.
    const double left =
        noted_other_ ? *noted_other_ - *first_noted_other_ : other_bytes() - begin_other_;
    if (left > 0)
      for (GraphPoint& p : graph_.points) p.other_bytes += left;
    if (!graph_.same_program(plan_graph_)) {  // another program: what was learnt is its own
      margin_ = PlanInputs{}.margin;
      margin_replans_ = 0;
    }
    make_plan(graph_);
    std::swap(plan_graph_, graph_);
    new_plan_ = true;
  } else if (const std::size_t budget = allocator_.budget();
             noted_peak_ && *noted_peak_ > budget && margin_replans_ < kMaxMarginReplans) {
    // The plan was carried out and the step still went over: plan with what it missed.
    const double over = static_cast<double>(*noted_peak_ - budget) / static_cast<double>(budget);
    margin_ = std::min(kMaxMargin, margin_ + over + 0.02);
    ++margin_replans_;
    make_plan(plan_graph_);
    new_plan_ = true;
  } else if (plan_->summary.budget_bytes != allocator_.budget()) {
    // The budget changed during the step: plan from the step observed (a planned step's
    // memory is the plan's, and memento does not see the caller's discards).
    make_plan(plan_graph_);
    new_plan_ = true;
  }
  if (out == nullptr) return;
  const StepPlanSummary& s = plan_->summary;
  *out = memento_step_stats{};
  out->phase = followed ? MEMENTO_STEP_PLANNED : MEMENTO_STEP_OBSERVED;
  out->new_plan = new_plan_ ? 1 : 0;
  out->fits = s.fits ? 1 : 0;
  out->tensors = tensors_.size();
  out->tensor_bytes = tensor_bytes;
  out->kept = s.kept;
  out->offloaded = s.offloaded;
  out->recomputed = s.discarded;
  out->kept_bytes = s.kept_bytes;
  out->offloaded_bytes = s.offloaded_bytes;
  out->recomputed_bytes = s.discarded_bytes;
  out->budget = s.budget_bytes;
  out->predicted_peak = s.predicted_peak;
  out->observed_seconds = s.observed_seconds;
  out->predicted_extra_seconds = s.predicted_extra_seconds;
  out->plan_cpu_seconds = new_plan_ ? s.plan_cpu_seconds : 0;
  out->margin = margin_;
}

std::int64_t PlanState::add_tensor(const void* ptr, std::size_t bytes) {
  std::lock_guard lock(mutex_);
  expect_open();
  MEMENTO_EXPECTS(ptr != nullptr, "a tensor's pointer must not be NULL");
  MEMENTO_EXPECTS(bytes > 0, "a tensor's bytes must be positive, got 0");
  const std::size_t ordinal = tensors_.size();
  MEMENTO_EXPECTS(ordinal <= kOrdinalMask,
                  fmt::format("a step registers at most {} tensors", kOrdinalMask + 1));
  GraphTensor g;
  g.bytes = bytes;
  g.created = graph_.points.size();
  Tensor t;
  t.ptr = ptr;
  t.bytes = bytes;
  tensors_.push_back(t);
  live_bytes_ += bytes;
  graph_.tensors.push_back(std::move(g));
  add_point();
  // Another program than the plan's: stop following it for the rest of the step.
  if (following_ &&
      (ordinal >= plan_graph_.tensors.size() || plan_graph_.tensors[ordinal].bytes != bytes))
    following_ = false;
  return id_of(ordinal);
}

void PlanState::add_region(const std::int64_t* outputs, std::size_t n_outputs,
                           const std::int64_t* inputs, std::size_t n_inputs, double seconds) {
  std::lock_guard lock(mutex_);
  expect_open();
  MEMENTO_EXPECTS(n_outputs > 0, "a region needs at least one output (n_outputs is 0)");
  MEMENTO_EXPECTS(outputs != nullptr, fmt::format("outputs is NULL with n_outputs {}", n_outputs));
  MEMENTO_EXPECTS(n_inputs == 0 || inputs != nullptr,
                  fmt::format("inputs is NULL with n_inputs {}", n_inputs));
  MEMENTO_EXPECTS(std::isfinite(seconds) && seconds >= 0,
                  fmt::format("a region's cost must be finite seconds >= 0, got {}", seconds));
  std::vector<std::size_t> in;
  in.reserve(n_inputs);
  for (std::size_t i = 0; i < n_inputs; ++i) in.push_back(ordinal_of(inputs[i], "input"));
  std::vector<std::size_t> out;
  out.reserve(n_outputs);
  for (std::size_t i = 0; i < n_outputs; ++i) {
    const std::size_t o = ordinal_of(outputs[i], "output");
    MEMENTO_EXPECTS(!graph_.tensors[o].recipe,
                    fmt::format("tensor id {} is already the output of a region", outputs[i]));
    for (std::size_t p : out)
      MEMENTO_EXPECTS(p != o, fmt::format("tensor id {} is an output twice", outputs[i]));
    for (std::size_t p : in)
      MEMENTO_EXPECTS(p != o, fmt::format("tensor id {} is both an input and an output of "
                                          "the region",
                                          outputs[i]));
    out.push_back(o);
  }
  for (std::size_t o : out) {
    GraphTensor& g = graph_.tensors[o];
    g.recipe = true;
    g.inputs = in;
    g.seconds = seconds;
    if (following_ && (!plan_graph_.tensors[o].recipe || plan_graph_.tensors[o].inputs != in))
      following_ = false;
  }
  clock_ += seconds;
}

void PlanState::use(std::int64_t id) {
  std::lock_guard lock(mutex_);
  const std::size_t o = live_ordinal(id);
  MEMENTO_EXPECTS(tensors_[o].host == nullptr,
                  fmt::format("tensor id {} is offloaded: copy it back (memento_copy_back or "
                              "memento_prefetch) before using it",
                              id));
  GraphTensor& g = graph_.tensors[o];
  g.uses.push_back(graph_.points.size());
  add_point();
  if (following_ && g.uses.size() > plan_graph_.tensors[o].uses.size()) following_ = false;
}

void PlanState::free(std::int64_t id) {
  std::lock_guard lock(mutex_);
  const std::size_t o = live_ordinal(id);
  Tensor& t = tensors_[o];
  drop_host_copy(t);
  drop_copy_back(t);
  t.live = false;
  live_bytes_ -= t.bytes;
  graph_.tensors[o].freed = graph_.points.size();
  add_point();
}

void PlanState::note_seconds(double seconds) {
  std::lock_guard lock(mutex_);
  expect_open();
  MEMENTO_EXPECTS(std::isfinite(seconds) && seconds >= 0,
                  fmt::format("seconds must be finite and >= 0 (the caller's compute since the "
                              "previous point), got {}",
                              seconds));
  clock_ += seconds;
}

void PlanState::note_other_bytes(std::size_t bytes) {
  std::lock_guard lock(mutex_);
  expect_open();
  noted_other_ = static_cast<double>(bytes);
  if (!first_noted_other_) first_noted_other_ = noted_other_;
}

void PlanState::note_peak(std::size_t bytes) {
  std::lock_guard lock(mutex_);
  expect_open();
  noted_peak_ = bytes;
}

void PlanState::set_link_bandwidth(double d2h_bytes_per_s, double h2d_bytes_per_s) {
  for (const auto& [name, rate] : {std::pair{"d2h_bytes_per_s", d2h_bytes_per_s},
                                   std::pair{"h2d_bytes_per_s", h2d_bytes_per_s}})
    MEMENTO_EXPECTS(std::isfinite(rate) && rate >= 0,
                    fmt::format("{} must be finite bytes/s > 0 (or both rates 0: the backend's), "
                                "got {}",
                                name, rate));
  MEMENTO_EXPECTS((d2h_bytes_per_s == 0) == (h2d_bytes_per_s == 0),
                  fmt::format("both rates are > 0, or both 0 (the backend's); got "
                              "d2h_bytes_per_s {} and h2d_bytes_per_s {}",
                              d2h_bytes_per_s, h2d_bytes_per_s));
  std::lock_guard lock(mutex_);
  if (d2h_bytes_per_s == 0)
    link_.reset();
  else
    link_ = {d2h_bytes_per_s, h2d_bytes_per_s};
}

TensorDecision PlanState::decision(std::int64_t id) {
  std::lock_guard lock(mutex_);
  const std::size_t o = ordinal_of(id, "tensor");
  if (!following_ || o >= plan_->decisions.size()) return {};
  return plan_->decisions[o];
}

bool PlanState::following() {
  std::lock_guard lock(mutex_);
  expect_open();
  return following_;
}

void PlanState::expect_open() const {
  MEMENTO_EXPECTS(open_, "no step is open: call memento_step_begin first");
}

std::int64_t PlanState::id_of(std::size_t ordinal) const {
  return static_cast<std::int64_t>(((step_ & kStepMask) << kOrdinalBits) | ordinal);
}

std::size_t PlanState::ordinal_of(std::int64_t id, const char* role) const {
  expect_open();
  MEMENTO_EXPECTS(id >= 0, fmt::format("unknown {} id {}: ids are >= 0 "
                                       "(memento_tensor_register returns -1 on error)",
                                       role, id));
  const auto bits = static_cast<std::uint64_t>(id);
  const std::uint64_t step = step_ & kStepMask;
  MEMENTO_EXPECTS(bits >> kOrdinalBits == step,
                  fmt::format("unknown {} id {}: it is from step {}, this is step {} (ids are "
                              "valid in the step that registered them)",
                              role, id, bits >> kOrdinalBits, step));
  const std::size_t ordinal = bits & kOrdinalMask;
  MEMENTO_EXPECTS(ordinal < tensors_.size(),
                  fmt::format("unknown {} id {}: not registered (it names tensor {} of step "
                              "{}, which has registered {})",
                              role, id, ordinal, step, tensors_.size()));
  return ordinal;
}

std::size_t PlanState::live_ordinal(std::int64_t id) const {
  const std::size_t o = ordinal_of(id, "tensor");
  MEMENTO_EXPECTS(tensors_[o].live,
                  fmt::format("tensor id {} was freed (memento_tensor_free)", id));
  return o;
}

// The device bytes that are not the step's live tensors, as the allocator sees them: its
// active bytes less the live tensors (never below 0: storage that did not come from
// memento_malloc is not in the allocator's count).
double PlanState::other_bytes() const {
  const std::size_t active = allocator_.active_bytes();
  return active > live_bytes_ ? static_cast<double>(active - live_bytes_) : 0.0;
}

// A point at the clock, with the caller's other bytes once it gave them in this step.
void PlanState::add_point() {
  graph_.points.push_back({clock_, noted_other_ ? *noted_other_ : other_bytes()});
}

void PlanState::make_plan(const StepGraph& graph) {
  const double start = thread_cpu_seconds();
  const DeviceInfo& info = backend_.info();
  PlanInputs in;
  in.budget_bytes = static_cast<double>(allocator_.budget());
  in.margin = margin_;
  in.d2h_bandwidth = (link_ ? link_->first : info.d2h_bandwidth) / kLinkDerate;
  in.h2d_bandwidth = (link_ ? link_->second : info.h2d_bandwidth) / kLinkDerate;
  in.host_bytes = static_cast<double>(host_pool_.stats().budget);
  auto plan = std::make_unique<StepPlan>(plan_step(graph, in, {}));
  plan->summary.plan_cpu_seconds = thread_cpu_seconds() - start;
  prefetch_order_.clear();
  for (std::size_t i = 0; i < plan->copy_back_at.size(); ++i)
    if (plan->copy_back_at[i] != kNoPoint) prefetch_order_.emplace_back(plan->copy_back_at[i], i);
  std::sort(prefetch_order_.begin(), prefetch_order_.end());
  plan_ = std::move(plan);
}

}  // namespace memento::capi
