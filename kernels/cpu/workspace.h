// Reusable working buffers for the CPU step (private to the CPU backend and the parallel
// layer). A training step's temporaries live in buffers that grow to the step's sizes on the
// first step and are reused afterwards, so a steady-state step does no heap allocation for
// them. Every growth (a buffer whose capacity must increase) is counted process-wide; the
// allocation test runs a few steps and checks that steps after the first grow nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringtrain::ws {

// Number of workspace growth events so far in this process (all threads).
uint64_t workspace_growth_count();
void note_workspace_growth();

// v.size() becomes n. Reallocates (and counts a growth) only when n exceeds the capacity;
// contents are unspecified afterwards unless `zero`.
template <typename T>
void ensure_size(std::vector<T>& v, size_t n, bool zero = false) {
  if (n > v.capacity()) note_workspace_growth();
  if (zero) {
    v.assign(n, T{});
  } else if (v.size() != n) {
    v.resize(n);
  }
}

}  // namespace ringtrain::ws
