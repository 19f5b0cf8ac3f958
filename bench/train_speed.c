/* Training throughput of aloe's CPU trainer on a Qwen2.5-0.5B-shaped model
 * with random weights: SFT steps over one sequence of --seq tokens, full
 * fine-tuning and LoRA. Prints tokens/s per mode and the peak resident
 * memory (median step after a warm-up step). lora-bf16 is LoRA over a base
 * frozen in bfloat16 (td_freeze_base), as `aloe train --lora-r` keeps a
 * bf16 checkpoint; lora keeps the base in float32.
 * Usage: train_speed full|lora|lora-bf16 [SEQ] [STEPS] [THREADS] [LAYERS];
 * built and run by bench/train_speed.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/progress.h"
#include "train/trainer.h"

static void qwen25_05b(ModelConfig *c) {
    memset(c, 0, sizeof *c);
    c->arch = ARCH_QWEN2;
    c->hidden_size = 896, c->intermediate_size = 4864, c->n_layers = 24, c->n_heads = 14, c->n_kv_heads = 2;
    c->head_dim = 64, c->vocab_size = 151936, c->max_pos = 32768, c->norm_eps = 1e-6f;
    c->tie_word_embeddings = 1, c->attention_bias = 1;
    c->rope.type = ROPE_DEFAULT, c->rope.theta = 1000000.0f, c->rope.factor = 1;
}

static double peak_rss_gib(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss / (1024.0 * 1024.0);
}

/* CPU seconds (user + system) of the process so far: on a shared machine a
 * steadier measure of the work than wall time. */
static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int run(const char *mode, int lora_r, int frozen_bf16, int T, int steps, int threads, int layers) {
    ModelConfig c;
    qwen25_05b(&c);
    if (layers > 0) c.n_layers = layers; /* a shorter model for quick profiles */
    TrainDecoder m;
    Err e;
    if (td_init(&m, &c, &e) || (frozen_bf16 && td_freeze_base(&m, DT_BF16, &e)))
        return fprintf(stderr, "%s\n", e.msg), 1;
    td_init_random(&m, 1, 0.02f);
    if (lora_r > 0) {
        LoraConfig lc = {lora_r, 2.0 * lora_r, 0, 0x7f, 0};
        if (td_lora_attach(&m, &lc, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
        td_lora_init(&m, 2);
    }
    ThreadPool *tp = tp_create(threads);
    TrainerConfig cfg = {0};
    cfg.schedule = (LrSchedule){LR_CONSTANT, 1e-5, 0, steps + 1};
    cfg.adamw = adamw_defaults();
    cfg.max_grad_norm = 1.0f;
    cfg.dpo = (DpoConfig){DPO_SIGMOID, 0.1, 0, 0};
    Trainer t;
    if (trainer_init(&t, &m, tp, &cfg, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    const char *mm = getenv("ALOE_MATMUL"); /* bf16: as aloe train --matmul bf16 (bench/train_bf16.sh) */
    if (mm && !strcmp(mm, "bf16") && !(m.be->set_matmul_bf16 && m.be->set_matmul_bf16(m.be, 1)))
        return fprintf(stderr, "ALOE_MATMUL=bf16: no bf16 products on this CPU\n"), 1;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    uint8_t *tg = malloc((size_t)T);
    for (int i = 0; i < T; i++) ids[i] = (int32_t)((i * 2654435761u) % (unsigned)c.vocab_size), tg[i] = i >= T / 4;
    SftTokens ex = {ids, tg, T};
    double *dts = malloc((size_t)(steps + 1) * sizeof *dts), *cpus = malloc((size_t)(steps + 1) * sizeof *cpus);
    for (int s = 0; s <= steps; s++) { /* step 0 warms up (allocations, page faults) */
        StepStats st;
        double t0 = now_seconds(), c0 = cpu_seconds();
        if (trainer_sft_accumulate(&t, &ex, 1, &st, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
        trainer_apply(&t, &st);
        double dt = now_seconds() - t0;
        dts[s] = dt;
        cpus[s] = cpu_seconds() - c0;
    }
    qsort(dts + 1, (size_t)steps, sizeof *dts, cmp_double);
    qsort(cpus + 1, (size_t)steps, sizeof *cpus, cmp_double);
    /* the median of the steps after the warm-up (the mean of the middle two for an even count) */
    double med = steps > 0 ? (dts[1 + (steps - 1) / 2] + dts[1 + steps / 2]) / 2 : dts[0];
    double cpu = steps > 0 ? (cpus[1 + (steps - 1) / 2] + cpus[1 + steps / 2]) / 2 : cpus[0];
    printf("%-5s seq %d threads %d: %.1f tokens/s (%.2f s/step, %.2f CPU-s/step), trainable %zu, peak RSS %.2f GiB\n",
           mode, T, tp_size(tp), T / med, med, cpu, t.n, peak_rss_gib());
    trainer_free(&t);
    td_free(&m);
    tp_free(tp);
    free(ids), free(tg), free(dts), free(cpus);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "full";
    int T = argc > 2 ? atoi(argv[2]) : 512, steps = argc > 3 ? atoi(argv[3]) : 2, threads = argc > 4 ? atoi(argv[4]) : 0;
    int layers = argc > 5 ? atoi(argv[5]) : 0;
    int lora = !strcmp(mode, "lora") || !strcmp(mode, "lora-bf16");
    if (!lora && strcmp(mode, "full")) return fprintf(stderr, "mode: expected full, lora or lora-bf16\n"), 2;
    return run(mode, lora ? 16 : 0, !strcmp(mode, "lora-bf16"), T, steps, threads, layers);
}
