/* aloe speed: prefill and decode throughput, measured like llama-bench:
 * prefill = one batch of -p tokens (logits of the last token only), decode
 * = -n tokens one at a time, each after -d tokens of context (0: from an
 * empty cache), the context's prefill not timed. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/mem.h"
#include "base/rng.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "model/open.h"
#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/stream.h"
#include "model/decoder.h"

/* The most tokens -p, -n and -d may ask for (sums stay far from int's limit). */
#define SPEED_MAX_TOKENS (1 << 20)

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}


/* The process's peak resident set size in bytes (Linux reports KiB). */
static size_t peak_rss(void) {
    struct rusage u;
    return getrusage(RUSAGE_SELF, &u) ? 0 : (size_t)u.ru_maxrss * 1024;
}

/* n random token ids. */
static int32_t *random_ids(const Model *m, int n, Rng *r) {
    int32_t *ids = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)rng_below(r, (uint64_t)m->cfg.vocab_size);
    return ids;
}

/* A cache of depth + room positions, resident (as llama-bench clears its
 * KV buffer before timing), holding `depth` random tokens of context
 * (prefilled, not timed: a prompt whose beginning a prefix cache held). */
static int context_cache(Model *m, KvCache *kv, int depth, int room, Rng *r, Err *e) {
    if (kv_cache_init(kv, m, depth + room, e)) return -1;
    kv_cache_touch(kv);
    if (depth == 0) return 0;
    int32_t *ids = random_ids(m, depth, r);
    float *logits = xmalloc((size_t)m->cfg.vocab_size * sizeof(float));
    int rc = model_forward(m, kv, ids, depth, 0, logits, 0, e);
    free(ids), free(logits);
    return rc;
}

/* Seconds for a prefill of n random tokens after `depth` tokens of context;
 * *kv_max grows to the bytes of its KV cache. */
static int time_prefill(Model *m, int n, int depth, Rng *r, double *secs, size_t *kv_max, Err *e) {
    KvCache kv;
    int rc = context_cache(m, &kv, depth, n, r, e);
    if (kv_cache_bytes(m, depth + n) > *kv_max) *kv_max = kv_cache_bytes(m, depth + n);
    int32_t *ids = random_ids(m, n, r);
    float *logits = xmalloc((size_t)m->cfg.vocab_size * sizeof(float));
    double t0 = now_s();
    if (!rc) rc = model_forward(m, &kv, ids, n, depth, logits, 0, e);
    *secs = now_s() - t0;
    free(ids), free(logits);
    kv_cache_free(&kv);
    return rc;
}

/* The memory bound of decoding, measured during the decode: every
 * PROBE_EVERY steps one pass reading the weights a step reads (the time
 * of the passes is not the decode's). On a shared host the bandwidth
 * changes from minute to minute, so a bound measured before or after the
 * decode can be off by half. */
#define PROBE_EVERY 8

typedef struct Probe {
    const QMat **mats;
    int n_mats;
    double bytes; /* read per pass */
    double *secs;
    int len, cap;
} Probe;

static void probe_init(Probe *p, const Model *m) {
    memset(p, 0, sizeof *p);
    p->n_mats = model_decode_mats(m, NULL, 0);
    p->mats = xmalloc((size_t)p->n_mats * sizeof *p->mats);
    model_decode_mats(m, p->mats, p->n_mats);
    for (int i = 0; i < p->n_mats; i++) p->bytes += (double)dtype_nbytes(p->mats[i]->type, p->mats[i]->cols) * p->mats[i]->rows;
}

static void probe_pass(Probe *p, Model *m) {
    if (p->len == p->cap) p->secs = xrealloc(p->secs, (size_t)(p->cap = p->cap ? 2 * p->cap : 32) * sizeof *p->secs);
    /* the faster of the two read orders (stream.h): the tighter bound */
    double whole = stream_read_seconds(m->tp, p->mats, p->n_mats, STREAM_WHOLE, NULL);
    double per_matrix = stream_read_seconds(m->tp, p->mats, p->n_mats, STREAM_PER_MATRIX, NULL);
    p->secs[p->len++] = whole < per_matrix ? whole : per_matrix;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median pass, in seconds (0 without passes). */
static double probe_median(Probe *p) {
    if (!p->len) return 0;
    qsort(p->secs, (size_t)p->len, sizeof *p->secs, cmp_double);
    return p->secs[p->len / 2];
}

/* Seconds for n decode steps of one token for each of b sequences, after
 * `depth` tokens of context in each (prefilled, not timed); *kv_max grows
 * to the bytes of their KV caches. With a probe, its passes run between
 * steps, outside the time. */
static int time_decode(Model *m, int n, int depth, int b, Rng *r, double *secs, size_t *kv_max, Probe *probe,
                       Err *e) {
    KvCache *kv = xcalloc((size_t)b, sizeof *kv), **caches = xmalloc((size_t)b * sizeof *caches);
    int32_t *ids = xmalloc((size_t)b * sizeof *ids);
    int *pos = xmalloc((size_t)b * sizeof *pos), rc = 0;
    float *logits = xmalloc((size_t)b * m->cfg.vocab_size * sizeof(float));
    for (int s = 0; s < b && !rc; s++) rc = context_cache(m, &kv[s], depth, n, r, e), caches[s] = &kv[s];
    if ((size_t)b * kv_cache_bytes(m, depth + n) > *kv_max) *kv_max = (size_t)b * kv_cache_bytes(m, depth + n);
    *secs = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (probe && i % PROBE_EVERY == 0) probe_pass(probe, m);
        for (int s = 0; s < b; s++) ids[s] = (int32_t)rng_below(r, (uint64_t)m->cfg.vocab_size), pos[s] = depth + i;
        double t0 = now_s();
        rc = model_forward_batch(m, caches, ids, pos, b, NULL, b, logits, e);
        *secs += now_s() - t0;
    }
    for (int s = 0; s < b; s++) kv_cache_free(&kv[s]);
    free(kv), free(caches), free(ids), free(pos), free(logits);
    return rc;
}

/* The levels this CPU runs, "scalar avx2 ...", into buf. */
static void levels_str(char *buf, size_t n) {
    buf[0] = 0;
    for (int l = 0; l <= cpu_level_max(cpu_features()); l++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", l ? " " : "", kernel_level_name(l));
}

/* Whether the AMX tiles run (dispatch.h): "on", "off" (ALOE_AMX=0, or a
 * level below avx512) or "absent" (no tiles on this CPU, or the OS did
 * not grant them). */
static const char *amx_state(void) { return kernel_amx() ? "on" : kernel_amx_available() ? "off" : "absent"; }

/* aloe speed --kernels: the level chosen, the levels and the features. */
static int print_kernels(int json) {
    char levels[128], feats[512];
    levels_str(levels, sizeof levels);
    cpu_features_str(cpu_features(), feats, sizeof feats);
    /* auto's choices that follow the vendor (dispatch.h, kernel_prefetch_intel) */
    const char *vendor = kernel_prefetch_intel() ? "intel" : "other";
    if (!json) {
        printf("kernels: %s\nlevels: %s\ncpu: %s\nprefetch: %s (ALOE_PREFETCH)\nvendor: %s (auto prefetches stored "
               "Q4_0 rows into %s)\namx: %s (ALOE_AMX)\n",
               kernel_level_name(kernel_level()), levels, feats, kernel_prefetch_name(kernel_prefetch()), vendor,
               kernel_prefetch_intel() ? "L2" : "L1", amx_state());
        return 0;
    }
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kernels", kernel_level_name(kernel_level()), "levels",
                          levels, "cpu", feats, "prefetch", kernel_prefetch_name(kernel_prefetch()), "vendor", vendor,
                          "amx", amx_state());
    char *text = j ? json_dumps(j, 0) : NULL;
    if (text) printf("%s\n", text);
    free(text);
    json_decref(j);
    return 0;
}

/* Three decimals, as the JSON line always had. */
static double round3(double x) { return round(x * 1000) / 1000; }

int cmd_speed(int argc, char **argv) {
    const char *model = NULL, *shape = NULL, *type = "q8_0", *kv_type = NULL;
    int p = 512, n = 128, depth = 0, threads = 0, reps = 1, json = 0, batch = 1, kernels = 0;
    ArgSpec specs[] = {
        {"--model", "-m", ARG_STR, &model, "M", "a Hugging Face model directory, a .gguf file or hf://ORG/REPO", 0, 0},
        {"--shape", NULL, ARG_STR, &shape, "NAME", "random weights of a known model's shape instead of --model", 0, 0},
        {"--type", NULL, ARG_STR, &type, "T", "weight type for --shape: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_xs (K-quant rows "
                                                  "that are not multiples of 256 values fall back as llama.cpp's do: q4_k to q5_0, q6_k to q8_0, ...)", 0, 0},
        {"--prompt", "-p", ARG_INT, &p, "N", "prefill tokens (0: skip)", 0, 0},
        {"--gen", "-n", ARG_INT, &n, "N", "decode tokens (0: skip)", 0, 0},
        {"--depth", "-d", ARG_INT, &depth, "N", "prefill and decode after N tokens of context (prefilled, not timed)", 0, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (0: one per CPU)", 0, 0},
        {"--reps", "-r", ARG_INT, &reps, "N", "repetitions; the mean is reported", 0, 0},
        {"--kv-type", NULL, ARG_STR, &kv_type, "T", "KV cache type, f32 or f16 (default: $ALOE_KV_TYPE, else f32)", 0, 0},
        {"--batch", "-b", ARG_INT, &batch, "B", "decode B sequences together (tokens/s counts all of them)", 0, 0},
        {"--json", NULL, ARG_FLAG, &json, NULL, "end with one JSON line of the results", 0, 0},
        {"--kernels", NULL, ARG_FLAG, &kernels, NULL,
         "print the kernel level chosen (ALOE_CPU caps it), the levels, the features of this CPU, the prefetch mode (ALOE_PREFETCH) and the vendor whose choices auto follows, whether the AMX tiles run (ALOE_AMX), and stop", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const ArgCommand cmd = {
        "speed", "(--model M | --shape NAME) [-p 512] [-n 128] [-d 0] [-t N] [--type T] [--kv-type f32|f16] [--json]",
        "Measures prefill and decode speed in tokens/s, like llama-bench (pp = one batch of -p tokens, "
        "tg = -n tokens one at a time; both after -d tokens of context). --shape builds random weights in memory, so no download is needed; "
        "shapes: qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-3b, qwen3-0.6b, qwen3-1.7b, llama-3.2-1b, llama-3.2-3b, "
        "llama-3.1-8b, mistral-7b. With one sequence it also measures, during the decode, the time to read "
        "the weights a decode step reads (the faster of two read orders, no arithmetic), and prints the decode "
        "bound this gives for the weights and the KV cache a step reads, and the share of it reached.",
        "aloe speed --shape qwen2.5-0.5b --type q8_0 -p 512 -n 128 --json", 0, 0};
    Err e;
    err_clear(&e);
    int rc = args_parse_flags(&cmd, specs, argc, argv, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    if (kernels_init(&e)) return cli_fail(&e); /* an ALOE_CPU this CPU cannot run */
    if (kernels) return print_kernels(json);
    if (!model == !shape) {
        err_set(&e, ERR_ARG, "aloe speed: give either --model M or --shape NAME");
        return cli_fail(&e);
    }
    if (p < 0 || n < 0 || depth < 0 || reps < 1 || batch < 1 || (p == 0 && n == 0) || p > SPEED_MAX_TOKENS ||
        n > SPEED_MAX_TOKENS || depth > SPEED_MAX_TOKENS) {
        err_set(&e, ERR_ARG, "aloe speed: -p, -n and -d must be 0 to %d (-p and -n not both 0), -r and -b >= 1",
                SPEED_MAX_TOKENS);
        return cli_fail(&e);
    }
    Model *m;
    double t0 = now_s();
    if (shape) {
        ModelConfig cfg;
        int dt = dtype_from_name(type);
        if (model_shape_config(shape, &cfg, &e)) return cli_fail(&e);
        if (dt == DT_INVALID || !kernel_type_ok(dt)) {
            err_set(&e, ERR_ARG, "aloe speed: --type %s is not one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_xs", type);
            return cli_fail(&e);
        }
        m = model_init_random(&cfg, dt, 1, threads, &e);
    } else {
        ModelOpenOptions mo = {.weights = 1, .n_threads = threads};
        ModelBundle mb;
        m = model_open(model, &mo, &mb, &e) ? NULL : mb.model;
        free(mb.path); /* the model is ours now */
    }
    if (m && model_set_kv_type_name(m, kv_type, &e)) model_free(m), m = NULL;
    if (!m) return cli_fail(&e);
    double load_s = now_s() - t0;
    Rng r;
    rng_seed(&r, 42);
    /* warm-up: touches every weight page (mapped files) and grows buffers */
    double pp = 0, tg = 0, s;
    size_t kv_max = 0, kv_warm = 0;
    rc = time_prefill(m, p > 0 ? (p < 16 ? p : 16) : 1, 0, &r, &s, &kv_warm, &e);
    if (!rc) rc = time_decode(m, 2, 0, batch, &r, &s, &kv_warm, NULL, &e);
    Probe probe;
    probe_init(&probe, m);
    for (int i = 0; i < reps && !rc; i++) {
        if (p > 0 && !(rc = time_prefill(m, p, depth, &r, &s, &kv_max, &e))) pp += p / s;
        if (n > 0 && !rc && !(rc = time_decode(m, n, depth, batch, &r, &s, &kv_max, batch == 1 ? &probe : NULL, &e)))
            tg += (double)n * batch / s;
    }
    if (kv_warm > kv_max) kv_max = kv_warm;
    /* the memory bound of decoding: the time to read, once, what a decode
     * step reads -- the weights (timed by the probe) and, at the probe's
     * rate, the keys and values of every position before it (on average
     * over the steps; negligible unless the context is long) */
    double weight_s = probe_median(&probe), stream_bytes = probe.bytes;
    double kv_step = 0; /* mean over the steps; a sliding window caps the positions read */
    for (int i = 0; i < n; i++) {
        int seen = depth + i + 1, w = m->cfg.sliding_window;
        kv_step += (double)kv_cache_bytes(m, 1) * (w > 0 && seen > w ? w : seen) / n;
    }
    double stream_s = weight_s * (1 + kv_step / stream_bytes);
    free(probe.mats), free(probe.secs);
    if (rc) {
        model_free(m);
        return cli_fail(&e);
    }
    pp /= reps, tg /= reps;
    const char *name = shape ? shape : model;
    const char *wtype = dtype_name(m->weight_type);
    /* llama-bench's units: MiB / M below a GiB / a billion, so tiny models
     * do not read as 0.00 */
    char size[32], params[32];
    double bytes = (double)model_weight_bytes(m), count = (double)model_param_count(m);
    if (bytes >= (1 << 30)) snprintf(size, sizeof size, "%.2f GiB", bytes / (1 << 30));
    else snprintf(size, sizeof size, "%.2f MiB", bytes / (1 << 20));
    if (count >= 1e9) snprintf(params, sizeof params, "%.2f B", count / 1e9);
    else snprintf(params, sizeof params, "%.2f M", count / 1e6);
    printf("| model | type | size | params | threads | test | t/s |\n|---|---|---|---|---|---|---|\n");
    char at[24] = "", tag[40] = "";
    if (depth > 0) snprintf(at, sizeof at, " @ d%d", depth); /* llama-bench's label */
    if (p > 0) printf("| %s | %s | %s | %s | %d | pp%d%s | %.2f |\n", name, wtype, size, params, tp_size(m->tp), p, at, pp);
    if (batch > 1) snprintf(tag, sizeof tag, " x%d", batch);
    snprintf(tag + strlen(tag), sizeof tag - strlen(tag), "%s", at);
    if (n > 0)
        printf("| %s | %s | %s | %s | %d | tg%d%s | %.2f |\n", name, wtype, size, params, tp_size(m->tp), n, tag, tg);
    /* resident memory: the weights (mapped files count once touched, which
     * the warm-up does) + the largest KV cache + buffers */
    size_t rss = peak_rss();
    if (stream_s > 0)
        printf("\nbandwidth: reading the %.2f MiB of weights a decode step reads takes %.2f ms (%.1f GB/s); with "
               "%.2f MiB of KV cache per step: decode bound %.1f tokens/s, reached %.0f%%\n",
               stream_bytes / (1 << 20), weight_s * 1e3, stream_bytes / weight_s / 1e9, kv_step / (1 << 20),
               1 / stream_s, 100 * tg * stream_s);
    char levels[128];
    levels_str(levels, sizeof levels);
    printf("%skernels: %s (this CPU runs %s; ALOE_CPU caps it), prefetch %s, AMX tiles %s\n", stream_s > 0 ? "" : "\n",
           kernel_level_name(kernel_level()), levels, kernel_prefetch_name(kernel_prefetch()), amx_state());
    char place[96] = "in memory";
    if (m->mapped_bytes)
        snprintf(place, sizeof place, "%.2f MiB of them read from the file's map", (double)m->mapped_bytes / (1 << 20));
    printf("memory: weights %.2f MiB (%s; ALOE_WEIGHTS), KV cache %.2f MiB (%s, largest used), peak resident %.2f "
           "MiB\n",
           bytes / (1 << 20), place, (double)kv_max / (1 << 20), dtype_name(m->kv_type), (double)rss / (1 << 20));
    if (json) { /* through jansson: a model path may hold quotes or backslashes */
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f}", "model",
                              name, "type", wtype, "source", m->source, "weights_bytes",
                              (json_int_t)model_weight_bytes(m), "kv_cache_bytes", (json_int_t)kv_max, "peak_rss_bytes",
                              (json_int_t)rss, "params", (json_int_t)model_param_count(m), "threads", tp_size(m->tp),
                              "prompt_tokens", p, "gen_tokens", n, "depth", depth, "batch", batch, "reps", reps, "load_s",
                              round3(load_s), "prefill_tps", round3(pp), "decode_tps", round3(tg));
        /* the memory bound (bandwidth line above) */
        if (j && stream_s > 0) json_object_set_new(j, "stream_gbps", json_real(round3(stream_bytes / weight_s / 1e9)));
        if (j && stream_s > 0) json_object_set_new(j, "decode_bound_tps", json_real(round3(1 / stream_s)));
        /* what the bound counts a step to read: the weights and the mean KV cache */
        if (j && stream_s > 0) json_object_set_new(j, "decode_step_bytes", json_real(round(stream_bytes + kv_step)));
        if (j) json_object_set_new(j, "kv_type", json_string(dtype_name(m->kv_type)));
        if (j) json_object_set_new(j, "weights_mapped_bytes", json_integer((json_int_t)m->mapped_bytes));
        if (j) json_object_set_new(j, "kernels", json_string(kernel_level_name(kernel_level())));
        if (j) json_object_set_new(j, "amx", json_string(amx_state()));
        char *text = j ? json_dumps(j, JSON_REAL_PRECISION(10)) : NULL;
        if (text) printf("%s\n", text);
        free(text);
        json_decref(j);
    }
    model_free(m);
    return 0;
}
