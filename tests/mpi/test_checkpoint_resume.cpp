// ctest-ranks: 1 2
// Exact resume: 2N steps straight and N steps + save + a fresh trainer that loads + N steps give
// bitwise identical losses, weights and AdamW moments, on every layout of the world (ZeRO-1
// and ZeRO-2 over dp and over cp, ZeRO-3 over cp included). Catches: a tensor or moment not saved/restored, a
// hyperslab written to the wrong place, a ZeRO piece mapped to the wrong elements, the step (hence lr schedule, bias
// correction or data position) not restored, a lossy dtype in the file.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstring>

#include "checkpoint_test_util.h"
#include "src/checkpoint/checkpoint.h"
#include "src/core/process.h"

namespace ringtrain::test {
namespace {

std::vector<Layout> layouts_for(int world) {
  if (world == 1) return {{1, 1, 1, 0}};
  if (world == 2) return {{2, 1, 1, 1}, {2, 1, 1, 0}, {1, 1, 2, 0}, {1, 2, 1, 0}, {1, 2, 1, 2}, {2, 1, 1, 2}, {1, 2, 1, 3}};
  return {};
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(CheckpointResume, BitwiseOnSameLayout) {
  const int n = 3;
  for (const Layout& l : layouts_for(world_size())) {
    SCOPED_TRACE("layout " + l.name());
    const std::string dir = scratch_dir(MPI_COMM_WORLD, "resume_" + l.name());
    const Config cfg = tiny_config(l, dir);
    Mesh mesh(MPI_COMM_WORLD, shape_of(l));

    std::vector<double> straight;
    Snapshot ref;
    {
      Trainer t(cfg, mesh);
      for (int i = 0; i < 2 * n; ++i) straight.push_back(t.step().loss);
      ref = snapshot(t);
    }
    std::vector<double> resumed;
    std::string path;
    {
      Trainer t(cfg, mesh);
      for (int i = 0; i < n; ++i) resumed.push_back(t.step().loss);
      path = t.save_checkpoint();
    }
    Snapshot got;
    int64_t tokens = 0;
    {
      Trainer t(cfg, mesh);
      t.load_checkpoint(path, true);
      EXPECT_EQ(t.state().step, n);
      for (int i = 0; i < n; ++i) resumed.push_back(t.step().loss);
      got = snapshot(t);
      tokens = t.state().tokens_seen;
    }
    EXPECT_EQ(tokens, static_cast<int64_t>(2 * n) * 4 * 128);
    ASSERT_EQ(straight.size(), resumed.size());
    for (size_t i = 0; i < straight.size(); ++i)
      EXPECT_EQ(std::memcmp(&straight[i], &resumed[i], sizeof(double)), 0)
          << "step " << i + 1 << ": straight " << straight[i] << " resumed " << resumed[i];
    EXPECT_TRUE(same_bits(ref.values, got.values)) << "weights differ after resume";
    EXPECT_TRUE(same_bits(ref.m, got.m)) << "exp_avg differs after resume";
    EXPECT_TRUE(same_bits(ref.v, got.v)) << "exp_avg_sq differs after resume";
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() == 0) std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace ringtrain::test
