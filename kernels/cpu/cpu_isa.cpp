#include "kernels/cpu/cpu_isa.h"

#include <cstdlib>
#include <cstring>

#include "src/core/error.h"

namespace ringtrain::cpu {

Isa detected_isa() {
#if defined(__x86_64__) && defined(__GNUC__)
  // Asked on first use, not in a static initializer, which could run before the runtime's own
  // CPU detection.
  static const Isa isa = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("fma")) return Isa::kGeneric;
    if (__builtin_cpu_supports("avx512f")) return Isa::kAvx512;
    if (__builtin_cpu_supports("avx2")) return Isa::kAvx2;
    return Isa::kGeneric;
  }();
  return isa;
#else
  return Isa::kGeneric;
#endif
}

Isa isa_from_env(const char* value, Isa best) {
  if (value == nullptr || *value == '\0') return best;
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kGeneric}) {
    if (std::strcmp(value, isa_name(isa)) != 0) continue;
    RT_INPUT_CHECK(static_cast<int>(isa) <= static_cast<int>(best), "RINGTRAIN_CPU_ISA=", value,
                   ": this CPU runs at most ", isa_name(best));
    return isa;
  }
  input_error("RINGTRAIN_CPU_ISA='", value, "' is not one of avx512, avx2, generic");
}

Isa active_isa() {
  static const Isa isa = isa_from_env(std::getenv("RINGTRAIN_CPU_ISA"), detected_isa());
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kGeneric: return "generic";
  }
  return "?";
}

}  // namespace ringtrain::cpu
