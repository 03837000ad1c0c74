// NUMA placement of host memory, over hwloc. Staging buffers for host<->device copies are
// fastest on the node nearest the GPU, so the backends ask where the GPU and the calling
// thread live and place pinned memory there.
//
// Node numbers are the operating system's (what numactl and /sys/devices/system/node show).
// The hwloc topology is discovered once per process, on first use, from any thread.
#pragma once

#include <cstddef>

namespace memento::numa {

/// The NUMA node of the CPU the calling thread last ran on; -1 when unknown.
[[nodiscard]] int node_of_calling_thread() noexcept;

/// The NUMA node nearest the PCI device with this bus id ("0000:3b:00.0" or "3b:00.0", as
/// cudaDeviceGetPCIBusId writes it); -1 when unknown or when the device is equally near
/// several nodes.
[[nodiscard]] int node_of_pci_bus_id(const char* bus_id) noexcept;

/// Restricts the calling thread to the CPUs of `node` (for threads that work on memory
/// placed there). False, changing nothing, with node -1 or where binding is not possible.
bool bind_calling_thread(int node) noexcept;

/// `bytes` of page-aligned (not yet pinned) memory bound to `node`. With node -1,
/// or where binding is not possible, the memory is not bound to a node. nullptr when the
/// host has no memory to give (or bytes is 0). Release with numa::free.
[[nodiscard]] void* allocate_on_node(std::size_t bytes, int node);

/// Releases memory from allocate_on_node; `bytes` must be the size it was allocated with.
void free(void* ptr, std::size_t bytes) noexcept;

}  // namespace memento::numa
