#include "common/files.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <system_error>

#include "memento/error.hpp"

namespace memento::files {

namespace fs = std::filesystem;

std::string read(const fs::path& path, std::string_view what) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    MEMENTO_FAIL(ConfigError,
                 fmt::format("cannot read the {} \"{}\": {}", what, path.string(),
                             std::error_code(errno, std::generic_category()).message()));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    MEMENTO_FAIL(ConfigError, fmt::format("cannot read the {} \"{}\"", what, path.string()));
  return std::move(text).str();
}

void write_atomically(const fs::path& path, std::string_view text, std::string_view what) {
  const fs::path tmp = fs::path(path).concat(".tmp");
  const auto fail = [&](std::string_view step, int err) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    MEMENTO_FAIL(
        Error, fmt::format("cannot write the {} \"{}\": {} \"{}\": {}", what, path.string(), step,
                           tmp.string(), std::error_code(err, std::generic_category()).message()));
  };
  {
    errno = 0;
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("cannot create the temporary file", errno);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) fail("cannot write the temporary file", errno);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail("cannot rename the temporary file", ec.value());
}

}  // namespace memento::files
