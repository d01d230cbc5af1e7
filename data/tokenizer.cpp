#include "data/tokenizer.h"

namespace ringtrain {

std::vector<uint32_t> ByteTokenizer::encode(std::string_view text) {
  std::vector<uint32_t> out;
  encode_append(text, &out);
  return out;
}

void ByteTokenizer::encode_append(std::string_view text, std::vector<uint32_t>* out) {
  out->reserve(out->size() + text.size());
  for (char c : text) out->push_back(static_cast<unsigned char>(c));
}

void ByteTokenizer::encode_append(std::string_view text, std::vector<int32_t>* out) {
  out->reserve(out->size() + text.size());
  for (char c : text) out->push_back(static_cast<unsigned char>(c));
}

std::string ByteTokenizer::decode(const std::vector<uint32_t>& tokens) {
  std::string s;
  s.reserve(tokens.size());
  for (uint32_t t : tokens) s += t < kVocabSize ? static_cast<char>(t) : '?';
  return s;
}

std::string ByteTokenizer::decode(const int32_t* tokens, size_t n) {
  std::string s;
  s.reserve(n);
  for (size_t i = 0; i < n; ++i)
    s += tokens[i] >= 0 && uint32_t(tokens[i]) < kVocabSize ? static_cast<char>(tokens[i]) : '?';
  return s;
}

}  // namespace ringtrain
