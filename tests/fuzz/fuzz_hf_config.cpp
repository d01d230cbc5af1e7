// libFuzzer target: Hugging Face config.json and model.safetensors.index.json
// (parse_hf_config, parse_safetensors_index). Any bytes must give a model section or an input
// error; a model section it accepts must be one ringtrain's config accepts too.
// Catches: nlohmann-json exceptions escaping as faults (wrong types, huge numbers, deep
// nesting), a rope or size key accepted out of range, an index entry that is a path.
#include <cstdint>
#include <string>

#include "src/checkpoint/hf_model.h"
#include "src/config/config.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringtrain;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_ok_or_input_error("fuzz_hf_config", [&] {
    const HfConfig h = parse_hf_config(text, "config.json");
    Config c;
    c.model = h.model;
    // What import does next: the model section as a config (input errors allowed: the sizes
    // may break a cross-field rule); a fault would be a bug.
    parse_config(dump_config(c), "import.yaml", {}, ConfigChecks{.paths = false});
  });
  fuzz::expect_ok_or_input_error("fuzz_hf_config", [&] {
    for (const auto& [name, file] : parse_safetensors_index(text, "model.safetensors.index.json"))
      if (file.find('/') != std::string::npos || file == ".." || file.empty())
        fuzz::fuzz_bug("fuzz_hf_config", "index accepted a path: " + file);
  });
  return 0;
}
