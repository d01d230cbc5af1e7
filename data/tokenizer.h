// The built-in byte-level tokenizer: a token is one byte of the UTF-8 (or any) text, so the
// vocabulary is 256 and every input round-trips exactly. Token files made by other tokenizers
// (GPT-2, Llama) load the same way; this one needs nothing beyond the text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringtrain {

class ByteTokenizer {
 public:
  static constexpr uint32_t kVocabSize = 256;

  static std::vector<uint32_t> encode(std::string_view text);
  // Appends the tokens of `text` to `out` (no reallocation per call beyond the vector's own).
  static void encode_append(std::string_view text, std::vector<uint32_t>* out);
  static void encode_append(std::string_view text, std::vector<int32_t>* out);

  // Ids outside the byte range (a model with a larger vocabulary can predict them) decode to
  // '?', so showing a model's output never fails.
  static std::string decode(const std::vector<uint32_t>& tokens);
  static std::string decode(const int32_t* tokens, size_t n);
};

}  // namespace ringtrain
