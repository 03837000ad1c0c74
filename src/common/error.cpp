#include "memento/error.hpp"

// The exception types are header-only; this unit anchors their vtables in the library.
namespace memento {}
