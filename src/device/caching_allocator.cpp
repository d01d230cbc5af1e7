// The caching device allocator (see caching_allocator.h for the contract).
#include "src/device/caching_allocator.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>

#include "src/core/error.h"
#include "src/core/tensor.h"

namespace ringtrain::gpu {

namespace {

constexpr size_t kSmallLimit = size_t{1} << 20;  // requests up to 1 MiB are "small"
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = size_t{2} << 20;

// Under AddressSanitizer (emulated device, RINGTRAIN_EMU_ASAN) blocks have exactly the
// requested size and are reused only by requests of that size, so ASan sees every block's true
// end and an overrun by one element is reported; the rounding below would hide it.
#if defined(RINGTRAIN_EMU_ASAN)
constexpr bool kExactSizes = true;
#else
constexpr bool kExactSizes = false;
#endif

size_t round_size(size_t bytes) {
  // A zero-byte tensor still gets a distinct, non-null block (Tensor::defined() relies on it).
  bytes = std::max<size_t>(bytes, 1);
  if (kExactSizes) return bytes;
  if (bytes <= kSmallLimit) return (bytes + kSmallRound - 1) / kSmallRound * kSmallRound;
  return (bytes + kLargeRound - 1) / kLargeRound * kLargeRound;
}

// Whether a cached block of `block` bytes may serve a request rounded to `want` bytes: blocks
// are never split, so a much larger block is left for a request of its own size.
bool fits(size_t block, size_t want) {
  if (kExactSizes) return block == want;
  if (block < want) return false;
  if (want <= kSmallLimit) return block <= kSmallLimit && block <= 2 * want;
  return block - want <= want / 4;
}

// Makes `device` current for the guard's lifetime (cudaMalloc/cudaFree act on the current one).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    CUDA_CHECK(get_device(&previous_));
    if (device != previous_) {
      CUDA_CHECK(set_device(device));
      switched_ = true;
    }
  }
  ~DeviceGuard() {
    if (switched_) set_device(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool switched_ = false;
};

class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, int device_index) override {
    const int device = resolve(device_index);
    const size_t rounded = round_size(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.requests;
    std::multimap<size_t, void*>& cache = free_[device];
    void* ptr = nullptr;
    size_t size = rounded;
    auto it = cache.lower_bound(rounded);  // best fit: the smallest cached block that is large enough
    if (it != cache.end() && fits(it->first, rounded)) {
      size = it->first;
      ptr = it->second;
      cache.erase(it);
      poison_reused(ptr, size);
    } else {
      ptr = device_alloc_or_throw(device, bytes, rounded);
      stats_.reserved += rounded;
    }
    live_[ptr] = Live{device, size};
    stats_.in_use += size;
    stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
    return ptr;
  }

  void release(void* ptr, size_t bytes, int) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(ptr);
    RT_CHECK(it != live_.end(), "caching device allocator: release of a pointer it did not hand out");
    RT_CHECK(bytes <= it->second.size, "caching device allocator: release of ", bytes, " bytes from a block of ",
             it->second.size);
    free_[it->second.device].emplace(it->second.size, ptr);
    stats_.in_use -= it->second.size;
    live_.erase(it);
  }

  DeviceMemoryStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_in_use = stats_.in_use;
  }
  void release_cached() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }
  void set_stream(Stream stream) {
    std::lock_guard<std::mutex> lock(mu_);
    stream_ = stream;
  }

 private:
  struct Live {
    int device;
    size_t size;
  };

  static int resolve(int device_index) {
    if (device_index >= 0) return device_index;
    int current = 0;
    CUDA_CHECK(get_device(&current));
    return current;
  }

  // The emulated device poisons fresh allocations; a reused block is poisoned again, in the
  // order of the stream that uses it, so reads of unwritten data keep showing as NaN.
  void poison_reused(void* ptr, size_t size) {
    if constexpr (kEmulated) {
      if (stream_) {
        CUDA_CHECK(memset_async(ptr, 0xFF, size, stream_));
      } else if (current_stream_mode() == StreamMode::kEager) {
        CUDA_CHECK(memset(ptr, 0xFF, size));
      }
    } else {
      (void)ptr;
      (void)size;
    }
  }

  void* device_alloc_or_throw(int device, size_t bytes, size_t rounded) {
    DeviceGuard guard(device);
    void* ptr = nullptr;
    ++stats_.device_allocations;
    Status s = device_alloc(&ptr, rounded);
    if (s == Status::kSuccess) return ptr;
    get_last_error();  // an out-of-memory error is not sticky: clear it before the retry
    release_cached_locked();
    ++stats_.device_allocations;
    s = device_alloc(&ptr, rounded);
    if (s == Status::kSuccess) return ptr;
    const std::string detail = last_error_detail();
    get_last_error();
    fault("caching device allocator: out of memory on device ", device, ": ", bytes, " bytes requested (",
          rounded, " rounded), ", stats_.in_use, " bytes in use, ", stats_.reserved,
          " bytes reserved after releasing the cache and retrying once (", error_name(s),
          detail.empty() ? "" : ": ", detail, ")");
  }

  void release_cached_locked() {
    for (auto& [device, cache] : free_) {
      if (cache.empty()) continue;
      DeviceGuard guard(device);
      for (const auto& [size, ptr] : cache) {
        ++stats_.device_frees;
        CUDA_CHECK(device_free(ptr));
        stats_.reserved -= size;
      }
      cache.clear();
    }
  }

  std::mutex mu_;
  std::map<int, std::multimap<size_t, void*>> free_;  // per device: cached blocks by size
  std::unordered_map<void*, Live> live_;               // handed out
  DeviceMemoryStats stats_;
  Stream stream_ = nullptr;
};

// Never destroyed: tensors may outlive static destruction, and the CUDA runtime may be gone.
CachingAllocator& instance() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

}  // namespace

void install_caching_allocator() { set_allocator(DeviceKind::kCuda, &instance()); }
DeviceMemoryStats device_memory_stats() { return instance().stats(); }
void reset_peak_device_memory() { instance().reset_peak(); }
void release_cached_device_memory() { instance().release_cached(); }
void set_caching_allocator_stream(Stream stream) { instance().set_stream(stream); }

}  // namespace ringtrain::gpu
