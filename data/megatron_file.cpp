// Megatron-LM / NeMo indexed datasets read as token files (data.format: megatron).
//
// A dataset is a pair PREFIX.bin (the tokens of every sequence, back to back) and PREFIX.idx,
// the MMIDIDX index of Megatron-LM's indexed_dataset.py (all integers little-endian):
//   9 bytes   magic "MMIDIDX\0\0"
//   uint64    version (1)
//   uint8     dtype code of the tokens (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64,
//             7 float32, 8 uint16); Megatron's tokenizers write uint16 (vocabularies under
//             65500) or int32, the two read here
//   uint64    S, the sequence count
//   uint64    D, the document-index count (documents + 1)
//   int32     x S: each sequence's length in tokens
//   int64     x S: each sequence's byte offset in the .bin
//   int64     x D: document d is sequences [idx[d], idx[d+1]); idx[0] = 0, idx[D-1] = S
// and nothing after that (the multimodal variant, which appends a mode per sequence, is not
// read). Sequences are back to back in the .bin, as Megatron's builder writes them, so the .bin
// is one token stream and a document starts at its first sequence's offset / the token size;
// empty documents are dropped (they hold nothing to train on). The index records no vocabulary:
// the largest token + 1 is found in one pass over the tokens at open. Everything is checked
// before use:
// a damaged or truncated index, offsets that are not back to back, lengths or offsets that
// overrun the .bin, a .bin longer than the index says, and negative int32 tokens are input
// errors naming the file.
#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "data/token_file.h"
#include "src/core/error.h"

namespace ringtrain {

namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr uint64_t kHeaderBytes = 9 + 8 + 1 + 8 + 8;

// Little-endian reads of the index, whatever the host's byte order.
uint64_t le64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}
uint32_t le32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

const char* dtype_name(unsigned code) {
  static const char* const names[] = {"?",     "uint8",   "int8",    "int16", "int32",
                                      "int64", "float64", "float32", "uint16"};
  return code >= 1 && code <= 8 ? names[code] : "unknown";
}

std::vector<unsigned char> read_all(const std::string& path, const std::string& name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) input_error(name, ": cannot open");
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TokenFile TokenFile::open_megatron(const std::string& prefix, const std::string& label) {
  const std::string idx_path = prefix + ".idx";
  const std::string bin_path = prefix + ".bin";
  const std::string idx_name = (label.empty() ? "megatron index " : label + ": ") + idx_path;
  const std::vector<unsigned char> idx = read_all(idx_path, idx_name);
  const uint64_t idx_bytes = idx.size();
  if (idx_bytes < kHeaderBytes)
    input_error(idx_name, " is not a Megatron index: it has ", idx_bytes, " bytes, fewer than the ",
                kHeaderBytes, "-byte header");
  const unsigned char* h = idx.data();
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0)
    input_error(idx_name, " is not a Megatron index: wrong magic (expected \"MMIDIDX\")");
  const uint64_t version = le64(h + 9);
  if (version != 1) input_error(idx_name, " has index version ", version, "; this build reads 1");
  const unsigned code = h[17];
  if (code != 8 && code != 4)
    input_error(idx_name, " has dtype code ", code, " (", dtype_name(code),
                "); token files are uint16 (8) or int32 (4)");
  const uint64_t width = code == 8 ? 2 : 4;
  const uint64_t seqs = le64(h + 18);
  const uint64_t docs = le64(h + 26);
  // 20 bytes per sequence and 8 per document entry; compare by division so that a damaged
  // count cannot overflow.
  const uint64_t body = idx_bytes - kHeaderBytes;
  if (seqs > body / 12 || docs > (body - 12 * seqs) / 8 || body != 12 * seqs + 8 * docs)
    input_error(idx_name, " is damaged: ", seqs, " sequences and ", docs,
                " document entries do not fill its ", idx_bytes, " bytes");
  if (docs < 1) input_error(idx_name, " is damaged: its document index is empty (needs at least 0 and the sequence count)");
  const unsigned char* lengths = h + kHeaderBytes;
  const unsigned char* pointers = lengths + 4 * seqs;
  const unsigned char* doc_idx = pointers + 8 * seqs;

  // Sequences back to back: sequence i starts where i - 1 ends.
  uint64_t tokens = 0;
  for (uint64_t i = 0; i < seqs; ++i) {
    const uint32_t len = le32(lengths + 4 * i);
    if (len > uint32_t(INT32_MAX))
      input_error(idx_name, " is damaged: sequence ", i, " has a negative length");
    if (le64(pointers + 8 * i) != tokens * width)
      input_error(idx_name, ": sequence ", i, " starts at byte ", le64(pointers + 8 * i),
                  ", not at ", tokens * width, " where sequence ", i == 0 ? 0 : i - 1,
                  " ends; only back-to-back sequences are read");
    tokens += len;
    // A damaged index with billions of long sequences could wrap the sum; no .bin is this big.
    if (tokens > (uint64_t(1) << 60))
      input_error(idx_name, " is damaged: its sequence lengths add up to more than 2^60 tokens");
  }
  std::vector<uint64_t> starts;
  uint64_t prev = 0;
  for (uint64_t d = 0; d < docs; ++d) {
    const uint64_t first = le64(doc_idx + 8 * d);
    if ((d == 0 && first != 0) || first < prev || first > seqs || (d + 1 == docs && first != seqs))
      input_error(idx_name, " is damaged: document entry ", d, " is ", first, " (entries run from 0 up to the ",
                  seqs, " sequences)");
    prev = first;
  }

  TokenFile f = map_file(bin_path, label, 1, "Megatron data file", "one token");
  const std::string bin_name = (label.empty() ? "megatron data " : label + ": ") + bin_path;
  if (tokens > f.map_bytes_ / width || tokens * width != f.map_bytes_)
    input_error(tokens * width > f.map_bytes_ || tokens > f.map_bytes_ / width ? idx_name : bin_name,
                ": the index holds ", tokens, " tokens (", tokens, " x ", width, " bytes) but ",
                bin_path, " has ", f.map_bytes_, " bytes");
  // Document starts in tokens; documents without tokens are dropped.
  uint64_t seq = 0, at = 0;
  for (uint64_t d = 0; d + 1 < docs; ++d) {
    const uint64_t begin_seq = le64(doc_idx + 8 * d), end_seq = le64(doc_idx + 8 * (d + 1));
    for (; seq < begin_seq; ++seq) at += le32(lengths + 4 * seq);
    const uint64_t start = at;
    uint64_t len = 0;
    for (uint64_t s = begin_seq; s < end_seq; ++s) len += le32(lengths + 4 * s);
    if (len > 0) starts.push_back(start);
  }
  f.tokens_ = f.map_;
  f.count_ = tokens;
  f.width_ = static_cast<int>(width);
  uint64_t top = 0;
  for (uint64_t i = 0; i < tokens; ++i) {
    const uint32_t t = width == 2 ? uint32_t(f.map_[2 * i]) | uint32_t(f.map_[2 * i + 1]) << 8 : le32(f.map_ + 4 * i);
    if (width == 4 && t > uint32_t(INT32_MAX))
      input_error(bin_name, ": token ", i, " is negative (int32 ", static_cast<int32_t>(t), ")");
    top = std::max<uint64_t>(top, t);
  }
  f.vocab_size_ = static_cast<uint32_t>(top + 1);
  f.starts_ = std::move(starts);
  return f;
}

}  // namespace ringtrain
