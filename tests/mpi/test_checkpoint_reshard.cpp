// ctest-ranks: 4
// Resharding: a checkpoint saved on one layout resumes on any other. Saved at (dp,cp,tp) =
// (1,2,2), at (2,1,2) with ZeRO-1 and at (1,4,1) with ZeRO-3 and ZeRO-2 (weights and moments
// written by each cp rank's pieces); loaded at (2,1,2) with and without ZeRO-1, (1,4,1) ZeRO-2
// and 3, (4,1,1) ZeRO-1 and 3, (1,2,2) ZeRO 0 and 3, (2,2,1) ZeRO-2 and (1,1,1) (a one-rank
// sub-communicator). Two checks per target:
//  - re-saving right after the load gives a file whose every tensor is bitwise equal to the
//    original (no arithmetic happens in resharding, so any difference is a misplaced element:
//    wrong hyperslab, wrong tp offset, a ZeRO piece mapped to the wrong (row, col));
//  - the next steps' losses equal the unchanged run within fp32 layout noise (kF32Layout).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstring>

#include "checkpoint_test_util.h"
#include "src/checkpoint/checkpoint.h"
#include "src/core/process.h"
#include "tolerance.h"

namespace ringtrain::test {
namespace {

constexpr int kBefore = 2;  // steps before the save
constexpr int kAfter = 2;   // steps compared after it

// Every tensor of `a` and `b` bitwise equal; "" or the first difference.
std::string compare_files(const std::string& a, const std::string& b) {
  for (const char* g : {"model", "optimizer/exp_avg", "optimizer/exp_avg_sq"}) {
    const std::vector<std::string> na = checkpoint_tensor_names(a, g), nb = checkpoint_tensor_names(b, g);
    if (na != nb) return std::string("tensor names differ in ") + g;
    for (const std::string& n : na) {
      std::vector<int64_t> sa, sb;
      const std::vector<float> va = read_checkpoint_tensor(a, std::string(g) + "/" + n, &sa);
      const std::vector<float> vb = read_checkpoint_tensor(b, std::string(g) + "/" + n, &sb);
      if (sa != sb) return "shape of " + std::string(g) + "/" + n + " differs";
      if (std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) != 0) {
        size_t i = 0;
        while (i < va.size() && std::memcmp(&va[i], &vb[i], sizeof(float)) == 0) ++i;
        return std::string(g) + "/" + n + " differs first at flat index " + std::to_string(i) + ": " +
               std::to_string(va[i]) + " vs " + std::to_string(vb[i]);
      }
    }
  }
  return "";
}

void reshard_from(const Layout& src, const std::vector<Layout>& targets) {
  ASSERT_EQ(world_size(), 4);
  const std::string dir = scratch_dir(MPI_COMM_WORLD, "reshard_" + src.name());
  std::string path;
  std::vector<double> ref;
  {
    const Config cfg = tiny_config(src, dir + "/" + src.name());
    Mesh mesh(MPI_COMM_WORLD, shape_of(src));
    Trainer t(cfg, mesh);
    for (int i = 0; i < kBefore; ++i) t.step();
    path = t.save_checkpoint();
    for (int i = 0; i < kAfter; ++i) ref.push_back(t.step().loss);
  }
  for (const Layout& dst : targets) {
    SCOPED_TRACE("saved at " + src.name() + ", loaded at " + dst.name());
    const int size = dst.dp * dst.cp * dst.tp;
    MPI_Comm comm = MPI_COMM_NULL;
    MPI_Comm_split(MPI_COMM_WORLD, world_rank() < size ? 0 : MPI_UNDEFINED, world_rank(), &comm);
    std::string resaved;
    if (comm != MPI_COMM_NULL) {
      const Config cfg = tiny_config(dst, dir + "/" + dst.name());
      Mesh mesh(comm, shape_of(dst));
      Trainer t(cfg, mesh);
      t.load_checkpoint(path, true);
      EXPECT_EQ(t.state().step, kBefore);
      resaved = t.save_checkpoint();
      std::vector<double> got;
      for (int i = 0; i < kAfter; ++i) got.push_back(t.step().loss);
      if (world_rank() == 0) {
        EXPECT_EQ(compare(got.data(), ref.data(), kAfter, kF32Layout, "losses after resume"), "");
        EXPECT_EQ(compare_files(path, resaved), "") << "re-saved " << resaved << " differs from " << path;
      }
      MPI_Comm_free(&comm);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  if (world_rank() == 0) std::filesystem::remove_all(dir);
}

TEST(CheckpointReshard, FromCp2Tp2) {
  reshard_from({1, 2, 2, 0}, {{2, 1, 2, 1}, {2, 1, 2, 0}, {1, 4, 1, 3}, {1, 4, 1, 2}, {4, 1, 1, 1}, {1, 1, 1, 0}});
}

TEST(CheckpointReshard, FromZero1Dp2Tp2) {
  reshard_from({2, 1, 2, 1}, {{1, 2, 2, 0}, {4, 1, 1, 1}, {2, 2, 1, 1}, {1, 1, 1, 0}});
}

// The most sharded state (ZeRO-3 over cp 4: weights, gradients and moments) into tp 2 without
// ZeRO, and on into others; ZeRO-2 over cp 4 likewise.
TEST(CheckpointReshard, FromZero3Cp4) {
  reshard_from({1, 4, 1, 3}, {{1, 2, 2, 0}, {1, 2, 2, 3}, {2, 2, 1, 2}, {1, 1, 1, 0}});
}

TEST(CheckpointReshard, FromZero2Cp4) {
  reshard_from({1, 4, 1, 2}, {{1, 2, 2, 0}, {4, 1, 1, 3}});
}

}  // namespace
}  // namespace ringtrain::test
