/* dispatch: the public kernel functions, each a jump through the chosen
 * level's table (dispatch.h; the lists: kernel_funcs.h). */
#include "kernels/dispatch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu_features.h"
#include "kernels/cpu.h"
#include "kernels/kernel_funcs.h"

/* every level's functions, by their per-level names (klevel.h) */
#define DECLARE_LEVEL(level)                                                                                         \
    KERNEL_DISPATCHED(DECLARE##_##level)
#define DECLARE_scalar(ret, name, params, args) ret name##_scalar params;
#define DECLARE_avx2(ret, name, params, args) ret name##_avx2 params;
#define DECLARE_avx512(ret, name, params, args) ret name##_avx512 params;
#define DECLARE_avx512vbmi(ret, name, params, args) ret name##_avx512vbmi params;
KERNEL_LEVELS(DECLARE_LEVEL)
KERNEL_FIXED(DECLARE_scalar)

typedef struct KernelTable {
#define FIELD(ret, name, params, args) ret(*name) params;
    KERNEL_DISPATCHED(FIELD)
} KernelTable;

#define ENTRY_scalar(ret, name, params, args) .name = name##_scalar,
#define ENTRY_avx2(ret, name, params, args) .name = name##_avx2,
#define ENTRY_avx512(ret, name, params, args) .name = name##_avx512,
#define ENTRY_avx512vbmi(ret, name, params, args) .name = name##_avx512vbmi,
#define TABLE(level) {KERNEL_DISPATCHED(ENTRY_##level)},
static const KernelTable TABLES[KL_COUNT] = {KERNEL_LEVELS(TABLE)};

static _Atomic(const KernelTable *) current;
static _Atomic int current_level;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static Err init_err;
static int init_failed;

/* Read by every level's prefetch_ahead (quant_internal.h). */
int kernel_prefetch_mode = KPF_AUTO;
static const char *const PREFETCH_NAMES[] = {"off", "l1", "l2", "auto"};

const char *kernel_prefetch_name(int mode) { return mode >= KPF_OFF && mode <= KPF_AUTO ? PREFETCH_NAMES[mode] : "?"; }

int kernel_prefetch(void) { return kernel_prefetch_mode; }

int kernel_set_prefetch(int mode) {
    int was = kernel_prefetch_mode;
    if (mode >= KPF_OFF && mode <= KPF_AUTO) kernel_prefetch_mode = mode;
    return was;
}

/* Read, with the mode, by the rows of the dots it names (dispatch.h). */
int kernel_prefetch_intel_on;

int kernel_prefetch_intel(void) { return kernel_prefetch_intel_on; }

int kernel_set_prefetch_intel(int on) {
    int was = kernel_prefetch_intel_on;
    kernel_prefetch_intel_on = on != 0;
    return was;
}

static void choose(void) {
    const CpuFeatures *f = cpu_features();
    int level;
    if (kernel_level_choose(f, getenv("ALOE_CPU"), &level, &init_err) != 0) {
        init_failed = 1;
        level = cpu_level_max(f);
    }
    kernel_prefetch_intel_on = f->intel;
    const char *pf = getenv("ALOE_PREFETCH");
    if (pf && *pf) {
        int m = -1;
        for (int i = KPF_OFF; i <= KPF_AUTO; i++)
            if (!strcmp(pf, PREFETCH_NAMES[i])) m = i;
        if (m >= 0) kernel_prefetch_mode = m;
        else if (!init_failed) {
            err_set(&init_err, ERR_ARG, "ALOE_PREFETCH=%s: expected auto (the default), l1, l2 or off", pf);
            init_failed = 1;
        }
    }
    atomic_store(&current_level, level);
    atomic_store_explicit(&current, &TABLES[level], memory_order_release);
}

int kernels_init(Err *e) {
    pthread_once(&init_once, choose);
    if (!init_failed) return 0;
    if (e) *e = init_err;
    return -1;
}

int kernel_level(void) {
    pthread_once(&init_once, choose);
    return atomic_load(&current_level);
}

int kernel_set_level(int level, Err *e) {
    pthread_once(&init_once, choose);
    int max = cpu_level_max(cpu_features());
    if (level < 0 || level >= KL_COUNT) return err_set(e, ERR_ARG, "kernel level %d: no such level", level);
    if (level > max)
        return err_set(e, ERR_UNSUPPORTED, "kernel level %s: this CPU runs levels up to %s", kernel_level_name(level),
                       kernel_level_name(max));
    atomic_store(&current_level, level);
    atomic_store_explicit(&current, &TABLES[level], memory_order_release);
    return 0;
}

/* AMX (dispatch.h): the tiles are a feature the AVX-512 levels use at run
 * time (gemm_q_amx.c), as AVX512-BF16 is (gemm_bf16.c), rather than a
 * level of their own: one more build of every kernel source and one more
 * pass of every kernel test for one tile kernel. */
static _Atomic int amx_allowed = 1;
static int amx_granted;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static void amx_probe(void) {
    const char *v = getenv("ALOE_AMX");
    if (v && !strcmp(v, "0")) atomic_store(&amx_allowed, 0);
    const uint32_t need = CPU_AMX_TILE | CPU_AMX_INT8;
    Err e;
    amx_granted = (cpu_features()->bits & need) == need && cpu_amx_request(&e) == 0;
}

int kernel_amx_available(void) {
    pthread_once(&amx_once, amx_probe);
    return amx_granted;
}

int kernel_amx(void) {
    return kernel_amx_available() && atomic_load_explicit(&amx_allowed, memory_order_relaxed) &&
           kernel_level() >= KL_AVX512;
}

int kernel_set_amx(int on) {
    pthread_once(&amx_once, amx_probe);
    return atomic_exchange(&amx_allowed, on != 0);
}

/* The table, chosen at the first call. */
static inline const KernelTable *table(void) {
    const KernelTable *t = atomic_load_explicit(&current, memory_order_acquire);
    if (__builtin_expect(t != NULL, 1)) return t;
    pthread_once(&init_once, choose);
    return atomic_load_explicit(&current, memory_order_acquire);
}

/* `return` for functions with a value, nothing for void ones */
#define RET_void
#define RET_int return
#define RET_float return
#define RET_double return
#define RET_size_t return
#define PUBLIC(ret, name, params, args)                                                                              \
    ret name params { RET_##ret table()->name args; }
KERNEL_DISPATCHED(PUBLIC)

#define PUBLIC_FIXED(ret, name, params, args)                                                                        \
    ret name params { RET_##ret name##_scalar args; }
KERNEL_FIXED(PUBLIC_FIXED)
