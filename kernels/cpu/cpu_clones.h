// RT_CPU_CLONES: a loop function compiled for AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and the
// baseline, picked at load time (GNU ifunc): the build targets baseline x86-64, where GCC's
// vectors are 4 wide. The wider clones may contract a * b + c into one FMA (GCC does in C++):
// one rounding fewer, well inside the fp32 tolerances.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define RT_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RT_CPU_CLONES
#endif
