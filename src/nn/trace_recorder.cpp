#include "nn/trace_recorder.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>

#include "common/files.hpp"
#include "memento/error.hpp"
#include "nn/tape.hpp"

namespace memento::nn {
namespace {

// Keys in the order the format lists them: INSTRUCTION first.
using Json = nlohmann::ordered_json;

std::string describe(TraceRef ref) {
  return ref.block != nullptr ? fmt::format("block {}", ref.block)
                              : fmt::format("tensor {}", ref.tensor);
}

}  // namespace

TraceRecorder::TraceRecorder(const DeviceProfile& profile) : profile_(profile) {
  MEMENTO_EXPECTS(profile.matrix_flops > 0 && profile.vector_flops > 0 && profile.hbm_bandwidth > 0,
                  fmt::format("trace recorder: profile \"{}\" has no rates to time kernels with",
                              profile.name));
}

void TraceRecorder::emit(const std::string& line) {
  text_ += line;
  text_ += '\n';
  ++lines_;
}

void TraceRecorder::start() {
  text_.clear();
  tensors_.clear();
  blocks_.clear();
  next_block_.clear();
  charged_ns_ = total_ns_ = 0;
  lines_ = live_ = peak_ = 0;
  emit(Json{{"INSTRUCTION", "ANNOTATE"}, {"ANNOTATION", "START"}}.dump());
}

void TraceRecorder::backward() {
  emit(Json{{"INSTRUCTION", "ANNOTATE"}, {"ANNOTATION", "BACKWARD"}}.dump());
}

const TraceRecorder::Entry& TraceRecorder::at(TraceRef ref) const {
  const Entry* e = nullptr;
  if (ref.block != nullptr) {
    if (auto it = blocks_.find(ref.block); it != blocks_.end()) e = &it->second;
  } else if (auto it = tensors_.find(ref.tensor); it != tensors_.end()) {
    e = &it->second;
  }
  MEMENTO_EXPECTS(e != nullptr,
                  fmt::format("trace recorder: {} is not in the log (made before recording "
                              "started, or released); record a step from its start, and the "
                              "first step when the optimizer runs (its state is made then)",
                              describe(ref)));
  return *e;
}

bool TraceRecorder::knows(TraceRef ref) const {
  return ref.block != nullptr ? blocks_.count(ref.block) > 0 : tensors_.count(ref.tensor) > 0;
}

const std::string& TraceRecorder::define(TraceRef ref, std::size_t bytes, char prefix) {
  MEMENTO_EXPECTS(!knows(ref), fmt::format("trace recorder: {} is recorded twice", describe(ref)));
  Entry& e = ref.block != nullptr ? blocks_[ref.block] : tensors_[ref.tensor];
  e.name = ref.block != nullptr ? fmt::format("{}{}", prefix, next_block_[prefix]++)
                                : fmt::format("t{}", ref.tensor);
  e.bytes = bytes;
  live_ += bytes;
  peak_ = std::max(peak_, live_);
  return e.name;
}

void TraceRecorder::constant(TraceRef ref, std::size_t bytes, char prefix) {
  const std::string& name = define(ref, bytes, prefix);
  emit(Json{{"INSTRUCTION", "CONSTANT"}, {"NAME", name}}.dump());
  emit(Json{{"INSTRUCTION", "MEMORY"}, {"NAME", name}, {"MEMORY", bytes}}.dump());
}

void TraceRecorder::charge(const KernelCost& cost) { charged_ns_ += take_time(cost); }

std::int64_t TraceRecorder::take_time(const KernelCost& cost) {
  return whole_nanoseconds(
      roofline_seconds(cost, profile_.matrix_flops, profile_.vector_flops, profile_.hbm_bandwidth));
}

void TraceRecorder::call(std::string_view name, std::span<const TraceRef> args,
                         std::span<const TraceResult> results, const KernelCost& cost) {
  Json a = Json::array();
  for (TraceRef r : args) a.push_back(at(r).name);
  std::vector<std::string> names;
  for (const TraceResult& r : results) names.push_back(define(r.ref, r.bytes, r.prefix));
  const std::int64_t ns = take_time(cost) + std::exchange(charged_ns_, 0);
  total_ns_ += ns;
  emit(Json{
      {"INSTRUCTION", "CALL"},
      {"NAME", name},
      {"ARGS", std::move(a)},
      {"RESULT", names},
      {"TIME",
       ns}}.dump());
  for (std::size_t i = 0; i < names.size(); ++i) {
    emit(Json{{"INSTRUCTION", "MEMORY"}, {"NAME", names[i]}, {"MEMORY", results[i].bytes}}.dump());
    emit(Json{{"INSTRUCTION", "ALIAS"}, {"NAME", names[i]}, {"ALIAS", -1}}.dump());
  }
}

void TraceRecorder::mutate(std::string_view name, std::span<const TraceRef> args,
                           std::span<const std::size_t> mutated, const KernelCost& cost) {
  Json a = Json::array();
  for (TraceRef r : args) a.push_back(at(r).name);
  for (std::size_t i : mutated)
    MEMENTO_EXPECTS(i < args.size(), fmt::format("trace recorder: {} mutates argument {} of {}",
                                                 name, i, args.size()));
  const std::int64_t ns = take_time(cost) + std::exchange(charged_ns_, 0);
  total_ns_ += ns;
  emit(Json{
      {"INSTRUCTION", "MUTATE"},
      {"NAME", name},
      {"ARGS", std::move(a)},
      {"MUTATE", std::vector<std::size_t>(mutated.begin(), mutated.end())},
      {"TIME",
       ns}}.dump());
}

void TraceRecorder::release(TraceRef ref) {
  if (!knows(ref)) return;
  const Entry e = at(ref);
  if (ref.block != nullptr) {
    blocks_.erase(ref.block);
  } else {
    tensors_.erase(ref.tensor);
  }
  live_ -= e.bytes;
  emit(Json{{"INSTRUCTION", "RELEASE"}, {"NAME", e.name}}.dump());
}

void TraceRecorder::write(const std::filesystem::path& path) const {
  files::write_atomically(path, text_, "operator trace");
}

// ---- the Tape's side: what it reports, kept beside the format it reports in -------------

void Tape::set_recorder(TraceRecorder* recorder) {
  if (recorder != nullptr) {
    MEMENTO_EXPECTS(live_.empty() && inputs_.empty(),
                    "set_recorder: start recording between steps (after clear()), not with "
                    "activations or inputs alive");
    MEMENTO_EXPECTS(!grad_ready_,
                    "set_recorder: a grad-ready hook (host-placed optimizer) takes gradients "
                    "off the device, which the operator log cannot show; record with the "
                    "optimizer on the device");
    recorder->start();
    for (TensorId p : params_) recorder->constant(TraceRef::of(p), bytes_.at(p));
    for (TensorId p : params_)
      if (const Grad& g = param_grads_.at(p); g.data != nullptr)
        recorder->constant(TraceRef::of(g.data), g.bytes, 'g');
  }
  recorder_ = recorder;
}

void Tape::record_forward(const Node& node) {
  std::vector<TraceRef> args;
  std::vector<std::size_t> in_bytes;
  for (TensorId in : node.inputs) {
    args.push_back(TraceRef::of(in));
    in_bytes.push_back(bytes_.at(in));
  }
  const TraceResult result{TraceRef::of(node.output), node.bytes, 't'};
  // The cost the runtime launched the op's kernel with (Runtime::run_op).
  recorder_->call(node.op->name(), args, {&result, 1}, node.op->cost(in_bytes, node.bytes));
}

void Tape::record_backward(const Node& node, std::span<const Storage> din,
                           const std::vector<bool>& fresh, const void* dout,
                           const KernelCost& cost) {
  const NnOp& op = *node.op;
  std::vector<TraceRef> reads;
  for (std::size_t i = 0; i < node.inputs.size(); ++i)
    if (op.backward_reads_input(i)) reads.push_back(TraceRef::of(node.inputs[i]));
  if (op.backward_reads_output()) reads.push_back(TraceRef::of(node.output));
  reads.push_back(TraceRef::of(dout));
  std::vector<TraceResult> made;
  std::vector<TraceRef> updated;  // accumulated into: the mutation's first arguments
  for (std::size_t i = 0; i < din.size(); ++i) {
    if (din[i].data == nullptr) continue;
    if (fresh[i]) {
      made.push_back({TraceRef::of(din[i].data), din[i].bytes, 'g'});
    } else if (std::none_of(updated.begin(), updated.end(),
                            [&](TraceRef r) { return r.block == din[i].data; })) {
      updated.push_back(TraceRef::of(din[i].data));
    }
  }
  const std::string name = op.name() + " backward";
  // One kernel: its time goes to the call when there is one, else to the mutation.
  KernelCost rest = cost;
  if (!made.empty() || updated.empty()) {
    recorder_->call(name, reads, made, cost);
    rest = {};
  }
  if (updated.empty()) return;
  std::vector<std::size_t> mutated(updated.size());
  for (std::size_t i = 0; i < mutated.size(); ++i) mutated[i] = i;
  updated.insert(updated.end(), reads.begin(), reads.end());
  recorder_->mutate(name, updated, mutated, rest);
}

void Tape::record_state(std::string_view name, Storage s, std::optional<KernelCost> init,
                        TensorId from) {
  if (recorder_ == nullptr) return;
  std::vector<TraceRef> args;
  if (from != 0) args.push_back(TraceRef::of(from));
  const TraceResult result{TraceRef::of(s.data), s.bytes, 's'};
  recorder_->call(name, args, {&result, 1}, init ? *init : zero_kernel(s).cost);
}

void Tape::record_update(std::string_view name, TensorId param,
                         std::initializer_list<const void*> state, const KernelCost& cost) {
  if (recorder_ == nullptr) return;
  const void* g = grad(param);
  MEMENTO_EXPECTS(g != nullptr,
                  fmt::format("record_update({}): parameter {} has no gradient", name, param));
  std::vector<TraceRef> args{TraceRef::of(param), TraceRef::of(g)};
  std::vector<std::size_t> mutated{0};
  for (const void* p : state) {
    if (p == nullptr) continue;
    mutated.push_back(args.size());
    args.push_back(TraceRef::of(p));
  }
  recorder_->mutate(name, args, mutated, cost);
}

}  // namespace memento::nn
