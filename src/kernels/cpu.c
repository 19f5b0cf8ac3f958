/* cpu: the kernel levels (cpu.h). */
#include "kernels/cpu.h"

#include <stdio.h>
#include <string.h>

/* What each level needs, on top of the level below. */
static const uint32_t LEVEL_NEEDS[KL_COUNT] = {
    [KL_SCALAR] = 0,
    [KL_AVX2] = CPU_AVX2 | CPU_FMA | CPU_F16C | CPU_BMI2,
    [KL_AVX512] = CPU_AVX512F | CPU_AVX512BW | CPU_AVX512VL | CPU_AVX512DQ | CPU_AVX512CD | CPU_AVX512VNNI,
    [KL_AVX512VBMI] = CPU_AVX512VBMI,
};
static const char *const LEVEL_NAMES[KL_COUNT] = {"scalar", "avx2", "avx512", "avx512vbmi"};

/* The features of `needs` that f lacks, by name, into buf. */
static void missing_str(const CpuFeatures *f, uint32_t needs, char *buf, size_t n) {
    CpuFeatures m = {.bits = needs & ~f->bits};
    cpu_features_str(&m, buf, n);
}

int cpu_level_max(const CpuFeatures *f) {
    int level = KL_SCALAR;
    uint32_t needs = 0;
    for (int l = KL_SCALAR + 1; l < KL_COUNT; l++) {
        needs |= LEVEL_NEEDS[l];
        if ((f->bits & needs) != needs) break;
        level = l;
    }
    return level;
}

const char *kernel_level_name(int level) { return level >= 0 && level < KL_COUNT ? LEVEL_NAMES[level] : "?"; }

int kernel_level_parse(const char *name) {
    for (int l = 0; l < KL_COUNT; l++)
        if (name && !strcmp(name, LEVEL_NAMES[l])) return l;
    return -1;
}

int kernel_level_choose(const CpuFeatures *f, const char *request, int *level, Err *e) {
    int max = cpu_level_max(f);
    if (!request || !*request) {
        *level = max;
        return 0;
    }
    int want = kernel_level_parse(request);
    if (want < 0)
        return err_set(e, ERR_ARG, "ALOE_CPU=%s: no such kernel level (expected scalar, avx2, avx512 or avx512vbmi)",
                       request);
    if (want > max) {
        uint32_t needs = 0;
        for (int l = 0; l <= want; l++) needs |= LEVEL_NEEDS[l];
        char miss[256];
        missing_str(f, needs, miss, sizeof miss);
        return err_set(e, ERR_UNSUPPORTED,
                       "ALOE_CPU=%s: this CPU (or its OS) lacks %s; it runs levels up to %s", request, miss,
                       kernel_level_name(max));
    }
    *level = want;
    return 0;
}
