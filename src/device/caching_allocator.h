// The caching device allocator: the cuda Allocator (src/core/tensor.h) behind every device
// Tensor. cudaMalloc and cudaFree are slow and synchronize the device, so blocks freed by
// tensors are kept and handed out again; after the first training step a step makes no
// gpu::device_alloc call at all (device_memory_stats().device_allocations stops moving).
//
// Blocks: requests up to 1 MiB are rounded up to 512 bytes, larger ones to 2 MiB; a freed
// block goes to a size-ordered free list of its device and is reused by best fit, never
// split, and only by a request it fits without much waste (a small block at most twice the
// rounded request, a large one at most a quarter more). Thread-safe (one mutex).
//
// The stream contract is PyTorch's: the allocator is safe for work on ONE stream (the compute
// stream). A block freed while kernels issued on that stream still use it may be handed out at
// once, which is correct because whatever uses it next is issued on the same stream after
// them. Memory used by another stream must not be released before that stream's work on it is
// ordered before the compute stream: communication buffers must outlive their transfers — keep
// a tensor alive until the Pending of its exchange/all_reduce_async was waited on (the NCCL
// communicator made with a compute stream then orders the compute stream after the transfer).
//
// Out of memory: the allocator releases its cached blocks to the device and retries once,
// then throws ringtrain::fault naming the requested bytes, the bytes in use and reserved.
//
// Emulated device (docs/GPU-EMULATION.md): fresh device allocations are poisoned by the
// runtime; a block handed out again from the cache is poisoned again (0xFF, with
// gpu::memset_async on the allocation stream, see set_caching_allocator_stream), so a read of
// unwritten data still shows as NaN. What does not hold for cached blocks: the guard page and
// canary sit at the end of the rounded block, not of the request, so an overrun into the
// rounding slack is not caught; tests of exact bounds allocate with gpu::device_alloc. The
// AddressSanitizer build (RINGTRAIN_EMU_ASAN) does not round: a block is exactly its request and
// serves only requests of its size, so ASan reports an overrun by one element.
#pragma once

#include <cstddef>
#include <cstdint>

#include "src/device/gpu.h"

namespace ringtrain::gpu {

struct DeviceMemoryStats {
  int64_t device_allocations = 0;  // gpu::device_alloc calls made by the allocator
  int64_t device_frees = 0;        // gpu::device_free calls made by the allocator
  int64_t requests = 0;            // allocate() calls (tensors made)
  size_t in_use = 0;               // bytes of blocks handed out (rounded sizes)
  size_t peak_in_use = 0;          // high-water mark of in_use since the last reset
  size_t reserved = 0;             // bytes held from the device: in use + cached
};

// Installs the caching allocator as the allocator of DeviceKind::kCuda (idempotent).
// Tensor::empty(shape, dtype, Device{DeviceKind::kCuda, i}) then allocates on device i
// (gpu::get_device gives the current one; a negative index means the current device).
void install_caching_allocator();

// Totals over all devices.
DeviceMemoryStats device_memory_stats();
// peak_in_use <- in_use.
void reset_peak_device_memory();
// Frees every cached (unused) block back to the device (gpu::device_free synchronizes it).
void release_cached_device_memory();

// The stream whose work uses the memory (default: the legacy default stream). Used only by the
// emulated device, to poison a reused block in stream order; with the default stream and
// deferred streams (gpu::StreamMode::kDeferred) a reused block is not poisoned, because work
// still pending on a created stream might read it. Set it back to null before destroying the
// stream.
void set_caching_allocator_stream(Stream stream);

}  // namespace ringtrain::gpu
