// CPU attention internals that tests and benchmarks may inspect (private to kernels/cpu).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ringtrain::cpu {

// Tile sizes of the flash kernels, chosen per head dim from the L2 cache size read at start
// (kernels/cpu/cpu_caches.h). Masked calls (causal, a window) use square tiles: the tiles on a
// mask edge hold wasted work, and smaller tiles waste less. Without a mask no tile holds wasted
// work, so the key tiles are twice as wide where the cache allows: fewer, larger tile
// products. Measured on the 2-core Zen 4 VM (1 MiB L2, d = 64, one thread, process CPU time,
// seq 2048, when the products were sgemm calls): 128 x 128 beat 64 x 64 by about 10%, and
// 128 x 256 cut the non-causal forward+backward by ~12% against 128 x 128.
// The rule: the largest tiles whose backward working set (the P and dP tiles, the Q and dO
// rows, the K and V rows and their transposed copies) fits in 3/4 of L2, which gives those
// sizes at 1 MiB and d = 64 (and 64 x 64 on a 256 KiB L2).
struct AttnTiles {
  int q, k;            // masked calls: query x key tile
  int q_wide, k_wide;  // calls without a mask
};
inline constexpr int kAttnTileQMax = 128;  // the largest tiles ever chosen (scratch buffers)
inline constexpr int kAttnTileKMax = 256;
inline constexpr int kAttnTileMin = 32;

// The tiles for head dim d on a CPU with `l2_bytes` of L2 per core (<= 0: unknown, taken as
// 1 MiB).
AttnTiles choose_attention_tiles(int64_t l2_bytes, int d);

// choose_attention_tiles for this CPU's L2 (cpu_caches()).
AttnTiles attention_tiles(int d);

// Calls with packed documents compute each tile as per-document rectangles (attention.cpp), so
// the masked work is about one-by-one's whatever the tile; smaller tiles cut it further at the
// document edges but make smaller sgemm calls. Measured (bench_attention --packed 16384,
// 53 lognormal documents, h = 8, d = 64, one thread), packed time / one call per document:
// 128: 1.22x, 64: 1.15x, 32: 1.41x.
inline constexpr int kAttnTilePacked = 64;

// Bytes of working memory (score tiles, tile position ranges, per-thread dQ partials) the
// last attention_forward / attention_backward call on this thread used. Never s_q x s_k:
// the long-input test checks that it grows linearly with the sequence.
size_t attention_last_workspace_bytes();

// Score-matrix entries (query rows x keys, summed over heads and samples) of the tiles the last
// attention_forward / attention_backward call on this thread did not skip: the work the mask
// let through. A test checks that packed short documents cost far less than the dense square.
int64_t attention_last_scores_computed();

}  // namespace ringtrain::cpu
