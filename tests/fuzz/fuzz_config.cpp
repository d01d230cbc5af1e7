// libFuzzer target: the YAML config loader and validator (parse_config, validate_for_world,
// dump_config). Any bytes must give a config or an input error; a config that loads must dump
// to YAML that loads back to the same settings.
// Catches: crashes or yaml-cpp exceptions escaping as faults on malformed YAML, wrong-type or
// out-of-range values that slip through the checks, a dump that does not round-trip.
#include <cstdint>
#include <string>

#include "src/config/config.h"
#include "src/config/config_table.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringtrain;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_ok_or_input_error("fuzz_config", [&] {
    const Config c = parse_config(text, "fuzz.yaml", {}, ConfigChecks{.paths = false});
    const std::string dumped = dump_config(c);
    Config back;
    try {
      back = parse_config(dumped, "fuzz-dump.yaml", {}, ConfigChecks{.paths = false});
    } catch (const Error& e) {
      fuzz::fuzz_bug("fuzz_config", std::string("dump does not load back: ") + e.what() + "\n" + dumped);
    }
    if (!same_settings(c, back)) fuzz::fuzz_bug("fuzz_config", "dump does not round-trip:\n" + dumped);
    for (int world : {1, 2, 4, 8}) {
      try {
        validate_for_world(c, world);
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::kInput) throw;
      }
    }
  });
  return 0;
}
