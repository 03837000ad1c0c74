// The fuzz targets' inputs as regression tests without libFuzzer: runs
// LLVMFuzzerTestOneInput once over each file named on the command line, and over every
// regular file (recursively, in name order) of each directory named. Built with every
// compiler and preset, so each seed and each past crash input is a ctest
// (fuzz.<target>.corpus) in the normal, ASan and TSan suites. Exit status 0 when every input
// ran; a bug aborts (or a sanitizer stops the process) with the input's name printed first.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

bool run_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "corpus_main: cannot read %s\n", path.c_str());
    return false;
  }
  const std::vector<char> bytes{std::istreambuf_iterator<char>(in),
                                std::istreambuf_iterator<char>()};
  std::fprintf(stderr, "corpus_main: %s (%zu bytes)\n", path.c_str(), bytes.size());
  std::fflush(stderr);
  // A copy of exactly the input's size, so ASan sees reads past its end.
  std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
  const std::uint8_t* ptr = data.empty() ? nullptr : data.data();
  (void)LLVMFuzzerTestOneInput(ptr, data.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIRECTORY...\n", argv[0]);
    return 2;
  }
  std::size_t inputs = 0;
  bool ok = true;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg(argv[i]);
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<fs::path> files;
      for (const auto& entry : fs::recursive_directory_iterator(arg))
        if (entry.is_regular_file()) files.push_back(entry.path());
      std::sort(files.begin(), files.end());
      if (files.empty()) {
        std::fprintf(stderr, "corpus_main: %s has no files\n", argv[i]);
        ok = false;
      }
      for (const fs::path& f : files) {
        ok = run_file(f) && ok;
        ++inputs;
      }
    } else {
      ok = run_file(arg) && ok;
      ++inputs;
    }
  }
  std::fprintf(stderr, "corpus_main: ran %zu input(s)%s\n", inputs, ok ? "" : " with errors");
  return ok ? 0 : 1;
}
