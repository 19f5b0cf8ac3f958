/* The CPU probe and the kernel levels: which level features allow, ALOE_CPU's
 * cap (a level the CPU lacks refused, naming what is missing), and switching
 * levels in one process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/quant.h"
#include "test.h"

#define AVX2_BITS (CPU_AVX2 | CPU_FMA | CPU_F16C | CPU_BMI2)
#define AVX512_BITS (AVX2_BITS | CPU_AVX512F | CPU_AVX512BW | CPU_AVX512VL | CPU_AVX512DQ | CPU_AVX512CD | CPU_AVX512VNNI)

static void test_level_max(void) {
    CpuFeatures none = {.bits = 0}, avx2 = {.bits = AVX2_BITS}, no_fma = {.bits = AVX2_BITS & ~(uint32_t)CPU_FMA};
    CpuFeatures skx = {.bits = AVX512_BITS & ~(uint32_t)CPU_AVX512VNNI}; /* Skylake-X: no VNNI */
    CpuFeatures clx = {.bits = AVX512_BITS}, zen4 = {.bits = AVX512_BITS | CPU_AVX512VBMI | CPU_AVX512BF16};
    CpuFeatures vbmi_only = {.bits = AVX2_BITS | CPU_AVX512VBMI}; /* a level needs every level below it */
    CHECK(cpu_level_max(&none) == KL_SCALAR);
    CHECK(cpu_level_max(&no_fma) == KL_SCALAR);
    CHECK(cpu_level_max(&avx2) == KL_AVX2);
    CHECK(cpu_level_max(&skx) == KL_AVX2);
    CHECK(cpu_level_max(&clx) == KL_AVX512);
    CHECK(cpu_level_max(&zen4) == KL_AVX512VBMI);
    CHECK(cpu_level_max(&vbmi_only) == KL_AVX2);
}

static void test_names(void) {
    for (int l = 0; l < KL_COUNT; l++) CHECK(kernel_level_parse(kernel_level_name(l)) == l);
    CHECK(kernel_level_parse("AVX2") == -1);
    CHECK(kernel_level_parse(NULL) == -1);
    CHECK(!strcmp(kernel_level_name(KL_COUNT), "?"));
    char buf[512];
    CpuFeatures f = {.bits = CPU_AVX2 | CPU_AVX512VNNI | CPU_AMX_INT8};
    cpu_features_str(&f, buf, sizeof buf);
    CHECK(!strcmp(buf, "avx2 avx512vnni amx-int8"));
    f.bits = 0;
    cpu_features_str(&f, buf, sizeof buf);
    CHECK(!strcmp(buf, "none"));
    cpu_features_str(cpu_features(), buf, 8); /* truncated at a whole name, terminated */
    CHECK(strlen(buf) < 8);
}

static void test_override(void) {
    CpuFeatures avx2 = {.bits = AVX2_BITS};
    Err e;
    int level = -1;
    CHECK(kernel_level_choose(&avx2, NULL, &level, &e) == 0 && level == KL_AVX2);
    CHECK(kernel_level_choose(&avx2, "", &level, &e) == 0 && level == KL_AVX2);
    CHECK(kernel_level_choose(&avx2, "scalar", &level, &e) == 0 && level == KL_SCALAR);
    CHECK(kernel_level_choose(&avx2, "avx2", &level, &e) == 0 && level == KL_AVX2);
    /* above what the CPU has: refused, naming the missing features */
    level = -1;
    CHECK(kernel_level_choose(&avx2, "avx512", &level, &e) == -1 && level == -1);
    CHECK(e.code == ERR_UNSUPPORTED);
    CHECK(strstr(e.msg, "ALOE_CPU=avx512") && strstr(e.msg, "avx512f") && strstr(e.msg, "avx512vnni"));
    CHECK(strstr(e.msg, "up to avx2") && !strstr(e.msg, "fma"));
    CHECK(kernel_level_choose(&avx2, "avx512vbmi", &level, &e) == -1 && strstr(e.msg, "avx512vbmi"));
    CHECK(kernel_level_choose(&avx2, "sse4", &level, &e) == -1 && e.code == ERR_ARG);
    CHECK(strstr(e.msg, "ALOE_CPU=sse4") && strstr(e.msg, "scalar, avx2, avx512 or avx512vbmi"));
}

static void test_set_level(void) {
    int top = kernel_level(), max = cpu_level_max(cpu_features());
    CHECK(top <= max);
    Err e;
    CHECK(kernel_set_level(KL_COUNT, &e) == -1);
    CHECK(kernel_set_level(-1, &e) == -1);
    if (max + 1 < KL_COUNT) { /* a level this CPU lacks */
        CHECK(kernel_set_level(max + 1, &e) == -1 && e.code == ERR_UNSUPPORTED);
        CHECK(kernel_level() == top);
    }
    /* every level runs the kernels to the same result (f32 dot: exact
     * small integers, whatever the order of the sums) */
    float w[37], x[37];
    for (int i = 0; i < 37; i++) w[i] = (float)(i % 5), x[i] = (float)(i % 3 - 1);
    float want = vec_dot_ref(DT_F32, w, x, 37);
    for (int l = 0; l <= max; l++) {
        CHECK_OK(kernel_set_level(l, &e), &e);
        CHECK(kernel_level() == l);
        CHECK(vec_dot(DT_F32, w, x, 37) == want);
    }
    CHECK_OK(kernel_set_level(top, &e), &e);
}

static void test_init_honours_env(void) {
    /* the level chosen at start (test_set_level put it back) is ALOE_CPU's
     * where it is set (.ci/run runs the tests under each level), else the
     * best this CPU runs */
    Err e;
    const char *req = getenv("ALOE_CPU");
    CHECK(kernels_init(&e) == 0);
    CHECK(kernel_level() == (req && *req ? kernel_level_parse(req) : cpu_level_max(cpu_features())));
}

/* The text of dir/name (up to cap - 1 bytes) into buf; 0 if unreadable. */
static int read_out(const char *dir, const char *name, char *buf, size_t cap) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    memset(buf, 0, cap);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    if (f) fclose(f);
    return n > 0;
}

/* The aloe binary refuses an ALOE_CPU it cannot run, before any work,
 * with the message; accepts the levels it can. */
static void test_cli_refuses(void) {
    char *aloe = test_build_path("aloe");
    char dir[] = "/tmp/aloe-cpu-XXXXXX", buf[1024];
    CHECK(mkdtemp(dir) != NULL);
    int max = cpu_level_max(cpu_features());
    CHECK(test_system("ALOE_CPU=sse9 %s speed --kernels > %s/out 2> %s/err", aloe, dir, dir) == 2);
    CHECK(read_out(dir, "err", buf, sizeof buf));
    CHECK(strstr(buf, "ALOE_CPU=sse9: no such kernel level") != NULL);
    if (max + 1 < KL_COUNT)
        CHECK(test_system("ALOE_CPU=%s %s speed --kernels > /dev/null 2>&1", kernel_level_name(max + 1), aloe) == 2);
    CHECK(test_system("ALOE_CPU=scalar %s speed --kernels > %s/out 2>&1", aloe, dir) == 0);
    CHECK(read_out(dir, "out", buf, sizeof buf));
    CHECK(!strncmp(buf, "kernels: scalar\n", 16));
    test_system("rm -rf %s", dir);
    free(aloe);
}

/* ALOE_PREFETCH: the aloe binary takes auto, l1, l2 and off and says
 * which it runs; another value is refused before any work, with the
 * message. */
static void test_cli_prefetch(void) {
    char *aloe = test_build_path("aloe");
    char dir[] = "/tmp/aloe-cpu-XXXXXX", buf[1024];
    CHECK(mkdtemp(dir) != NULL);
    CHECK(test_system("ALOE_PREFETCH=l3 %s speed --kernels > %s/out 2> %s/err", aloe, dir, dir) == 2);
    CHECK(read_out(dir, "err", buf, sizeof buf));
    CHECK_MSG(strstr(buf, "ALOE_PREFETCH=l3: expected auto (the default), l1, l2 or off") != NULL, "%s", buf);
    static const char *const modes[] = {"off", "l1", "l2", "auto"};
    for (int i = 0; i < 4; i++) {
        CHECK(test_system("ALOE_PREFETCH=%s %s speed --kernels > %s/out 2>&1", modes[i], aloe, dir) == 0);
        CHECK(read_out(dir, "out", buf, sizeof buf));
        char want[64];
        snprintf(want, sizeof want, "prefetch: %s (ALOE_PREFETCH)", modes[i]);
        CHECK_MSG(strstr(buf, want) != NULL, "%s: %s", modes[i], buf);
    }
    CHECK(test_system("env -u ALOE_PREFETCH %s speed --kernels 2>&1 | grep -q 'prefetch: auto '", aloe) == 0); /* the default */
    /* and the vendor whose choices auto follows, the probe's */
    CHECK(test_system("%s speed --kernels 2>&1 | grep -q '^vendor: %s (auto prefetches stored Q4_0 rows into %s)'", aloe,
                      cpu_features()->intel ? "intel" : "other", cpu_features()->intel ? "L2" : "L1") == 0);
    CHECK(test_system("%s speed --kernels --json 2>&1 | grep -q '\"vendor\": \"%s\"'", aloe,
                      cpu_features()->intel ? "intel" : "other") == 0);
    test_system("rm -rf %s", dir);
    free(aloe);
}

/* The vendor the probe reads from CPUID leaf 0 (the prefetch choices that
 * differ by vendor follow it) is the one Linux reports in /proc/cpuinfo,
 * and auto starts with Intel's choices exactly on an Intel CPU. */
static void test_vendor(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    CHECK_MSG(f != NULL, "/proc/cpuinfo: cannot open it");
    if (!f) return;
    char line[512];
    int intel = 0, seen = 0;
    while (!seen && fgets(line, sizeof line, f))
        if (!strncmp(line, "vendor_id", 9)) seen = 1, intel = strstr(line, "GenuineIntel") != NULL;
    fclose(f);
    /* no vendor_id line: not an x86, where the probe reports nothing */
    CHECK_MSG(cpu_features()->intel == intel, "probe says intel=%d, /proc/cpuinfo %d", cpu_features()->intel, intel);
    Err e;
    CHECK_OK(kernels_init(&e), &e);
    CHECK(kernel_prefetch_intel() == intel);
}

int main(void) {
    RUN(test_vendor);
    RUN(test_level_max);
    RUN(test_names);
    RUN(test_override);
    RUN(test_set_level);
    RUN(test_init_honours_env);
    RUN(test_cli_refuses);
    RUN(test_cli_prefetch);
    return test_summary();
}
