#include "kernels/cpu/tile_kernels.h"

#include "kernels/cpu/cpu_isa.h"

namespace ringtrain::cpu {

const TileKernels* tile_kernels() {
  switch (active_isa()) {
    case Isa::kAvx512: return tile_kernels_avx512();
    case Isa::kAvx2: return tile_kernels_avx2();
    case Isa::kGeneric: return nullptr;
  }
  return nullptr;
}

}  // namespace ringtrain::cpu
