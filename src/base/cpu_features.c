/* cpu_features: the probe (cpu_features.h). */
#include "base/cpu_features.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define CPU_X86 1
#else
#define CPU_X86 0
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

static const char *const FEATURE_NAMES[CPU_FEATURE_COUNT] = {
    "avx2",       "fma",        "f16c",       "bmi2",       "avx512f",    "avx512bw",
    "avx512vl",   "avx512dq",   "avx512cd",   "avx512vnni", "avx512bf16", "avx512vbmi",
    "avxvnni",    "amx-tile",   "amx-int8",   "amx-bf16"};

#if CPU_X86
/* XCR0: which register states the OS saves on a context switch. Without
 * OSXSAVE the OS saves none of the AVX state and AVX must not be used. */
static uint64_t xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}
#endif

void cpu_probe(CpuFeatures *f) {
    f->bits = 0;
    f->intel = 0;
#if CPU_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    f->intel = b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e; /* "Genu" "ineI" "ntel" */
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return;
    uint64_t x = xcr0();
    const int ymm = (x & 0x6) == 0x6;                     /* SSE + AVX state */
    const int zmm = ymm && (x & 0xe0) == 0xe0;            /* opmask, ZMM 0-15 upper halves, ZMM 16-31 */
    const int tiles = (x & 0x60000) == 0x60000;           /* XTILECFG + XTILEDATA (granted per process) */
    if (!ymm) return;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0;
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b7, c7, d7);
        unsigned subleaves = a;
        if (subleaves >= 1) __cpuid_count(7, 1, a71, b, c, d);
    }
    uint32_t r = 0;
    if ((b7 >> 5) & 1) r |= CPU_AVX2;
    if (fma) r |= CPU_FMA;
    if (f16c) r |= CPU_F16C;
    if (((b7 >> 3) & 1) && ((b7 >> 8) & 1)) r |= CPU_BMI2; /* BMI1 and BMI2 */
    if ((a71 >> 4) & 1) r |= CPU_AVXVNNI;
    if (zmm) {
        if ((b7 >> 16) & 1) r |= CPU_AVX512F;
        if ((b7 >> 17) & 1) r |= CPU_AVX512DQ;
        if ((b7 >> 28) & 1) r |= CPU_AVX512CD;
        if ((b7 >> 30) & 1) r |= CPU_AVX512BW;
        if ((b7 >> 31) & 1) r |= CPU_AVX512VL;
        if ((c7 >> 1) & 1) r |= CPU_AVX512VBMI;
        if ((c7 >> 11) & 1) r |= CPU_AVX512VNNI;
        if ((a71 >> 5) & 1) r |= CPU_AVX512BF16;
        if (!(r & CPU_AVX512F)) r &= ~(uint32_t)(CPU_AVX512DQ | CPU_AVX512CD | CPU_AVX512BW | CPU_AVX512VL |
                                                 CPU_AVX512VBMI | CPU_AVX512VNNI | CPU_AVX512BF16);
    }
    /* AMX: the tile state bits are in XCR0 once the OS supports it; using
     * the tiles still needs cpu_amx_request */
    if (tiles) {
        if ((d7 >> 24) & 1) r |= CPU_AMX_TILE;
        if ((d7 >> 25) & 1) r |= CPU_AMX_INT8;
        if ((d7 >> 22) & 1) r |= CPU_AMX_BF16;
    }
    f->bits = r;
#endif
}

static CpuFeatures probed;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static void probe_now(void) { cpu_probe(&probed); }

const CpuFeatures *cpu_features(void) {
    pthread_once(&probe_once, probe_now);
    return &probed;
}

void cpu_features_str(const CpuFeatures *f, char *buf, size_t n) {
    size_t at = 0;
    if (n) buf[0] = 0;
    for (int i = 0; i < CPU_FEATURE_COUNT && n; i++) {
        if (!(f->bits & (1u << i))) continue;
        size_t len = strlen(FEATURE_NAMES[i]) + (at ? 1 : 0);
        if (at + len + 1 > n) break;
        if (at) buf[at++] = ' ';
        strcpy(buf + at, FEATURE_NAMES[i]);
        at += strlen(FEATURE_NAMES[i]);
    }
    if (n && !at) snprintf(buf, n, "none");
}

int cpu_amx_request(Err *e) {
#if defined(__linux__) && defined(__x86_64__)
    const uint32_t amx = CPU_AMX_TILE;
    if (!(cpu_features()->bits & amx)) return err_set(e, ERR_UNSUPPORTED, "AMX: this CPU (or its OS) has no AMX tiles");
    /* ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18): the
     * constants of asm/prctl.h, which older headers lack */
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0)
        return err_set(e, ERR_UNSUPPORTED, "AMX: the kernel refused the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM)");
    return 0;
#else
    return err_set(e, ERR_UNSUPPORTED, "AMX: only on x86-64 Linux");
#endif
}
