// The CUDA backend: kernels/backend.h on a CUDA device through the GPU layer (a real GPU with
// RINGTRAIN_GPU=cuda, the emulated one with RINGTRAIN_GPU=emulate). Work runs in order on one
// compute stream; communicators made for it run on their own streams and order themselves
// against it with events (src/device/nccl_communicator.h).
#pragma once

#include <memory>

#include "kernels/backend.h"
#include "src/device/gpu.h"

namespace ringtrain {

// Backend on device `index`; installs the caching device allocator.
std::unique_ptr<Backend> make_cuda_backend(Precision precision, int index);
// The compute stream of a backend made by make_cuda_backend.
gpu::Stream cuda_compute_stream(Backend& backend);
// Makes device: cuda available to the layers above (kernels/gpu_runtime.h).
void register_cuda_runtime();

}  // namespace ringtrain
