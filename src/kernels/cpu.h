/* cpu: the kernel levels built from what the processor and its OS let
 * the kernels use (base/cpu_features.h). One binary carries every level's kernels
 * (dispatch.c); the probe picks the best the CPU runs, ALOE_CPU caps it. */
#ifndef ALOE_KERNELS_CPU_H
#define ALOE_KERNELS_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "base/cpu_features.h"
#include "base/err.h"

/* Kernel levels, each a build of the SIMD kernel sources with its own
 * target flags (Makefile: KLEVELS, KFLAGS_*). Ordered: a CPU that runs a
 * level runs every level below it. */
typedef enum KernelLevel {
    KL_SCALAR = 0,  /* no vector extensions: the portable code */
    KL_AVX2,        /* AVX2 + FMA + F16C (+ BMI1/2): x86-64-v3 */
    KL_AVX512,      /* + AVX-512 F/BW/VL/DQ/CD/VNNI (Cascade Lake, Zen 4 without VBMI's paths) */
    KL_AVX512VBMI,  /* + AVX-512 VBMI (Ice Lake, Sapphire Rapids, Zen 4/5) */
    KL_COUNT
} KernelLevel;

/* The highest level features f run. */
int cpu_level_max(const CpuFeatures *f);
/* A level's name ("scalar", "avx2", "avx512", "avx512vbmi"), or "?". */
const char *kernel_level_name(int level);
/* A name to its level; -1 when there is no such level. */
int kernel_level_parse(const char *name);
/* The level to run on a CPU with features f when the user asks for
 * `request` (ALOE_CPU; NULL or "" = the best f runs): the request itself,
 * or -1 and e set when it is no level's name or f cannot run it (the
 * message says which features are missing and which levels there are). */
int kernel_level_choose(const CpuFeatures *f, const char *request, int *level, Err *e);

#endif
