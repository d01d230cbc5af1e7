// libFuzzer target: the safetensors reader (parse_safetensors, safetensors_to_f32) on a whole
// file held in memory. Any bytes must give tensors or an input error; every accepted tensor
// must lie inside the file and hold exactly dtype x shape bytes, and converting it must read
// only those bytes.
// Catches: a header length or data_offsets trusted without checks (reads past the buffer,
// which the sanitizer build reports), shape products that overflow, nlohmann-json exceptions.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "src/checkpoint/hf_model.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringtrain;
  // An exact-size copy so that the sanitizers see any read past the end.
  std::vector<uint8_t> copy(data, data + size);
  fuzz::expect_ok_or_input_error("fuzz_safetensors", [&] {
    for (const auto& [name, e] : parse_safetensors(copy.data(), copy.size(), "model.safetensors")) {
      if (e.begin > e.end || e.end > copy.size()) fuzz::fuzz_bug("fuzz_safetensors", "tensor outside the file: " + name);
      uint64_t numel = 1;
      for (int64_t d : e.shape) numel *= static_cast<uint64_t>(d);
      const uint64_t elem = e.dtype == SafetensorsDType::kF32 ? 4 : 2;
      if (numel * elem != e.end - e.begin) fuzz::fuzz_bug("fuzz_safetensors", "size does not match: " + name);
      if (numel <= (uint64_t{1} << 24)) {
        std::vector<float> out(numel);
        safetensors_to_f32(copy.data(), e, out.data());
      }
    }
  });
  return 0;
}
