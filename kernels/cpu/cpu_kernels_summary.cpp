#include <string>

#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/cpu_caches.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/ops_cpu.h"

namespace ringtrain {

std::string cpu_kernels_summary(int head_dim) {
  const cpu::CacheSizes& c = cpu::cpu_caches();
  const cpu::AttnTiles t = cpu::attention_tiles(head_dim);
  const auto kib = [](int64_t b) { return b > 0 ? std::to_string(b >> 10) + " KiB" : std::string("?"); };
  return std::string(cpu::isa_name(cpu::active_isa())) + " (cpu " + cpu::isa_name(cpu::detected_isa()) +
         "), attention tiles " + std::to_string(t.q) + "x" + std::to_string(t.k) + " masked, " +
         std::to_string(t.q_wide) + "x" + std::to_string(t.k_wide) + " unmasked at head dim " +
         std::to_string(head_dim) + " (L1d " + kib(c.l1d) + ", L2 " + kib(c.l2) + ", " + c.source + "), gemm " +
         cpu_gemm_library();
}

}  // namespace ringtrain
