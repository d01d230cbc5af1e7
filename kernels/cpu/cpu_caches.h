// The data cache sizes of the CPU the process runs on, read once at first use, for the tile
// sizes of the CPU kernels (kernels/cpu/attention_cpu.h).
#pragma once

#include <cstdint>
#include <string>

namespace ringtrain::cpu {

struct CacheSizes {
  int64_t l1d = 0, l2 = 0;  // bytes per core; 0: unknown
  std::string source;       // "sysconf", "sysfs" or "unknown"
};

// sysconf(_SC_LEVEL1_DCACHE_SIZE / _SC_LEVEL2_CACHE_SIZE), else cpu0's entries under
// /sys/devices/system/cpu/cpu0/cache, else unknown (zeros: the callers' fallbacks apply).
const CacheSizes& cpu_caches();

// A sysfs cache `size` entry ("48K", "1024K", "32M", "512") in bytes; 0 if unreadable.
int64_t parse_cache_size(const std::string& text);

}  // namespace ringtrain::cpu
