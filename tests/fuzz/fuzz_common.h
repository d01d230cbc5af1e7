// Shared by the fuzz targets (tests/fuzz/fuzz_*.cpp): the oracle and small helpers.
//
// Every parser of outside input must end in one of two ways on any bytes: success, or a
// ringtrain input error (ErrorKind::kInput: exit 2 with a message). A fault, any other
// exception, a crash, a leak or a sanitizer report is a bug; `fuzz_expect_input_error` turns the
// exception cases into an abort so libFuzzer (and the replay test) records the input.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>

#include "src/core/error.h"

namespace ringtrain::fuzz {

// Call from a catch(...) block.
[[noreturn]] inline void fuzz_bug(const char* target, const std::string& what) {
  std::fprintf(stderr, "%s: not an input error: %s\n", target, what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Runs fn(); input errors are the expected way to refuse bad bytes, anything else aborts.
template <typename Fn>
void expect_ok_or_input_error(const char* target, Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kInput) fuzz_bug(target, std::string("fault: ") + e.what());
  } catch (const std::exception& e) {
    fuzz_bug(target, std::string("exception: ") + e.what());
  } catch (...) {
    fuzz_bug(target, "unknown exception");
  }
}

// A per-process scratch file (the fuzzers may run as several jobs at once).
inline std::string scratch_path(const char* suffix) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/rt_fuzz_" + std::to_string(getpid()) + suffix;
}

inline void write_bytes(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace ringtrain::fuzz
