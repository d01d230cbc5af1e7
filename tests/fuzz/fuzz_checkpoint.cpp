// libFuzzer target: the checkpoint loader's serial path (HDF5 file bytes in): checkpoint_problem
// (resume: auto's validity check), read_checkpoint_header, and inspect_checkpoint, which reads
// every tensor and verifies its checksum (as `ringtrain inspect` and export do).
// Catches: attributes of the wrong type or size, missing groups, absurd shapes, bad checksums
// or truncated files that crash or escape as faults instead of input errors.
#include <cstdint>
#include <sstream>
#include <string>

#include "src/checkpoint/checkpoint.h"
#include "src/checkpoint/checkpoint_tools.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringtrain;
  static const std::string path = fuzz::scratch_path(".ckpt.h5");
  fuzz::write_bytes(path, data, size);
  fuzz::expect_ok_or_input_error("fuzz_checkpoint", [&] { (void)checkpoint_problem(path); });
  fuzz::expect_ok_or_input_error("fuzz_checkpoint", [&] { (void)read_checkpoint_header(path); });
  fuzz::expect_ok_or_input_error("fuzz_checkpoint", [&] {
    std::ostringstream out;
    inspect_checkpoint(path, out);
  });
  return 0;
}
