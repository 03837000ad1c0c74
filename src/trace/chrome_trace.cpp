// The Chrome trace writer. nlohmann-json escapes every string (names, tracks, args) and
// formats the numbers; events are serialised one at a time, so a large trace never exists
// as a JSON document in memory.
#include "trace/chrome_trace.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <system_error>

#include "common/log.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

using Json = nlohmann::ordered_json;  // keys in the order written: name, cat, ph, ts, ...

constexpr int kPid = 1;
constexpr std::string_view kProcessName = "memento";

Json to_json(const TraceValue& v) {
  return std::visit([](const auto& x) { return Json(x); }, v.value);
}

Json to_json(const TraceArgs& args) {
  Json object = Json::object();
  for (const auto& [key, value] : args) object[key] = to_json(value);
  return object;
}

// Invalid UTF-8 (a name cut mid-character) becomes U+FFFD rather than a failed write.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

void check_time(double t, std::string_view what, std::string_view name) {
  MEMENTO_EXPECTS(std::isfinite(t),
                  fmt::format("ChromeTrace: {} of event \"{}\" is not finite ({})", what, name, t));
}

// Writes a file with stdio so that errno says why a step failed.
class File {
 public:
  // `target` is the file this one is renamed to, for messages.
  File(const std::string& path, const std::string& target)
      : path_(path), target_(target), file_(std::fopen(path.c_str(), "wb")) {
    if (file_ == nullptr) fail("cannot create");
  }
  ~File() {
    if (file_ != nullptr) std::fclose(file_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  void write(std::string_view data) {
    if (std::fwrite(data.data(), 1, data.size(), file_) != data.size()) fail("cannot write");
  }
  void close() {
    const bool flushed = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
    const int flush_errno = errno;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!flushed) errno = flush_errno;
    if (!flushed || !closed) fail("cannot write");
  }

 private:
  [[noreturn]] void fail(std::string_view step) const {
    const std::string reason = std::error_code(errno, std::generic_category()).message();
    MEMENTO_FAIL(Error, fmt::format("cannot write the Chrome trace \"{}\": {} \"{}\": {}", target_,
                                    step, path_, reason));
  }
  const std::string& path_;
  const std::string& target_;
  std::FILE* file_;
};

}  // namespace

ChromeTrace::ChromeTrace(std::string path, std::size_t max_events)
    : path_(std::move(path)), max_events_(max_events) {
  MEMENTO_EXPECTS(!path_.empty(), "ChromeTrace: the path is empty");
}

ChromeTrace::~ChromeTrace() {
  try {
    std::lock_guard lock(mutex_);
    if (!written_) write_locked();
  } catch (const std::exception& e) {
    log::error(fmt::format("the Chrome trace was not written: {}", e.what()));
  }
}

bool ChromeTrace::admit() {
  if (events_.size() < max_events_) return true;
  if (dropped_++ == 0) {
    log::warning(fmt::format(
        "ChromeTrace \"{}\": more than {} events; later ones are dropped and counted in "
        "otherData.dropped_events",
        path_, max_events_));
  }
  return false;
}

std::uint32_t ChromeTrace::intern(std::string_view s) {
  const auto it = string_ids_.find(s);
  if (it != string_ids_.end()) return it->second;
  const auto id = static_cast<std::uint32_t>(strings_.size());
  strings_.emplace_back(s);
  string_ids_.emplace(std::string(s), id);
  return id;
}

std::uint32_t ChromeTrace::track_tid(std::string_view track) {
  const auto it = tids_.find(track);
  if (it != tids_.end()) return it->second;
  tracks_.emplace_back(track);
  const auto tid = static_cast<std::uint32_t>(tracks_.size());  // 1, 2, ...
  tids_.emplace(std::string(track), tid);
  return tid;
}

void ChromeTrace::complete(std::string_view name, std::string_view category, std::string_view track,
                           double start_s, double duration_s, Args args) {
  check_time(start_s, "the start", name);
  check_time(duration_s, "the duration", name);
  MEMENTO_EXPECTS(duration_s >= 0, fmt::format("ChromeTrace: event \"{}\" has a negative "
                                               "duration ({} s)",
                                               name, duration_s));
  std::lock_guard lock(mutex_);
  if (!admit()) return;
  events_.push_back(Event{start_s * 1e6, duration_s * 1e6, intern(name), intern(category),
                          track_tid(track), 'X', std::move(args)});
  written_ = false;
}

void ChromeTrace::instant(std::string_view name, std::string_view category, std::string_view track,
                          double time_s, Args args) {
  check_time(time_s, "the time", name);
  std::lock_guard lock(mutex_);
  if (!admit()) return;
  events_.push_back(Event{time_s * 1e6, 0, intern(name), intern(category), track_tid(track), 'i',
                          std::move(args)});
  written_ = false;
}

void ChromeTrace::counter(std::string_view name, double time_s, std::string_view series,
                          double value) {
  check_time(time_s, "the time", name);
  check_time(value, fmt::format("the value of series \"{}\"", series), name);
  Args args;
  args.emplace_back(std::string(series), value);
  std::lock_guard lock(mutex_);
  if (!admit()) return;
  events_.push_back(Event{time_s * 1e6, 0, intern(name), 0, 0, 'C', std::move(args)});
  written_ = false;
}

void ChromeTrace::set_other_data(std::string_view key, TraceValue value) {
  std::lock_guard lock(mutex_);
  const auto it = std::find_if(other_data_.begin(), other_data_.end(),
                               [&](const auto& kv) { return kv.first == key; });
  if (it != other_data_.end()) {
    it->second = std::move(value);
  } else {
    other_data_.emplace_back(std::string(key), std::move(value));
  }
  written_ = false;
}

std::size_t ChromeTrace::size() const {
  std::lock_guard lock(mutex_);
  return events_.size();
}

std::size_t ChromeTrace::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

void ChromeTrace::flush() {
  std::lock_guard lock(mutex_);
  write_locked();
}

void ChromeTrace::write_locked() {
  // Sorted by time; stable, so events at one time keep the order they were recorded in.
  std::vector<std::uint32_t> order(events_.size());
  std::iota(order.begin(), order.end(), std::uint32_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return events_[a].ts_us < events_[b].ts_us;
  });

  const std::string tmp = path_ + ".tmp";
  try {
    File file(tmp, path_);
    std::string out = "{\"traceEvents\":[\n";
    bool first = true;
    const auto append = [&](const Json& event) {
      if (!first) out += ",\n";
      first = false;
      out += dump(event);
      if (out.size() >= (std::size_t{1} << 20)) {
        file.write(out);
        out.clear();
      }
    };

    // Metadata first: the process and one name per track, shown in the order first used.
    append(Json{
        {"name", "process_name"}, {"ph", "M"}, {"pid", kPid}, {"args", {{"name", kProcessName}}}});
    for (std::size_t i = 0; i < tracks_.size(); ++i) {
      const std::size_t tid = i + 1;
      append(Json{{"name", "thread_name"},
                  {"ph", "M"},
                  {"pid", kPid},
                  {"tid", tid},
                  {"args", {{"name", tracks_[i]}}}});
      append(Json{{"name", "thread_sort_index"},
                  {"ph", "M"},
                  {"pid", kPid},
                  {"tid", tid},
                  {"args", {{"sort_index", tid}}}});
    }

    for (const std::uint32_t index : order) {
      const Event& e = events_[index];
      Json j = {{"name", strings_[e.name]}};
      if (e.phase != 'C') j["cat"] = strings_[e.category];
      j["ph"] = std::string(1, e.phase);
      j["ts"] = e.ts_us;
      if (e.phase == 'X') j["dur"] = e.dur_us;
      if (e.phase == 'i') j["s"] = "t";
      j["pid"] = kPid;
      if (e.phase != 'C') j["tid"] = e.tid;
      if (!e.args.empty() || e.phase == 'C') j["args"] = to_json(e.args);
      append(j);
    }

    Json other = {{"producer", "memento"},
                  {"clock", "seconds on the backend clock (virtual on sim), written as us"},
                  {"events", events_.size()},
                  {"max_events", max_events_},
                  {"dropped_events", dropped_}};
    for (const auto& [key, value] : other_data_) other[key] = to_json(value);
    out += "\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":";
    out += dump(other);
    out += "}\n";
    file.write(out);
    file.close();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    const std::string reason = std::error_code(errno, std::generic_category()).message();
    std::remove(tmp.c_str());
    MEMENTO_FAIL(Error, fmt::format("cannot write the Chrome trace \"{}\": cannot rename \"{}\" "
                                    "to it: {}",
                                    path_, tmp, reason));
  }
  written_ = true;
}

}  // namespace memento
