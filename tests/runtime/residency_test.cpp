#include "memento/residency.hpp"

#include <gtest/gtest.h>

#include <array>
#include <set>
#include <utility>

#include "memento/error.hpp"

namespace memento {
namespace {

constexpr std::array kStates = {Residency::resident,  Residency::offloading,
                                Residency::on_host,   Residency::prefetching,
                                Residency::discarded, Residency::recomputing};

// The legal moves, written out independently of the implementation's switch.
const std::set<std::pair<Residency, Residency>> kLegal = {
    {Residency::resident, Residency::offloading},  {Residency::resident, Residency::discarded},
    {Residency::offloading, Residency::on_host},   {Residency::offloading, Residency::resident},
    {Residency::on_host, Residency::prefetching},  {Residency::on_host, Residency::discarded},
    {Residency::prefetching, Residency::resident}, {Residency::discarded, Residency::recomputing},
    {Residency::recomputing, Residency::resident},
};

TEST(Residency, EveryPairIsLegalExactlyWhenListed) {
  int legal = 0;
  for (Residency from : kStates)
    for (Residency to : kStates) {
      bool expected = kLegal.count({from, to}) != 0;
      EXPECT_EQ(is_legal_transition(from, to), expected)
          << to_string(from) << " -> " << to_string(to);
      legal += expected;
    }
  EXPECT_EQ(legal, 9);
}

TEST(Residency, IllegalMovesThrowNamingTheTensorAndBothStates) {
  for (Residency from : kStates)
    for (Residency to : kStates) {
      if (kLegal.count({from, to}) != 0) {
        EXPECT_NO_THROW(check_transition(42, from, to));
        continue;
      }
      try {
        check_transition(42, from, to);
        ADD_FAILURE() << to_string(from) << " -> " << to_string(to) << " was accepted";
      } catch (const LogicError& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find("tensor 42"), std::string::npos) << msg;
        EXPECT_NE(msg.find(std::string(to_string(from)) + " -> " + to_string(to)),
                  std::string::npos)
            << msg;
      }
    }
}

TEST(Residency, NamesAreTheArchitectureGuides) {
  std::set<std::string> names;
  for (Residency s : kStates) names.insert(to_string(s));
  EXPECT_EQ(names, (std::set<std::string>{"Resident", "Offloading", "OnHost", "Prefetching",
                                          "Discarded", "Recomputing"}));
}

}  // namespace
}  // namespace memento
