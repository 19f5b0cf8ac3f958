/* aloe speed: prefill and decode throughput, measured like llama-bench:
 * prefill = one batch of -p tokens into an empty cache (logits of the last
 * token only), decode = -n tokens one at a time from an empty cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "base/rng.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "model/decoder.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Seconds for a prefill of n random tokens. */
static int time_prefill(Model *m, int n, Rng *r, double *secs, Err *e) {
    KvCache kv;
    if (kv_cache_init(&kv, m, n, e)) return -1;
    int32_t *ids = xmalloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)rng_below(r, (uint64_t)m->cfg.vocab_size);
    float *logits = xmalloc((size_t)m->cfg.vocab_size * sizeof(float));
    double t0 = now_s();
    int rc = model_forward(m, &kv, ids, n, 0, logits, 0, e);
    *secs = now_s() - t0;
    free(ids), free(logits);
    kv_cache_free(&kv);
    return rc;
}

/* Seconds for n decode steps of one token each. */
static int time_decode(Model *m, int n, Rng *r, double *secs, Err *e) {
    KvCache kv;
    if (kv_cache_init(&kv, m, n, e)) return -1;
    float *logits = xmalloc((size_t)m->cfg.vocab_size * sizeof(float));
    int rc = 0;
    double t0 = now_s();
    for (int i = 0; i < n && !rc; i++) {
        int32_t id = (int32_t)rng_below(r, (uint64_t)m->cfg.vocab_size);
        rc = model_forward(m, &kv, &id, 1, i, logits, 0, e);
    }
    *secs = now_s() - t0;
    free(logits);
    kv_cache_free(&kv);
    return rc;
}

int cmd_speed(int argc, char **argv) {
    const char *model = NULL, *shape = NULL, *type = "q8_0";
    int p = 512, n = 128, threads = 0, reps = 1, json = 0;
    ArgSpec specs[] = {
        {"--model", "-m", ARG_STR, &model, "M", "a Hugging Face model directory or a .gguf file", 0, 0},
        {"--shape", NULL, ARG_STR, &shape, "NAME", "random weights of a known model's shape instead of --model", 0, 0},
        {"--type", NULL, ARG_STR, &type, "T", "weight type for --shape: f32, f16, bf16, q8_0, q4_0", 0, 0},
        {"--prompt", "-p", ARG_INT, &p, "N", "prefill tokens (0: skip)", 0, 0},
        {"--gen", "-n", ARG_INT, &n, "N", "decode tokens (0: skip)", 0, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (0: one per CPU)", 0, 0},
        {"--reps", "-r", ARG_INT, &reps, "N", "repetitions; the mean is reported", 0, 0},
        {"--json", NULL, ARG_FLAG, &json, NULL, "end with one JSON line of the results", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const ArgCommand cmd = {
        "speed", "(--model M | --shape NAME) [-p 512] [-n 128] [-t N] [--type T] [--json]",
        "Measures prefill and decode speed in tokens/s, like llama-bench (pp = one batch of -p tokens, "
        "tg = -n tokens one at a time). --shape builds random weights in memory, so no download is needed; "
        "shapes: qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-3b, qwen3-0.6b, qwen3-1.7b, llama-3.2-1b, llama-3.2-3b, "
        "llama-3.1-8b, mistral-7b.",
        "aloe speed --shape qwen2.5-0.5b --type q8_0 -p 512 -n 128 --json", 0, 0};
    char *pos[1];
    int npos;
    Err e;
    err_clear(&e);
    int rc = args_parse(&cmd, specs, argc, argv, pos, &npos, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    if (!model == !shape) {
        err_set(&e, ERR_ARG, "aloe speed: give either --model M or --shape NAME");
        return cli_fail(&e);
    }
    if (p < 0 || n < 0 || reps < 1 || (p == 0 && n == 0)) {
        err_set(&e, ERR_ARG, "aloe speed: -p and -n must be >= 0 (not both 0) and -r >= 1");
        return cli_fail(&e);
    }
    Model *m;
    double t0 = now_s();
    if (shape) {
        ModelConfig cfg;
        int dt = dtype_from_name(type);
        if (model_shape_config(shape, &cfg, &e)) return cli_fail(&e);
        if (dt == DT_INVALID || !kernel_type_ok(dt)) {
            err_set(&e, ERR_ARG, "aloe speed: --type %s is not one of f32, f16, bf16, q8_0, q4_0", type);
            return cli_fail(&e);
        }
        m = model_init_random(&cfg, dt, 1, threads, &e);
    } else {
        m = model_load(model, threads, &e);
    }
    if (!m) return cli_fail(&e);
    double load_s = now_s() - t0;
    Rng r;
    rng_seed(&r, 42);
    /* warm-up: touches every weight page (mapped files) and grows buffers */
    double pp = 0, tg = 0, s;
    rc = time_prefill(m, p > 0 ? (p < 16 ? p : 16) : 1, &r, &s, &e);
    if (!rc) rc = time_decode(m, 2, &r, &s, &e);
    for (int i = 0; i < reps && !rc; i++) {
        if (p > 0 && !(rc = time_prefill(m, p, &r, &s, &e))) pp += p / s;
        if (n > 0 && !rc && !(rc = time_decode(m, n, &r, &s, &e))) tg += n / s;
    }
    if (rc) {
        model_free(m);
        return cli_fail(&e);
    }
    pp /= reps, tg /= reps;
    const char *name = shape ? shape : model;
    const char *wtype = dtype_name(m->weight_type);
    double gib = (double)model_weight_bytes(m) / (1 << 30), params_b = (double)model_param_count(m) / 1e9;
    printf("| model | type | size | params | threads | test | t/s |\n|---|---|---|---|---|---|---|\n");
    if (p > 0)
        printf("| %s | %s | %.2f GiB | %.2f B | %d | pp%d | %.2f |\n", name, wtype, gib, params_b, tp_size(m->tp), p, pp);
    if (n > 0)
        printf("| %s | %s | %.2f GiB | %.2f B | %d | tg%d | %.2f |\n", name, wtype, gib, params_b, tp_size(m->tp), n, tg);
    if (json)
        printf("{\"model\": \"%s\", \"type\": \"%s\", \"source\": \"%s\", \"weights_bytes\": %zu, \"params\": %zu, "
               "\"threads\": %d, \"prompt_tokens\": %d, \"gen_tokens\": %d, \"reps\": %d, \"load_s\": %.3f, "
               "\"prefill_tps\": %.3f, \"decode_tps\": %.3f}\n",
               name, wtype, m->source, model_weight_bytes(m), model_param_count(m), tp_size(m->tp), p, n, reps, load_s,
               pp, tg);
    model_free(m);
    return 0;
}
