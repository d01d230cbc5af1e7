// Zigzag layout of a sequence over cp ranks: the sequence is cut into 2*cp equal chunks and
// rank r holds chunks r and 2*cp-1-r (in that order). Under a causal mask the early chunk has
// little work and the late chunk much, so every rank gets the same amount of attention work.
// Positions stay global: RoPE and the mask use them, so no rank ever sees "local" positions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringtrain {

struct Zigzag {
  int seq_len = 0;
  int cp = 1;
  int chunk() const { return seq_len / (2 * cp); }
  int local_len() const { return seq_len / cp; }
  // Global position of local token t on cp rank r.
  int position(int r, int t) const {
    const int c = chunk();
    return t < c ? r * c + t : (2 * cp - 1 - r) * c + (t - c);
  }
  // The cp rank that holds global position `pos` (the inverse of position()).
  int owner(int pos) const {
    const int c = pos / chunk();
    return c < cp ? c : 2 * cp - 1 - c;
  }
  std::vector<int32_t> positions(int r) const;
  // Gathers rank r's tokens of one full sequence `full[seq_len]` into `local[local_len]`.
  template <typename T>
  void shard(int r, const T* full, T* local) const {
    for (int t = 0; t < local_len(); ++t) local[t] = full[position(r, t)];
  }
};

}  // namespace ringtrain
