// Tensor: shape, dtype, device, and a view into shared storage. No autograd: layers own their
// activations and gradients explicitly. Storage comes from the device's allocator (host
// memory for the CPU backend; the GPU layer registers its own for cuda).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace ringtrain {

enum class DType { kF32, kF64, kBF16, kF16, kI32, kI64, kU16, kU32 };
size_t dtype_size(DType t);
const char* dtype_name(DType t);

enum class DeviceKind { kCpu, kCuda };
struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;
  bool operator==(const Device&) const = default;
  std::string str() const;
};
inline Device cpu() { return Device{}; }

// Allocates and frees raw storage of one device kind. The CPU allocator is built in; the GPU
// layer installs the cuda one (a caching allocator) with set_allocator.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes, int device_index) = 0;
  virtual void release(void* ptr, size_t bytes, int device_index) = 0;
};
void set_allocator(DeviceKind kind, Allocator* allocator);
Allocator& allocator_for(DeviceKind kind);
// Bytes currently held and the high-water mark of host tensor storage.
size_t host_bytes_in_use();
size_t host_bytes_peak();
void reset_host_bytes_peak();  // the peak restarts from what is in use now

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(Shape shape, DType dtype = DType::kF32, Device device = cpu());
  static Tensor zeros(Shape shape, DType dtype = DType::kF32, Device device = cpu());

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(static_cast<size_t>(i < 0 ? i + ndim() : i)); }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool defined() const { return storage_ != nullptr; }

  void* raw() const { return static_cast<char*>(storage_.get()) + offset_; }
  template <typename T>
  T* data() const {
    return static_cast<T*>(raw());
  }
  float* f32() const;  // checks dtype

  // Same storage, new shape with the same element count.
  Tensor view(Shape shape) const;
  // Rows [start, start+len) along dimension 0, sharing storage.
  Tensor slice0(int64_t start, int64_t len) const;
  void zero_();  // host tensors; device tensors go through the backend
  Tensor clone() const;  // host tensors

 private:
  Shape shape_;
  DType dtype_ = DType::kF32;
  Device device_;
  std::shared_ptr<void> storage_;
  size_t offset_ = 0;
};

}  // namespace ringtrain
