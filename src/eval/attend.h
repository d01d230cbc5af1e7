// What the model attends to: `ringtrain attend CONFIG --checkpoint P` (issue 26).
//
// One prompt runs through the model as training lays it out (zigzag over the cp ranks, ring,
// Ulysses or hybrid attention, tp-sharded heads). Right after each chosen layer's attention the
// probabilities are read back from that layer's q, k and saved global lse
// (context_attention_probs: the same ring, the same masks), never holding [s, s]:
//   rows    p of the chosen query rows over every key, exact;
//   pooled  the [s, s] map summed over pool x pool blocks (a row of blocks sums to pool);
//   stats   per query row: entropy, mean attended distance, mass on each key span.
// Each rank's share is indexed by global position and head, so one sum over the ranks
// assembles the result on rank 0.
//
// The prompt is padded at the end to a multiple of 2 * cp (the zigzag's chunks); under the
// causal mask no real row sees a padding key, and every output covers the real tokens only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/config/config.h"

namespace ringtrain {

class Mesh;

struct KeySpan {
  std::string name;
  int32_t lo = 0, hi = 0;  // key positions [lo, hi)
};

struct AttendRequest {
  std::string checkpoint;          // "" : the model's initial weights (tests)
  std::vector<int32_t> tokens;     // the prompt
  std::vector<int32_t> docs;       // document id per token (non-decreasing); empty: one document
  std::vector<int> layers;         // empty: all
  std::vector<int32_t> rows;       // query positions of the full rows
  int pool = 0;                    // divides tokens.size(); 0: no pooled map
  std::vector<KeySpan> spans;
  bool cross_rank = true;          // false: each rank's own tokens only (control)
};

// On rank 0 (elsewhere only the sizes): every head of the model, in global head order.
struct AttendResult {
  int length = 0, heads = 0, n_pool = 0, width = 0;
  std::vector<int> layers;
  std::vector<float> rows;    // [layers][heads][rows][length]
  std::vector<float> pooled;  // [layers][heads][n_pool][n_pool]
  std::vector<float> stats;   // [layers][heads][length][width]: entropy, mean distance, spans
  double forward_seconds = 0.0;  // a plain forward of the same prompt
  double attend_seconds = 0.0;   // the forward with the probabilities read back and gathered
  size_t peak_bytes = 0;         // the largest backend memory peak of any rank
  std::string layout;            // "cp 4 (ring) x tp 1"
};

// Input errors (identical on every rank): an empty or too long prompt (beyond
// train.seq_len), a layer or row out of range, a pool size that does not divide the length,
// a span outside the prompt, parallel.dp > 1.
void check_attend_request(const Config& config, const AttendRequest& req);

// Collective over mesh.world().
AttendResult run_attend(const Config& config, Mesh& mesh, const AttendRequest& req);

}  // namespace ringtrain
