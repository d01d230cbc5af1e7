// libFuzzer target: the token-file readers (TokenFile::open and reads, versions 1 and 2; and
// TokenFile::open_megatron for Megatron pairs). The bytes are written to a scratch file and
// opened; an input that starts with the Megatron magic "MMIDIDX" is split instead into an .idx
// (as long as its counts say, at most the input) and a .bin (the rest). A file that opens must
// serve every token it claims to hold, and a document index it accepted must be usable as is
// (first start 0, strictly increasing, each below the token count).
// Catches: header fields trusted without checks (count x width or the document count
// overflowing, a size that does not match), an index out of order or out of range accepted,
// reads past the mapping, crashes instead of input errors.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "data/token_file.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringtrain;
  static const std::string path = fuzz::scratch_path(".tokens.bin");
  static const std::string prefix = fuzz::scratch_path(".megatron");
  const bool megatron = size >= 7 && std::memcmp(data, "MMIDIDX", 7) == 0;
  if (megatron) {
    // The index's own length: 34 header bytes, 12 per sequence, 8 per document entry.
    auto u64 = [&](size_t at) {
      uint64_t v = 0;
      for (size_t i = 0; i < 8 && at + i < size; ++i) v |= uint64_t(data[at + i]) << (8 * i);
      return v;
    };
    const uint64_t seqs = u64(18), docs = u64(26);
    uint64_t idx = size;
    if (seqs < size && docs < size) idx = std::min<uint64_t>(size, 34 + 12 * seqs + 8 * docs);
    fuzz::write_bytes(prefix + ".idx", data, static_cast<size_t>(idx));
    fuzz::write_bytes(prefix + ".bin", data + idx, static_cast<size_t>(size - idx));
  } else {
    fuzz::write_bytes(path, data, size);
  }
  fuzz::expect_ok_or_input_error("fuzz_token_file", [&] {
    TokenFile f = megatron ? TokenFile::open_megatron(prefix, "data.train")
                           : TokenFile::open(path, "data.train");
    uint64_t sum = 0;
    for (uint64_t i = 0; i < f.size(); ++i) sum += f[i];
    if (f.size() > 0) {
      std::vector<int32_t> out(static_cast<size_t>(f.size()));
      f.read(0, f.size(), out.data());
      for (size_t i = 0; i < out.size(); ++i) sum -= static_cast<uint32_t>(out[i]);
      if (sum != 0) fuzz::fuzz_bug("fuzz_token_file", "read() and operator[] disagree");
    }
    if ((f.document_count() == 0) != (f.size() == 0))
      fuzz::fuzz_bug("fuzz_token_file", "documents without tokens, or tokens without a document");
    for (uint64_t d = 0; d < f.document_count(); ++d) {
      const uint64_t s = f.document_start(d);
      if ((d == 0 && s != 0) || (d > 0 && s <= f.document_start(d - 1)) || s >= f.size())
        fuzz::fuzz_bug("fuzz_token_file", "an accepted document index is not usable");
    }
  });
  return 0;
}
