// `memento calibrate`: measure a real device (--device host|cuda[:N]) or fit recorded runs
// (--fit RESULTS.json --trace TRACE.json) into a device profile for `--device
// sim:PROFILE.json`.
#pragma once

#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace memento::cli {

struct CalibrateCliOptions {
  std::optional<std::string> device;  // host, host:CAPACITY, cuda, cuda:N
  std::optional<std::string> fit;     // a results.json to fit instead of measuring
  std::optional<std::string> trace;   // its blocking-launch Chrome trace
  std::optional<std::string> base;    // the datasheet profile of the recorded device
  std::string out;
  std::string model = "gpt2-tiny";
  int batch = 0;
  int seq = 0;
  std::string dtype = "auto";
  std::string attention = "eager";
  int steps = 4;
  std::string timing = "stream";  // stream or blocking
};

CLI::App* add_calibrate_command(CLI::App& app, CalibrateCliOptions& options);
int run_calibrate_command(const CalibrateCliOptions& options);

}  // namespace memento::cli
