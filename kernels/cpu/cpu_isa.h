// Which vector instructions the CPU kernels' hand-written paths use, decided once per process.
// The build targets baseline x86-64; the tile micro-kernels are compiled per ISA in their own
// files (kernels/cpu/tile_kernels_*.cpp) and picked here at run time from what the CPU reports
// (cpuid through __builtin_cpu_supports), so one binary runs at full width on an AVX-512 machine
// and on an AVX2-only one. RINGTRAIN_CPU_ISA=avx512|avx2|generic forces a path (never one the CPU
// lacks): the tests run every path on one machine, and a benchmark can compare them.
#pragma once

#include <string>

namespace ringtrain::cpu {

enum class Isa { kGeneric, kAvx2, kAvx512 };

// Widest path this CPU runs: AVX-512F with FMA, else AVX2 with FMA, else generic (sgemm).
Isa detected_isa();

// The path in use: RINGTRAIN_CPU_ISA if set, else detected_isa(). An unknown name, or a path the
// CPU cannot run, is an input error naming the variable (raised on first use).
Isa active_isa();

// The path forced by `value` (RINGTRAIN_CPU_ISA's text) on a CPU whose best is `best`; empty
// or null: best. Input error for a name that is not avx512/avx2/generic, or above `best`.
Isa isa_from_env(const char* value, Isa best);

const char* isa_name(Isa isa);

}  // namespace ringtrain::cpu
