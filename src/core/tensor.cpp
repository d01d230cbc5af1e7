#include "src/core/tensor.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "src/core/error.h"

namespace ringtrain {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF64: return 8;
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kU16: return 2;
    case DType::kU32: return 4;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kF64: return "f64";
    case DType::kBF16: return "bf16";
    case DType::kF16: return "f16";
    case DType::kI32: return "i32";
    case DType::kI64: return "i64";
    case DType::kU16: return "u16";
    case DType::kU32: return "u32";
  }
  return "?";
}

std::string Device::str() const {
  return kind == DeviceKind::kCpu ? std::string("cpu") : "cuda:" + std::to_string(index);
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

namespace {
std::atomic<size_t> g_host_in_use{0};
std::atomic<size_t> g_host_peak{0};

// 64-byte aligned host memory (a cache line, and the widest AVX-512 load).
class HostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, int) override {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) throw std::bad_alloc();
    size_t now = g_host_in_use += bytes;
    size_t peak = g_host_peak.load();
    while (now > peak && !g_host_peak.compare_exchange_weak(peak, now)) {
    }
    return p;
  }
  void release(void* ptr, size_t bytes, int) override {
    g_host_in_use -= bytes;
    std::free(ptr);
  }
};

HostAllocator g_host_allocator;
Allocator* g_allocators[2] = {&g_host_allocator, nullptr};
}  // namespace

void set_allocator(DeviceKind kind, Allocator* allocator) {
  g_allocators[static_cast<int>(kind)] = allocator;
}

Allocator& allocator_for(DeviceKind kind) {
  Allocator* a = g_allocators[static_cast<int>(kind)];
  RT_CHECK(a != nullptr, "no allocator for device kind ", static_cast<int>(kind),
           " (built without the GPU layer?)");
  return *a;
}

size_t host_bytes_in_use() { return g_host_in_use.load(); }
size_t host_bytes_peak() { return g_host_peak.load(); }
void reset_host_bytes_peak() { g_host_peak.store(g_host_in_use.load()); }

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  for (int64_t d : shape) RT_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  const size_t bytes = t.nbytes();
  Allocator* alloc = &allocator_for(device.kind);
  const int index = device.index;
  void* p = alloc->allocate(bytes, index);
  t.storage_ = std::shared_ptr<void>(p, [alloc, bytes, index](void* q) {
    alloc->release(q, bytes, index);
  });
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype, Device device) {
  Tensor t = empty(std::move(shape), dtype, device);
  t.zero_();
  return t;
}

float* Tensor::f32() const {
  RT_CHECK(dtype_ == DType::kF32, "tensor is ", dtype_name(dtype_), ", not f32");
  return data<float>();
}

Tensor Tensor::view(Shape shape) const {
  RT_CHECK(shape_numel(shape) == numel(), "view ", shape_str(shape), " of ", shape_str(shape_));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::slice0(int64_t start, int64_t len) const {
  RT_CHECK(ndim() >= 1 && start >= 0 && len >= 0 && start + len <= shape_[0], "slice0(", start,
           ", ", len, ") of ", shape_str(shape_));
  Tensor t = *this;
  const int64_t row = numel() / (shape_[0] ? shape_[0] : 1);
  t.shape_[0] = len;
  t.offset_ += static_cast<size_t>(start * row) * dtype_size(dtype_);
  return t;
}

void Tensor::zero_() {
  RT_CHECK(device_.kind == DeviceKind::kCpu, "zero_ on ", device_.str(), " goes through the backend");
  if (defined()) std::memset(raw(), 0, nbytes());
}

Tensor Tensor::clone() const {
  RT_CHECK(device_.kind == DeviceKind::kCpu, "clone on ", device_.str(), " goes through the backend");
  Tensor t = empty(shape_, dtype_, device_);
  std::memcpy(t.raw(), raw(), nbytes());
  return t;
}

}  // namespace ringtrain
