// `ringtrain attend`: the prompt, the rows asked for, the HDF5 file and the summary lines
// around run_attend (src/eval/attend.h).
//
// Prompt: --text / --text-file through the byte tokenizer; --data TOKENS --sample I, window
// I of train.seq_len tokens of a token file (with data.packing: documents and a file with a
// document index, the window keeps its documents, masked apart as in training); or --needle,
// a passkey prompt (make_passkey) of --length tokens with the key at --depth.
//
// Output file (h5py-readable), every dataset of a head carrying the attributes layout, layer,
// head:
//   /tokens [L], /positions [L] (and /documents [L] with documents), root attributes: layout,
//     checkpoint, pool, row_positions (as /row_positions [R]), span_names;
//   /layer_LL/head_HH/rows [R, L], pooled [L/B, L/B], entropy [L], mean_distance [L],
//     span_mass [n_spans, L]  (the sink [0, 1) first, then the needle or the documents, then
//     --spans);
//   /retrieval (--needle): layer, head, needle_mass, score for every head, ranked by
//     needle_mass (the mean over the answer rows of the attention mass on the key's digits),
//     ties by score (the mean probability on the very digit each answer row copies: the
//     copy-paste behaviour of the retrieval heads of Wu et al., 2024).
// Rank 0 prints one JSON line per layer and head (entropy, distance, sink and needle mass of
// the last row) and one summary line with the top retrieval heads ([layer, head, needle_mass,
// score]) and the timings.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "src/config/config.h"

namespace ringtrain {

class Mesh;

struct AttendOptions {
  std::string checkpoint, text, text_file, data, out;
  int64_t sample = -1;
  bool needle = false;
  int64_t length = 0;
  double depth = 0.5;
  std::vector<int> layers, heads;
  std::vector<std::string> rows;
  std::vector<std::pair<int64_t, int64_t>> spans;  // extra key spans [lo, hi)
  int pool = 0;
  bool cross_rank = true;
};

// Collective over mesh.world(); input errors (exit 2) for a bad prompt or selection.
void run_attend_command(const Config& config, Mesh& mesh, const AttendOptions& opt);

}  // namespace ringtrain
