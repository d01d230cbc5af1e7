#include "data/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "src/core/error.h"

namespace ringtrain {

namespace {

// Little-endian decoding byte by byte: the file format is little-endian whatever the host is,
// and compilers turn these into single loads on little-endian machines.
uint32_t load_u16(const unsigned char* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }
uint32_t load_u32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint64_t load_u64(const unsigned char* p) {
  return uint64_t(load_u32(p)) | uint64_t(load_u32(p + 4)) << 32;
}
void store_u32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void store_u64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

// The index starts at the first multiple of 8 after the tokens (the header is a multiple of 8).
uint64_t round_up8(uint64_t bytes) { return bytes + (8 - bytes % 8) % 8; }

// A document index must be usable as is: documents are non-empty and in file order, so the
// first starts at 0, each start is beyond the previous one and below the token count.
// `start(d)` reads entry d; `name` opens every message.
template <typename Start>
void check_document_index(const std::string& name, uint64_t count, uint64_t documents,
                          const Start& start) {
  uint64_t prev = 0;
  for (uint64_t d = 0; d < documents; ++d) {
    const uint64_t s = start(d);
    if (d == 0 && s != 0)
      input_error(name, ": document index is damaged: document 0 starts at ", s, ", not 0");
    if (d > 0 && s <= prev)
      input_error(name, ": document index is out of order: document ", d, " starts at ", s,
                  ", not after document ", d - 1, " at ", prev);
    if (s >= count)
      input_error(name, ": document index is out of range: document ", d, " starts at ", s,
                  " but the file has ", count, " tokens");
    prev = s;
  }
}

// "data.train: runs/x.bin" or "token file runs/x.bin": how messages name the file.
std::string name_of(const std::string& label, const std::string& path) {
  return label.empty() ? "token file " + path : label + ": " + path;
}

// The first bytes of a file that is not ours, shown safely in a message.
std::string printable(const unsigned char* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] >= 32 && p[i] < 127 && p[i] != '"' && p[i] != '\\') {
      s += static_cast<char>(p[i]);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", p[i]);
      s += buf;
    }
  }
  return s;
}

// Closes a descriptor on every path out of open().
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

TokenFile TokenFile::map_file(const std::string& path, const std::string& label,
                              uint64_t min_bytes, const char* kind, const char* need) {
  const std::string name = name_of(label, path);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    input_error(label.empty() ? "token file" : label, ": cannot open ", path, ": ",
                std::strerror(err));
  }
  FdGuard guard{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    input_error(name, ": cannot stat: ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) input_error(name, " is not a regular file");
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < min_bytes || file_bytes == 0)
    input_error(name, " is not a ", kind, ": it has ", file_bytes, " bytes, fewer than ", need);

  void* map = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) {
    int err = errno;
    input_error(name, ": cannot memory-map ", file_bytes, " bytes: ", std::strerror(err));
  }
  TokenFile f;
  f.path_ = path;
  f.label_ = label;
  f.map_ = static_cast<const unsigned char*>(map);
  f.map_bytes_ = file_bytes;
  return f;
}

TokenFile TokenFile::open(const std::string& path, const std::string& label) {
  const std::string name = name_of(label, path);
  TokenFile f = map_file(path, label, kTokenFileV1HeaderBytes, "token file",
                         "the 32-byte header");
  const uint64_t file_bytes = f.map_bytes_;
  // From here on `f` owns the mapping: a throw below unmaps it through its destructor.

  const unsigned char* h = f.map_;
  if (std::memcmp(h, kTokenFileMagic, sizeof kTokenFileMagic) != 0)
    input_error(name, " is not a token file: wrong magic (expected \"RTTOKENS\", found \"",
                printable(h, 8), "\")");
  const uint32_t version = load_u32(h + 8);
  if (version != 1 && version != kTokenFileVersion)
    input_error(name, " has token file version ", version, "; this build reads versions 1 and ",
                kTokenFileVersion);
  const uint64_t header = version == 1 ? kTokenFileV1HeaderBytes : kTokenFileHeaderBytes;
  if (file_bytes < header)
    input_error(name, " is truncated: it has ", file_bytes, " bytes, fewer than the ", header,
                "-byte version-", version, " header");
  const uint32_t width = load_u32(h + 12);
  if (width != 2 && width != 4)
    input_error(name, " has a bad token width ", width, " (must be 2 or 4 bytes)");
  const uint64_t count = load_u64(h + 16);
  const uint32_t vocab = load_u32(h + 24);
  const uint64_t documents = version == 1 ? 0 : load_u64(h + 32);
  const uint64_t payload = file_bytes - header;
  // Compare against payload / width first: a damaged header's count * width could overflow.
  if (count > payload / width) {
    const std::string wanted =
        count <= UINT64_MAX / width ? std::to_string(count * width) : std::string("over 2^64");
    input_error(name, " is truncated: header says ", count, " tokens (", wanted, " bytes) but ",
                payload, " bytes follow");
  }
  const uint64_t token_bytes = count * width;
  if (version == 1) {
    if (token_bytes != payload)
      input_error(name, " is damaged: header says ", count, " tokens (", token_bytes,
                  " bytes) but ", payload, " bytes follow (", payload - token_bytes,
                  " extra bytes)");
  } else {
    if (count == 0 && documents > 0)
      input_error(name, " is damaged: its document index has ", documents,
                  " entries but the file has no tokens");
    const uint64_t padded = round_up8(token_bytes);
    // documents * 8 can overflow on a damaged header: compare by division first.
    const bool fits = payload >= padded && documents <= (payload - padded) / 8;
    if (!fits || payload - padded != documents * 8) {
      const std::string need = documents <= (UINT64_MAX - header - padded) / 8
                                   ? std::to_string(header + padded + documents * 8)
                                   : std::string("over 2^64");
      input_error(name, fits ? " is damaged" : " is truncated", ": header says ", count,
                  " tokens and a ", documents, "-entry document index (", need,
                  " bytes) but the file has ", file_bytes, " bytes");
    }
  }
  if (count > 0 && vocab == 0) input_error(name, " is damaged: it has tokens but vocab_size 0");
  if (width == 2 && vocab > 65536)
    input_error(name, " is damaged: vocab_size ", vocab, " does not fit its 2-byte tokens");

  f.tokens_ = f.map_ + header;
  f.count_ = count;
  f.vocab_size_ = vocab;
  f.width_ = static_cast<int>(width);
  if (documents > 0) {
    const unsigned char* index = f.tokens_ + round_up8(token_bytes);
    check_document_index(name, count, documents,
                         [&](uint64_t d) { return load_u64(index + 8 * d); });
    f.index_ = index;
    f.documents_ = documents;
  }
  return f;
}

TokenFile::TokenFile(TokenFile&& other) noexcept { *this = std::move(other); }

TokenFile& TokenFile::operator=(TokenFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    label_ = std::move(other.label_);
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    tokens_ = std::exchange(other.tokens_, nullptr);
    index_ = std::exchange(other.index_, nullptr);
    documents_ = std::exchange(other.documents_, 0);
    starts_ = std::move(other.starts_);
    other.starts_.clear();
    count_ = std::exchange(other.count_, 0);
    vocab_size_ = std::exchange(other.vocab_size_, 0);
    width_ = std::exchange(other.width_, 0);
  }
  return *this;
}

TokenFile::~TokenFile() { release(); }

void TokenFile::release() {
  if (map_ != nullptr) ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
  map_ = nullptr;
  tokens_ = nullptr;
  index_ = nullptr;
  documents_ = 0;
  starts_.clear();
  map_bytes_ = 0;
}

uint64_t TokenFile::document_count() const {
  if (index_ != nullptr) return documents_;
  if (!starts_.empty()) return starts_.size();
  return count_ > 0 ? 1 : 0;
}

uint64_t TokenFile::document_start(uint64_t d) const {
  RT_CHECK(d < document_count(), "document ", d, " out of range for ", path_, " (",
           document_count(), " documents)");
  if (!starts_.empty()) return starts_[d];
  return index_ != nullptr ? load_u64(index_ + 8 * d) : 0;
}

uint32_t TokenFile::operator[](uint64_t i) const {
  RT_CHECK(i < count_, "token index ", i, " out of range for ", path_, " (", count_, " tokens)");
  return width_ == 2 ? load_u16(tokens_ + 2 * i) : load_u32(tokens_ + 4 * i);
}

void TokenFile::read(uint64_t start, uint64_t n, int32_t* out) const {
  RT_CHECK(start <= count_ && n <= count_ - start, "token range [", start, ", ", start + n,
           ") out of range for ", path_, " (", count_, " tokens)");
  const unsigned char* p = tokens_ + start * width_;
  if (width_ == 2) {
    for (uint64_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(load_u16(p + 2 * i));
  } else {
    for (uint64_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(load_u32(p + 4 * i));
  }
}

void write_token_file(const std::string& path, const std::vector<uint32_t>& tokens, int width,
                      const std::vector<uint64_t>& document_starts) {
  if (width != 2 && width != 4)
    input_error("token width ", width, " for ", path, " must be 2 or 4 bytes");
  check_document_index("cannot write " + path, tokens.size(), document_starts.size(),
                       [&](uint64_t d) { return document_starts[d]; });
  uint32_t max_token = 0;
  for (uint32_t t : tokens) max_token = std::max(max_token, t);
  if (width == 2 && !tokens.empty() && max_token > 0xFFFF)
    input_error("cannot write ", path, " with 2-byte tokens: token id ", max_token,
                " needs a width of 4");
  if (!tokens.empty() && max_token == UINT32_MAX)
    input_error("cannot write ", path, ": token id ", max_token, " leaves no room for vocab_size");
  const uint32_t vocab = tokens.empty() ? 0 : max_token + 1;

  const std::string partial = path + ".partial";
  std::FILE* f = std::fopen(partial.c_str(), "wb");
  if (f == nullptr) {
    int err = errno;
    input_error("cannot write ", partial, ": ", std::strerror(err));
  }
  bool ok = true;
  unsigned char header[kTokenFileHeaderBytes] = {};
  std::memcpy(header, kTokenFileMagic, sizeof kTokenFileMagic);
  store_u32(header + 8, kTokenFileVersion);
  store_u32(header + 12, static_cast<uint32_t>(width));
  store_u64(header + 16, tokens.size());
  store_u32(header + 24, vocab);
  store_u64(header + 32, document_starts.size());
  ok = ok && std::fwrite(header, 1, sizeof header, f) == sizeof header;

  // Encode in chunks so a large corpus does not need a second full-size buffer.
  std::vector<unsigned char> buf;
  constexpr size_t kChunk = 1 << 16;
  for (size_t begin = 0; ok && begin < tokens.size(); begin += kChunk) {
    const size_t end = std::min(tokens.size(), begin + kChunk);
    buf.resize((end - begin) * width);
    for (size_t i = begin; i < end; ++i)
      for (int b = 0; b < width; ++b)
        buf[(i - begin) * width + b] = static_cast<unsigned char>(tokens[i] >> (8 * b));
    ok = std::fwrite(buf.data(), 1, buf.size(), f) == buf.size();
  }
  const uint64_t token_bytes = uint64_t(tokens.size()) * width;
  buf.assign(round_up8(token_bytes) - token_bytes, 0);
  for (uint64_t s : document_starts) {
    buf.resize(buf.size() + 8);
    store_u64(buf.data() + buf.size() - 8, s);
  }
  ok = ok && std::fwrite(buf.data(), 1, buf.size(), f) == buf.size();
  ok = ok && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  int err = ok ? 0 : errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    if (err == 0) err = errno;
    std::remove(partial.c_str());
    input_error("cannot write ", partial, ": ", std::strerror(err));
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    err = errno;
    std::remove(partial.c_str());
    input_error("cannot rename ", partial, " to ", path, ": ", std::strerror(err));
  }
}

}  // namespace ringtrain
