/* cpu: what this processor and its operating system let the kernels use
 * (cpuid, and xgetbv for the register state the OS saves), and the kernel
 * levels built from it. One binary carries every level's kernels
 * (dispatch.c); the probe picks the best the CPU runs, ALOE_CPU caps it. */
#ifndef ALOE_KERNELS_CPU_H
#define ALOE_KERNELS_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Feature bits (CpuFeatures.bits). A vector feature is reported only when
 * the OS also saves its registers (XCR0: YMM for AVX*, opmask/ZMM for
 * AVX-512, tile state for AMX). */
enum {
    CPU_AVX2 = 1u << 0,
    CPU_FMA = 1u << 1,
    CPU_F16C = 1u << 2,
    CPU_BMI2 = 1u << 3, /* with BMI1: part of x86-64-v3, as the avx2 level is built */
    CPU_AVX512F = 1u << 4,
    CPU_AVX512BW = 1u << 5,
    CPU_AVX512VL = 1u << 6,
    CPU_AVX512DQ = 1u << 7,
    CPU_AVX512CD = 1u << 8,
    CPU_AVX512VNNI = 1u << 9,
    CPU_AVX512BF16 = 1u << 10,
    CPU_AVX512VBMI = 1u << 11,
    CPU_AVXVNNI = 1u << 12,
    CPU_AMX_TILE = 1u << 13,
    CPU_AMX_INT8 = 1u << 14,
    CPU_AMX_BF16 = 1u << 15,
    CPU_FEATURE_COUNT = 16
};

typedef struct CpuFeatures {
    uint32_t bits;
} CpuFeatures;

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

/* This CPU's features, probed once (thread-safe). */
const CpuFeatures *cpu_features(void);
/* The features of cpuid/xgetbv results (cpu_features' work; split out so
 * that it runs on any x86 and returns 0 bits elsewhere). */
void cpu_probe(CpuFeatures *f);
/* "avx2 fma f16c ..." into buf (size n): the features f has. */
void cpu_features_str(const CpuFeatures *f, char *buf, size_t n);

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

/* Asks Linux for the AMX tile data state (arch_prctl ARCH_REQ_XCOMP_PERM),
 * which a process must do before its first tile instruction: 0 when
 * granted, -1 (e set) when the CPU has no AMX or the kernel refuses. Call
 * it only where AMX kernels will run: the state enlarges every context
 * switch's save area. */
int cpu_amx_request(Err *e);

#endif
