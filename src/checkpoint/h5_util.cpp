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

// ---- files of the old format ----------------------------------------------------------------
//
// Field layouts from the HDF5 file format specification (version 0/1 superblock, version 1
// object header, attribute message, datatype and dataspace messages, local and global heaps).

namespace {

// The file's bytes by offset. Past the end reads zeros, as libhdf5's POSIX driver does.
class RawFile {
 public:
  explicit RawFile(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ >= 0) {
      const off_t end = ::lseek(fd_, 0, SEEK_END);
      size_ = end > 0 ? static_cast<uint64_t>(end) : 0;
    }
  }
  ~RawFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawFile(const RawFile&) = delete;
  RawFile& operator=(const RawFile&) = delete;
  bool ok() const { return fd_ >= 0; }
  uint64_t size() const { return size_; }
  std::vector<uint8_t> get(uint64_t off, size_t n) const {
    std::vector<uint8_t> out(n, 0);
    size_t done = 0;
    while (done < n && off + done < size_) {
      const ssize_t r = ::pread(fd_, out.data() + done, n - done, static_cast<off_t>(off + done));
      if (r <= 0) break;
      done += static_cast<size_t>(r);
    }
    return out;
  }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

constexpr uint64_t kUndefined = ~uint64_t{0};
constexpr size_t kMaxChunk = size_t{64} << 20;  // no object-header chunk or heap of ours is near this

uint64_t align8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

struct Legacy {
  const RawFile& f;
  uint64_t base = 0;  // libhdf5 takes the superblock's position as the base address
  int so = 8, sl = 8;  // sizes of offsets and lengths

  uint64_t addr(const uint8_t* p) const {
    const uint64_t v = le(p, so);
    return (so < 8 && v == (uint64_t{1} << (8 * so)) - 1) ? kUndefined : v;
  }

  // Checks one global-heap object that a variable-length string of `len` bytes points to.
  std::string heap_string(uint64_t coll, uint32_t idx, uint64_t len, const std::string& attr) const {
    const std::string where = "attribute '" + attr + "': ";
    if (len > kMaxStringAttr) return where + "a string of " + std::to_string(len) + " bytes (damaged)";
    if (coll == kUndefined || coll > f.size()) return where + "its string's heap address is outside the file";
    const size_t hdr = 8 + static_cast<size_t>(sl);
    const std::vector<uint8_t> h = f.get(base + coll, hdr);
    if (std::memcmp(h.data(), "GCOL", 4) != 0 || h[4] != 1) return where + "its string's heap is damaged";
    const uint64_t size = le(h.data() + 8, sl);
    if (size < hdr || size > kMaxChunk) return where + "its string's heap claims " + std::to_string(size) + " bytes";
    const std::vector<uint8_t> c = f.get(base + coll, static_cast<size_t>(size));
    // Walk the objects as libhdf5's loader does; every step must move forward.
    const uint64_t objhdr = 8 + static_cast<uint64_t>(sl);
    uint64_t p = hdr;
    bool found = false;
    while (p < size) {
      if (p + objhdr > size) break;  // a tail too small for a header: free space
      const uint32_t i = static_cast<uint32_t>(le(&c[p], 2));
      const uint64_t osize = le(&c[p + 8], sl);
      const uint64_t need = i > 0 ? objhdr + align8(osize) : osize;
      if (need == 0 || osize > size) return where + "its string's heap has a damaged object list";
      if (i == idx && i > 0) {
        if (p + objhdr + osize > size || osize != len) return where + "its string does not fit its heap object";
        found = true;
      }
      p += need;
    }
    if (!found && len > 0) return where + "its string is missing from its heap";
    return "";
  }

  // Checks one attribute message body (`m`, `n` bytes) of the root group's object header.
  std::string attribute(const uint8_t* m, size_t n) const {
    if (n < 8) return "an attribute message is truncated";
    const int version = m[0];
    if (version < 1 || version > 3) return "an attribute message has version " + std::to_string(version);
    if (version >= 2 && m[1] != 0) return "an attribute message uses shared types or spaces";
    const uint64_t name_len = le(m + 2, 2), dt_len = le(m + 4, 2), ds_len = le(m + 6, 2);
    uint64_t p = version == 3 ? 9 : 8;
    auto step = [&](uint64_t len) { return version == 1 ? align8(len) : len; };
    if (name_len == 0 || p + name_len > n || m[p + name_len - 1] != 0 ||
        std::strlen(reinterpret_cast<const char*>(m + p)) + 1 != name_len)
      return "an attribute name is damaged";
    const std::string name(reinterpret_cast<const char*>(m + p));
    const std::string where = "attribute '" + name + "': ";
    p += step(name_len);
    // Datatype: class and version, three bytes of class bits, the element size, properties.
    if (p + dt_len > n || dt_len < 8) return where + "its type is damaged";
    const uint8_t* dt = m + p;
    const int cls = dt[0] & 0x0f;
    uint64_t elem = le(dt + 4, 4);
    bool vlen_string = false;
    switch (cls) {
      case 0:  // fixed-point: bit offset and precision
        if (dt_len < 12) return where + "its type is damaged";
        break;
      case 1:  // floating-point: bit offset, precision, exponent and mantissa fields, bias
        if (dt_len < 20) return where + "its type is damaged";
        break;
      case 3:  // fixed-length string: no properties
        break;
      case 9:  // variable-length: a string of 1-byte characters over a fixed-point base type
        vlen_string = (dt[1] & 0x0f) == 1;
        if (!vlen_string || dt_len < 20 || (dt[8] & 0x0f) != 0 || le(dt + 12, 4) != 1)
          return where + "its type is not a string of bytes";
        elem = 4 + static_cast<uint64_t>(so) + 4;  // length, heap address, index
        break;
      default:
        return where + "its type (class " + std::to_string(cls) + ") is not one ringtrain writes";
    }
    if (elem == 0) return where + "its type has size 0";
    p += step(dt_len);
    // Dataspace: version 1 (8-byte header) or 2 (4 bytes), dimensions, maybe maximum dimensions.
    if (p + ds_len > n || ds_len < 4) return where + "its shape is damaged";
    const uint8_t* ds = m + p;
    const int ds_version = ds[0], rank = ds[1], flags = ds[2];
    if ((ds_version != 1 && ds_version != 2) || rank > 32 || (flags & ~1) != 0)
      return where + "its shape is damaged";
    const uint64_t ds_hdr = ds_version == 1 ? 8 : 4;
    if (ds_hdr + static_cast<uint64_t>(rank) * sl * ((flags & 1) ? 2 : 1) > ds_len) return where + "its shape is damaged";
    uint64_t count = 1;
    if (ds_version == 2 && ds[3] == 2) {
      count = 0;  // null dataspace
    } else if (ds_version == 2 && ds[3] > 2) {
      return where + "its shape is damaged";
    }
    for (int d = 0; d < rank && count > 0; ++d) {
      const uint64_t dim = le(ds + ds_hdr + static_cast<uint64_t>(d) * sl, sl);
      if (dim != 0 && count > kMaxChunk / dim) return where + "its shape claims more elements than it holds";
      count *= dim;
    }
    p += step(ds_len);
    // The data: libhdf5 copies count x elem bytes from here whatever the message's size.
    if (count > 0 && (elem > n || count > (n - std::min<uint64_t>(p, n)) / elem))
      return where + "its data is larger than its message";
    if (vlen_string) {
      for (uint64_t e = 0; e < count; ++e) {
        const uint8_t* v = m + p + e * elem;
        const uint64_t len = le(v, 4);
        if (len == 0) continue;
        const std::string why =
            heap_string(addr(v + 4), static_cast<uint32_t>(le(v + 4 + so, 4)), len, name);
        if (!why.empty()) return why;
      }
    }
    return "";
  }

  // Walks the root group's version-1 object header (and its continuation chunks).
  std::string root_attributes(uint64_t oh) const {
    if (oh == kUndefined || oh >= f.size()) return "the root group's address is outside the file";
    const std::vector<uint8_t> prefix = f.get(base + oh, 16);
    if (std::memcmp(prefix.data(), "OHDR", 4) == 0) return "";  // version 2: checksummed
    if (prefix[0] != 1) return "the root group's object header is damaged";
    std::vector<std::pair<uint64_t, uint64_t>> chunks{{base + oh + 16, le(prefix.data() + 8, 4)}};
    for (size_t k = 0; k < chunks.size(); ++k) {
      if (k >= 64) return "the root group's object header has too many continuations";
      const auto [at, len] = chunks[k];
      if (len > kMaxChunk) return "the root group's object header claims " + std::to_string(len) + " bytes";
      const std::vector<uint8_t> c = f.get(at, static_cast<size_t>(len));
      for (uint64_t p = 0; p + 8 <= len;) {
        const uint64_t type = le(&c[p], 2), size = le(&c[p + 2], 2), flags = c[p + 4];
        if (p + 8 + size > len) return "the root group's object header is damaged";
        const uint8_t* body = c.data() + p + 8;
        if (type == 0x0010) {  // continuation: address and length of the next chunk
          if (size < static_cast<uint64_t>(so + sl)) return "the root group's object header is damaged";
          const uint64_t next = addr(body);
          if (next == kUndefined || next >= f.size()) return "a continuation of the root group's header is outside the file";
          chunks.emplace_back(base + next, le(body + so, sl));
        } else if (type == 0x000C) {
          if (flags & 0x02) return "an attribute of the root group is stored shared";
          const std::string why = attribute(body, static_cast<size_t>(size));
          if (!why.empty()) return why;
        }
        p += 8 + size;
      }
    }
    return "";
  }

  // Every local heap ("HEAP", version 0) in the file: its data block must end in a NUL.
  std::string local_heaps() const {
    const size_t window = size_t{4} << 20;
    const size_t prefix = 8 + 2 * static_cast<size_t>(sl) + static_cast<size_t>(so);
    for (uint64_t off = 0; off < f.size(); off += window) {
      const std::vector<uint8_t> w = f.get(off, window + 3);
      for (size_t i = 0; i < window && off + i < f.size(); ++i) {
        if (w[i] != 'H' || std::memcmp(&w[i], "HEAP", 4) != 0) continue;
        const std::vector<uint8_t> h = f.get(off + i, prefix);
        if (h[4] != 0) continue;  // not a heap libhdf5 would accept
        const uint64_t size = le(h.data() + 8, sl);
        const uint64_t data = addr(h.data() + 8 + 2 * sl);
        if (size == 0 || data == kUndefined || base + data >= f.size()) continue;  // libhdf5 refuses these itself
        if (size > f.size() || base + data > f.size() - size) continue;  // read past the end: zeros
        if (f.get(base + data + size - 1, 1)[0] != 0) return "a group's name heap is damaged (a name runs off its end)";
      }
    }
    return "";
  }
};

}  // namespace

std::string legacy_problem(const std::string& path, bool group_names) {
  RawFile f(path);
  if (!f.ok()) return "";  // opening it will say why
  static const uint8_t kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  // libhdf5 looks for the superblock at 0, 512, 1024, 2048, ...
  for (uint64_t at = 0; at + 8 <= f.size(); at = at == 0 ? 512 : at * 2) {
    const std::vector<uint8_t> sb = f.get(at, 128);
    if (std::memcmp(sb.data(), kSignature, 8) != 0) continue;
    const int version = sb[8];
    if (version >= 2) return "";  // the 1.8+ format: metadata carries checksums
    Legacy l{f};
    l.base = at;
    l.so = sb[13];
    l.sl = sb[14];
    if ((l.so != 2 && l.so != 4 && l.so != 8) || (l.sl != 2 && l.sl != 4 && l.sl != 8))
      return "checkpoint " + path + " is damaged (superblock: offsets of " + std::to_string(l.so) + " bytes)";
    // Four addresses (base, free space, end of file, driver), then the root group's entry:
    // its name offset and its object header address.
    const size_t fields = version == 0 ? 24 : 28;
    const uint64_t root = l.addr(sb.data() + fields + 5 * static_cast<size_t>(l.so));
    std::string why = l.root_attributes(root);
    if (why.empty() && group_names) why = l.local_heaps();
    return why.empty() ? "" : "checkpoint " + path + " is damaged: " + why;
  }
  return "";
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
