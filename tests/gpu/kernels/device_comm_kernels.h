// Kernels that produce and transform data on a given stream, for the device communicator tests
// (tests/gpu/test_device_comm.cpp).
#pragma once

#include <cstddef>

#include "src/device/gpu.h"

namespace ringtrain::test {

// x[i] = x[i] * a + b for i < n, on `stream`.
gpu::Status launch_axpb(float* x, size_t n, float a, float b, gpu::Stream stream);

}  // namespace ringtrain::test
