/* isa: whether this compiler builds the x86 vector kernels (simd, softmax, matrix). They are
 * written with GCC's target pragmas and CPU-feature builtins; another compiler (clang, which
 * builds the fuzz targets) compiles the portable kernels only, and the run-time choice then
 * offers no vector or matrix set. */
#ifndef SEEKD_ISA_H
#define SEEKD_ISA_H

#if defined(__x86_64__) && !defined(__clang__)
#define SIMD_X86 1
#else
#define SIMD_X86 0
#endif

#endif
