// Needle in a haystack: `ringtrain eval CONFIG --checkpoint P --needle`.
//
// For every (length, depth) cell, `samples` passkey prompts (make_passkey, data/dataset.h) of
// exactly `length` tokens: a haystack of real text with a key of data.passkey_digits digits
// hidden at that depth and asked for at the end. Each prompt is evaluated the way training
// sees it: sharded over the cp ranks in the zigzag layout, one forward pass, and exact match
// of the greedy predictions on the answer positions (under teacher forcing this equals greedy
// decoding of the key, see make_passkey). Each length gets its own model, built for that
// sequence length (its zigzag positions) and loaded from the same checkpoint.
//
// The prompts are pure functions of (run.seed, length, sample index): the key and the haystack
// window of sample i are the same at every depth and on every layout, so a sweep at cp=1, 2, 4
// (ring or Ulysses) asks the model exactly the same questions.
//
// Output: one JSON line per cell, then a summary line, printed by rank 0 and written to
// <run.out_dir>/needle.jsonl (truncated first):
//   {"length": 128, "depth": 0.5, "accuracy": 0.95, "samples": 20, "cross_rank": true,
//    "cp": 4, "needle_on_answer_rank": 0, "answers": "9f3a..."}
// needle_on_answer_rank counts the samples whose hidden key lies wholly on the cp rank that
// holds the question (those a --no-cross-rank control can still answer); answers is an FNV-1a
// fingerprint of every sample's greedy answer digits, equal across layouts when the answers are.
//
// Haystack: --data FILE; else the config's passkey text (data.val, or the held-out last 10% of
// data.train); else data/corpus/train.val.bin or data/corpus/train.bin (scripts/get-data) if
// present; else synthetic filler.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/config/config.h"

namespace ringtrain {

class Mesh;

struct NeedleOptions {
  std::string checkpoint;        // file or directory; "" : the newest in checkpoint.dir
  std::string haystack;          // token file; "" : see above
  std::vector<int64_t> lengths;  // "" : trained length / 4, / 2 and itself
  std::vector<double> depths;    // "" : 0, 0.1, ..., 1
  int samples = 0;               // per cell; 0 : kNeedleDefaultSamples
  bool cross_rank = true;        // false: attention limited to each rank's own tokens
};

inline constexpr int kNeedleDefaultSamples = 20;

struct NeedleCell {
  int64_t length = 0;
  double depth = 0.0;
  double accuracy = 0.0;
  int samples = 0;
  int on_answer_rank = 0;  // samples whose key lies wholly on the question's cp rank
  uint64_t answers = 0;    // FNV-1a of the greedy answer digits
};

// Input errors (identical on every rank) for a length that is not a positive multiple of 2*cp
// or too short for the prompt, a depth outside [0, 1], samples < 0.
void check_needle_options(const NeedleOptions& opt, int cp, int digits);

// The default lengths for a model trained at `trained_len` on `cp` ranks.
std::vector<int64_t> default_needle_lengths(int64_t trained_len, int cp, int digits);

// Runs the sweep (collective over mesh.world()), prints and writes the lines. Warns, on rank 0,
// about lengths beyond the checkpoint's trained context (its config's train.seq_len).
std::vector<NeedleCell> run_needle_sweep(const Config& config, Mesh& mesh, const NeedleOptions& opt);

}  // namespace ringtrain
