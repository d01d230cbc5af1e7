// Token files: the on-disk form of a tokenized corpus, memory-mapped for reading.
//
// Layout, version 2 (all integers little-endian):
//   offset  0  char[8]  magic "RTTOKENS"
//   offset  8  uint32   version (2)
//   offset 12  uint32   token width in bytes (2: uint16 tokens, 4: uint32 tokens)
//   offset 16  uint64   count (number of tokens)
//   offset 24  uint32   vocab_size (largest token id + 1, recorded when the file was written)
//   offset 28  uint32   zero
//   offset 32  uint64   documents: entries in the document index (0: no index, the tokens are
//                       one stream; 0 when count is 0)
//   offset 40  24 bytes zero, so the tokens start 64-byte aligned
//   offset 64  count x width bytes of tokens
//   then       zero bytes up to the next multiple of 8 (from the start of the file)
//   then       documents x uint64: where each document starts, as a token offset; the first is
//              0, each is below count, strictly increasing (documents are never empty); a
//              document runs to the next start, the last to the end of the tokens
//   nothing after that.
// Version 1 (still read) is the same up to offset 24, then uint32 zero at 28 and the tokens at
// offset 32 with nothing after them, and no index: it loads as one document.
//
// Megatron-LM / NeMo indexed datasets (data.format: megatron) load through open_megatron into the
// same interface: see data/megatron_file.cpp for the format and what is checked.
//
// Files tokenized elsewhere (GPT-2, Llama tokenizers) load the same way; only the header (and
// the index) have to be written. A bad file (missing, short, wrong magic or version, bad width,
// a size that does not match the count and the index, an index out of order or out of range)
// is an input error that names the file and what is wrong with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ringtrain {

inline constexpr char kTokenFileMagic[8] = {'R', 'T', 'T', 'O', 'K', 'E', 'N', 'S'};
inline constexpr uint32_t kTokenFileVersion = 2;
inline constexpr uint64_t kTokenFileHeaderBytes = 64;
inline constexpr uint64_t kTokenFileV1HeaderBytes = 32;

// A read-only, memory-mapped token file. Move-only; unmaps on destruction.
class TokenFile {
 public:
  // Maps `path` and checks its header. `label` names the file's role in messages (e.g.
  // "data.train" gives "data.train: runs/x.bin is truncated: ..."); empty: "token file".
  static TokenFile open(const std::string& path, const std::string& label = "");

  // Maps the Megatron indexed dataset PREFIX.bin with its index PREFIX.idx (the MMIDIDX format
  // of Megatron-LM's indexed_dataset.py, uint16 or int32 tokens): its documents become the
  // document index, the largest token + 1 the vocab_size. Input errors name the file at fault.
  static TokenFile open_megatron(const std::string& prefix, const std::string& label = "");

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

  // Whether the file carries a document index (version 2 with documents > 0). Without one
  // the tokens are one document.
  bool has_document_index() const { return index_ != nullptr || !starts_.empty(); }
  // Documents: the index's entries, or 1 for a file without an index (0 when it is empty).
  uint64_t document_count() const;
  // Where document d starts (d < document_count(); a fault otherwise); it ends where document
  // d + 1 starts, the last at size().
  uint64_t document_start(uint64_t d) const;

  // Token i (i < size(); a fault otherwise).
  uint32_t operator[](uint64_t i) const;
  // Tokens [start, start + n) into out[0..n); the range must lie inside the file (a fault
  // otherwise).
  void read(uint64_t start, uint64_t n, int32_t* out) const;

 private:
  // Maps the whole of `path` into a TokenFile that owns the mapping and holds nothing else yet.
  // A file of fewer than min_bytes (or none) is an input error: "is not a <kind>: it has N
  // bytes, fewer than <need>".
  static TokenFile map_file(const std::string& path, const std::string& label, uint64_t min_bytes,
                            const char* kind, const char* need);
  void release();

  std::string path_;
  std::string label_;
  const unsigned char* map_ = nullptr;  // the whole file
  size_t map_bytes_ = 0;
  const unsigned char* tokens_ = nullptr;  // after the header
  const unsigned char* index_ = nullptr;   // the document index; nullptr: none
  uint64_t documents_ = 0;                 // entries in the index
  std::vector<uint64_t> starts_;           // the document index of a Megatron dataset
  uint64_t count_ = 0;
  uint32_t vocab_size_ = 0;
  int width_ = 0;
};

// Writes `tokens` as a token file (the current version) of the given width (2 or 4 bytes per
// token), recording vocab_size = largest token + 1 (0 for no tokens) and `document_starts` as
// the document index (empty: no index). Writes `path`.partial, then renames it over `path`, so
// a reader never sees a half-written file. Input error when a token does not fit the width,
// the starts are not a valid index for the tokens (first 0, strictly increasing, each below
// the count), or the file cannot be written.
void write_token_file(const std::string& path, const std::vector<uint32_t>& tokens, int width,
                      const std::vector<uint64_t>& document_starts = {});

}  // namespace ringtrain
