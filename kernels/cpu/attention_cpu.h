// CPU attention internals that tests and benchmarks may inspect (private to kernels/cpu).
#pragma once

#include <cstddef>

namespace ringtrain::cpu {

// Tile sizes of the flash kernels. A 128 x 128 fp32 score tile (64 KiB) and the matching Q, K,
// V tiles at d = 64 (32 KiB each) stay in L2, and the tile products are sgemm calls large
// enough that OpenBLAS's packing is a small part of them (measured: 128 x 128 beats 64 x 64 by
// about 10% at d = 64; smaller tiles only save masked work on the diagonal).
inline constexpr int kAttnTileQ = 128;
inline constexpr int kAttnTileK = 128;

// Bytes of working memory (score tiles, tile position ranges, per-thread dQ partials) the
// last attention_forward / attention_backward call on this thread used. Never s_q x s_k:
// the long-input test checks that it grows linearly with the sequence.
size_t attention_last_workspace_bytes();

}  // namespace ringtrain::cpu
