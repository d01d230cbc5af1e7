// Token files: the on-disk form of a tokenized corpus, memory-mapped for reading.
//
// Layout (all integers little-endian):
//   offset  0  char[8]  magic "RTTOKENS"
//   offset  8  uint32   version (1)
//   offset 12  uint32   token width in bytes (2: uint16 tokens, 4: uint32 tokens)
//   offset 16  uint64   count (number of tokens)
//   offset 24  uint32   vocab_size (largest token id + 1, recorded when the file was written)
//   offset 28  uint32   zero padding, so the tokens start 32-byte aligned
//   offset 32  count x width bytes of tokens, nothing after them
//
// Files tokenized elsewhere (GPT-2, Llama tokenizers) load the same way; only the header has
// to be written. A bad file (missing, short, wrong magic or version, bad width, size that does
// not match the count) is an input error that names the file and what is wrong with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ringtrain {

inline constexpr char kTokenFileMagic[8] = {'R', 'T', 'T', 'O', 'K', 'E', 'N', 'S'};
inline constexpr uint32_t kTokenFileVersion = 1;
inline constexpr uint64_t kTokenFileHeaderBytes = 32;

// A read-only, memory-mapped token file. Move-only; unmaps on destruction.
class TokenFile {
 public:
  // Maps `path` and checks its header. `label` names the file's role in messages (e.g.
  // "data.train" gives "data.train: runs/x.bin is truncated: ..."); empty: "token file".
  static TokenFile open(const std::string& path, const std::string& label = "");

  TokenFile() = default;
  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&& other) noexcept;
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  ~TokenFile();

  uint64_t size() const { return count_; }
  uint32_t vocab_size() const { return vocab_size_; }
  int width() const { return width_; }
  const std::string& path() const { return path_; }
  const std::string& label() const { return label_; }

  // Token i (i < size(); a fault otherwise).
  uint32_t operator[](uint64_t i) const;
  // Tokens [start, start + n) into out[0..n); the range must lie inside the file (a fault
  // otherwise).
  void read(uint64_t start, uint64_t n, int32_t* out) const;

 private:
  void release();

  std::string path_;
  std::string label_;
  const unsigned char* map_ = nullptr;  // the whole file
  size_t map_bytes_ = 0;
  const unsigned char* tokens_ = nullptr;  // map_ + kTokenFileHeaderBytes
  uint64_t count_ = 0;
  uint32_t vocab_size_ = 0;
  int width_ = 0;
};

// Writes `tokens` as a token file of the given width (2 or 4 bytes per token), recording
// vocab_size = largest token + 1 (0 for no tokens). Writes `path`.partial, then renames it over
// `path`, so a reader never sees a half-written file. Input error when a token does not fit the
// width or the file cannot be written.
void write_token_file(const std::string& path, const std::vector<uint32_t>& tokens, int width);

}  // namespace ringtrain
