#include "data/prompt_tokens.h"

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "data/tokenizer.h"
#include "src/core/error.h"

namespace ringtrain {

namespace {

using json = nlohmann::json;

std::vector<int32_t> bytes_of(std::string_view text) {
  std::vector<int32_t> out;
  ByteTokenizer::encode_append(text, &out);
  return out;
}

// A token id of the file: an integer in [0, vocab).
int32_t read_id(const json& v, uint32_t vocab, const std::string& where, const std::string& key) {
  if (!v.is_number_integer())
    input_error(where, ": ", key, " must hold integer token ids, got ", v.dump());
  const int64_t id = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)
                         ? -1
                         : v.get<int64_t>();
  if (id < 0 || id >= int64_t(vocab))
    input_error(where, ": ", key, " has token id ", v.dump(), ", outside [0, vocab_size ", vocab,
                ")");
  return static_cast<int32_t>(id);
}

std::vector<int32_t> read_ids(const json& obj, const char* name, uint32_t vocab,
                              const std::string& where, const std::string& prefix) {
  const std::string key = prefix + name;
  if (!obj.contains(name)) input_error(where, ": ", key, " is missing");
  const json& v = obj.at(name);
  if (!v.is_array() || v.empty())
    input_error(where, ": ", key, " must be a non-empty list of token ids");
  std::vector<int32_t> ids;
  for (const json& e : v) ids.push_back(read_id(e, vocab, where, key));
  return ids;
}

PromptWording read_wording(const json& root, const char* name, uint32_t vocab,
                           const std::string& where) {
  if (!root.contains(name) || !root.at(name).is_object())
    input_error(where, ": ", name, " must be an object with intro, outro and question");
  const json& w = root.at(name);
  const std::string prefix = std::string(name) + ".";
  return {read_ids(w, "intro", vocab, where, prefix), read_ids(w, "outro", vocab, where, prefix),
          read_ids(w, "question", vocab, where, prefix)};
}

}  // namespace

const PromptTokens& PromptTokens::bytes() {
  static const PromptTokens b = [] {
    PromptTokens p;
    for (int d = 0; d < 10; ++d) p.digits[d] = '0' + d;
    p.full = {bytes_of("The pass key is "), bytes_of(". Remember it. "),
              bytes_of("\nWhat is the pass key? The pass key is ")};
    p.compact = {bytes_of("key "), bytes_of(". "), bytes_of("\nkey? ")};
    p.vocab_size = ByteTokenizer::kVocabSize;
    p.byte_level = true;
    return p;
  }();
  return b;
}

PromptTokens PromptTokens::parse(const std::string& text, const std::string& where) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    input_error(where, ": not valid JSON: ", e.what());
  }
  if (!root.is_object()) input_error(where, ": must be a JSON object");
  if (!root.contains("format") || root.at("format") != "ringtrain-prompt-tokens")
    input_error(where, ": format must be \"ringtrain-prompt-tokens\" (scripts/prepare-data --prompts)");
  if (!root.contains("version") || root.at("version") != 1)
    input_error(where, ": version must be 1");
  if (!root.contains("vocab_size") || !root.at("vocab_size").is_number_integer())
    input_error(where, ": vocab_size must be an integer");
  const int64_t vocab = root.at("vocab_size").is_number_unsigned() &&
                                root.at("vocab_size").get<uint64_t>() > uint64_t(INT32_MAX)
                            ? -1
                            : root.at("vocab_size").get<int64_t>();
  if (vocab < 1 || vocab > std::numeric_limits<int32_t>::max())
    input_error(where, ": vocab_size ", root.at("vocab_size").dump(), " must be in [1, 2^31)");
  PromptTokens p;
  p.vocab_size = static_cast<uint32_t>(vocab);
  p.byte_level = false;
  const std::vector<int32_t> digits = read_ids(root, "digits", p.vocab_size, where, "");
  if (digits.size() != 10)
    input_error(where, ": digits must list 10 token ids (one per digit), got ", digits.size());
  std::copy(digits.begin(), digits.end(), p.digits.begin());
  p.full = read_wording(root, "full", p.vocab_size, where);
  p.compact = read_wording(root, "compact", p.vocab_size, where);
  return p;
}

PromptTokens PromptTokens::load(const std::string& path, const std::string& label) {
  const std::string where = label.empty() ? path : label + " " + path;
  std::ifstream in(path, std::ios::binary);
  if (!in) input_error(where, ": cannot be read");
  std::ostringstream os;
  os << in.rdbuf();
  return parse(os.str(), where);
}

}  // namespace ringtrain
