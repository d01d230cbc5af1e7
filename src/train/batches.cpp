#include "src/train/batches.h"

#include <algorithm>

#include "parallel/document_split.h"
#include "src/core/error.h"

namespace ringtrain {

void load_local_batch(const Dataset& data, const BatchPlan& p, uint64_t step, int micro, LocalBatch* out) {
  const Zigzag zz{p.seq_len, p.cp};
  const int sl = zz.local_len();
  const size_t rows = static_cast<size_t>(p.micro_batch) * sl;
  out->b = p.micro_batch;
  out->s_local = sl;
  out->seq_len = p.seq_len;
  // The full samples are scratch, reused from call to call on this thread: a steady-state
  // step allocates nothing here (out's vectors keep their capacity too).
  thread_local std::vector<Sample> samples;
  samples.resize(static_cast<size_t>(p.micro_batch));
  bool several = false;  // some sample holds more than one document
  for (int j = 0; j < p.micro_batch; ++j) {
    const uint64_t index = (static_cast<uint64_t>(micro) * p.dp + p.dp_rank) * p.micro_batch + j;
    Sample& s = samples[static_cast<size_t>(j)];
    data.sample(step, index, p.seq_len, &s);
    RT_CHECK(static_cast<int>(s.pos.size()) == p.seq_len && static_cast<int>(s.doc.size()) == p.seq_len,
             "sample without document ids or in-document positions");
    several = several || s.doc.back() != s.doc.front();
  }
  // Document ids travel only when a sample holds several documents: a batch of single
  // documents keeps the zigzag, the plain causal ring and kernels.
  out->docs.clear();
  out->member_positions.clear();
  if (several) {
    out->docs.resize(static_cast<size_t>(p.micro_batch) * p.seq_len);
    for (int j = 0; j < p.micro_batch; ++j)
      std::copy(samples[static_cast<size_t>(j)].doc.begin(), samples[static_cast<size_t>(j)].doc.end(),
                out->docs.begin() + static_cast<std::ptrdiff_t>(j) * p.seq_len);
    if (p.cp > 1) out->member_positions = document_split(out->docs, p.micro_batch, p.seq_len, p.cp, p.window);
  }
  out->ids.resize(rows);
  out->targets.resize(rows);
  out->answer.resize(rows);
  out->rope_pos.resize(rows);
  const int32_t* mine = out->member_positions.empty() ? nullptr : out->member_positions[static_cast<size_t>(p.cp_rank)].data();
  for (int j = 0; j < p.micro_batch; ++j) {
    const Sample& s = samples[static_cast<size_t>(j)];
    const size_t at = static_cast<size_t>(j) * sl;
    for (int t = 0; t < sl; ++t) {
      const size_t g = static_cast<size_t>(mine ? mine[t] : zz.position(p.cp_rank, t));
      out->ids[at + t] = s.inputs[g];
      out->targets[at + t] = s.targets[g];
      out->answer[at + t] = s.answer[g];
      out->rope_pos[at + t] = s.pos[g];
    }
  }
}

}  // namespace ringtrain
