// The default thread count fits the CPUs a rank may run on, and a configured count above them
// is said in one line naming the launcher option that lifts the binding.
#include <gtest/gtest.h>

#include <thread>

#include "src/core/cpu_affinity.h"

namespace ringtrain {
namespace {

TEST(CpuAffinity, AllowedCpusIsWithinTheMachine) {
  const int allowed = allowed_cpus();
  EXPECT_GE(allowed, 1);
  EXPECT_LE(allowed, static_cast<int>(std::thread::hardware_concurrency()));
}

TEST(CpuAffinity, DefaultThreadsFitTheBinding) {
  EXPECT_EQ(default_threads(1, 2, 1), 1);    // mpirun -np 1 bound to one core of two
  EXPECT_EQ(default_threads(2, 2, 1), 2);    // unbound, one rank
  EXPECT_EQ(default_threads(2, 2, 4), 1);    // unbound, four ranks on two cores
  EXPECT_EQ(default_threads(8, 64, 2), 8);   // --map-by slot:PE=8
  EXPECT_EQ(default_threads(32, 64, 4), 16); // bound to a socket shared with another rank
  EXPECT_EQ(default_threads(64, 64, 2), 32);
}

TEST(CpuAffinity, WarningNamesTheLauncherOption) {
  EXPECT_EQ(thread_binding_warning(2, 2, "mpirun"), "");
  EXPECT_EQ(thread_binding_warning(1, 4, "none"), "");
  const std::string mpi = thread_binding_warning(2, 1, "mpirun");
  EXPECT_NE(mpi.find("run.threads is 2 but this rank may run on 1 CPU "), std::string::npos) << mpi;
  EXPECT_NE(mpi.find("--bind-to none"), std::string::npos) << mpi;
  EXPECT_NE(mpi.find("--map-by slot:PE=2"), std::string::npos) << mpi;
  EXPECT_NE(thread_binding_warning(4, 2, "slurm").find("--cpus-per-task=4"), std::string::npos);
  EXPECT_NE(thread_binding_warning(4, 2, "none").find("taskset"), std::string::npos);
}

}  // namespace
}  // namespace ringtrain
