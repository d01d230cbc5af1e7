// OpenBLAS single-threaded for a scope: the CPU kernels run their own threads (thread_pool.h) and call
// sgemm from inside them, where OpenBLAS's own pool must not start (its threads would fight
// ours for the same cores, and a pthreads OpenBLAS is not to be entered with several threads
// from several callers at once). Restored on scope exit.
#pragma once

#include <cblas.h>

namespace ringtrain::cpu {

class BlasSingleThread {
 public:
  BlasSingleThread() : saved_(openblas_get_num_threads()) {
    if (saved_ != 1) openblas_set_num_threads(1);
  }
  ~BlasSingleThread() {
    if (saved_ != 1) openblas_set_num_threads(saved_);
  }
  BlasSingleThread(const BlasSingleThread&) = delete;
  BlasSingleThread& operator=(const BlasSingleThread&) = delete;

 private:
  int saved_;
};

}  // namespace ringtrain::cpu
