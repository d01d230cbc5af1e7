// Small helpers around the HDF5 C API for the checkpoint code (internal to src/checkpoint):
// H5_CHECK names the failing call, file and line with HDF5's own error stack; H5Handle closes
// an id on scope exit.
#pragma once

#include <hdf5.h>

#include <string>

#include "src/core/error.h"

namespace ringtrain::h5 {

// Turns off HDF5's automatic error printing (we report errors ourselves). Idempotent.
void quiet();
// The current HDF5 error stack as one line ("H5Dread: ...; filter returned failure"), then
// clears it.
std::string error_stack();
// True if the current error stack says a checksum (Fletcher32) did not match. Does not clear.
bool stack_has_checksum_error();

[[noreturn]] void call_failed(const char* call, const char* file, int line);

// An HDF5 id closed on scope exit with the matching H5?close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      o.id_ = -1;
    }
    return *this;
  }
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = -1;
};

}  // namespace ringtrain::h5

// H5_CHECK(call): every HDF5 call whose failure is ours (not the user's file), as a fault
// naming the call, file, line and HDF5's message. Evaluates to the call's result.
#define H5_CHECK(call)                                                                         \
  ([&]() {                                                                                     \
    auto rt_h5_rc_ = (call);                                                                   \
    if (rt_h5_rc_ < 0) ::ringtrain::h5::call_failed(#call, __FILE__, __LINE__);                \
    return rt_h5_rc_;                                                                          \
  }())
