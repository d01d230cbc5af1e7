// Kernel side of the emulated device (included through src/device/kernel.h, never directly).
// A kernel compiles as plain C++; each CUDA thread runs it on its own fiber. Everything that
// synchronizes (barriers, warp operations, tensor-core and async-copy primitives) is a call
// into the emulator (src/device/emu/scheduler.cpp), opaque to the optimizer, so no load of
// shared memory is cached across it.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <vector_functions.h>
#include <vector_types.h>

// The host compiler's view of the CUDA keywords (cuda's host_defines.h maps __global__,
// __device__ and __host__ to nothing). __shared__ must not silently become a local variable.
#undef __shared__
#define __shared__ __shared___is_not_emulated__use_RT_SHARED_or_dynamic_smem
// __launch_bounds__(max_threads[, min_blocks]) is kept in the kernel's own code, where the
// launch checks find it from the function pointer alone: the kernel starts with max_threads
// bytes of NOPs (patchable_function_entry: one-byte NOPs from GCC, multi-byte ones from clang;
// the unary + makes the argument a constant expression GCC 12 accepts; clang accepts no bound
// that depends on a template parameter). A launch of more threads per block is refused as on
// the device (src/device/emu/launch_checks.cpp). min_blocks only steers ptxas's registers.
#undef __launch_bounds__
#define __launch_bounds__(...) RT_EMU_LAUNCH_BOUNDS_(__VA_ARGS__, 0)
#define RT_EMU_LAUNCH_BOUNDS_(max_threads, ...) __attribute__((patchable_function_entry(+(max_threads), 0)))

namespace ringtrain::gpu::emu {

// The CUDA thread now running on this OS thread (fibers never migrate between OS threads).
struct ThreadCtx {
  uint3 thread_idx{};
  uint3 block_idx{};
  dim3 block_dim;
  dim3 grid_dim;
};
// constinit: no dynamic initialization, so every access is a plain TLS load, not a call to the
// thread-local wrapper (threadIdx is read in every kernel's inner loops).
extern thread_local constinit ThreadCtx tl_ctx;

// All of these are out-of-line and opaque: they may switch to another fiber.
void sync_threads();
// A barrier that also counts the threads whose predicate is nonzero (__syncthreads_count).
int sync_threads_count(int predicate);
int sync_threads_and(int predicate);
void sync_warp(unsigned mask);
// A warp-collective operation: every lane of `mask` calls it with the same mask and kind;
// when the last one arrives, combine(ins, outs, mask) computes every lane's result.
using WarpCombine = void (*)(const void* const* ins, void* const* outs, unsigned mask);
void warp_collective(unsigned mask, int kind, const void* in, void* out, WarpCombine combine);
unsigned active_mask();
void thread_fence();
void* block_shared_static(const void* tag, size_t bytes, size_t align);
void* dynamic_smem_base();

void mma_m16n8k16(bool bf16, float* d, const uint32_t* a, const uint32_t* b, const float* c);
void ldmatrix(int count, bool trans, uint32_t* r, const void* row);
void cp_async(void* smem_dst, const void* gmem_src, int bytes, int src_bytes);
void cp_async_commit();
void cp_async_wait(int n);

enum WarpKind : int {
  kShflIdx = 1, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kSyncWarp, kMmaBf16, kMmaF16,
  kReduceAdd, kReduceMin, kReduceMax,
  kLdmatrix = 100  // + 2 * count + trans
};

struct ShflIn {
  uint64_t bits;
  int arg;
  int width;
};
template <int kKind>
void shfl_combine(const void* const* ins, void* const* outs, unsigned mask) {
  for (int lane = 0; lane < 32; ++lane) {
    if (!((mask >> lane) & 1u)) continue;
    const ShflIn& in = *static_cast<const ShflIn*>(ins[lane]);
    const int w = in.width, base = lane & ~(w - 1), sub = lane & (w - 1);
    int src = lane;
    if constexpr (kKind == kShflIdx) src = base + (in.arg & (w - 1));
    if constexpr (kKind == kShflUp) src = sub - in.arg >= 0 ? lane - in.arg : lane;
    if constexpr (kKind == kShflDown) src = sub + in.arg < w ? lane + in.arg : lane;
    if constexpr (kKind == kShflXor) {
      src = lane ^ in.arg;
      if ((src & ~(w - 1)) > base) src = lane;  // later groups are out of reach: own value
    }
    uint64_t v;
    if (src < 0 || src > 31 || !((mask >> src) & 1u))
      v = ~uint64_t{0};  // the source lane does not take part: undefined, poisoned here
    else
      v = static_cast<const ShflIn*>(ins[src])->bits;
    *static_cast<uint64_t*>(outs[lane]) = v;
  }
}

template <int kKind, typename T>
T shfl(unsigned mask, T var, int arg, int width) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
  ShflIn in{0, arg, width};
  std::memcpy(&in.bits, &var, sizeof(T));
  uint64_t out = 0;
  warp_collective(mask, kKind, &in, &out, &shfl_combine<kKind>);
  T r;
  std::memcpy(&r, &out, sizeof(T));
  return r;
}

template <int kKind>
void vote_combine(const void* const* ins, void* const* outs, unsigned mask) {
  unsigned ballot = 0;
  for (int lane = 0; lane < 32; ++lane)
    if (((mask >> lane) & 1u) && *static_cast<const int*>(ins[lane]) != 0) ballot |= 1u << lane;
  unsigned r = ballot;
  if constexpr (kKind == kAny) r = ballot != 0;
  if constexpr (kKind == kAll) r = ballot == mask;
  for (int lane = 0; lane < 32; ++lane)
    if ((mask >> lane) & 1u) *static_cast<unsigned*>(outs[lane]) = r;
}

template <int kKind>
unsigned vote(unsigned mask, int predicate) {
  int in = predicate != 0;
  unsigned out = 0;
  warp_collective(mask, kKind, &in, &out, &vote_combine<kKind>);
  return out;
}

template <int kKind, typename T>
void reduce_combine(const void* const* ins, void* const* outs, unsigned mask) {
  T r{};
  bool first = true;
  for (int lane = 0; lane < 32; ++lane) {
    if (!((mask >> lane) & 1u)) continue;
    const T v = *static_cast<const T*>(ins[lane]);
    if (first) r = v;
    else if constexpr (kKind == kReduceAdd) r = static_cast<T>(r + v);
    else if constexpr (kKind == kReduceMin) r = v < r ? v : r;
    else r = v > r ? v : r;
    first = false;
  }
  for (int lane = 0; lane < 32; ++lane)
    if ((mask >> lane) & 1u) *static_cast<T*>(outs[lane]) = r;
}

template <int kKind, typename T>
T warp_reduce(unsigned mask, T value) {
  T out{};
  warp_collective(mask, kKind, &value, &out, &reduce_combine<kKind, T>);
  return out;
}

}  // namespace ringtrain::gpu::emu

#define threadIdx (::ringtrain::gpu::emu::tl_ctx.thread_idx)
#define blockIdx (::ringtrain::gpu::emu::tl_ctx.block_idx)
#define blockDim (::ringtrain::gpu::emu::tl_ctx.block_dim)
#define gridDim (::ringtrain::gpu::emu::tl_ctx.grid_dim)

inline constexpr int warpSize = 32;

#define RT_SHARED(type, name, dims)                                                        \
  static char rt_shared_tag_##name;                                                        \
  type(&name) dims = *reinterpret_cast<type(*) dims>(                                      \
      ::ringtrain::gpu::emu::block_shared_static(&rt_shared_tag_##name, sizeof(type dims), \
                                                 alignof(type)))

inline void __syncthreads() { ::ringtrain::gpu::emu::sync_threads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::ringtrain::gpu::emu::sync_warp(mask); }
inline int __syncthreads_count(int predicate) { return ::ringtrain::gpu::emu::sync_threads_count(predicate); }
inline int __syncthreads_or(int predicate) { return ::ringtrain::gpu::emu::sync_threads_count(predicate) != 0; }
inline int __syncthreads_and(int predicate) { return ::ringtrain::gpu::emu::sync_threads_and(predicate); }
inline void __threadfence() { ::ringtrain::gpu::emu::thread_fence(); }
inline void __threadfence_block() { ::ringtrain::gpu::emu::thread_fence(); }
inline unsigned __activemask() { return ::ringtrain::gpu::emu::active_mask(); }

template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
  return ::ringtrain::gpu::emu::shfl<::ringtrain::gpu::emu::kShflIdx>(mask, var, src_lane, width);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return ::ringtrain::gpu::emu::shfl<::ringtrain::gpu::emu::kShflUp>(mask, var, static_cast<int>(delta), width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return ::ringtrain::gpu::emu::shfl<::ringtrain::gpu::emu::kShflDown>(mask, var, static_cast<int>(delta), width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  return ::ringtrain::gpu::emu::shfl<::ringtrain::gpu::emu::kShflXor>(mask, var, lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return ::ringtrain::gpu::emu::vote<::ringtrain::gpu::emu::kBallot>(mask, predicate);
}
inline int __any_sync(unsigned mask, int predicate) {
  return static_cast<int>(::ringtrain::gpu::emu::vote<::ringtrain::gpu::emu::kAny>(mask, predicate));
}
inline int __all_sync(unsigned mask, int predicate) {
  return static_cast<int>(::ringtrain::gpu::emu::vote<::ringtrain::gpu::emu::kAll>(mask, predicate));
}

// sm_80 warp reductions.
inline unsigned __reduce_add_sync(unsigned mask, unsigned v) {
  return ::ringtrain::gpu::emu::warp_reduce<::ringtrain::gpu::emu::kReduceAdd>(mask, v);
}
inline int __reduce_add_sync(unsigned mask, int v) {
  return ::ringtrain::gpu::emu::warp_reduce<::ringtrain::gpu::emu::kReduceAdd>(mask, v);
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v) {
  return ::ringtrain::gpu::emu::warp_reduce<::ringtrain::gpu::emu::kReduceMin>(mask, v);
}
inline int __reduce_min_sync(unsigned mask, int v) {
  return ::ringtrain::gpu::emu::warp_reduce<::ringtrain::gpu::emu::kReduceMin>(mask, v);
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v) {
  return ::ringtrain::gpu::emu::warp_reduce<::ringtrain::gpu::emu::kReduceMax>(mask, v);
}
inline int __reduce_max_sync(unsigned mask, int v) {
  return ::ringtrain::gpu::emu::warp_reduce<::ringtrain::gpu::emu::kReduceMax>(mask, v);
}

// Atomics. The emulator runs one block at a time on one OS thread, so these never race; they
// still go through std::atomic_ref so that a future multi-threaded emulator stays correct.
template <typename T>
inline T __rt_atomic_add(T* p, T v) {
  std::atomic_ref<T> r(*p);
  T old = r.load();
  while (!r.compare_exchange_weak(old, static_cast<T>(old + v))) {
  }
  return old;
}
inline float atomicAdd(float* p, float v) { return __rt_atomic_add(p, v); }
inline double atomicAdd(double* p, double v) { return __rt_atomic_add(p, v); }
inline int atomicAdd(int* p, int v) { return __rt_atomic_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __rt_atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return __rt_atomic_add(p, v); }
template <typename T>
inline T __rt_atomic_max(T* p, T v) {
  std::atomic_ref<T> r(*p);
  T old = r.load();
  while (old < v && !r.compare_exchange_weak(old, v)) {
  }
  return old;
}
template <typename T>
inline T __rt_atomic_min(T* p, T v) {
  std::atomic_ref<T> r(*p);
  T old = r.load();
  while (v < old && !r.compare_exchange_weak(old, v)) {
  }
  return old;
}
inline int atomicMax(int* p, int v) { return __rt_atomic_max(p, v); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return __rt_atomic_max(p, v); }
inline int atomicMin(int* p, int v) { return __rt_atomic_min(p, v); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return __rt_atomic_min(p, v); }
template <typename T>
inline T __rt_atomic_cas(T* p, T compare, T val) {
  std::atomic_ref<T> r(*p);
  T expected = compare;
  r.compare_exchange_strong(expected, val);
  return expected;  // the old value, whether or not it was replaced
}
inline int atomicCAS(int* p, int compare, int val) { return __rt_atomic_cas(p, compare, val); }
inline unsigned atomicCAS(unsigned* p, unsigned compare, unsigned val) { return __rt_atomic_cas(p, compare, val); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare, unsigned long long val) {
  return __rt_atomic_cas(p, compare, val);
}
inline int atomicExch(int* p, int v) { return std::atomic_ref<int>(*p).exchange(v); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).exchange(v); }
inline float atomicExch(float* p, float v) { return std::atomic_ref<float>(*p).exchange(v); }

// Math intrinsics. The device's fast versions (__expf, __logf, __sinf, __cosf, __fdividef,
// rsqrtf) are approximate there and exact-rounded here; tests of kernels that use them compare
// against the CPU reference with the tolerance table, never bitwise with a GPU.
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / std::sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : (x != x ? 0.0f : x)); }
inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline float __uint_as_float(unsigned x) { float f; std::memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline unsigned __float_as_uint(float x) { unsigned i; std::memcpy(&i, &x, 4); return i; }
inline int __float2int_rn(float x) { return static_cast<int>(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline unsigned __float2uint_rn(float x) { return static_cast<unsigned>(std::nearbyint(x)); }
// Read-only cache loads are plain loads here.
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }

namespace ringtrain::gpu {

template <typename T>
inline T* dynamic_smem() {
  return static_cast<T*>(emu::dynamic_smem_base());
}

// The tensor-core and async-copy primitives; their semantics and fragment layouts are in
// src/device/kernel.h (CUDA side) and src/device/emu/tensor_core.cpp, cp_async.cpp (emulation).
inline void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  emu::mma_m16n8k16(true, d, a, b, c);
}
inline void mma_m16n8k16_f16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  emu::mma_m16n8k16(false, d, a, b, c);
}
inline void ldmatrix_x1(uint32_t (&r)[1], const void* row) { emu::ldmatrix(1, false, r, row); }
inline void ldmatrix_x2(uint32_t (&r)[2], const void* row) { emu::ldmatrix(2, false, r, row); }
inline void ldmatrix_x4(uint32_t (&r)[4], const void* row) { emu::ldmatrix(4, false, r, row); }
inline void ldmatrix_x1_trans(uint32_t (&r)[1], const void* row) { emu::ldmatrix(1, true, r, row); }
inline void ldmatrix_x2_trans(uint32_t (&r)[2], const void* row) { emu::ldmatrix(2, true, r, row); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) { emu::ldmatrix(4, true, r, row); }
template <int kBytes>
inline void cp_async(void* smem_dst, const void* gmem_src, int src_bytes = kBytes) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async copies 4, 8 or 16 bytes");
  emu::cp_async(smem_dst, gmem_src, kBytes, src_bytes);
}
inline void cp_async_commit() { emu::cp_async_commit(); }
template <int N>
inline void cp_async_wait() {
  emu::cp_async_wait(N);
}

}  // namespace ringtrain::gpu
