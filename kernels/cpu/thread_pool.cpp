#include "kernels/cpu/thread_pool.h"

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace ringtrain::cpu {
namespace {

thread_local bool t_in_run = false;

// Workers 1..n-1 wait for a new generation of work; each runs the body with its own tid if the
// run wants that many threads, then reports done. Grows to the largest thread count asked.
class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      ++generation_;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

  void run(int threads, ThreadBody body) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (!busy.owns_lock() || t_in_run || threads <= 1) {  // nested or concurrent: one thread
      for (int tid = 0; tid < threads; ++tid) body(tid);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (static_cast<int>(workers_.size()) < threads - 1) {
        const int tid = static_cast<int>(workers_.size()) + 1;
        workers_.emplace_back([this, tid, seen = generation_] { work(tid, seen); });
      }
      body_ = &body;
      threads_ = threads;
      pending_ = threads - 1;
      ++generation_;
    }
    wake_.notify_all();
    t_in_run = true;
    body(0);
    t_in_run = false;
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return pending_ == 0; });
    body_ = nullptr;
  }

 private:
  // seen: the generation before the one that started this worker (it runs that one first).
  void work(int tid, uint64_t seen) {
    t_in_run = true;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (stop_) return;
      if (tid >= threads_) continue;
      const ThreadBody* body = body_;
      lock.unlock();
      (*body)(tid);
      lock.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex run_mu_;  // one run at a time
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const ThreadBody* body_ = nullptr;
  int threads_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

void parallel_run(int threads, ThreadBody body) { pool().run(threads, body); }

}  // namespace ringtrain::cpu
