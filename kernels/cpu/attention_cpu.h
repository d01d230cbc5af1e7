// CPU attention internals that tests and benchmarks may inspect (private to kernels/cpu).
#pragma once

#include <cstddef>

namespace ringtrain::cpu {

// Tile sizes of the flash kernels. 64 x 64 fp32 score tiles (16 KiB) and the matching Q, K, V
// tiles at d = 64 fit together in L1/L2, and the two tile products are sgemm calls large
// enough to run near the BLAS peak.
inline constexpr int kAttnTileQ = 64;
inline constexpr int kAttnTileK = 64;

// Bytes of working memory (score tiles, tile position ranges, per-thread dQ partials) the
// last attention_forward / attention_backward call on this thread used. Never s_q x s_k:
// the long-input test checks that it grows linearly with the sequence.
size_t attention_last_workspace_bytes();

}  // namespace ringtrain::cpu
