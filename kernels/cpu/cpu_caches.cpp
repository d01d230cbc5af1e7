#include "kernels/cpu/cpu_caches.h"

#include <unistd.h>

#include <cctype>
#include <fstream>

namespace ringtrain::cpu {
namespace {

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

// The cpu0 cache of `level` holding data ("Data" or "Unified"), from sysfs.
int64_t sysfs_cache(int level) {
  const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index";
  for (int i = 0; i < 8; ++i) {
    const std::string idx = dir + std::to_string(i) + "/";
    const std::string lv = read_line(idx + "level");
    if (lv.empty()) break;
    const std::string type = read_line(idx + "type");
    if (lv == std::to_string(level) && (type == "Data" || type == "Unified"))
      return parse_cache_size(read_line(idx + "size"));
  }
  return 0;
}

CacheSizes read_caches() {
  CacheSizes c;
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
  c.l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE);
  c.l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (c.l1d > 0 && c.l2 > 0) {
    c.source = "sysconf";
    return c;
  }
#endif
  c.l1d = sysfs_cache(1);
  c.l2 = sysfs_cache(2);
  if (c.l1d > 0 && c.l2 > 0) {
    c.source = "sysfs";
    return c;
  }
  return CacheSizes{0, 0, "unknown"};
}

}  // namespace

int64_t parse_cache_size(const std::string& text) {
  size_t i = 0;
  int64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && v < (int64_t{1} << 40))
    v = v * 10 + (text[i++] - '0');
  if (i == 0) return 0;
  const std::string unit = text.substr(i);
  if (unit.empty()) return v;
  if (unit == "K") return v << 10;
  if (unit == "M") return v << 20;
  if (unit == "G") return v << 30;
  return 0;
}

const CacheSizes& cpu_caches() {
  static const CacheSizes c = read_caches();
  return c;
}

}  // namespace ringtrain::cpu
