// ctest-ranks: 1 2 4 8
// The process mesh: coordinates and group membership for every (dp, cp, tp) that fits the
// world. Catches a wrong rank order (tp must be innermost), groups built from the wrong
// coordinates, and a dp_cp group that forgets cp (gradients reduced over dp only).
#include <gtest/gtest.h>
#include <mpi.h>

#include <vector>

#include "parallel/mesh.h"
#include "src/core/error.h"
#include "src/core/process.h"

using namespace ringtrain;

namespace {

std::vector<int> members(MPI_Comm group) {
  int n = 0, me = world_rank();
  MPI_Comm_size(group, &n);
  std::vector<int> out(static_cast<size_t>(n));
  MPI_Allgather(&me, 1, MPI_INT, out.data(), 1, MPI_INT, group);
  return out;
}

std::vector<MeshShape> shapes_for(int world) {
  std::vector<MeshShape> out;
  for (int dp = 1; dp <= world; ++dp)
    for (int cp = 1; cp <= world; ++cp)
      for (int tp = 1; tp <= world; ++tp)
        if (dp * cp * tp == world)
          for (int u = 1; u <= cp; ++u)
            if (cp % u == 0) out.push_back({dp, cp, tp, u});
  return out;
}

}  // namespace

TEST(Mesh, CoordinatesAndGroups) {
  const int world = world_size();
  for (const MeshShape& s : shapes_for(world)) {
    SCOPED_TRACE(testing::Message() << "dp " << s.dp << " cp " << s.cp << " tp " << s.tp << " ulysses " << s.ulysses);
    Mesh mesh(MPI_COMM_WORLD, s);
    const MeshCoord c = mesh.coord();
    EXPECT_EQ(mesh.rank(), world_rank());
    EXPECT_EQ(mesh_rank(s, c), world_rank());
    EXPECT_EQ(world_rank(), (c.dp * s.cp + c.cp) * s.tp + c.tp) << "tp innermost, then cp, then dp";
    // Each group holds exactly the ranks that differ from this one only in its coordinate,
    // in the order of that coordinate.
    auto expect_group = [&](MPI_Comm comm, auto vary, int extent, const char* name) {
      std::vector<int> want;
      for (int i = 0; i < extent; ++i) want.push_back(mesh_rank(s, vary(c, i)));
      EXPECT_EQ(members(comm), want) << name;
    };
    expect_group(mesh.tp_comm(), [](MeshCoord x, int i) { x.tp = i; return x; }, s.tp, "tp");
    expect_group(mesh.cp_comm(), [](MeshCoord x, int i) { x.cp = i; return x; }, s.cp, "cp");
    expect_group(mesh.dp_comm(), [](MeshCoord x, int i) { x.dp = i; return x; }, s.dp, "dp");
    expect_group(mesh.dp_cp_comm(), [&](MeshCoord x, int i) { x.dp = i / s.cp; x.cp = i % s.cp; return x; },
                 s.dp * s.cp, "dp x cp");
    expect_group(mesh.cp_ulysses_comm(), [&](MeshCoord x, int i) { x.cp = x.ring * s.ulysses + i; return x; },
                 s.ulysses, "ulysses");
    expect_group(mesh.cp_ring_comm(), [&](MeshCoord x, int i) { x.cp = i * s.ulysses + x.ulysses; return x; },
                 s.cp / s.ulysses, "ring");
    EXPECT_EQ(mesh.cp_ulysses().size(), s.ulysses);
    EXPECT_EQ(mesh.local_size(), world) << "all ranks of this test share one node";
    EXPECT_GE(mesh.local_rank(), 0);
  }
}

TEST(Mesh, WrongWorldSizeIsAnInputError) {
  const int world = world_size();
  try {
    Mesh mesh(MPI_COMM_WORLD, {world + 1, 1, 1, 1});
    FAIL() << "a mesh larger than the world was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
    EXPECT_NE(std::string(e.what()).find("ranks"), std::string::npos) << e.what();
  }
}

TEST(Communicator, CollectivesMatchTheirDefinitions) {
  Mesh mesh(MPI_COMM_WORLD, {1, world_size(), 1, 1});
  Communicator& c = mesh.cp();
  const int n = c.size(), r = c.rank();
  std::vector<float> x{static_cast<float>(r), 1.0f};
  c.all_reduce(x.data(), 2, DType::kF32, ReduceOp::kSum);
  EXPECT_EQ(x[0], n * (n - 1) / 2.0f);
  EXPECT_EQ(x[1], static_cast<float>(n));
  std::vector<float> blocks(static_cast<size_t>(2 * n)), mine(2);
  for (int j = 0; j < 2 * n; ++j) blocks[static_cast<size_t>(j)] = static_cast<float>(r * 100 + j);
  c.reduce_scatter(blocks.data(), mine.data(), 2, DType::kF32, ReduceOp::kSum);
  for (int k = 0; k < 2; ++k) EXPECT_EQ(mine[static_cast<size_t>(k)], 100.0f * n * (n - 1) / 2 + n * (2 * r + k));
  std::vector<float> gathered(static_cast<size_t>(n));
  float me = static_cast<float>(r);
  c.all_gather(&me, gathered.data(), 1, DType::kF32);
  for (int j = 0; j < n; ++j) EXPECT_EQ(gathered[static_cast<size_t>(j)], static_cast<float>(j));
  std::vector<float> send(static_cast<size_t>(n)), recv(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) send[static_cast<size_t>(j)] = static_cast<float>(r * n + j);
  c.all_to_all(send.data(), recv.data(), 1, DType::kF32);
  for (int i = 0; i < n; ++i) EXPECT_EQ(recv[static_cast<size_t>(i)], static_cast<float>(i * n + r));
  float b = r == n - 1 ? 42.0f : 0.0f;
  c.broadcast(&b, 1, DType::kF32, n - 1);
  EXPECT_EQ(b, 42.0f);
  // A ring step: send right, receive from the left, grouped.
  float out = static_cast<float>(r), in = -1;
  c.exchange({{P2POp::kSend, &out, 1, (r + 1) % n}, {P2POp::kRecv, &in, 1, (r + n - 1) % n}}, DType::kF32)->wait();
  EXPECT_EQ(in, static_cast<float>((r + n - 1) % n));
  std::vector<float> big(1000, static_cast<float>(r));
  c.all_reduce_async(big.data(), big.size(), DType::kF32, ReduceOp::kMax)->wait();
  EXPECT_EQ(big[999], static_cast<float>(n - 1));
}
