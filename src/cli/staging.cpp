#include "cli/staging.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <system_error>
#include <vector>

#include "memento/error.hpp"

namespace memento::cli {

namespace fs = std::filesystem;

Staging::Staging(const std::string& out) : out_(out) {
  if (fs::exists(out_))
    MEMENTO_EXPECTS(fs::is_directory(out_),
                    fmt::format("--out=\"{}\" exists and is not a directory", out_.string()),
                    ConfigError);
  std::error_code ec;
  fs::create_directories(out_, ec);
  MEMENTO_EXPECTS(!ec,
                  fmt::format("--out=\"{}\": cannot create it: {}", out_.string(), ec.message()),
                  ConfigError);
  // A results.json from an earlier sweep would claim this one's success if it fails.
  fs::remove(out_ / "results.json", ec);
  dir_ = out_ / fmt::format(".memento-staging-{}", ::getpid());
  fs::remove_all(dir_, ec);
  fs::create_directory(dir_, ec);
  MEMENTO_EXPECTS(!ec, fmt::format("cannot create {}: {}", dir_.string(), ec.message()), Error);
}

Staging::~Staging() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void Staging::commit() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir_))
    if (entry.path().filename() != "results.json") files.push_back(entry.path());
  files.push_back(dir_ / "results.json");
  for (const fs::path& f : files) fs::rename(f, out_ / f.filename());
}

}  // namespace memento::cli
