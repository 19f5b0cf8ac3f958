/* cpu_features: what this processor and its operating system let the
 * program use (cpuid, and xgetbv for the register state the OS saves).
 * Probed once. Here in base/ so that every layer can ask -- formats/'s
 * F16 row conversion as well as the kernels' levels (kernels/cpu.h). */
#ifndef ALOE_BASE_CPU_FEATURES_H
#define ALOE_BASE_CPU_FEATURES_H

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
    int intel; /* the vendor is GenuineIntel: where the prefetches go differs by vendor (kernels/dispatch.h) */
} CpuFeatures;

/* This CPU's features, probed once (thread-safe). */
const CpuFeatures *cpu_features(void);
/* The features of cpuid/xgetbv results (cpu_features' work; split out so
 * that it runs on any x86 and returns 0 bits elsewhere). */
void cpu_probe(CpuFeatures *f);
/* "avx2 fma f16c ..." into buf (size n): the features f has. */
void cpu_features_str(const CpuFeatures *f, char *buf, size_t n);

/* Asks Linux for the AMX tile data state (arch_prctl ARCH_REQ_XCOMP_PERM),
 * which a process must do before its first tile instruction: 0 when
 * granted, -1 (e set) when the CPU has no AMX or the kernel refuses. Call
 * it only where AMX kernels will run: the state enlarges every context
 * switch's save area. */
int cpu_amx_request(Err *e);

#endif
