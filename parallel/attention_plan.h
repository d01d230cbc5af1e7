// Which blocks of a context-parallel attention can see each other, decided on the host.
//
// Each ring member holds a frame: a set of global positions (its zigzag chunks, or under
// Ulysses the union of its group's chunks) and, per sample, the document id of each of them.
// A frame is cut into runs (consecutive positions of one document); two runs can see each
// other when they share a document, some key is not after some query (causal), and the
// nearest pair is inside the window. A block no query can see is skipped by the ring, and the
// ring travels only as many hops as the farthest block anyone still sees.
#pragma once

#include <cstdint>
#include <vector>

namespace ringtrain {

struct FrameRun {
  int32_t doc, lo, hi;  // positions lo..hi (inclusive) of document doc
};

// The runs of one sample of one frame: pos[s] global positions, doc[s] their document ids
// (null: one document).
void frame_runs(const int32_t* pos, const int32_t* doc, int s, std::vector<FrameRun>* runs);

// True when some query run can see some key run.
bool runs_see(const std::vector<FrameRun>& q, const std::vector<FrameRun>& k, bool causal, int window);

// The ring's visit plan over n frames: fills visible[q * n + k] (reusing its storage) and
// returns the hops needed, 1 + max over members r of the hop t at which member r still sees
// block (r - t) mod n. runs[f][bi] are frame f's runs for sample bi.
int plan_visits(const std::vector<std::vector<std::vector<FrameRun>>>& runs, bool causal, int window,
                std::vector<uint8_t>* visible);

}  // namespace ringtrain
