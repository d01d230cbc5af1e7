// The emulated execution model: every block of the grid runs in turn; within a block every
// CUDA thread is a Boost.Context fiber that runs until its next synchronization point
// (__syncthreads, a warp operation, exit) and then hands control back to the block's
// scheduler. The scheduler resumes runnable threads in the order of the current schedule
// (ascending or descending: always the lowest- or highest-numbered runnable thread, so one warp
// runs ahead of the others as far as the barriers allow; shuffle: every runnable thread once
// per round in a seeded order redrawn every round), releases a barrier when
// every live thread has reached it (exited threads leave the count), and reports a deadlock
// when no thread can move. Warp operations complete when every lane of their mask arrived.
//
// This file must stay out of any LTO: the switch must look opaque to the optimizer, or loads
// of shared memory in a kernel get cached across a __syncthreads.
#include <sys/mman.h>
#include <unistd.h>
#include <xmmintrin.h>

#include <algorithm>
#include <boost/context/fiber.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <vector>

#include "src/device/emu/emu_internal.h"
#include "src/device/kernel.h"

#if defined(RINGTRAIN_EMU_ASAN)
// AddressSanitizer build (-DRINGTRAIN_EMU_ASAN=ON): every fiber switch is announced to ASan,
// reused fiber stacks are unpoisoned, dynamic shared memory and device allocations come from
// the (instrumented) heap, so out-of-bounds accesses are caught to the byte.
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define RT_ASAN 1
#else
#define RT_ASAN 0
#endif

namespace ctx = boost::context;

namespace ringtrain::gpu::emu {

constinit thread_local ThreadCtx tl_ctx;

namespace {

// ---- fiber stacks: pooled per OS thread, each with a PROT_NONE guard page below it ----
size_t stack_bytes() {
  static const size_t s = [] {
    const char* e = std::getenv("RINGTRAIN_EMU_STACK_KB");
    const size_t kb = e ? std::strtoul(e, nullptr, 10) : 128;
    return round_up(std::max<size_t>(kb, 32) * 1024, page_size());
  }();
  return s;
}

struct StackPool {
  std::vector<void*> free_list;  // lowest address (guard page) of each mapping
  ctx::stack_context last{};     // the stack handed out last (for ASan's switch annotations)
  ~StackPool() {
    for (void* p : free_list) munmap(p, stack_bytes() + page_size());
  }
  ctx::stack_context allocate() {
    void* base;
    if (!free_list.empty()) {
      base = free_list.back();
      free_list.pop_back();
    } else {
      base = mmap(nullptr, stack_bytes() + page_size(), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (base == MAP_FAILED) throw std::bad_alloc();
      mprotect(base, page_size(), PROT_NONE);
      register_guard(base, page_size(), "a CUDA thread's stack (stack overflow: raise RINGTRAIN_EMU_STACK_KB)");
    }
    ctx::stack_context sc;
    sc.size = stack_bytes();
    sc.sp = static_cast<char*>(base) + page_size() + stack_bytes();
#if RT_ASAN
    __asan_unpoison_memory_region(static_cast<char*>(base) + page_size(), stack_bytes());
#endif
    last = sc;
    return sc;
  }
  void release(ctx::stack_context& sc) {
    free_list.push_back(static_cast<char*>(sc.sp) - sc.size - page_size());
  }
};
thread_local StackPool tl_stacks;

struct PooledStack {
  ctx::stack_context allocate() { return tl_stacks.allocate(); }
  void deallocate(ctx::stack_context& sc) noexcept { tl_stacks.release(sc); }
};

// ---- shared memory: one arena per OS thread, reused by every block ----
// Static (RT_SHARED) variables at the start of one mapping; dynamic shared memory ends exactly
// at a guard page in another, so a read past its end faults.
struct SharedArena {
  char* static_map = nullptr;
  char* dyn_map = nullptr;
  size_t dyn_map_bytes = 0;
  SharedArena() {
    const size_t ps = page_size();
    static_map = static_cast<char*>(mmap(nullptr, kSharedPerBlock + ps, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    dyn_map_bytes = round_up(kSharedPerBlockOptin, ps) + ps;
    dyn_map = static_cast<char*>(mmap(nullptr, dyn_map_bytes, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (static_map == MAP_FAILED || dyn_map == MAP_FAILED) throw std::bad_alloc();
    mprotect(static_map + kSharedPerBlock, ps, PROT_NONE);
    mprotect(dyn_map + dyn_map_bytes - ps, ps, PROT_NONE);
    register_guard(static_map + kSharedPerBlock, ps, "the end of static shared memory");
    register_guard(dyn_map + dyn_map_bytes - ps, ps, "the end of dynamic shared memory");
  }
  char* dyn_end() const { return dyn_map + dyn_map_bytes - page_size(); }
};
thread_local SharedArena* tl_arena = nullptr;

enum class TState : uint8_t { kRunnable, kBarrier, kWarp, kExited };

// One fiber per thread index serves that thread in every block of a launch: after the kernel
// body returns it parks, and the next block resumes it (creating a fiber and preparing its stack
// per block and thread was most of the emulation's cost for grid-stride kernels).
struct Thread {
  ctx::fiber fiber;  // the thread itself while suspended or parked
  ctx::fiber sched;  // the scheduler while the thread runs
  uint3 idx;
  int lane = 0, warp = 0;
  TState state = TState::kRunnable;
  const void* stack_lo = nullptr;  // this thread's stack, for ASan
  size_t stack_size = 0;
  void* asan_fake = nullptr;
  int barrier_result = 0;  // __syncthreads_count of the barrier this thread last passed
  int barrier_total = 0;   // threads that passed it
  CpAsyncState cp;
};

struct PendingWarpOp {
  unsigned mask = 0, arrived = 0;
  int kind = 0;
  const void* in[32];
  void* out[32];
  WarpCombine combine = nullptr;
};

struct Warp {
  std::vector<PendingWarpOp> ops;
  unsigned existing = 0, exited = 0;
};

// Thrown inside a fiber to end the block with a kernel fault.
struct EmuFault {
  std::string what;
};

struct Launch {
  std::string name;
  dim3 grid, block;
  size_t smem = 0;
  bool smem_opted_in = false;  // the kernel's dynamic shared memory limit was raised
  detail::KernelBody body{};
  // shared memory
  char* dyn_base = nullptr;
  size_t dyn_rounded = 0;
  size_t static_used = 0;
  std::map<const void*, size_t> static_tags;
  // the block being run
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  int live = 0, at_barrier = 0;
  int barrier_count = 0;  // threads at the barrier with a nonzero predicate
  uint3 block_idx{};
  Thread* cur = nullptr;
  const void* sched_stack_lo = nullptr;  // the scheduler's stack, for ASan
  size_t sched_stack_size = 0;
  bool failed = false;
  bool finishing = false;  // the grid is done: parked fibers return
  unsigned woke_mask = 0;  // lanes woken by a warp operation the thread that ran last completed (0: none)
  int woke_warp = 0;       // the warp of woke_mask
  CpAsyncLanding landing = CpAsyncLanding::kLazy;
  std::string error;
  std::mt19937_64 rng;
};
thread_local Launch* tl_launch = nullptr;

std::string str3(uint3 v) {
  std::ostringstream os;
  os << "(" << v.x << "," << v.y << "," << v.z << ")";
  return os.str();
}

Launch& launch_state() {
  if (!tl_launch) {
    std::fprintf(stderr, "ringtrain emulated device: a device function was called outside a kernel launch\n");
    std::abort();
  }
  return *tl_launch;
}

[[noreturn]] void fail(const std::string& what) { throw EmuFault{what}; }

// Thread t (running) hands control back to its block's scheduler until resumed.
void to_scheduler(Launch& L, Thread& t) {
#if RT_ASAN
  __sanitizer_start_switch_fiber(&t.asan_fake, L.sched_stack_lo, L.sched_stack_size);
#endif
  t.sched = std::move(t.sched).resume();
#if RT_ASAN
  __sanitizer_finish_switch_fiber(t.asan_fake, &L.sched_stack_lo, &L.sched_stack_size);
#else
  (void)L;
#endif
}

// A synchronization point of thread t: its cp.async groups due here land first, so the threads
// that run next see them.
void yield(Thread& t) {
  cp_async_sync_point(t.cp);
  to_scheduler(*tl_launch, t);
}

const char* warp_kind_name(int kind) {
  switch (kind) {
    case kShflIdx: return "__shfl_sync";
    case kShflUp: return "__shfl_up_sync";
    case kShflDown: return "__shfl_down_sync";
    case kShflXor: return "__shfl_xor_sync";
    case kBallot: return "__ballot_sync";
    case kAny: return "__any_sync";
    case kAll: return "__all_sync";
    case kSyncWarp: return "__syncwarp";
    case kMmaBf16: return "mma.sync m16n8k16 bf16";
    case kMmaF16: return "mma.sync m16n8k16 f16";
    case kReduceAdd: return "__reduce_add_sync";
    case kReduceMin: return "__reduce_min_sync";
    case kReduceMax: return "__reduce_max_sync";
    default: return kind >= kLdmatrix ? "ldmatrix" : "?";
  }
}

std::string hex(unsigned v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

void thread_exited(Launch& L, Thread& t) {
  t.state = TState::kExited;
  --L.live;
  Warp& w = L.warps[static_cast<size_t>(t.warp)];
  w.exited |= 1u << t.lane;
  if (L.failed) return;  // the first fault is the one reported; this exit may be its consequence
  for (const PendingWarpOp& op : w.ops)
    if ((op.mask >> t.lane) & 1u) {
      L.failed = true;
      L.error = "thread " + str3(t.idx) + " (lane " + std::to_string(t.lane) + " of warp " +
                std::to_string(t.warp) + ") exited while " + warp_kind_name(op.kind) +
                " with mask " + hex(op.mask) + " waits for it";
      return;
    }
}

void run_thread(Launch& L, Thread& t) {
  tl_ctx.thread_idx = t.idx;
  L.cur = &t;
#if RT_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, t.stack_lo, t.stack_size);
#endif
  t.fiber = std::move(t.fiber).resume();
#if RT_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  L.cur = nullptr;
}

std::string deadlock_report(Launch& L) {
  std::ostringstream os;
  os << "deadlock: no thread can move; " << L.at_barrier << " of " << L.live
     << " live threads wait at __syncthreads";
  for (size_t w = 0; w < L.warps.size(); ++w)
    for (const PendingWarpOp& op : L.warps[w].ops)
      os << "; warp " << w << " waits in " << warp_kind_name(op.kind) << " mask " << hex(op.mask)
         << " (arrived " << hex(op.arrived) << ")";
  return os.str();
}

void run_block(Launch& L, uint3 bidx, std::vector<int>& order) {
  const unsigned bx = L.block.x, by = L.block.y;
  const int n = static_cast<int>(L.block.x * L.block.y * L.block.z);
  L.block_idx = bidx;
  tl_ctx.block_idx = bidx;
  L.live = n;
  L.at_barrier = 0;
  L.barrier_count = 0;
  // Poison this block's shared memory: a read of an element no thread wrote is NaN.
  std::memset(L.dyn_base, 0xFF, L.smem);
  std::memset(tl_arena->static_map, 0xFF, L.static_used);
  // Warps and threads are reset in place, their containers' storage kept from block to block:
  // allocation per block is most of the emulation's cost under AddressSanitizer.
  const int nwarps = (n + 31) / 32;
  L.warps.resize(static_cast<size_t>(nwarps));
  for (int w = 0; w < nwarps; ++w) {
    const int lanes = std::min(32, n - 32 * w);
    Warp& wp = L.warps[static_cast<size_t>(w)];
    wp.ops.clear();
    wp.exited = 0;
    wp.existing = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
  }
  L.threads.resize(static_cast<size_t>(n));  // the same n for every block: no reallocation
  for (int i = 0; i < n; ++i) {
    Thread& t = L.threads[static_cast<size_t>(i)];
    const unsigned u = static_cast<unsigned>(i);
    t.idx = uint3{u % bx, (u / bx) % by, u / (bx * by)};
    t.lane = i % 32;
    t.warp = i / 32;
    t.state = TState::kRunnable;
    t.cp.reset();
    if (t.fiber) continue;  // parked since the previous block
    t.fiber = ctx::fiber(std::allocator_arg, PooledStack{}, [&L, i](ctx::fiber&& sched) {
      Thread& self = L.threads[static_cast<size_t>(i)];
#if RT_ASAN
      __sanitizer_finish_switch_fiber(nullptr, &L.sched_stack_lo, &L.sched_stack_size);
#endif
      self.sched = std::move(sched);
      while (!L.finishing) {
        try {
          L.body.call(L.body.params.get());
        } catch (const ctx::detail::forced_unwind&) {
          throw;
        } catch (const EmuFault& f) {
          if (!L.failed) {
            L.failed = true;
            L.error = "thread " + str3(self.idx) + ": " + f.what;
          }
        } catch (const std::exception& e) {
          if (!L.failed) {
            L.failed = true;
            L.error = "thread " + str3(self.idx) + " threw: " + e.what();
          }
        }
        thread_exited(L, self);
        to_scheduler(L, self);  // parked: resumed for the next block, or to finish
      }
#if RT_ASAN
      __sanitizer_start_switch_fiber(nullptr, L.sched_stack_lo, L.sched_stack_size);
#endif
      return std::move(self.sched);
    });
    t.stack_lo = static_cast<char*>(tl_stacks.last.sp) - tl_stacks.last.size;
    t.stack_size = tl_stacks.last.size;
  }
  const Schedule sched = current_schedule();
  order.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) order[static_cast<size_t>(i)] = sched == Schedule::kDescending ? n - 1 - i : i;
  const bool greedy = sched != Schedule::kShuffle;
  while (!L.failed) {
    if (!greedy) std::shuffle(order.begin(), order.end(), L.rng);
    bool progressed = false;
    for (int p = 0; p < n; ++p) {
      Thread& t = L.threads[static_cast<size_t>(order[static_cast<size_t>(p)])];
      if (t.state != TState::kRunnable) continue;
      L.woke_mask = 0;
      run_thread(L, t);
      progressed = true;
      if (L.failed) break;
      // The first runnable thread in schedule order runs next: every thread before the lanes
      // just woken was not runnable, so the scan resumes at the first of them.
      if (greedy && L.woke_mask != 0) {
        const int base = 32 * L.woke_warp;
        p = (sched == Schedule::kDescending ? n - 1 - (base + 31 - __builtin_clz(L.woke_mask))
                                            : base + __builtin_ctz(L.woke_mask)) - 1;
      }
    }
    if (L.failed || L.live == 0) break;
    if (L.at_barrier == L.live) {
      for (Thread& t : L.threads)
        if (t.state == TState::kBarrier) {
          t.state = TState::kRunnable;
          t.barrier_result = L.barrier_count;
          t.barrier_total = L.at_barrier;
        }
      L.at_barrier = 0;
      L.barrier_count = 0;
      progressed = true;
    }
    if (!progressed) {
      L.failed = true;
      L.error = deadlock_report(L);
    }
  }
  if (!L.failed) return;  // every thread parked
  // A failed block: destroying a suspended fiber unwinds its stack.
#if RT_ASAN
  // Under ASan the unwinding would run on a fiber stack ASan was not told about: keep the
  // fibers of a failed block suspended forever instead (their stacks leak; failures are rare).
  static auto* graveyard = new std::vector<ctx::fiber>();
  for (Thread& t : L.threads)
    if (t.fiber) graveyard->push_back(std::move(t.fiber));
#endif
  for (Thread& t : L.threads) t.fiber = ctx::fiber{};
}

// Holds the MXCSR exception flags set while emulated threads run: Boost's switch carries
// MXCSR, and a flag raised by one thread otherwise makes every later switch slower.
struct StickyFpFlags {
  unsigned saved;
  StickyFpFlags() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x3Fu); }
  ~StickyFpFlags() { _mm_setcsr(saved); }
};

}  // namespace

std::string current_thread_description() {
  Launch* L = tl_launch;
  if (!L) return "";
  std::string s = "in kernel " + L->name + ", block " + str3(L->block_idx);
  if (L->cur) s += ", thread " + str3(L->cur->idx);
  return s;
}

bool shared_range_ok(const void* p, size_t bytes) {
  Launch* L = tl_launch;
  if (!L || !tl_arena) return false;
  const char* c = static_cast<const char*>(p);
  if (c >= L->dyn_base && c + bytes <= L->dyn_base + L->smem) return true;
  return c >= tl_arena->static_map && c + bytes <= tl_arena->static_map + L->static_used;
}

void sync_threads() { (void)sync_threads_count(0); }

int sync_threads_count(int predicate) {
  Launch& L = launch_state();
  Thread& t = *L.cur;
  t.state = TState::kBarrier;
  ++L.at_barrier;
  if (predicate) ++L.barrier_count;
  yield(t);
  return t.barrier_result;
}

int sync_threads_and(int predicate) {
  (void)sync_threads_count(predicate);
  const Thread& t = *launch_state().cur;
  return t.barrier_result == t.barrier_total;
}

void warp_collective(unsigned mask, int kind, const void* in, void* out, WarpCombine combine) {
  Launch& L = launch_state();
  Thread& t = *L.cur;
  Warp& w = L.warps[static_cast<size_t>(t.warp)];
  const unsigned me = 1u << t.lane;
  auto where = [&] {
    return std::string(warp_kind_name(kind)) + " with mask " + hex(mask) + " in lane " + std::to_string(t.lane) +
           " of warp " + std::to_string(t.warp);
  };
  if (!(mask & me)) fail(where() + ": the calling lane is not in the mask");
  if (mask & ~w.existing) fail(where() + ": the mask names lanes beyond the block's last thread");
  if (mask & w.exited) fail(where() + ": the mask names lanes that already exited (" + hex(mask & w.exited) + ")");
  size_t k = 0;
  // Lanes of a divergent warp may be in different operations at once (independent thread
  // scheduling): an operation is the set of lanes with one mask; overlapping masks just wait
  // for each other, and a real cycle ends as a reported deadlock.
  for (; k < w.ops.size(); ++k)
    if (w.ops[k].mask == mask) break;
  if (k == w.ops.size()) {
    w.ops.emplace_back();
    w.ops.back().mask = mask;
    w.ops.back().kind = kind;
    w.ops.back().combine = combine;
  }
  PendingWarpOp& op = w.ops[k];
  if (op.kind != kind)
    fail(where() + ": other lanes of the mask are in " + warp_kind_name(op.kind) +
         " (divergent warp operations)");
  op.in[t.lane] = in;
  op.out[t.lane] = out;
  op.arrived |= me;
  if (op.arrived == mask) {
    op.combine(op.in, op.out, mask);
    const int base = t.warp * 32;
    for (int l = 0; l < 32; ++l)
      if ((mask >> l) & 1u) L.threads[static_cast<size_t>(base + l)].state = TState::kRunnable;
    w.ops.erase(w.ops.begin() + static_cast<long>(k));
    L.woke_warp = t.warp;
    L.woke_mask = mask;
  } else {
    t.state = TState::kWarp;
  }
  yield(t);
}

void sync_warp(unsigned mask) { warp_collective(mask, kSyncWarp, nullptr, nullptr, [](const void* const*, void* const*, unsigned) {}); }

unsigned active_mask() {
  Launch& L = launch_state();
  const Warp& w = L.warps[static_cast<size_t>(L.cur->warp)];
  return w.existing & ~w.exited;
}

void thread_fence() {}

void* block_shared_static(const void* tag, size_t bytes, size_t align) {
  Launch& L = launch_state();
  auto it = L.static_tags.find(tag);
  if (it != L.static_tags.end()) return tl_arena->static_map + it->second;
  const size_t off = round_up(L.static_used, std::max<size_t>(align, 16));
  // The device refuses the launch (too many resources requested) when static plus dynamic
  // shared memory exceeds 48 KiB without the opt-in, or the architecture's maximum with it;
  // static shared memory alone never exceeds 48 KiB.
  if (off + bytes > kSharedPerBlock)
    fail("static shared memory of " + std::to_string(off + bytes) + " bytes exceeds 48 KiB");
  const size_t cap = L.smem_opted_in ? shared_optin_limit() : kSharedPerBlock;
  if (off + bytes + L.smem > cap)
    fail("static (" + std::to_string(off + bytes) + ") plus dynamic (" + std::to_string(L.smem) +
         ") shared memory exceeds " + std::to_string(cap) + " bytes (" +
         (L.smem_opted_in ? std::string(arch_name(emulated_arch())) + "'s opt-in maximum)"
                          : std::string("48 KiB without func_set_max_dynamic_smem)")));
  L.static_tags[tag] = off;
  std::memset(tl_arena->static_map + L.static_used, 0xFF, off + bytes - L.static_used);
  L.static_used = off + bytes;
  return tl_arena->static_map + off;
}

void* dynamic_smem_base() { return launch_state().dyn_base; }

void kernel_fault(const std::string& what) { fail(what); }
int current_lane() { return launch_state().cur->lane; }
CpAsyncState& current_cp_async() { return launch_state().cur->cp; }
CpAsyncLanding launch_landing() { return launch_state().landing; }
uint64_t launch_random() { return launch_state().rng(); }

namespace {
void run_grid(const std::string& kname, dim3 grid, dim3 block, size_t smem_bytes, bool smem_opted_in,
              const detail::KernelBody& body) {
  install_fault_handler();
  if (!tl_arena) tl_arena = new SharedArena();  // per OS thread, lives as long as the thread

  Launch L;
  L.name = kname;
  L.grid = grid;
  L.block = block;
  L.smem = smem_bytes;
  L.smem_opted_in = smem_opted_in;
  L.body = body;
  L.dyn_rounded = (smem_bytes + 15) / 16 * 16;
  L.dyn_base = tl_arena->dyn_end() - L.dyn_rounded;
#if RT_ASAN
  // Exactly smem_bytes on the instrumented heap: a read one byte past it is reported.
  std::unique_ptr<char, void (*)(void*)> asan_dyn(static_cast<char*>(std::aligned_alloc(16, std::max<size_t>(L.dyn_rounded, 16))), std::free);
  __asan_poison_memory_region(asan_dyn.get() + smem_bytes, std::max<size_t>(L.dyn_rounded, 16) - smem_bytes);
  L.dyn_base = asan_dyn.get();
#endif
  L.rng.seed(current_schedule_seed() * 0x9E3779B97F4A7C15ull + 12345);
  L.landing = current_cp_async_landing();
  tl_ctx.block_dim = block;
  tl_ctx.grid_dim = grid;

  const uint64_t nblocks = uint64_t{grid.x} * grid.y * grid.z;
  std::vector<uint64_t> blocks(nblocks);
  for (uint64_t i = 0; i < nblocks; ++i) blocks[i] = i;
  const Schedule sched = current_schedule();
  if (sched == Schedule::kDescending) std::reverse(blocks.begin(), blocks.end());
  if (sched == Schedule::kShuffle) std::shuffle(blocks.begin(), blocks.end(), L.rng);

  std::vector<int> order;
  {
    StickyFpFlags fp;
    tl_launch = &L;
    for (uint64_t b : blocks) {
      const uint3 bidx{static_cast<unsigned>(b % grid.x), static_cast<unsigned>((b / grid.x) % grid.y),
                       static_cast<unsigned>(b / (uint64_t{grid.x} * grid.y))};
      run_block(L, bidx, order);
      if (L.failed) break;
    }
    L.finishing = true;
    for (Thread& t : L.threads)
      if (t.fiber) run_thread(L, t);  // returns from its loop
    tl_launch = nullptr;
  }
  if (L.failed) {
    set_last_error(Status::kLaunchFailure, L.error);
    ringtrain::fault("emulated kernel ", kname, " failed in block ", str3(L.block_idx), ", ", L.error,
                     " (schedule ", schedule_description(), ")");
  }
  const std::string canary = check_canaries();
  if (!canary.empty()) {
    set_last_error(Status::kIllegalAddress, canary);
    ringtrain::fault("emulated kernel ", kname, ": out-of-bounds write: ", canary);
  }
}
}  // namespace
}  // namespace ringtrain::gpu::emu

namespace ringtrain::gpu::detail {

Status launch_emulated(const void* kernel, const char* name, dim3 grid, dim3 block, size_t smem_bytes,
                      Stream stream, KernelBody body) {
  using namespace ::ringtrain::gpu::emu;
  const Status e = check_launch(kernel, grid, block, smem_bytes);
  const std::string kname = name ? std::string(name) : kernel_name(kernel);
  if (e != Status::kSuccess) return e;  // check_launch recorded the detail
  if (tl_launch) ringtrain::fault("emulated device: kernel ", kname, " launched from inside kernel ", tl_launch->name);
  trace_note(stream, "launch " + kname);
  const bool opted_in = dynamic_smem_attribute(kernel) >= 0;
  enqueue(stream, [kname, grid, block, smem_bytes, opted_in, body] {
    run_grid(kname, grid, block, smem_bytes, opted_in, body);
  });
  return Status::kSuccess;
}

}  // namespace ringtrain::gpu::detail
