#include "src/checkpoint/h5_util.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

namespace ringtrain::h5 {

void quiet() {
  static bool done = false;
  if (done) return;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  done = true;
}

namespace {

struct StackText {
  std::string text;
  bool checksum = false;
};

herr_t walk(unsigned n, const H5E_error2_t* e, void* data) {
  auto* s = static_cast<StackText*>(data);
  const char* desc = e->desc ? e->desc : "";
  if (std::strstr(desc, "Fletcher32") || std::strstr(desc, "checksum")) s->checksum = true;
  if (n > 0) s->text += "; ";
  s->text += (e->func_name ? e->func_name : "?");
  s->text += ": ";
  s->text += desc;
  return 0;
}

StackText walk_stack() {
  StackText s;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk, &s);
  return s;
}

}  // namespace

std::string error_stack() {
  StackText s = walk_stack();
  H5Eclear2(H5E_DEFAULT);
  return s.text.empty() ? "no HDF5 error message" : s.text;
}

bool stack_has_checksum_error() { return walk_stack().checksum; }

void call_failed(const char* call, const char* file, int line) {
  fault("HDF5 call ", call, " failed: ", error_stack(), " (", file, ":", line, ")");
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = -1;
}

// ---- file format --------------------------------------------------------------------------

void set_format_bounds(hid_t fapl) { H5_CHECK(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST)); }

Handle read_access() {
  Handle fapl(H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)));
  set_format_bounds(fapl);
  return fapl;
}

namespace {
// The most links a group keeps in its object header (HDF5's limit, stored in 16 bits), and the
// most attributes an object keeps there (ringtrain writes about 20 on the root group).
constexpr unsigned kCompactLinks = 65535;
constexpr unsigned kCompactAttrs = 1000;

void set_compact(hid_t ocpl) {
  H5_CHECK(H5Pset_link_phase_change(ocpl, kCompactLinks, kCompactLinks - 1));
  H5_CHECK(H5Pset_attr_phase_change(ocpl, kCompactAttrs, kCompactAttrs - 1));
}
}  // namespace

Handle file_create_plist() {
  Handle fcpl(H5_CHECK(H5Pcreate(H5P_FILE_CREATE)));
  set_compact(fcpl);
  return fcpl;
}

Handle group_create_plist() {
  Handle gcpl(H5_CHECK(H5Pcreate(H5P_GROUP_CREATE)));
  set_compact(gcpl);
  return gcpl;
}

std::string group_storage_problem(hid_t group) {
  H5G_info_t info;
  if (H5Gget_info(group, &info) < 0) return "its links cannot be read (" + error_stack() + ")";
  if (info.storage_type == H5G_STORAGE_TYPE_DENSE)
    return "its links are stored in a fractal heap, which ringtrain does not write (damaged or rewritten?)";
  return "";
}

std::string attribute_storage_problem(hid_t obj) {
  H5O_info_t info;
  if (H5Oget_info2(obj, &info, H5O_INFO_HDR | H5O_INFO_NUM_ATTRS) < 0)
    return "its object header cannot be read (" + error_stack() + ")";
  // Attributes are all in the header (attribute messages, type 0x000C) or all "dense".
  constexpr uint64_t kAttributeMessage = uint64_t{1} << 0x000C;
  if (info.num_attrs > 0 && (info.hdr.mesg.present & kAttributeMessage) == 0)
    return "its attributes are stored in a fractal heap, which ringtrain does not write (damaged or rewritten?)";
  return "";
}

// ---- attributes and datasets ---------------------------------------------------------------

bool single_element(hid_t attr) {
  Handle space(H5Aget_space(attr));
  const bool one = space.valid() && H5Sget_simple_extent_npoints(space) == 1;
  H5Eclear2(H5E_DEFAULT);
  return one;
}

std::string layout_problem(hid_t dset) {
  Handle dcpl(H5Dget_create_plist(dset));
  const H5D_layout_t layout = dcpl.valid() ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
  if (layout == H5D_CONTIGUOUS) return "";
  if (layout != H5D_CHUNKED) {
    H5Eclear2(H5E_DEFAULT);
    return "its storage layout is not one ringtrain writes (damaged?)";
  }
  Handle type(H5Dget_type(dset));
  const size_t elem = type.valid() ? H5Tget_size(type) : 0;
  hsize_t chunk[H5S_MAX_RANK];
  const int nd = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk);
  uint64_t bytes = elem;
  constexpr uint64_t kMaxChunkBytes = uint64_t{256} << 20;
  for (int i = 0; i < nd && bytes > 0; ++i) {
    if (chunk[i] == 0 || chunk[i] > kMaxChunkBytes / bytes) return "it claims chunks larger than 256 MiB (damaged?)";
    bytes *= chunk[i];
  }
  if (nd < 1 || bytes == 0) {
    H5Eclear2(H5E_DEFAULT);
    return "its chunks are damaged";
  }
  // The chunk index records each chunk's stored size, and HDF5 allocates that much before it
  // reads (found by tests/fuzz/fuzz_checkpoint.cpp: a chunk claiming 4 GiB). ringtrain's
  // chunks are uncompressed fp32 plus a 4-byte Fletcher32 checksum; allow a little more.
  constexpr uint64_t kFilterOverhead = 64;
  Handle space(H5Dget_space(dset));
  hsize_t chunks = 0;
  if (!space.valid() || H5Dget_num_chunks(dset, space, &chunks) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return "its chunk index is damaged";
  }
  for (hsize_t i = 0; i < chunks; ++i) {
    unsigned mask = 0;
    haddr_t addr = 0;
    hsize_t stored = 0;
    if (H5Dget_chunk_info(dset, space, i, nullptr, &mask, &addr, &stored) < 0) {
      H5Eclear2(H5E_DEFAULT);
      return "its chunk index is damaged";
    }
    if (stored > bytes + kFilterOverhead)
      return "a chunk claims " + std::to_string(stored) + " stored bytes for " + std::to_string(bytes) +
             " bytes of data (damaged?)";
  }
  return "";
}

// ---- attributes ---------------------------------------------------------------------------

void put_attr_str(hid_t obj, const char* name, const std::string& v) {
  // HDF5 has no zero-size fixed string; "" is stored as one NUL byte.
  std::string bytes = v;
  bytes.resize(std::max<size_t>(1, v.size()), '\0');
  Handle type(H5_CHECK(H5Tcopy(H5T_C_S1)));
  H5_CHECK(H5Tset_size(type, bytes.size()));
  H5_CHECK(H5Tset_strpad(type, H5T_STR_NULLPAD));
  H5_CHECK(H5Tset_cset(type, H5T_CSET_UTF8));
  Handle space(H5_CHECK(H5Screate(H5S_SCALAR)));
  Handle a(H5_CHECK(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT)));
  H5_CHECK(H5Awrite(a, type, bytes.data()));
}

std::string get_attr_str(hid_t obj, const char* name, const std::string& file) {
  if (H5Aexists(obj, name) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    input_error("checkpoint ", file, ": attribute '", name, "' is missing");
  }
  Handle a(H5Aopen(obj, name, H5P_DEFAULT));
  if (!a.valid()) input_error("checkpoint ", file, ": cannot open attribute '", name, "' (", error_stack(), ")");
  Handle ftype(H5Aget_type(a));
  if (!ftype.valid() || H5Tget_class(ftype) != H5T_STRING) {
    H5Eclear2(H5E_DEFAULT);
    input_error("checkpoint ", file, ": attribute '", name, "' is not a string");
  }
  // Exactly one string: the buffers below hold one.
  Handle space(H5Aget_space(a));
  if (!space.valid() || H5Sget_simple_extent_npoints(space) != 1) {
    H5Eclear2(H5E_DEFAULT);
    input_error("checkpoint ", file, ": attribute '", name, "' is not a single string");
  }
  const H5T_cset_t cset = H5Tget_cset(ftype);
  if (cset != H5T_CSET_ASCII && cset != H5T_CSET_UTF8) {
    H5Eclear2(H5E_DEFAULT);
    input_error("checkpoint ", file, ": attribute '", name, "' has an unknown character set");
  }
  Handle type(H5_CHECK(H5Tcopy(H5T_C_S1)));
  H5_CHECK(H5Tset_cset(type, cset));
  if (H5Tis_variable_str(ftype) > 0) {
    // The old format: legacy_problem() has checked the string's length against its heap.
    H5_CHECK(H5Tset_size(type, H5T_VARIABLE));
    char* p = nullptr;
    if (H5Aread(a, type, &p) < 0)
      input_error("checkpoint ", file, ": cannot read attribute '", name, "' (", error_stack(), ")");
    const size_t n = p ? strnlen(p, kMaxStringAttr + 1) : 0;
    std::string s(p ? p : "", n);
    H5free_memory(p);
    if (n > kMaxStringAttr)
      input_error("checkpoint ", file, ": attribute '", name, "' is longer than ", kMaxStringAttr, " bytes");
    return s;
  }
  const size_t n = H5Tget_size(ftype);
  if (n == 0 || n > kMaxStringAttr)
    input_error("checkpoint ", file, ": attribute '", name, "' claims a string of ", n, " bytes (at most ",
                kMaxStringAttr, ")");
  // Null-padded into a buffer of the type's own size: the bytes need no terminator.
  H5_CHECK(H5Tset_size(type, n));
  H5_CHECK(H5Tset_strpad(type, H5T_STR_NULLPAD));
  std::vector<char> buf(n, '\0');
  if (H5Aread(a, type, buf.data()) < 0)
    input_error("checkpoint ", file, ": cannot read attribute '", name, "' (", error_stack(), ")");
  return std::string(buf.data(), strnlen(buf.data(), n));
}

// ---- write failures -------------------------------------------------------------------------

void write_failed(const std::string& partial, uint64_t need_bytes, int saved_errno, const std::string& what) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(partial).parent_path();
  std::string os;
  struct rlimit rl {};
  if (need_bytes > 0 && ::getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      need_bytes > rl.rlim_cur) {
    os = std::string(std::strerror(EFBIG)) + ": the file-size limit (ulimit -f) is " + std::to_string(rl.rlim_cur) +
         " bytes";
  }
  struct statvfs st {};
  if (os.empty() && need_bytes > 0 && ::statvfs(dir.empty() ? "." : dir.c_str(), &st) == 0) {
    const uint64_t avail = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    if (avail < need_bytes) os = std::string(std::strerror(ENOSPC)) + ": " + std::to_string(avail) + " bytes free";
  }
  if (os.empty()) os = saved_errno != 0 ? std::string(std::strerror(saved_errno)) : "no OS error reported";
  std::string previous = "no earlier checkpoint is latest";
  {
    std::ifstream in(dir / "latest");
    std::string name;
    if (in && std::getline(in, name) && !name.empty())
      previous = "the previous checkpoint " + (dir / name).string() + " is intact and still latest";
  }
  std::error_code ec;
  fs::remove(partial, ec);
  const std::string need = need_bytes > 0 ? "; the save needs about " + std::to_string(need_bytes) + " bytes" : "";
  fault("checkpoint: writing ", partial, " failed (", os, ")", need, "; ", previous, " [", what, "]");
}

}  // namespace ringtrain::h5
