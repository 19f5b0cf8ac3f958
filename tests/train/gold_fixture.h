/* gold_fixture: one tiny model with its PyTorch gold data (expected.json,
 * expected.safetensors beside config.json), loaded for training, and the
 * error measures the training tests compare with. Shared by the decoder,
 * trainer, LoRA and per-architecture training tests so that they load the
 * gold data, and measure against it, the same way. */
#ifndef ALOE_TESTS_TRAIN_GOLD_FIXTURE_H
#define ALOE_TESTS_TRAIN_GOLD_FIXTURE_H

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/safetensors.h"
#include "test.h"
#include "train/decoder_train.h"
#include "train/loss.h"

typedef struct Fixture {
    char *dir;
    json_t *root;
    SafeTensors *want;
    TrainDecoder m;
    ThreadPool *tp;
} Fixture;

static inline void fixture_free(Fixture *f) {
    if (f->root) json_decref(f->root);
    if (f->want) st_close(f->want);
    td_free(&f->m);
    if (f->tp) tp_free(f->tp);
    free(f->dir);
}

/* Loads the model directory `dir` (taken over; NULL = the data is absent).
 * 0 = loaded, 1 = skipped (dir NULL), -1 = failed (message in e). */
static inline int fixture_open_dir(Fixture *f, char *dir, Err *e) {
    memset(f, 0, sizeof *f);
    if (!(f->dir = dir)) return 1;
    char *jp = path_join(f->dir, "expected.json"), *sp = path_join(f->dir, "expected.safetensors");
    json_error_t je;
    f->root = json_load_file(jp, 0, &je);
    f->want = st_open(sp, e);
    free(jp), free(sp);
    if (!f->root) return err_set(e, ERR_PARSE, "%s/expected.json: %s", f->dir, je.text);
    if (!f->want) return -1;
    ModelConfig cfg;
    if (hf_config_load(f->dir, &cfg, e) || td_init(&f->m, &cfg, e) || td_load(&f->m, f->dir, e)) return -1;
    f->tp = tp_create(2);
    return 0;
}

/* The shared fixtures/models/tiny-<arch> (ALOE_SHARED); 1 when absent. */
static inline int fixture_open_shared(Fixture *f, const char *arch, Err *e) {
    char rel[128];
    snprintf(rel, sizeof rel, "fixtures/models/tiny-%s", arch);
    return fixture_open_dir(f, test_shared_path(rel), e);
}

static inline int32_t *json_ids(json_t *arr, int *n) {
    *n = (int)json_array_size(arr);
    int32_t *ids = xmalloc((size_t)(*n ? *n : 1) * sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

/* The fixture's two forward rows a and b, and packed end to end: ids
 * (a then b) and their segment starts (td_pack_segments). The caller frees
 * all four. */
typedef struct PackedRows {
    int32_t *a, *b, *ids;
    int *seg;
    int T0, T1, T;
} PackedRows;

static inline void packed_rows(const Fixture *f, PackedRows *p) {
    json_t *rows = json_object_get(json_object_get(f->root, "forward"), "input_ids");
    p->a = json_ids(json_array_get(rows, 0), &p->T0);
    p->b = json_ids(json_array_get(rows, 1), &p->T1);
    p->T = p->T0 + p->T1;
    p->ids = xmalloc((size_t)p->T * sizeof *p->ids);
    memcpy(p->ids, p->a, (size_t)p->T0 * sizeof *p->ids);
    memcpy(p->ids + p->T0, p->b, (size_t)p->T1 * sizeof *p->ids);
    int lens[2] = {p->T0, p->T1};
    p->seg = xmalloc((size_t)p->T * sizeof *p->seg);
    td_pack_segments(lens, 2, p->seg);
}

/* max |a - b| / max |b| over n values. */
/* The fixture's sft example: its input ids (*T of them, into *ids) and the
 * shifted labels with the prompt masked, as the trainer builds them
 * (caller frees both). */
static inline int32_t *sft_labels(json_t *root, int32_t **ids, int *T) {
    json_t *sft = json_object_get(root, "sft");
    int n_prompt = (int)json_integer_value(json_object_get(sft, "n_prompt"));
    *ids = json_ids(json_object_get(sft, "input_ids"), T);
    uint8_t *target = xmalloc((size_t)*T);
    for (int t = 0; t < *T; t++) target[t] = t >= n_prompt;
    int32_t *labels = xmalloc((size_t)*T * sizeof *labels);
    loss_shift_labels(*ids, target, *T, labels);
    free(target);
    return labels;
}

static inline double scaled_err(const float *a, const float *b, long n) {
    double d = 0, s = 0;
    for (long i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return s > 0 ? d / s : d;
}

/* max |a - b| / (max b - min b) over n values. */
static inline double range_err(const float *a, const float *b, long n) {
    double d = 0, lo = b[0], hi = b[0];
    for (long i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        lo = fmin(lo, b[i]), hi = fmax(hi, b[i]);
    }
    return hi > lo ? d / (hi - lo) : d;
}

/* Summed log-prob of the tokens after the prompt, and its token count. */
static inline int completion_logp(TrainDecoder *m, ThreadPool *tp, const int32_t *ids, int T, int n_prompt, float *logits,
                           int32_t *labels, double *logp, int *n, Err *e) {
    uint8_t *target = xmalloc((size_t)T);
    for (int t = 0; t < T; t++) target[t] = t >= n_prompt;
    loss_shift_labels(ids, target, T, labels);
    free(target);
    if (td_forward(m, tp, ids, T, logits, e)) return -1;
    *logp = seq_logprob_forward(logits, labels, T, m->cfg.vocab_size, n);
    return 0;
}

/* Compares every gradient (base tensors, or with lora the adapter's) with
 * `<prefix><name>` in expected.safetensors, each within tol of its
 * tensor's max; peft's in-memory names carry ".default" before ".weight". */
static inline int check_grads_tol(Fixture *f, const char *prefix, int lora, const char *arch, double tol, Err *e) {
    double worst = 0;
    const char *worst_name = "";
    const int n = lora ? f->m.n_lora_tensors : f->m.n_tensors;
    for (int i = 0; i < n; i++) {
        const TdTensor *t = lora ? &f->m.lora_tensors[i] : &f->m.tensors[i];
        const float *g = (lora ? f->m.lora_grads : f->m.grads) + t->offset;
        char name[200];
        if (lora) snprintf(name, sizeof name, "%s%.*sdefault.weight", prefix, (int)(strlen(t->name) - 6), t->name);
        else snprintf(name, sizeof name, "%s%s", prefix, t->name);
        const TensorView *v = st_get(f->want, name, e);
        if (!v) return -1;
        if ((size_t)tensor_numel(v) != t->numel) return err_set(e, ERR_INTERNAL, "%s: size differs", name);
        float *w = tensor_to_f32_alloc(v, e);
        if (!w) return -1;
        double err = scaled_err(g, w, (long)t->numel);
        free(w);
        if (err > worst) worst = err, worst_name = t->name;
    }
    printf("  %s %s: worst gradient %.2e of its tensor's max (%s; bound %.2e)\n", arch, prefix, worst, worst_name, tol);
    if (worst > tol)
        return err_set(e, ERR_INTERNAL, "%s %s: worst gradient error %.3g (of the tensor's max) in %s (bound %.3g)", arch,
                       prefix, worst, worst_name, tol);
    return 0;
}

#endif
