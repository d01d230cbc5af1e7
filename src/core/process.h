// Process-wide MPI lifetime and the job-ending error path.
#pragma once

#include <functional>
#include <string>

namespace ringtrain {

// Initializes MPI (thread level FUNNELED; works under mpirun, srun and as a singleton) and
// finalizes it on destruction.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

int world_rank();
int world_size();

// Runs `body` and turns any escaping exception into the job's end:
//  - an input error found identically on every rank (Error::collective(), e.g. config
//    validation): rank 0 prints it once, every rank returns 2;
//  - any other error: this rank prints `ringtrain: error: <what> (rank R)` and calls
//    MPI_Abort(2 for input, 1 for faults), which ends every rank of the job.
int run_guarded(const std::function<int()>& body);

// Prints a warning prefixed by the rank (rank 0's warnings unprefixed).
void warn(const std::string& message);

}  // namespace ringtrain
