#include "src/core/process.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "src/core/error.h"

namespace ringtrain {

namespace detail {
void mpi_failed(int rc, const char* call, const char* file, int line) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fault(call, " failed: ", std::string(msg, static_cast<size_t>(len)), " (", file, ":", line,
        ")");
}
}  // namespace detail

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  }
  // Errors come back as return codes so MPI_CHECK can name the call.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

void warn(const std::string& message) {
  int r = world_rank();
  if (r == 0)
    std::fprintf(stderr, "ringtrain: warning: %s\n", message.c_str());
  else
    std::fprintf(stderr, "[rank %d] ringtrain: warning: %s\n", r, message.c_str());
  std::fflush(stderr);
}

static int end_job(ErrorKind kind, const char* what, bool collective = false) {
  const int rank = world_rank();
  const int code = kind == ErrorKind::kInput ? 2 : 1;
  if (kind == ErrorKind::kInput && collective) {
    if (rank == 0) std::fprintf(stderr, "ringtrain: error: %s\n", what);
    std::fflush(stderr);
    return code;
  }
  std::fprintf(stderr, "ringtrain: error: %s (rank %d)\n", what, rank);
  std::fflush(stderr);
  if (world_size() > 1) MPI_Abort(MPI_COMM_WORLD, code);
  // One rank: a fault can leave a library unable to shut down (HDF5 segfaults in MPI_Finalize
  // on a checkpoint file whose write failed, e.g. a full disk: tests/faults/test_disk_full.sh),
  // so end here as MPI_Abort would, without running MPI_Finalize.
  std::fflush(nullptr);
  std::_Exit(code);
}

int run_guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    return end_job(e.kind(), e.what(), e.collective());
  } catch (const std::bad_alloc&) {
    return end_job(ErrorKind::kFault, "out of host memory");
  } catch (const std::exception& e) {
    return end_job(ErrorKind::kFault, e.what());
  }
}

}  // namespace ringtrain
