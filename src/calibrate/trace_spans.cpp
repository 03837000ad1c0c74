#include "calibrate/trace_spans.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "common/files.hpp"
#include "common/text.hpp"
#include "memento/error.hpp"

namespace memento::calibrate {
namespace {

using Json = nlohmann::json;

// The events: the "traceEvents" of the object format, or the array format.
Json read_events(const std::filesystem::path& trace) {
  Json j;
  try {
    j = Json::parse(files::read(trace, "trace"));
  } catch (const Json::exception& e) {
    MEMENTO_FAIL(ConfigError, fmt::format("the trace \"{}\" is not JSON: {}", trace.string(),
                                          text::printable(e.what())));
  }
  if (j.is_object() && j.contains("traceEvents") && j["traceEvents"].is_array())
    return std::move(j["traceEvents"]);
  MEMENTO_EXPECTS(j.is_array(),
                  fmt::format("the trace \"{}\" has no traceEvents array (a Chrome trace from "
                              "memento train --trace or compare --out)",
                              trace.string()),
                  ConfigError);
  return j;
}

}  // namespace

TraceSpans::TraceSpans(std::filesystem::path path)
    : path_(std::move(path)), events_(std::make_unique<const Json>(read_events(path_))) {}

TraceSpans::~TraceSpans() = default;

void TraceSpans::for_each(std::string_view category, const Each& each) const {
  const Json& events = *events_;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const Json& e = events[i];
    if (!e.is_object() || !e.contains("cat") || e["cat"] != category || !e.contains("ph") ||
        e["ph"] != "X")
      continue;
    try {
      each(e, e.at("ts").get<double>() * 1e-6, e.at("dur").get<double>() * 1e-6);
    } catch (const Json::exception& ex) {
      MEMENTO_FAIL(ConfigError,
                   fmt::format("the trace \"{}\": event {} ({} span): {}", path_.string(), i,
                               category, text::printable(ex.what())));
    }
  }
}

std::vector<KernelSample> TraceSpans::kernels(double from_seconds) const {
  std::vector<KernelSample> out;
  for_each("kernel", [&](const Json& e, double start, double seconds) {
    if (start < from_seconds) return;
    const Json& args = e.at("args");
    KernelSample s;
    s.name = args.contains("kernel") ? args["kernel"].get<std::string>()
                                     : e.at("name").get<std::string>();
    s.cost = {args.at("flops").get<double>(), args.at("bytes").get<double>(),
              args.at("tensor_cores").get<bool>()};
    s.seconds = seconds;
    s.start = start;
    out.push_back(std::move(s));
  });
  return out;
}

double TraceSpans::first_step_end() const {
  double first_start = 0, end = 0;
  bool found = false;
  for_each("step", [&](const Json&, double start, double seconds) {
    if (!found || start < first_start) {
      first_start = start;
      end = start + seconds;
      found = true;
    }
  });
  return end;
}

}  // namespace memento::calibrate
