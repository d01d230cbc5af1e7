// The fixed words of the synthetic prompts, as token ids of the tokenizer the data was made with.
//
// The passkey prompt (make_passkey, data/dataset.h) is built from a haystack and a few fixed
// pieces: the sentence that hides the key ("The pass key is " KEY ". Remember it. ") and the
// question ("\nWhat is the pass key? The pass key is " KEY), in a full and a compact wording.
// With the built-in byte tokenizer the pieces are their bytes. With a real tokenizer (a BPE whose
// token file scripts/prepare-data wrote) the pieces are that tokenizer's encoding of each piece,
// one piece at a time, and every digit of a key is one token: scripts/prepare-data --prompts
// writes them into a small JSON file (data.prompt_tokens names it):
//
//   {"format": "ringtrain-prompt-tokens", "version": 1, "vocab_size": 1024,
//    "digits": [id of "0", ..., id of "9"],
//    "full":    {"intro": [ids], "outro": [ids], "question": [ids]},
//    "compact": {"intro": [ids], "outro": [ids], "question": [ids]}}
//
// Training and the needle sweep build their prompts from the same file, so a model is asked
// exactly what it was taught. A bad file (not JSON, another format or version, a missing or
// empty piece, a digit count other than 10, an id negative or at or above vocab_size) is an
// input error naming the file and the key.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace ringtrain {

struct PromptWording {
  std::vector<int32_t> intro;     // before the hidden key
  std::vector<int32_t> outro;     // after the hidden key
  std::vector<int32_t> question;  // before the answer (the key again)
  // Tokens of the prompt other than the haystack, with a key of `digits` digits (twice).
  int64_t fixed(int64_t digits) const {
    return int64_t(intro.size() + outro.size() + question.size()) + 2 * digits;
  }
};

struct PromptTokens {
  std::array<int32_t, 10> digits{};  // token of '0'..'9'
  PromptWording full;
  PromptWording compact;
  uint32_t vocab_size = 0;  // of the tokenizer; the haystack's must equal it
  bool byte_level = true;   // the built-in byte tokenizer (haystack: byte-level text)

  // The byte tokenizer's pieces.
  static const PromptTokens& bytes();
  // Reads a file scripts/prepare-data --prompts wrote; `label` names its role in messages
  // ("data.prompt_tokens").
  static PromptTokens load(const std::string& path, const std::string& label);
  // Parses the JSON text of such a file; `where` names it in messages.
  static PromptTokens parse(const std::string& text, const std::string& where);
};

}  // namespace ringtrain
