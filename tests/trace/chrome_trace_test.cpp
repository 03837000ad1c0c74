// ChromeTrace: every written file is parsed back with nlohmann-json and checked against the
// Chrome Trace Event Format (JSON Object Format): phases and their fields, microseconds,
// track names, sorting, escaping, concurrent writers, the event cap and write failures.
#include "trace/chrome_trace.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "memento/error.hpp"

namespace memento {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// A fresh directory per test, removed afterwards.
class ChromeTraceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("memento-trace-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Json read_json(const std::string& path) { return Json::parse(read_text(path)); }

std::vector<Json> events_with_phase(const Json& trace, const std::string& ph) {
  std::vector<Json> out;
  for (const Json& e : trace.at("traceEvents"))
    if (e.at("ph") == ph) out.push_back(e);
  return out;
}

// tid -> track name, from the thread_name metadata.
std::map<int, std::string> track_names(const Json& trace) {
  std::map<int, std::string> names;
  for (const Json& e : events_with_phase(trace, "M"))
    if (e.at("name") == "thread_name") names[e.at("tid").get<int>()] = e.at("args").at("name");
  return names;
}

template <typename F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected memento::Error, nothing was thrown";
  return {};
}

TEST_F(ChromeTraceTest, WritesTheJsonObjectFormat) {
  const std::string path = file("run.json");
  ChromeTrace trace(path);
  trace.complete("matmul", "compute", "compute stream", 0.5, 0.25, {{"flops", 1e9}});
  trace.instant("evict", "runtime", "runtime", 0.6, {{"tensor", "x"}});
  trace.counter("device memory", 0.7, "allocated", 4096);
  trace.flush();

  const Json j = read_json(path);
  ASSERT_TRUE(j.is_object());
  ASSERT_TRUE(j.at("traceEvents").is_array());
  EXPECT_EQ(j.at("displayTimeUnit"), "ms");
  ASSERT_TRUE(j.at("otherData").is_object());
  EXPECT_EQ(j.at("otherData").at("producer"), "memento");
  EXPECT_EQ(j.at("otherData").at("events"), 3);
  EXPECT_EQ(j.at("otherData").at("dropped_events"), 0);

  const std::vector<Json> x = events_with_phase(j, "X");
  ASSERT_EQ(x.size(), 1u);
  EXPECT_EQ(x[0].at("name"), "matmul");
  EXPECT_EQ(x[0].at("cat"), "compute");
  EXPECT_DOUBLE_EQ(x[0].at("ts").get<double>(), 500000.0);  // microseconds
  EXPECT_DOUBLE_EQ(x[0].at("dur").get<double>(), 250000.0);
  EXPECT_EQ(x[0].at("pid"), 1);
  EXPECT_DOUBLE_EQ(x[0].at("args").at("flops").get<double>(), 1e9);

  const std::vector<Json> i = events_with_phase(j, "i");
  ASSERT_EQ(i.size(), 1u);
  EXPECT_EQ(i[0].at("name"), "evict");
  EXPECT_EQ(i[0].at("cat"), "runtime");
  EXPECT_EQ(i[0].at("s"), "t");
  EXPECT_DOUBLE_EQ(i[0].at("ts").get<double>(), 600000.0);
  EXPECT_FALSE(i[0].contains("dur"));
  EXPECT_EQ(i[0].at("args").at("tensor"), "x");

  const std::vector<Json> c = events_with_phase(j, "C");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].at("name"), "device memory");
  EXPECT_DOUBLE_EQ(c[0].at("ts").get<double>(), 700000.0);
  EXPECT_EQ(c[0].at("pid"), 1);
  EXPECT_DOUBLE_EQ(c[0].at("args").at("allocated").get<double>(), 4096.0);

  const std::vector<Json> m = events_with_phase(j, "M");
  const auto process = std::find_if(m.begin(), m.end(),
                                    [](const Json& e) { return e.at("name") == "process_name"; });
  ASSERT_NE(process, m.end());
  EXPECT_EQ(process->at("args").at("name"), "memento");
  EXPECT_EQ(process->at("pid"), 1);
}

TEST_F(ChromeTraceTest, TracksBecomeNamedThreads) {
  const std::string path = file("tracks.json");
  ChromeTrace trace(path);
  trace.complete("k1", "compute", "compute stream", 0, 1);
  trace.complete("d2h", "copy", "d2h copies", 0, 1);
  trace.complete("k2", "compute", "compute stream", 1, 1);
  trace.instant("h2d start", "copy", "h2d copies", 0.5);
  trace.flush();

  const Json j = read_json(path);
  const std::map<int, std::string> names = track_names(j);
  ASSERT_EQ(names.size(), 3u);
  std::set<std::string> distinct;
  for (const auto& [tid, name] : names) distinct.insert(name);
  EXPECT_EQ(distinct, (std::set<std::string>{"compute stream", "d2h copies", "h2d copies"}));

  // Each event's tid names its track; both compute kernels share one tid.
  std::map<std::string, std::string> track_of;
  for (const Json& e : j.at("traceEvents")) {
    if (e.at("ph") == "M") continue;
    ASSERT_TRUE(names.contains(e.at("tid").get<int>())) << e.dump();
    track_of[e.at("name")] = names.at(e.at("tid").get<int>());
  }
  EXPECT_EQ(track_of.at("k1"), "compute stream");
  EXPECT_EQ(track_of.at("k2"), "compute stream");
  EXPECT_EQ(track_of.at("d2h"), "d2h copies");
  EXPECT_EQ(track_of.at("h2d start"), "h2d copies");

  // Tracks are shown in the order first used.
  std::map<int, int> sort_index;
  for (const Json& e : events_with_phase(j, "M"))
    if (e.at("name") == "thread_sort_index")
      sort_index[e.at("tid").get<int>()] = e.at("args").at("sort_index").get<int>();
  ASSERT_EQ(sort_index.size(), 3u);
  std::map<int, std::string> by_index;
  for (const auto& [tid, index] : sort_index) by_index[index] = names.at(tid);
  EXPECT_EQ(by_index.begin()->second, "compute stream");
  EXPECT_EQ(std::next(by_index.begin())->second, "d2h copies");
}

TEST_F(ChromeTraceTest, EventsAreSortedByTimeStably) {
  const std::string path = file("sorted.json");
  ChromeTrace trace(path);
  trace.complete("late", "c", "t", 3, 1);
  trace.complete("early", "c", "t", 1, 1);
  trace.counter("mem", 2, "allocated", 1);
  trace.instant("tie-a", "c", "t", 2);
  trace.instant("tie-b", "c", "t", 2);
  trace.complete("tie-c", "c", "t", 2, 0);
  trace.flush();

  const Json j = read_json(path);
  std::vector<std::string> names;
  double last = -std::numeric_limits<double>::infinity();
  bool seen_non_metadata = false;
  for (const Json& e : j.at("traceEvents")) {
    if (e.at("ph") == "M") {
      EXPECT_FALSE(seen_non_metadata) << "metadata after events: " << e.dump();
      continue;
    }
    seen_non_metadata = true;
    const double ts = e.at("ts").get<double>();
    EXPECT_GE(ts, last) << e.dump();
    last = ts;
    names.push_back(e.at("name"));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"early", "mem", "tie-a", "tie-b", "tie-c", "late"}));
}

TEST_F(ChromeTraceTest, ArgsKeepTheirTypes) {
  const std::string path = file("args.json");
  ChromeTrace trace(path);
  const std::uint64_t big = (std::uint64_t{1} << 53) + 1;  // not exact as a double
  trace.complete("op", "c", "t", 0, 1,
                 {{"bytes", std::size_t{4096}},
                  {"big", big},
                  {"delta", -3},
                  {"ratio", 0.5},
                  {"name", std::string("w")},
                  {"view", std::string_view("v")},
                  {"hit", true}});
  trace.flush();

  const Json args = events_with_phase(read_json(path), "X").at(0).at("args");
  EXPECT_EQ(args.at("bytes").get<std::uint64_t>(), 4096u);
  EXPECT_EQ(args.at("big").get<std::uint64_t>(), big);
  EXPECT_EQ(args.at("delta").get<std::int64_t>(), -3);
  EXPECT_DOUBLE_EQ(args.at("ratio").get<double>(), 0.5);
  EXPECT_EQ(args.at("name"), "w");
  EXPECT_EQ(args.at("view"), "v");
  EXPECT_EQ(args.at("hit"), true);
}

TEST_F(ChromeTraceTest, EscapesStrings) {
  const std::string path = file("escape.json");
  // Quotes, backslash, newline, tab, a control character, and UTF-8 of 2, 3 and 4 bytes.
  const std::string nasty =
      "say \"hi\" \\ back\\slash\nnew line\ttab\x01 caf\xc3\xa9 "
      "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82";
  {
    ChromeTrace trace(path);
    trace.complete(nasty, nasty, nasty, 0, 1, {{nasty, nasty}});
    trace.instant(nasty, "c", "t", 1);
    trace.counter(nasty, 2, nasty, 1);
    trace.set_other_data(nasty, nasty);
  }  // written by the destructor

  const std::string text = read_text(path);
  EXPECT_THAT(text, HasSubstr(R"(say \"hi\" \\ back\\slash\nnew line\ttab\u0001)"));
  const Json j = Json::parse(text);
  const Json x = events_with_phase(j, "X").at(0);
  EXPECT_EQ(x.at("name"), nasty);
  EXPECT_EQ(x.at("cat"), nasty);
  EXPECT_EQ(x.at("args").at(nasty), nasty);
  EXPECT_EQ(track_names(j).at(x.at("tid").get<int>()), nasty);
  EXPECT_EQ(events_with_phase(j, "i").at(0).at("name"), nasty);
  EXPECT_EQ(events_with_phase(j, "C").at(0).at("args").at(nasty), 1);
  EXPECT_EQ(j.at("otherData").at(nasty), nasty);
}

TEST_F(ChromeTraceTest, InvalidUtf8IsReplacedNotFatal) {
  const std::string path = file("utf8.json");
  ChromeTrace trace(path);
  trace.instant("cut \xe6\x97", "c", "t", 0);  // a 3-byte character cut short
  trace.flush();
  const Json j = read_json(path);
  EXPECT_EQ(events_with_phase(j, "i").at(0).at("name"), "cut \xef\xbf\xbd");  // U+FFFD
}

TEST_F(ChromeTraceTest, ConcurrentWritersLoseNothing) {
  const std::string path = file("threads.json");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  ChromeTrace trace(path);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&trace, t] {
      const std::string track = "worker " + std::to_string(t);
      for (int i = 0; i < kPerThread; ++i) {
        const double time = i * 1e-3;
        trace.complete("op", "compute", track, time, 1e-4, {{"thread", t}, {"i", i}});
        trace.instant("mark", "runtime", "shared", time, {{"thread", t}, {"i", i}});
        trace.counter("device memory", time, "thread " + std::to_string(t), i);
      }
    });
  }
  // A flush racing the writers: it writes a consistent snapshot.
  threads.emplace_back([&trace] {
    for (int n = 0; n < 3; ++n) trace.flush();
  });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(trace.size(), std::size_t{3} * kThreads * kPerThread);
  EXPECT_EQ(trace.dropped(), 0u);
  trace.flush();

  const Json j = read_json(path);
  std::set<std::pair<int, int>> complete;
  std::set<std::pair<int, int>> instant;
  std::map<std::string, int> counters;
  double last = -1;
  for (const Json& e : j.at("traceEvents")) {
    if (e.at("ph") == "M") continue;
    const double ts = e.at("ts").get<double>();
    EXPECT_GE(ts, last);
    last = ts;
    if (e.at("ph") == "X") {
      complete.emplace(e.at("args").at("thread").get<int>(), e.at("args").at("i").get<int>());
    } else if (e.at("ph") == "i") {
      instant.emplace(e.at("args").at("thread").get<int>(), e.at("args").at("i").get<int>());
    } else {
      ++counters[e.at("args").begin().key()];
    }
  }
  EXPECT_EQ(complete.size(), std::size_t{kThreads} * kPerThread);
  EXPECT_EQ(instant.size(), std::size_t{kThreads} * kPerThread);
  ASSERT_EQ(counters.size(), std::size_t{kThreads});
  for (const auto& [series, n] : counters) EXPECT_EQ(n, kPerThread) << series;
  EXPECT_EQ(track_names(j).size(), std::size_t{kThreads} + 1);
}

TEST_F(ChromeTraceTest, CapCountsDroppedEvents) {
  const std::string path = file("cap.json");
  ChromeTrace trace(path, 10);
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 25; ++i) {
    if (i % 3 == 0) {
      trace.complete("op", "c", "t", i, 1);
    } else if (i % 3 == 1) {
      trace.instant("mark", "c", "t", i);
    } else {
      trace.counter("mem", i, "allocated", i);
    }
  }
  const std::string warnings = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(trace.size(), 10u);
  EXPECT_EQ(trace.dropped(), 15u);
  // One warning, at the first dropped event, not one per event.
  EXPECT_THAT(warnings, HasSubstr("more than 10 events"));
  EXPECT_THAT(warnings, HasSubstr("dropped_events"));
  EXPECT_EQ(warnings.find("memento: warning"), warnings.rfind("memento: warning"));
  trace.flush();

  const Json j = read_json(path);
  EXPECT_EQ(j.at("otherData").at("dropped_events"), 15);
  EXPECT_EQ(j.at("otherData").at("max_events"), 10);
  EXPECT_EQ(j.at("otherData").at("events"), 10);
  std::size_t kept = 0;
  for (const Json& e : j.at("traceEvents")) kept += e.at("ph") != "M";
  EXPECT_EQ(kept, 10u);
}

TEST_F(ChromeTraceTest, OtherData) {
  const std::string path = file("other.json");
  ChromeTrace trace(path);
  trace.set_other_data("device", "sim:h100-sxm");
  trace.set_other_data("budget_bytes", std::size_t{8} << 30);
  trace.set_other_data("device", "host");  // replaces
  trace.flush();
  const Json other = read_json(path).at("otherData");
  EXPECT_EQ(other.at("device"), "host");
  EXPECT_EQ(other.at("budget_bytes").get<std::uint64_t>(), std::uint64_t{8} << 30);
}

TEST_F(ChromeTraceTest, FlushReplacesTheFileAtomically) {
  const std::string path = file("again.json");
  ChromeTrace trace(path);
  trace.instant("first", "c", "t", 0);
  trace.flush();
  EXPECT_EQ(read_json(path).at("otherData").at("events"), 1);
  trace.instant("second", "c", "t", 1);
  trace.flush();
  const Json j = read_json(path);
  EXPECT_EQ(events_with_phase(j, "i").size(), 2u);  // the earlier events are kept
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  // The file holds exactly what was flushed: nothing is appended on destruction.
}

TEST_F(ChromeTraceTest, DestructorWritesAnEmptyTraceToo) {
  const std::string path = file("empty.json");
  { ChromeTrace trace(path); }
  const Json j = read_json(path);
  EXPECT_EQ(j.at("otherData").at("events"), 0);
  EXPECT_EQ(events_with_phase(j, "M").size(), 1u);  // the process name
}

TEST_F(ChromeTraceTest, DestructorDoesNotRewriteAfterFlush) {
  const std::string path = file("once.json");
  {
    ChromeTrace trace(path);
    trace.instant("a", "c", "t", 0);
    trace.flush();
    fs::remove(path);  // a rewrite would bring it back
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(ChromeTraceTest, UnwritablePathIsAClearError) {
  const std::string path = file("missing-dir/run.json");
  std::string msg;
  ::testing::internal::CaptureStderr();  // the destructor's retry logs its failure
  {
    ChromeTrace trace(path);
    trace.instant("a", "c", "t", 0);
    msg = error_message([&] { trace.flush(); });
  }
  (void)::testing::internal::GetCapturedStderr();
  EXPECT_THAT(msg, HasSubstr("cannot write the Chrome trace \"" + path + "\""));
  EXPECT_THAT(msg, HasSubstr("cannot create \"" + path + ".tmp\""));
  EXPECT_THAT(msg, HasSubstr("No such file or directory"));
}

TEST_F(ChromeTraceTest, PathThatIsADirectoryIsAClearError) {
  const std::string path = file("a-directory");
  fs::create_directory(path);
  std::string msg;
  ::testing::internal::CaptureStderr();
  {
    ChromeTrace trace(path);
    msg = error_message([&] { trace.flush(); });
  }
  (void)::testing::internal::GetCapturedStderr();
  EXPECT_THAT(msg, HasSubstr("cannot write the Chrome trace \"" + path + "\""));
  EXPECT_THAT(msg, HasSubstr("rename"));
  EXPECT_THAT(msg, HasSubstr("Is a directory"));
  EXPECT_FALSE(fs::exists(path + ".tmp"));  // cleaned up
}

TEST_F(ChromeTraceTest, DestructorLogsInsteadOfThrowing) {
  const std::string path = file("missing-dir/run.json");
  ::testing::internal::CaptureStderr();
  {
    ChromeTrace trace(path);
    trace.instant("a", "c", "t", 0);
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("memento: error: the Chrome trace was not written"));
  EXPECT_THAT(err, HasSubstr(path));
}

TEST_F(ChromeTraceTest, RejectsBadTimes) {
  ChromeTrace trace(file("bad.json"));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_THROW(trace.complete("op", "c", "t", nan, 1), LogicError);
  EXPECT_THROW(trace.complete("op", "c", "t", 0, inf), LogicError);
  EXPECT_THROW(trace.complete("op", "c", "t", 0, -1), LogicError);
  EXPECT_THROW(trace.instant("mark", "c", "t", inf), LogicError);
  EXPECT_THROW(trace.counter("mem", 0, "allocated", nan), LogicError);
  EXPECT_EQ(trace.size(), 0u);
  EXPECT_THROW(ChromeTrace(""), LogicError);
}

}  // namespace
}  // namespace memento
