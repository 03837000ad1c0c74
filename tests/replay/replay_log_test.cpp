// The DTR-style log parser: every instruction, aliases, mutation, reference counting, and
// every malformed input as a ConfigError naming its line.
#include "replay/replay_log.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "memento/error.hpp"

namespace memento::replay {
namespace {

using Kind = Instruction::Kind;

ReplayLog parse(const std::string& text) {
  std::istringstream in(text);
  return parse_replay_log(in, "test.log");
}

// The error for `text`, which must be a ConfigError naming test.log:`line`.
std::string error_of(const std::string& text, std::size_t line) {
  try {
    (void)parse(text);
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("test.log:" + std::to_string(line) + ":"), std::string::npos) << what;
    return what;
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return {};
}

std::string error_of(const std::string& text) {
  try {
    (void)parse(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return {};
}

const std::string kStart = R"({"INSTRUCTION":"ANNOTATE","ANNOTATION":"START"})"
                           "\n";

std::string constant(const std::string& id, const std::string& bytes) {
  return R"({"INSTRUCTION":"CONSTANT","NAME":)" + id + "}\n" +
         R"({"INSTRUCTION":"MEMORY","NAME":)" + id + R"(,"MEMORY":)" + bytes + "}\n";
}

std::string result(const std::string& id, const std::string& bytes, const std::string& alias) {
  return R"({"INSTRUCTION":"MEMORY","NAME":)" + id + R"(,"MEMORY":)" + bytes + "}\n" +
         R"({"INSTRUCTION":"ALIAS","NAME":)" + id + R"(,"ALIAS":)" + alias + "}\n";
}

std::string call(const std::string& op, const std::string& args, const std::string& results,
                 const std::string& ns) {
  return R"({"INSTRUCTION":"CALL","NAME":")" + op + R"(","ARGS":[)" + args + R"(],"RESULT":[)" +
         results + R"(],"TIME":)" + ns + "}\n";
}

std::string release(const std::string& id) {
  return R"({"INSTRUCTION":"RELEASE","NAME":)" + id + "}\n";
}

TEST(ReplayLog, ConstantsCallsAndReleaseLowerToAProgram) {
  const ReplayLog log =
      parse(R"({"INSTRUCTION":"CALL","NAME":"ignored before START"})"
            "\n" +
            kStart + constant(R"("x")", "100") + call("relu", R"("x")", R"("y")", "1500") +
            result(R"("y")", "40", "-1") + release(R"("x")") + "\n");
  ASSERT_EQ(log.tensors.size(), 2u);
  EXPECT_TRUE(log.tensors[0].constant);
  EXPECT_EQ(log.tensors[0].bytes, 100u);
  EXPECT_FALSE(log.tensors[1].constant);
  EXPECT_EQ(log.tensors[1].bytes, 40u);
  ASSERT_EQ(log.program.size(), 3u);
  EXPECT_EQ(log.program[0].kind, Kind::constant);
  EXPECT_EQ(log.program[1].kind, Kind::call);
  EXPECT_EQ(log.program[1].args, std::vector<std::size_t>{0});
  EXPECT_EQ(log.program[1].results, std::vector<std::size_t>{1});
  EXPECT_EQ(log.program[2].kind, Kind::free);
  EXPECT_EQ(log.program[2].tensor, 0u);
  ASSERT_EQ(log.ops.size(), 1u);
  EXPECT_EQ(log.ops[0].name, "relu");
  EXPECT_DOUBLE_EQ(log.ops[0].seconds, 1.5e-6);
  EXPECT_EQ(log.ops[0].line, 5u);
  EXPECT_EQ(log.outputs, std::vector<std::size_t>{1});
  EXPECT_EQ(log.peak_live_bytes, 140u);
  EXPECT_EQ(log.constant_bytes, 100u);
  EXPECT_DOUBLE_EQ(log.total_seconds, 1.5e-6);
  EXPECT_FALSE(log.has_backward);
  EXPECT_EQ(log.backward_start, log.program.size());
  EXPECT_EQ(log.lines, 9u);
}

TEST(ReplayLog, NumbersMayBeStringsAndIdsNumbers) {
  // 7 and "7" are the same id; TIME, MEMORY and ALIAS as strings.
  const ReplayLog log =
      parse(kStart + constant("7", R"("64")") + call("f", R"("7")", "8", R"("2.5")") +
            result("8", R"("32")", R"("-1")") + release("8"));
  ASSERT_EQ(log.tensors.size(), 2u);
  EXPECT_EQ(log.tensors[0].bytes, 64u);
  EXPECT_EQ(log.program[1].args, std::vector<std::size_t>{0});
  EXPECT_DOUBLE_EQ(log.ops[0].seconds, 2.5e-9);
  EXPECT_EQ(log.outputs, std::vector<std::size_t>{0});
  EXPECT_EQ(log.peak_live_bytes, 96u);
}

TEST(ReplayLog, AliasSharesStorageAndHoldsAReference) {
  // v = view(x) costs no memory; x's storage lives until both names are released.
  const ReplayLog log = parse(
      kStart + call("make", "", R"("x")", "10") + result(R"("x")", "100", "-1") +
      call("view", R"("x")", R"("v")", "1") + result(R"("v")", "100", "0") + release(R"("x")") +
      call("use", R"("v")", R"("y")", "5") + result(R"("y")", "10", "-1") + release(R"("v")"));
  ASSERT_EQ(log.tensors.size(), 2u);  // the view made no tensor
  EXPECT_TRUE(log.program[1].results.empty());
  EXPECT_EQ(log.program[2].args, std::vector<std::size_t>{0});  // v read through x's tensor
  ASSERT_EQ(log.program.size(), 4u);
  EXPECT_EQ(log.program[3].kind, Kind::free);  // only after v's release
  EXPECT_EQ(log.program[3].tensor, 0u);
  EXPECT_EQ(log.peak_live_bytes, 110u);
  EXPECT_DOUBLE_EQ(log.total_seconds, 16e-9);
}

TEST(ReplayLog, MultiResultCallMixesFreshAndAliasedResults) {
  const ReplayLog log =
      parse(kStart + constant(R"("a")", "8") + call("split", R"("a","a")", R"("p","q","r")", "30") +
            result(R"("p")", "4", "-1") + result(R"("q")", "8", "1") + result(R"("r")", "6", "-1"));
  ASSERT_EQ(log.program.size(), 2u);
  EXPECT_EQ(log.program[1].args, std::vector<std::size_t>{0});  // duplicates collapse
  EXPECT_EQ(log.program[1].results, (std::vector<std::size_t>{1, 2}));
  EXPECT_EQ(log.outputs, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(log.peak_live_bytes, 18u);
}

TEST(ReplayLog, MutateMakesNewVersionsAndDropsTheOld) {
  // add_(x, y) mutating x: a new version of x's size; the old one is freed (its last
  // reference), unless a COPY still names it.
  const ReplayLog log =
      parse(kStart + constant(R"("y")", "16") + call("f", R"("y")", R"("x")", "3") +
            result(R"("x")", "32", "-1") +
            R"({"INSTRUCTION":"COPY","DST":"keep","SRC":"x"})"
            "\n" +
            R"({"INSTRUCTION":"MUTATE","NAME":"add_","ARGS":["x","y"],"MUTATE":[0],"TIME":"4"})"
            "\n" +
            release(R"("keep")") +
            R"({"INSTRUCTION":"MUTATE","NAME":"add_","ARGS":["x","y"],"MUTATE":["0"],"TIME":4})"
            "\n");
  ASSERT_EQ(log.tensors.size(), 4u);
  EXPECT_EQ(log.tensors[2].bytes, 32u);
  EXPECT_EQ(log.tensors[3].bytes, 32u);
  ASSERT_EQ(log.program.size(), 6u);
  // constant y, call -> x, mutate -> x', free x (at keep's release), mutate -> x'', free x'
  EXPECT_EQ(log.program[2].kind, Kind::call);
  EXPECT_EQ(log.program[2].args, (std::vector<std::size_t>{1, 0}));
  EXPECT_EQ(log.program[2].results, std::vector<std::size_t>{2});
  EXPECT_EQ(log.program[3].kind, Kind::free);
  EXPECT_EQ(log.program[3].tensor, 1u);
  EXPECT_EQ(log.program[4].results, std::vector<std::size_t>{3});
  EXPECT_EQ(log.program[4].args, (std::vector<std::size_t>{2, 0}));
  EXPECT_EQ(log.program[5].tensor, 2u);
  EXPECT_EQ(log.outputs, (std::vector<std::size_t>{0, 3}));
  EXPECT_EQ(log.peak_live_bytes, 80u);
  EXPECT_DOUBLE_EQ(log.total_seconds, 11e-9);
}

TEST(ReplayLog, ConstantBytesCountTheNewVersionsOfConstants) {
  // An optimizer step: w and its state m updated in place from the gradient g. The new
  // versions are constants, counted in constant_bytes like any other; the old ones are
  // marked overwritten.
  const ReplayLog log =
      parse(kStart + constant(R"("w")", "100") + constant(R"("m")", "60") +
            call("grad", R"("w")", R"("g")", "1") + result(R"("g")", "100", "-1") +
            R"({"INSTRUCTION":"MUTATE","NAME":"adam","ARGS":["w","g","m"],"MUTATE":[0,2],"TIME":2})"
            "\n");
  ASSERT_EQ(log.tensors.size(), 5u);  // w, m, g, w', m'
  std::size_t count = 0;
  std::size_t bytes = 0;
  for (const LogTensor& t : log.tensors)
    if (t.constant) {
      ++count;
      bytes += t.bytes;
    }
  EXPECT_EQ(count, 4u);
  EXPECT_EQ(bytes, 320u);
  EXPECT_EQ(log.constant_bytes, bytes);
  EXPECT_TRUE(log.tensors[0].overwritten);
  EXPECT_TRUE(log.tensors[1].overwritten);
  EXPECT_FALSE(log.tensors[2].overwritten);
  EXPECT_FALSE(log.tensors[3].overwritten);
  EXPECT_FALSE(log.tensors[4].overwritten);
}

TEST(ReplayLog, EverythingBeforeStartIsIgnored) {
  const ReplayLog log = parse(
      "a header that is not JSON\n"
      R"({"VERSION":2})"
      "\n[1, 2]\n"
      R"({"INSTRUCTION":"CALL"})"
      "\n"
      R"({"INSTRUCTION":"ANNOTATE"})"
      "\n"
      R"({"INSTRUCTION":"ANNOTATE","ANNOTATION":"BACKWARD"})"
      "\n{\"INSTRUCTION\":\n\n" +
      kStart + constant(R"("x")", "8"));
  ASSERT_EQ(log.tensors.size(), 1u);
  EXPECT_EQ(log.tensors[0].line, 10u);
  EXPECT_FALSE(log.has_backward);
  EXPECT_EQ(log.lines, 11u);
  // Without START it is still an error, whatever came before.
  EXPECT_NE(
      error_of("junk\n"
               R"({"VERSION":2})"
               "\n")
          .find("no {\"INSTRUCTION\":\"ANNOTATE\",\"ANNOTATION\":\"START\"} line in 2 line(s)"),
      std::string::npos);
}

TEST(ReplayLog, CopyAndCopyFromCountReferences) {
  const ReplayLog log = parse(kStart + call("f", "", R"("a")", "1") + result(R"("a")", "10", "-1") +
                              call("g", "", R"("b")", "1") + result(R"("b")", "20", "-1") +
                              R"({"INSTRUCTION":"COPY","DST":"c","SRC":"a"})"
                              "\n" +
                              release(R"("a")") +
                              // c now names b instead: a's tensor loses its last reference here.
                              R"({"INSTRUCTION":"COPY_FROM","DST":"c","SRC":"b"})"
                              "\n" +
                              // c and b share a tensor; COPY_FROM onto itself keeps it.
                              R"({"INSTRUCTION":"COPY_FROM","DST":"c","SRC":"b"})"
                              "\n" +
                              release(R"("b")"));
  ASSERT_EQ(log.program.size(), 3u);
  EXPECT_EQ(log.program[2].kind, Kind::free);
  EXPECT_EQ(log.program[2].tensor, 0u);
  EXPECT_EQ(log.outputs, std::vector<std::size_t>{1});  // still named by c
}

TEST(ReplayLog, BackwardMarksTheProgramPosition) {
  const ReplayLog log = parse(kStart + constant(R"("x")", "1") +
                              R"({"INSTRUCTION":"ANNOTATE","ANNOTATION":"BACKWARD"})"
                              "\n" +
                              call("g", R"("x")", R"("y")", "1") + result(R"("y")", "1", "-1"));
  EXPECT_TRUE(log.has_backward);
  EXPECT_EQ(log.backward_start, 1u);
}

TEST(ReplayLog, MalformedLinesNameTheirLine) {
  EXPECT_NE(error_of(kStart + "{not json}\n" + constant("1", "1"), 2).find("not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + "[1, 2]\n", 2).find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of(kStart + R"({"NAME":"x"})"
                              "\n",
                     2)
                .find("\"INSTRUCTION\" is missing"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + R"({"INSTRUCTION":7})"
                              "\n",
                     2)
                .find("accepted: a string"),
            std::string::npos);
  const std::string unknown = error_of(kStart + R"({"INSTRUCTION":"FREE","NAME":"x"})"
                                                "\n",
                                       2);
  EXPECT_NE(unknown.find("unknown instruction \"FREE\"; accepted: ANNOTATE, CONSTANT"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + R"({"INSTRUCTION":"ANNOTATE","ANNOTATION":"END"})"
                              "\n",
                     2)
                .find("accepted: START, BACKWARD"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + kStart, 2).find("second START"), std::string::npos);
  const std::string backward = R"({"INSTRUCTION":"ANNOTATE","ANNOTATION":"BACKWARD"})"
                               "\n";
  EXPECT_NE(error_of(kStart + backward + backward, 3).find("second BACKWARD"), std::string::npos);
}

TEST(ReplayLog, BadValuesNameTheirLine) {
  EXPECT_NE(
      error_of(kStart + constant(R"("x")", "-5"), 3).find("MEMORY is -5; accepted: bytes >= 0"),
      std::string::npos);
  EXPECT_NE(error_of(kStart + constant(R"("x")", R"("12a")"), 3).find("accepted: a finite number"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + constant(R"("x")", "1.5"), 3).find("accepted: an integer"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + call("f", "", R"("y")", "-1") + result(R"("y")", "1", "-1"), 2)
                .find("TIME is -1; accepted: nanoseconds >= 0"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + call("f", "", R"("y")", R"("fast")") + result(R"("y")", "1", "-1"), 2)
                .find("TIME is \"fast\""),
            std::string::npos);
  EXPECT_NE(error_of(kStart + call("f", "", "1.5", "1") + result("1.5", "1", "-1"), 2)
                .find("accepted: an id (a JSON string or integer)"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + R"({"INSTRUCTION":"CALL","NAME":"f","ARGS":"x","RESULT":[],"TIME":1})"
                              "\n",
                     2)
                .find("\"ARGS\" is \"x\"; accepted: a list"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + constant(R"("x")", "1") + call("f", R"("x")", R"("y")", "1") +
                         result(R"("y")", "1", "1"),
                     6)
                .find("ALIAS is 1; accepted: -1 (fresh storage) or an argument index in [0, 1)"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + constant(R"("x")", "1") +
                         R"({"INSTRUCTION":"MUTATE","NAME":"f","ARGS":["x"],"MUTATE":[1],"TIME":1})"
                         "\n",
                     4)
                .find("MUTATE entry 1 is not an argument index"),
            std::string::npos);
}

TEST(ReplayLog, UnknownAndRedefinedIdsNameTheirLine) {
  EXPECT_NE(
      error_of(kStart + call("f", R"("ghost")", R"("y")", "1") + result(R"("y")", "1", "-1"), 2)
          .find("unknown id \"ghost\""),
      std::string::npos);
  EXPECT_NE(error_of(kStart + release(R"("ghost")"), 2).find("unknown id \"ghost\""),
            std::string::npos);
  // Released ids are gone.
  EXPECT_NE(error_of(kStart + constant(R"("x")", "1") + release(R"("x")") + release(R"("x")"), 5)
                .find("unknown id \"x\""),
            std::string::npos);
  EXPECT_NE(error_of(kStart + constant(R"("x")", "1") + constant(R"("x")", "1"), 4)
                .find("id \"x\" is already defined"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + constant(R"("x")", "1") +
                         R"({"INSTRUCTION":"COPY","DST":"x","SRC":"x"})"
                         "\n",
                     4)
                .find("already defined"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + constant(R"("x")", "1") +
                         R"({"INSTRUCTION":"COPY_FROM","DST":"new","SRC":"x"})"
                         "\n",
                     4)
                .find("unknown id \"new\""),
            std::string::npos);
  EXPECT_NE(error_of(kStart + R"({"INSTRUCTION":"MEMORY","NAME":"x","MEMORY":1})"
                              "\n",
                     2)
                .find("MEMORY line without the CONSTANT or CALL"),
            std::string::npos);
  EXPECT_NE(error_of(kStart + call("f", "", R"("y")", "1") + result(R"("z")", "1", "-1"), 3)
                .find("expected the MEMORY line for \"y\" (of line 2)"),
            std::string::npos);
}

TEST(ReplayLog, TruncatedFilesAreErrors) {
  EXPECT_NE(error_of("").find("no {\"INSTRUCTION\":\"ANNOTATE\",\"ANNOTATION\":\"START\"}"),
            std::string::npos);
  EXPECT_NE(error_of(constant(R"("x")", "1")).find("truncated"), std::string::npos);
  // The last line cut mid-JSON.
  const std::string cut = kStart + constant(R"("x")", "1") + R"({"INSTRUCTION":"CALL","NA)";
  EXPECT_NE(error_of(cut, 4).find("is the file truncated?"), std::string::npos);
  // A CALL whose result lacks its MEMORY line, or its ALIAS line.
  EXPECT_NE(error_of(kStart + call("f", "", R"("y")", "1"), 2)
                .find("the file ends before the MEMORY line for \"y\""),
            std::string::npos);
  EXPECT_NE(error_of(kStart + call("f", "", R"("y")", "1") +
                         R"({"INSTRUCTION":"MEMORY","NAME":"y","MEMORY":1})"
                         "\n",
                     2)
                .find("before the ALIAS line for \"y\""),
            std::string::npos);
  EXPECT_NE(error_of(kStart + R"({"INSTRUCTION":"CONSTANT","NAME":"x"})"
                              "\n",
                     2)
                .find("truncated"),
            std::string::npos);
}

TEST(ReplayLog, MissingFileIsAConfigError) {
  EXPECT_THROW((void)load_replay_log("/nonexistent/trace.jsonl"), ConfigError);
}

}  // namespace
}  // namespace memento::replay
