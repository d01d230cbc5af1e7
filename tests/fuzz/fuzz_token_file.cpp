// libFuzzer target: the token-file reader (TokenFile::open and reads), versions 1 and 2. The
// bytes are written to a scratch file and opened; a file that opens must serve every token it
// claims to hold, and a document index it accepted must be usable as is (first start 0, strictly
// increasing, each below the token count).
// Catches: header fields trusted without checks (count x width or the document count
// overflowing, a size that does not match), an index out of order or out of range accepted,
// reads past the mapping, crashes instead of input errors.
#include <cstdint>
#include <string>
#include <vector>

#include "data/token_file.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringtrain;
  static const std::string path = fuzz::scratch_path(".tokens.bin");
  fuzz::write_bytes(path, data, size);
  fuzz::expect_ok_or_input_error("fuzz_token_file", [&] {
    TokenFile f = TokenFile::open(path, "data.train");
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
