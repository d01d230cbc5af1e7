// GoogleTest main shared by every test binary: MPI is initialized (a singleton run is a world
// of one), only rank 0 prints, and a failure on any rank fails the test run on every rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>

#include "kernels/cpu/cpu_isa.h"
#include "src/core/error.h"
#include "src/core/process.h"

namespace {

// ctest runs some binaries again with RINGTRAIN_CPU_ISA forcing each kernel path; on a CPU that
// lacks the forced one the run is skipped (exit 77, ctest's SKIP_RETURN_CODE), not failed.
bool forced_isa_runs_here() {
  try {
    ringtrain::cpu::active_isa();
    return true;
  } catch (const ringtrain::Error& e) {
    if (ringtrain::world_rank() == 0) std::fprintf(stderr, "skipped: %s\n", e.what());
    return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  ringtrain::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (!forced_isa_runs_here()) return 77;
  if (ringtrain::world_rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (any_failed && !failed)
    std::fprintf(stderr, "[rank %d] passed here, failed on another rank\n",
                 ringtrain::world_rank());
  return any_failed;
}
