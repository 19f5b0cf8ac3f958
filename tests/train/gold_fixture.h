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

#endif
