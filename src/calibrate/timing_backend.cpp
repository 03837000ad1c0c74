#include "calibrate/timing_backend.hpp"

#include <utility>

namespace memento::calibrate {

std::vector<KernelSample> TimingBackend::take_samples() {
  std::lock_guard lock(mutex_);
  return std::exchange(samples_, {});
}

void TimingBackend::set_recording(bool on) {
  std::lock_guard lock(mutex_);
  recording_ = on;
}

void TimingBackend::launch(Stream stream, Kernel kernel) {
  bool recording = false;
  {
    std::lock_guard lock(mutex_);
    recording = recording_;
  }
  if (!recording) return inner_.launch(stream, std::move(kernel));
  KernelSample s{kernel.name, kernel.cost, 0, 0};
  if (blocking_) inner_.synchronize(stream);  // the kernel's time alone, not its queue's
  const double start = inner_.now();
  inner_.launch(stream, std::move(kernel));
  const double issued = inner_.now();
  if (blocking_) inner_.synchronize(stream);
  s.issue_seconds = issued - start;
  s.seconds = inner_.now() - start;
  std::lock_guard lock(mutex_);
  samples_.push_back(std::move(s));
}

}  // namespace memento::calibrate
