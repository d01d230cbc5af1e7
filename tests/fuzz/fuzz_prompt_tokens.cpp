// libFuzzer target: the prompt-tokens file of data.prompt_tokens (PromptTokens::parse). Any
// bytes must give prompt words or an input error; words it accepts hold only ids below the
// file's vocab_size, no empty piece, and fit make_passkey's sizes.
// Catches: nlohmann-json exceptions escaping as faults (wrong types, huge numbers), an id out of
// range or a missing piece accepted.
#include <cstdint>
#include <string>
#include <vector>

#include "data/prompt_tokens.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringtrain;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_ok_or_input_error("fuzz_prompt_tokens", [&] {
    const PromptTokens words = PromptTokens::parse(text, "prompts.json");
    bool ok = words.vocab_size > 0;
    auto check = [&](const std::vector<int32_t>& ids) {
      ok = ok && !ids.empty();
      for (int32_t t : ids) ok = ok && t >= 0 && uint32_t(t) < words.vocab_size;
    };
    for (const PromptWording* w : {&words.full, &words.compact}) {
      check(w->intro);
      check(w->outro);
      check(w->question);
    }
    check(std::vector<int32_t>(words.digits.begin(), words.digits.end()));
    if (!ok || words.byte_level) fuzz::fuzz_bug("fuzz_prompt_tokens", "accepted words that are not usable");
  });
  return 0;
}
