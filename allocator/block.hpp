// Blocks and segments of the caching allocator, with their intrusive containers: a block
// sits in at most one free set and at most one live set, and the containers allocate nothing.
#pragma once

#include <boost/intrusive/set.hpp>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "memento/backend.hpp"

namespace memento::detail {

namespace bi = boost::intrusive;
using FreeHook = bi::set_member_hook<bi::link_mode<bi::safe_link>>;
using LiveHook = bi::set_member_hook<bi::link_mode<bi::safe_link>>;

struct Block;

struct Segment {
  char* base = nullptr;
  std::size_t size = 0;
  bool small = false;
  Block* first = nullptr;  // lowest-address block; it survives every coalesce
};

struct Block {
  char* ptr = nullptr;
  std::size_t size = 0;
  std::size_t requested = 0;  // 0 while free
  Segment* segment = nullptr;
  Block* prev = nullptr;  // address-order neighbours in the same segment
  Block* next = nullptr;
  Stream stream{};  // allocation stream, or the stream it was freed on
  bool allocated = false;
  bool pending = false;               // freed, waiting for record_stream events
  std::uint64_t free_seq = 0;         // order of the free, for cross-stream fences
  std::vector<Stream> extra_streams;  // record_stream users
  FreeHook free_hook;
  LiveHook live_hook;
};

/// Free blocks ordered by (stream, size, address): lower_bound({s, n}) is the best fit.
struct FreeOrder {
  bool operator()(const Block& a, const Block& b) const noexcept {
    if (a.stream.id != b.stream.id) return a.stream.id < b.stream.id;
    if (a.size != b.size) return a.size < b.size;
    return a.ptr < b.ptr;
  }
};
using FreeSet = bi::multiset<Block, bi::member_hook<Block, FreeHook, &Block::free_hook>,
                             bi::compare<FreeOrder>>;

/// Live blocks ordered by address, for frees and lookups.
struct AddressOrder {
  bool operator()(const Block& a, const Block& b) const noexcept { return a.ptr < b.ptr; }
};
struct AddressKey {
  bool operator()(const Block& a, const char* p) const noexcept { return a.ptr < p; }
  bool operator()(const char* p, const Block& a) const noexcept { return p < a.ptr; }
};
using LiveSet =
    bi::set<Block, bi::member_hook<Block, LiveHook, &Block::live_hook>, bi::compare<AddressOrder>>;

}  // namespace memento::detail
