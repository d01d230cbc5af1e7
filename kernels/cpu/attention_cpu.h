// CPU attention internals that tests and benchmarks may inspect (private to kernels/cpu).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ringtrain::cpu {

// Tile sizes of the flash kernels. A 128 x 128 fp32 score tile (64 KiB) and the matching Q, K,
// V tiles at d = 64 (32 KiB each) stay in L2, and the tile products are sgemm calls large
// enough that OpenBLAS's packing is a small part of them (measured: 128 x 128 beats 64 x 64 by
// about 10% at d = 64; smaller tiles only save masked work on the diagonal).
// These are the tiles of every masked call (causal, packed documents or a window).
inline constexpr int kAttnTileQ = 128;
inline constexpr int kAttnTileK = 128;

// Calls with packed documents compute each tile as per-document rectangles (attention.cpp), so
// the masked work is about one-by-one's whatever the tile; smaller tiles cut it further at the
// document edges but make smaller sgemm calls. Measured (bench_attention --packed 16384,
// 53 lognormal documents, h = 8, d = 64, one thread), packed time / one call per document:
// 128: 1.22x, 64: 1.15x, 32: 1.41x.
inline constexpr int kAttnTilePacked = 64;

// Without a mask no tile holds wasted work, so the non-causal kernels use wider tiles: fewer,
// larger sgemm calls, less of OpenBLAS's per-call operand packing per flop. Forward: 128
// queries x kAttnTileKWide keys; backward: kAttnTileQWide queries x kAttnTileKWide keys.
// Measured single-threaded (process CPU time, seq 2048, d = 64): 128 x 256 tiles
// cut the non-causal forward+backward by ~12% against 128 x 128.
inline constexpr int kAttnTileQWide = 128;
inline constexpr int kAttnTileKWide = 256;
inline constexpr int kAttnTileQMax = kAttnTileQ > kAttnTileQWide ? kAttnTileQ : kAttnTileQWide;
inline constexpr int kAttnTileKMax = kAttnTileK > kAttnTileKWide ? kAttnTileK : kAttnTileKWide;

// Bytes of working memory (score tiles, tile position ranges, per-thread dQ partials) the
// last attention_forward / attention_backward call on this thread used. Never s_q x s_k:
// the long-input test checks that it grows linearly with the sequence.
size_t attention_last_workspace_bytes();

// Score-matrix entries (query rows x keys, summed over heads and samples) of the tiles the last
// attention_forward / attention_backward call on this thread did not skip: the work the mask
// let through. A test checks that packed short documents cost far less than the dense square.
int64_t attention_last_scores_computed();

}  // namespace ringtrain::cpu
