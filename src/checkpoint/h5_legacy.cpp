#include "src/checkpoint/h5_legacy.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <vector>

#include "src/checkpoint/h5_util.h"

namespace ringtrain::h5 {

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

}  // namespace ringtrain::h5
