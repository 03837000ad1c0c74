#include "backends/numa.hpp"

#include <hwloc.h>
#include <sys/mman.h>

#include "common/log.hpp"

namespace memento::numa {
namespace {

hwloc_topology_t load_topology() noexcept {
  hwloc_topology_t topo = nullptr;
  if (hwloc_topology_init(&topo) != 0) {
    log::warning("hwloc: cannot initialise a topology; NUMA placement is disabled");
    return nullptr;
  }
  // GPUs are located through their PCI bus id, so PCI devices must be discovered. The vendor
  // plugins are not needed for that and would start their own runtimes (CUDA, NVML, OpenCL,
  // X11) inside ours, slowly, and possibly before the caller chose a device.
  (void)hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  for (const char* plugin : {"cuda", "nvml", "opencl", "rsmi", "levelzero", "gl"})
    (void)hwloc_topology_set_components(topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, plugin);
  if (hwloc_topology_load(topo) != 0) {
    log::warning("hwloc: cannot discover the machine topology; NUMA placement is disabled");
    hwloc_topology_destroy(topo);
    return nullptr;
  }
  // Queries from several threads are only safe once the lazily built caches exist.
  (void)hwloc_topology_refresh(topo);
  return topo;
}

// Deliberately never destroyed: pinned buffers may be freed by objects whose static
// destructors run after ours would, and hwloc_free needs the topology.
hwloc_topology_t topology() noexcept {
  static const hwloc_topology_t topo = load_topology();
  return topo;
}

// The NUMA node whose memory is local to `obj`: hwloc attaches memory to the smallest
// object that shares it, so walk up to the first object with memory children. Nodes behind
// a memory-side cache hang below it. Where several nodes share one parent (DRAM next to HBM)
// the first is taken.
int local_node(hwloc_obj_t obj) noexcept {
  while (obj != nullptr && obj->memory_arity == 0) obj = obj->parent;
  if (obj == nullptr) return -1;
  hwloc_obj_t mem = obj->memory_first_child;
  while (mem != nullptr && mem->type != HWLOC_OBJ_NUMANODE) mem = mem->memory_first_child;
  return mem == nullptr ? -1 : static_cast<int>(mem->os_index);
}

int only_node(hwloc_topology_t topo) noexcept {
  if (hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE) != 1) return -1;
  return static_cast<int>(hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, 0)->os_index);
}

// Used when hwloc could not load, so that allocation and free still agree with each other.
void* map_anonymous(std::size_t bytes) noexcept {
  void* ptr = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return ptr == MAP_FAILED ? nullptr : ptr;
}

}  // namespace

int node_of_calling_thread() noexcept {
  hwloc_topology_t topo = topology();
  if (topo == nullptr) return -1;
  int node = -1;
  if (hwloc_bitmap_t cpus = hwloc_bitmap_alloc()) {
    if (hwloc_get_last_cpu_location(topo, cpus, HWLOC_CPUBIND_THREAD) == 0) {
      int cpu = hwloc_bitmap_first(cpus);
      if (cpu >= 0)
        node = local_node(hwloc_get_pu_obj_by_os_index(topo, static_cast<unsigned>(cpu)));
    }
    hwloc_bitmap_free(cpus);
  }
  // Some kernels and containers hide the CPU location; one node is then still certain.
  return node >= 0 ? node : only_node(topo);
}

int node_of_pci_bus_id(const char* bus_id) noexcept {
  hwloc_topology_t topo = topology();
  if (topo == nullptr || bus_id == nullptr) return -1;
  hwloc_obj_t dev = hwloc_get_pcidev_by_busidstring(topo, bus_id);
  if (dev == nullptr) return only_node(topo);  // PCI discovery can be unavailable in containers
  return local_node(hwloc_get_non_io_ancestor_obj(topo, dev));
}

bool bind_calling_thread(int node) noexcept {
  hwloc_topology_t topo = topology();
  if (topo == nullptr || node < 0) return false;
  hwloc_obj_t obj = hwloc_get_numanode_obj_by_os_index(topo, static_cast<unsigned>(node));
  if (obj == nullptr || obj->cpuset == nullptr || hwloc_bitmap_iszero(obj->cpuset)) return false;
  return hwloc_set_cpubind(topo, obj->cpuset, HWLOC_CPUBIND_THREAD) == 0;
}

void* allocate_on_node(std::size_t bytes, int node) {
  if (bytes == 0) return nullptr;
  hwloc_topology_t topo = topology();
  if (topo == nullptr) return map_anonymous(bytes);
  if (node >= 0) {
    hwloc_obj_t obj = hwloc_get_numanode_obj_by_os_index(topo, static_cast<unsigned>(node));
    if (obj != nullptr) {
      void* ptr = hwloc_alloc_membind(topo, bytes, obj->nodeset, HWLOC_MEMBIND_BIND,
                                      HWLOC_MEMBIND_BYNODESET);
      if (ptr != nullptr) return ptr;
    }
  }
  // Unbound memory is slower for copies but still correct; the caller asked for memory.
  return hwloc_alloc(topo, bytes);
}

void free(void* ptr, std::size_t bytes) noexcept {
  if (ptr == nullptr) return;
  hwloc_topology_t topo = topology();
  int rc = topo != nullptr ? hwloc_free(topo, ptr, bytes) : ::munmap(ptr, bytes);
  if (rc != 0) log::error("numa::free: the memory could not be unmapped (bad pointer or size?)");
}

}  // namespace memento::numa
