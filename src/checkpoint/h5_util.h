// Small helpers around the HDF5 C API for the checkpoint code (and the attention maps of
// src/eval/attend_command.cpp): H5_CHECK names the failing call, file and line with HDF5's own
// error stack; H5Handle closes an id on scope exit; the file format bounds every checkpoint is
// written and read with; string attributes; and the checks that keep a damaged file of the old
// format away from the parts of libhdf5 1.10 that trust it (tests/fuzz/fuzz_checkpoint.cpp
// found them).
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
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

// ---- file format --------------------------------------------------------------------------

// Sets the library-version bounds [V18, LATEST] on a file-access property list. Files created
// with it use the 1.8+ format: superblock v2, object headers v2 with links stored in them, and
// a checksum on every piece of metadata, so a flipped byte in metadata is a checksum error
// before libhdf5 trusts it (the 1.0 format, HDF5's default, has none). h5py and HDF5 >= 1.10
// read these files. Writers and readers both use it (checkpoint.cpp).
void set_format_bounds(hid_t fapl);
// Creation property lists that keep every link and attribute inside its object header, which
// the 1.8+ format checksums, instead of the "dense" fractal heaps and B-trees HDF5 switches to
// past 8 links or attributes (a fractal heap's blocks carry no checksum, and libhdf5 1.10 frees
// a wild pointer on a damaged one: found by tests/fuzz/fuzz_checkpoint.cpp). For H5Fcreate (the
// root group: ~20 attributes) and H5Gcreate2 (one link per tensor).
Handle file_create_plist();
Handle group_create_plist();
// "" if `group` (an open group) keeps its links as file_create_plist/group_create_plist make
// it (or in the old format's symbol table, which legacy_problem() checks), else why not.
std::string group_storage_problem(hid_t group);
// The same for the attributes of an open object (the root group): "" if they are kept in its
// object header (or it has none), else why not.
std::string attribute_storage_problem(hid_t obj);
// A file-access property list for reading with the default (POSIX) driver and the bounds
// above. Files of the old format (written before the bounds were set) still open with it.
Handle read_access();

// ---- attributes and datasets ---------------------------------------------------------------

// True if the attribute holds exactly one element (a reader's buffer holds one). Clears the
// error stack.
bool single_element(hid_t attr);
// "" if a dataset is stored as ringtrain writes it, chunked (or contiguous) with chunks of at
// most 256 MiB, else why not. A damaged chunk size would otherwise make libhdf5 allocate it.
std::string layout_problem(hid_t dset);

// The longest string attribute a reader accepts (the resolved config YAML is a few KB).
inline constexpr size_t kMaxStringAttr = size_t{4} << 20;

// A scalar attribute holding v as a fixed-length UTF-8 string (no global heap: a damaged
// variable-length string used to hang libhdf5's global-heap reader).
void put_attr_str(hid_t obj, const char* name, const std::string& v);
// Reads a scalar string attribute, fixed-length (this format) or variable-length (checkpoints
// written before). Anything else, more than one element, or longer than kMaxStringAttr is an
// input error naming `file` and the attribute. Variable-length strings must have passed
// legacy_problem() (open_serial does that) before this reads them.
std::string get_attr_str(hid_t obj, const char* name, const std::string& file);

// ---- write failures -------------------------------------------------------------------------

// Raises the fault for a checkpoint save that failed while writing `partial`: names the file,
// the OS error (the file-size limit or the free space when they explain it, else strerror of
// `saved_errno`), the bytes the save needs (`need_bytes`, 0 if unknown), the checkpoint still
// `latest` in the directory (if any), and what went wrong below (`what`). Removes `partial`.
[[noreturn]] void write_failed(const std::string& partial, uint64_t need_bytes, int saved_errno,
                               const std::string& what);

}  // namespace ringtrain::h5

// H5_CHECK(call): every HDF5 call whose failure is ours (not the user's file), as a fault
// naming the call, file, line and HDF5's message. Evaluates to the call's result.
#define H5_CHECK(call)                                                                         \
  ([&]() {                                                                                     \
    auto rt_h5_rc_ = (call);                                                                   \
    if (rt_h5_rc_ < 0) ::ringtrain::h5::call_failed(#call, __FILE__, __LINE__);                \
    return rt_h5_rc_;                                                                          \
  }())
