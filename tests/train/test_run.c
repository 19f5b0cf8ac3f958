/* Whole runs on the tiny fixture model: SFT and DPO from aloe trees, full
 * and LoRA; a run stopped and resumed ends bit-identical to an
 * uninterrupted one; bad data fails naming the line. */
#include <math.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/safetensors.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/fixture_trees.h"
#include "train/lora.h"
#include "train/run.h"

static char *write_file(const char *dir, const char *name, const char *content) {
    char *p = path_join(dir, name);
    Err e;
    file_write_atomic(p, content, strlen(content), &e);
    return p;
}

static int count_lines(const char *path) {
    char *d;
    size_t n;
    Err e;
    if (file_read_all(path, &d, &n, &e)) return -1;
    int k = 0;
    for (size_t i = 0; i < n; i++) k += d[i] == '\n';
    free(d);
    return k;
}

static void opts(TrainRunOptions *o, RunKind kind, const char *model, const char *data, const char *out) {
    train_run_defaults(o);
    o->kind = kind, o->model = model, o->data = data, o->out = out;
    o->steps = 6, o->lr = 1e-3, o->quiet = 1, o->threads = 1;
}

static void test_sft_full_run(void) {
    char *model = test_shared_path("fixtures/models/tiny-qwen2");
    if (!model) SKIP("fixtures not found (set ALOE_SHARED)");
    char *tmp = test_tmpdir(), *data = write_file(tmp, "trees.jsonl", TREES), *out = path_join(tmp, "out");
    TrainRunOptions o;
    opts(&o, RUN_SFT, model, data, out);
    Err e;
    int rc = train_run(&o, NULL, &e);
    char *metrics = path_join(out, "metrics.jsonl"), *weights = path_join(out, "model.safetensors");
    int lines = count_lines(metrics);
    SafeTensors *st = rc ? NULL : st_open(weights, &e);
    int has = st && st_find(st, "model.layers.1.mlp.down_proj.weight");
    if (st) st_close(st);
    free(model), free(tmp), free(data), free(out), free(metrics), free(weights);
    CHECK_MSG(!rc, "%s", e.msg);
    CHECK_EQ_INT(lines, 6);
    CHECK(has);
}

static char *read_adapter(const char *dir, size_t *n) {
    char *p = path_join(dir, "adapter_model.safetensors"), *d = NULL;
    Err e;
    *n = 0;
    if (file_read_all(p, &d, n, &e)) d = NULL;
    free(p);
    return d;
}

/* A: 6 steps straight. B: 3 steps, stop, --resume to 6. Same adapter, also
 * with LoRA dropout (its masks follow from the seed and the step). */
static void check_dpo_lora_resume(char *model, double dropout, char **adapter, size_t *size) {
    char *tmp = test_tmpdir(), *data = write_file(tmp, "trees.jsonl", TREES);
    char *a = path_join(tmp, "a"), *b = path_join(tmp, "b");
    TrainRunOptions o;
    Err e;
    opts(&o, RUN_DPO, model, data, a);
    o.lora_r = 4, o.dpo.beta = 0.9, o.batch = 2, o.lora_dropout = dropout;
    int rc = train_run(&o, NULL, &e);
    o.out = b, o.stop_after = 3;
    if (!rc) rc = train_run(&o, NULL, &e);
    char *bm = path_join(b, "metrics.jsonl");
    int mid_lines = count_lines(bm);
    o.stop_after = 0, o.resume = 1;
    if (!rc) rc = train_run(&o, NULL, &e);
    int end_lines = count_lines(bm);
    size_t na = 0, nb = 0;
    char *da = rc ? NULL : read_adapter(a, &na), *db = rc ? NULL : read_adapter(b, &nb);
    int same = da && db && na == nb && !memcmp(da, db, na);
    LoraConfig lc = {0};
    int cfg_rc = rc ? -1 : lora_config_load(b, &lc, &e);
    free(db), free(bm);
    free(tmp), free(data), free(a), free(b);
    *adapter = da, *size = na;
    CHECK_MSG(!rc, "%s", e.msg);
    CHECK_EQ_INT(mid_lines, 3);
    CHECK_EQ_INT(end_lines, 6);
    CHECK(same);
    CHECK_MSG(!cfg_rc && lc.dropout == dropout, "adapter_config.json lora_dropout %g, want %g", lc.dropout, dropout);
}

static void test_dpo_lora_resume_is_exact(void) {
    char *model = test_shared_path("fixtures/models/tiny-qwen3");
    if (!model) SKIP("fixtures not found (set ALOE_SHARED)");
    char *plain = NULL, *dropped = NULL;
    size_t np, nd;
    check_dpo_lora_resume(model, 0, &plain, &np);
    check_dpo_lora_resume(model, 0.2, &dropped, &nd);
    free(model);
    /* dropout was in effect: the adapters differ (same layout, other values) */
    CHECK(plain && dropped && np == nd && memcmp(plain, dropped, np) != 0);
    free(plain), free(dropped);
}

/* The largest difference between same-named tensors of two adapter files,
 * over the largest value. */
static double adapter_diff(const char *dir_a, const char *dir_b, Err *e) {
    char *pa = path_join(dir_a, "adapter_model.safetensors"), *pb = path_join(dir_b, "adapter_model.safetensors");
    SafeTensors *a = st_open(pa, e), *b = a ? st_open(pb, e) : NULL;
    free(pa), free(pb);
    double d = b ? 0 : INFINITY, s = 0;
    for (int i = 0; b && i < st_count(a); i++) {
        const TensorView *va = st_tensor(a, i), *vb = st_find(b, va->name);
        float *x = tensor_to_f32_alloc(va, e), *y = vb ? tensor_to_f32_alloc(vb, e) : NULL;
        if (!x || !y || tensor_numel(va) != tensor_numel(vb)) d = INFINITY;
        for (int64_t k = 0; x && y && d < INFINITY && k < tensor_numel(va); k++) {
            d = fmax(d, fabs((double)x[k] - y[k]));
            s = fmax(s, fabs((double)y[k]));
        }
        free(x), free(y);
    }
    if (a) st_close(a);
    if (b) st_close(b);
    return s > 0 ? d / s : d;
}

/* A bf16 checkpoint under LoRA: the run keeps the base in bf16 and trains
 * the adapters a float32 copy of the same values trains (1e-4 of max after
 * 6 AdamW steps: the backward adds the frozen products in blocks, so the
 * float32 sums differ in the last bits, and AdamW's normalised updates
 * carry that into the adapters). */
static void test_lora_on_bf16_checkpoint(void) {
    char *model = test_shared_path("fixtures/models/tiny-qwen2");
    if (!model) SKIP("fixtures not found (set ALOE_SHARED)");
    char *tmp = test_tmpdir(), *data = write_file(tmp, "trees.jsonl", TREES);
    char *bf = path_join(tmp, "bf16"), *f32 = path_join(tmp, "f32"), *oa = path_join(tmp, "oa"), *ob = path_join(tmp, "ob");
    ModelConfig cfg;
    TrainDecoder m;
    memset(&m, 0, sizeof m);
    Err e;
    /* the fixture rounded to bf16, and those values again as float32 */
    int rc = hf_config_load(model, &cfg, &e) || td_init(&m, &cfg, &e) || td_load(&m, model, &e) ||
             ckpt_save_model(&m, model, bf, DT_BF16, &e) || td_load(&m, bf, &e) ||
             ckpt_save_model(&m, model, f32, DT_F32, &e);
    td_free(&m);
    TrainRunOptions o;
    opts(&o, RUN_SFT, bf, data, oa);
    o.lora_r = 4, o.save_dtype = DT_F32;
    if (!rc) rc = train_run(&o, NULL, &e);
    o.model = f32, o.out = ob;
    if (!rc) rc = train_run(&o, NULL, &e);
    double d = rc ? 0 : adapter_diff(oa, ob, &e);
    free(model), free(tmp), free(data), free(bf), free(f32), free(oa), free(ob);
    CHECK_MSG(!rc, "%s", e.msg);
    CHECK_MSG(d <= 1e-4, "adapters from the bf16 and the float32 base differ by %.3g of max", d);
}

static void test_bad_data_names_line(void) {
    char *model = test_shared_path("fixtures/models/tiny-qwen2");
    if (!model) SKIP("fixtures not found (set ALOE_SHARED)");
    char *tmp = test_tmpdir();
    char *data = write_file(tmp, "bad.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, "
                                              "{\"role\": \"assistant\", \"content\": \"b\"}]}\n{\"messages\": 3}\n");
    char *out = path_join(tmp, "out");
    TrainRunOptions o;
    opts(&o, RUN_SFT, model, data, out);
    Err e;
    int rc = train_run(&o, NULL, &e);
    free(model), free(tmp), free(data), free(out);
    CHECK(rc == -1);
    CHECK_MSG(strstr(e.msg, "bad.jsonl:2: messages: expected a list of messages, got an integer"), "%s", e.msg);
}

int main(void) {
    RUN(test_sft_full_run);
    RUN(test_dpo_lora_resume_is_exact);
    RUN(test_lora_on_bf16_checkpoint);
    RUN(test_bad_data_names_line);
    return test_summary();
}
