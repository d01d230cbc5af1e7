// The attention kernels' tile sizes from the cache (the rule in attention_cpu.h).
#include <cstdint>

#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/cpu_caches.h"

namespace ringtrain::cpu {
namespace {

constexpr int64_t kL2Fallback = int64_t{1} << 20;

// Bytes the backward touches per work item step: the P and dP tiles (tq x tk), the Q and dO
// rows (tq x d), the K and V rows and their transposed copies (tk x d each).
int64_t backward_working_set(int tq, int tk, int d) {
  return 4 * (2 * int64_t{tq} * tk + (2 * int64_t{tq} + 4 * int64_t{tk}) * d);
}

}  // namespace

AttnTiles choose_attention_tiles(int64_t l2_bytes, int d) {
  const int64_t budget = (l2_bytes > 0 ? l2_bytes : kL2Fallback) * 3 / 4;
  int t = kAttnTileQMax;
  while (t > kAttnTileMin && backward_working_set(t, t, d) > budget) t /= 2;
  AttnTiles tiles{t, t, t, t};
  if (2 * t <= kAttnTileKMax && backward_working_set(t, 2 * t, d) <= budget) tiles.k_wide = 2 * t;
  return tiles;
}

AttnTiles attention_tiles(int d) { return choose_attention_tiles(cpu_caches().l2, d); }

}  // namespace ringtrain::cpu
