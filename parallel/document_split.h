// A document-aware split of packed sequences over the cp ranks.
//
// The zigzag layout balances one causal document spanning the sequence. Packed sequences are
// different: a long document's causal triangle sits wherever the document does, and short
// documents cost little each, so under the zigzag the most loaded rank does 20-75% more
// attention work than the mean for realistic length mixes (bench/cp_balance.cpp). Work of a
// token = the keys it sees (its in-document position + 1, capped by the window), summed over
// the micro-batch's samples. The sequence is cut into 2*cp*m equal segments (m = 8, 4, 2 or 1,
// the largest that divides seq_len / (2*cp)); the segments, heaviest first, go to the least
// loaded rank that still has room (each rank takes 2*m of them, so every rank holds exactly
// seq_len / cp tokens). Segments keep documents contiguous inside them, so tiles and ring
// blocks still skip; positions stay global, so the kernels and the ring need nothing else.
#pragma once

#include <cstdint>
#include <vector>

namespace ringtrain {

// docs[b * seq_len]: document ids of b samples; returns [cp][seq_len / cp] global positions,
// ascending within each rank. Deterministic: every rank computes the same split.
std::vector<std::vector<int32_t>> document_split(const std::vector<int32_t>& docs, int b, int seq_len, int cp,
                                                 int window);

}  // namespace ringtrain
