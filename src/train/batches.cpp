#include "src/train/batches.h"

namespace ringtrain {

void load_local_batch(const Dataset& data, const BatchPlan& p, uint64_t step, int micro, LocalBatch* out) {
  const Zigzag zz{p.seq_len, p.cp};
  const int sl = zz.local_len();
  out->b = p.micro_batch;
  out->s_local = sl;
  out->ids.resize(static_cast<size_t>(p.micro_batch) * sl);
  out->targets.resize(out->ids.size());
  out->answer.resize(out->ids.size());
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
  }
}

}  // namespace ringtrain
