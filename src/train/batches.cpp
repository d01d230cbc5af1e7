#include "src/train/batches.h"

#include <algorithm>

#include "src/core/error.h"

namespace ringtrain {

void load_local_batch(const Dataset& data, const BatchPlan& p, uint64_t step, int micro, LocalBatch* out) {
  const Zigzag zz{p.seq_len, p.cp};
  const int sl = zz.local_len();
  out->b = p.micro_batch;
  out->s_local = sl;
  out->seq_len = p.seq_len;
  out->ids.resize(static_cast<size_t>(p.micro_batch) * sl);
  out->targets.resize(out->ids.size());
  out->answer.resize(out->ids.size());
  out->rope_pos.resize(out->ids.size());
  out->docs.clear();
  // The full sample is scratch, reused from call to call on this thread: a steady-state step
  // allocates nothing here (out's vectors keep their capacity too).
  thread_local Sample s;
  for (int j = 0; j < p.micro_batch; ++j) {
    const uint64_t index = (static_cast<uint64_t>(micro) * p.dp + p.dp_rank) * p.micro_batch + j;
    data.sample(step, index, p.seq_len, &s);
    const size_t at = static_cast<size_t>(j) * sl;
    zz.shard(p.cp_rank, s.inputs.data(), out->ids.data() + at);
    zz.shard(p.cp_rank, s.targets.data(), out->targets.data() + at);
    zz.shard(p.cp_rank, s.answer.data(), out->answer.data() + at);
    RT_CHECK(static_cast<int>(s.pos.size()) == p.seq_len, "sample without in-document positions");
    zz.shard(p.cp_rank, s.pos.data(), out->rope_pos.data() + at);
    // Document ids travel only when the sample holds several documents: a batch of single
    // documents keeps the plain causal ring and kernels.
    const bool several = !s.doc.empty() && s.doc.back() != s.doc.front();
    if (several && out->docs.empty()) out->docs.assign(static_cast<size_t>(p.micro_batch) * p.seq_len, 0);
    if (!out->docs.empty() && !s.doc.empty())
      std::copy(s.doc.begin(), s.doc.end(), out->docs.begin() + static_cast<std::ptrdiff_t>(j) * p.seq_len);
  }
}

}  // namespace ringtrain
