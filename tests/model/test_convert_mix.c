/* aloe convert's llama.cpp presets (model/convert_mix.c): Q4_K_M, Q5_K_M,
 * Q2_K, Q3_K_S/M/L, Q4_K_S, Q5_K_S, Q6_K, Q4_0 ... written with the type
 * llama.cpp's llama-quantize gives each tensor.
 *
 *  - The gold: tests/data/gguf-mix/llama-quantize-types.txt, the types
 *    llama-quantize (the commit its header names) chose for every tensor
 *    of three shapes (mix_models.h: 16 layers with GQA 4 and a tied head;
 *    9 layers, GQA 3, an untied head; 80 layers of Qwen2, llama.cpp's
 *    "70B") under each of 16 presets. aloe's rule (convert_mix_tensor_type
 *    on the model aloe converts) must give the same type for every tensor,
 *    and `aloe convert --type q4_k_m` / `Q5_K_M` must write them. A fourth
 *    shape, an 8-expert llama, checks the MoE rules on the rule alone (aloe
 *    converts no MoE architecture).
 *  - Interop: llama-quantize's file of each preset (the shared tiny-qwen2
 *    fixture; Q6_K: the 256-wide model of tests/data/gguf-llamacpp) loads
 *    in aloe, computes logits within its weights' quantisation error of
 *    the f32 model's, and `aloe complete` continues a prompt; the file aloe
 *    writes with the same preset from the same model has the same type for
 *    every tensor, the same general.file_type, loads and computes likewise.
 *
 *   test_convert_mix --write-model NAME DIR   writes mix_models.h's shape NAME
 *                                             (scripts/gen-gguf-mix.sh uses it)
 *   test_convert_mix --same-values A B        scripts/check-mix-llamacpp.sh's check */
#include <math.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "formats/dtype.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "model/convert.h"
#include "model/convert_mix.h"
#include "test.h"
#include "gguf_fixture.h"
#include "mix_models.h"
#include "model_logits.h"

#define GOLD "tests/data/gguf-mix/llama-quantize-types.txt"
#define MAX_LAYERS 80

/* One gold line: a whole-model tensor's type, or a layer kind's types by layer. */
typedef struct GoldLine {
    char shape[32], preset[16], name[64];
    int n, types[MAX_LAYERS]; /* n 1 for a whole-model tensor */
} GoldLine;

typedef struct Gold {
    GoldLine *l;
    int n;
} Gold;

static int gold_load(Gold *g) {
    char *txt = NULL;
    size_t len;
    Err e;
    memset(g, 0, sizeof *g);
    if (file_read_all(GOLD, &txt, &len, &e)) return -1;
    g->l = xcalloc(len / 16 + 1, sizeof *g->l);
    for (char *save = NULL, *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        GoldLine *l = &g->l[g->n++];
        char *s2 = NULL, *tok[4] = {strtok_r(line, " ", &s2), strtok_r(NULL, " ", &s2), strtok_r(NULL, " ", &s2)};
        snprintf(l->shape, sizeof l->shape, "%s", tok[0]);
        snprintf(l->preset, sizeof l->preset, "%s", tok[1]);
        snprintf(l->name, sizeof l->name, "%s", tok[2]);
        for (char *run; (run = strtok_r(NULL, " ", &s2));) {
            char *star = strchr(run, '*');
            int count = star ? atoi(star + 1) : 1;
            if (star) *star = 0;
            for (int k = 0; k < count && l->n < MAX_LAYERS; k++) l->types[l->n++] = dtype_from_name(run);
        }
    }
    free(txt);
    return 0;
}

/* llama-quantize's type for a tensor, or DT_INVALID when the gold lacks it. */
static int gold_type(const Gold *g, const char *shape, const char *preset, const char *tensor) {
    int layer = -1, off = 0;
    char key[64];
    if (sscanf(tensor, "blk.%d.%n", &layer, &off) == 1 && off > 0) snprintf(key, sizeof key, "blk.%s", tensor + off);
    else snprintf(key, sizeof key, "%s", tensor), layer = 0;
    for (int i = 0; i < g->n; i++) {
        const GoldLine *l = &g->l[i];
        if (!strcmp(l->shape, shape) && !strcmp(l->preset, preset) && !strcmp(l->name, key))
            return layer < l->n ? l->types[layer] : DT_INVALID;
    }
    return DT_INVALID;
}

/* The gold lines of a shape and preset, counted as tensors. */
static int gold_count(const Gold *g, const char *shape, const char *preset) {
    int n = 0;
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->l[i].shape, shape) && !strcmp(g->l[i].preset, preset)) n += g->l[i].n;
    return n;
}

static const char *const PRESETS[] = {"Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M",
                                      "Q6_K", "Q4_0",   "Q4_1",   "Q5_0",   "Q5_1",   "Q8_0",   "IQ4_NL", "IQ4_XS"};
#define N_PRESETS ((int)(sizeof PRESETS / sizeof *PRESETS))

/* The model of a shape as Hugging Face directory and as aloe's f32 GGUF
 * (the tensors' names and shapes as a conversion plans them). */
typedef struct ShapeRun {
    char *dir, *f32, *bin;
    Gguf *g;
} ShapeRun;

/* 0; 1 when the shared fixtures are absent; -1 with e set. */
static int shape_run_init(ShapeRun *r, const char *tmp, const MixShape *sp, Err *e) {
    memset(r, 0, sizeof *r);
    r->dir = xasprintf("%s/%s", tmp, sp->name);
    r->f32 = xasprintf("%s/%s-f32.gguf", tmp, sp->name);
    r->bin = test_build_path("aloe");
    int rc = mix_model_write(sp, r->dir, e);
    if (rc) return rc;
    if (test_system("%s convert --model %s --out %s --type f32 2>/dev/null", r->bin, r->dir, r->f32))
        return err_set(e, ERR_IO, "aloe convert --model %s --type f32 failed", r->dir);
    r->g = gguf_open(r->f32, e);
    return r->g ? 0 : -1;
}

static void shape_run_free(ShapeRun *r) {
    if (r->g) gguf_close(r->g);
    free(r->dir), free(r->f32), free(r->bin);
}

/* Every tensor of every shape under every preset: aloe's rule gives
 * llama-quantize's type. */
static void test_rules_match_llamacpp(void) {
    Gold gold;
    CHECK_MSG(gold_load(&gold) == 0, "%s: cannot read", GOLD);
    char *tmp = test_tmpdir();
    for (int s = 0; s < N_MIX_SHAPES; s++) {
        const MixShape *sp = &MIX_SHAPES[s];
        ShapeRun r;
        Err e;
        int rc = shape_run_init(&r, tmp, sp, &e);
        if (rc == 1) SKIP("shared fixtures absent (ALOE_SHARED)");
        CHECK_OK(rc, &e);
        ModelConfig c;
        CHECK_OK(hf_config_load(r.dir, &c, &e), &e);
        SafeTensors *st = st_open(r.dir, &e);
        CHECK_OK(st == NULL, &e);
        int checked = 0, wrong = 0;
        for (int p = 0; p < N_PRESETS && st; p++) {
            int type;
            ConvertMix m;
            CHECK_OK(convert_mix_parse(PRESETS[p], &type, &e), &e);
            CHECK_OK(convert_mix_init(&m, type, &c, st, &e), &e);
            CHECK_MSG(gguf_n_tensors(r.g) == gold_count(&gold, sp->name, PRESETS[p]),
                      "%s %s: %d tensors, the gold has %d", sp->name, PRESETS[p], gguf_n_tensors(r.g),
                      gold_count(&gold, sp->name, PRESETS[p]));
            for (int i = 0; i < gguf_n_tensors(r.g); i++) {
                const TensorView *t = gguf_tensor(r.g, i);
                int want = gold_type(&gold, sp->name, PRESETS[p], t->name);
                int got = convert_mix_tensor_type(&m, t->name, t->ndim, tensor_cols(t));
                checked++;
                if (got != want && wrong++ < 10)
                    printf("  %s %s %s (rows of %lld): aloe chooses %s, llama-quantize %s\n", sp->name, PRESETS[p],
                           t->name, (long long)tensor_cols(t), dtype_name(got), dtype_name(want));
            }
        }
        printf("  %-10s %d tensor choices over %d presets, %d differ from llama-quantize's\n", sp->name, checked,
               N_PRESETS, wrong);
        CHECK_EQ_INT(wrong, 0);
        if (st) st_close(st);
        shape_run_free(&r);
    }
    test_system("rm -rf '%s'", tmp);
    free(tmp), free(gold.l);
}

/* --type names: llama.cpp's preset names in any case; a lower-case type
 * name keeps meaning that one type (as before the presets); a bad name
 * lists both. */
static void test_type_names(void) {
    Err e;
    int t;
    CHECK_OK(convert_type_parse("q4_k_m", &t, &e), &e);
    CHECK_EQ_STR(convert_mix_name(t), "Q4_K_M");
    CHECK_EQ_INT(convert_file_type(t), 15); /* LLAMA_FTYPE_MOSTLY_Q4_K_M */
    CHECK_OK(convert_type_parse("Q5_k_M", &t, &e), &e);
    CHECK_EQ_STR(convert_mix_name(t), "Q5_K_M");
    CHECK_EQ_INT(convert_file_type(t), 17);
    CHECK_OK(convert_type_parse("Q4_K", &t, &e), &e); /* llama-quantize's alias */
    CHECK_EQ_STR(convert_mix_name(t), "Q4_K_M");
    CHECK_OK(convert_type_parse("q4_k", &t, &e), &e); /* the type: every matrix Q4_K */
    CHECK_EQ_INT(t, DT_Q4_K);
    CHECK_OK(convert_type_parse("q4_0", &t, &e), &e);
    CHECK_EQ_INT(t, DT_Q4_0);
    CHECK_OK(convert_type_parse("Q4_0", &t, &e), &e);
    CHECK(convert_mix_is_preset(t) && convert_mix_default_type(t) == DT_Q4_0 && convert_file_type(t) == 2);
    CHECK(convert_type_parse("q4_k_x", &t, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_ARG);
    CHECK_MSG(strstr(e.msg, "\"q4_k_x\"") && strstr(e.msg, "q6_k or iq4_xs") && strstr(e.msg, "Q4_K_M") &&
                  strstr(e.msg, "Q3_K_L") && strstr(e.msg, "IQ4_XS"),
              "%s", e.msg);
    CHECK(convert_mix_parse("q8_1", &t, &e) == -1);
    /* the CLI: exit 2 with the names */
    char *out = NULL;
    int rc = aloe_sh_run(NULL, "convert --model nowhere --out x.gguf --type Q4_K_X", &out);
    CHECK_MSG(rc == 2 && strstr(out, "--type") && strstr(out, "Q5_K_M") && strstr(out, "q4_k"), "exit %d: %s", rc, out);
    free(out), out = NULL;
    rc = aloe_sh_run(NULL, "convert --help", &out);
    CHECK_MSG(rc == 0 && strstr(out, "Q4_K_M") && strstr(out, "Q2_K") && strstr(out, "q4_k_m"), "exit %d: %s", rc, out);
    free(out);
}

/* The 8-expert shape (mix_models.h): aloe's rule, told what llama.cpp
 * reads from that file (8 layers, GQA 4, 8 experts, an untied head),
 * gives llama-quantize's type for every tensor under every preset. */
static void test_moe_rules_match_llamacpp(void) {
    Gold gold;
    CHECK_MSG(gold_load(&gold) == 0, "%s: cannot read", GOLD);
    TensorView tv[3 + 10 * MOE_LAYERS];
    int n, checked = 0, wrong = 0;
    moe_tensors(tv, &n);
    for (int p = 0; p < N_PRESETS; p++) {
        Err e;
        int type;
        CHECK_OK(convert_mix_parse(PRESETS[p], &type, &e), &e);
        ConvertMix m = {.ftype = convert_mix_file_type(type), .base = convert_mix_default_type(type),
                        .n_layer = MOE_LAYERS, .n_gqa = MOE_HEADS / MOE_KV_HEADS, .n_expert = MOE_EXPERTS,
                        .has_output = 1};
        CHECK_EQ_INT(n, gold_count(&gold, "moe-l8", PRESETS[p]));
        for (int i = 0; i < n; i++) {
            int want = gold_type(&gold, "moe-l8", PRESETS[p], tv[i].name);
            int got = convert_mix_tensor_type(&m, tv[i].name, tv[i].ndim, tensor_cols(&tv[i]));
            checked++;
            if (got != want && wrong++ < 10)
                printf("  moe-l8 %s %s: aloe chooses %s, llama-quantize %s\n", PRESETS[p], tv[i].name, dtype_name(got),
                       dtype_name(want));
        }
    }
    printf("  moe-l8     %d tensor choices over %d presets, %d differ from llama-quantize's\n", checked, N_PRESETS,
           wrong);
    CHECK_EQ_INT(wrong, 0);
    for (int i = 0; i < n; i++) free((char *)tv[i].name);
    free(gold.l);
}

/* `aloe convert --type q4_k_m` (and Q5_K_M, and the smaller shapes'
 * every preset) writes those types, and llama.cpp's general.file_type. */
static void test_cli_writes_the_mix(void) {
    Gold gold;
    CHECK_MSG(gold_load(&gold) == 0, "%s: cannot read", GOLD);
    char *tmp = test_tmpdir();
    for (int s = 0; s < N_MIX_SHAPES; s++) {
        const MixShape *sp = &MIX_SHAPES[s];
        ShapeRun r;
        Err e;
        int rc = shape_run_init(&r, tmp, sp, &e);
        if (rc == 1) SKIP("shared fixtures absent (ALOE_SHARED)");
        CHECK_OK(rc, &e);
        /* the spellings users type: llama.cpp's, lower case, mixed */
        static const char *const asked[] = {"q4_k_m", "Q5_K_M", "q3_k_m"};
        for (int p = 0; p < 3; p++) {
            char *out = xasprintf("%s/%s-%s.gguf", tmp, sp->name, asked[p]), *up = xstrdup(asked[p]);
            for (char *q = up; *q; q++) *q = (char)(*q >= 'a' && *q <= 'z' ? *q - 32 : *q);
            rc = test_system("%s convert --model %s --out %s --type %s 2>/dev/null", r.bin, r.dir, out, asked[p]);
            CHECK_MSG(rc == 0, "aloe convert --type %s: exit %d", asked[p], rc);
            Gguf *g = rc ? NULL : gguf_open(out, &e);
            int wrong = 0, type = 0;
            uint32_t ft = 0;
            for (int i = 0; g && i < gguf_n_tensors(g); i++) {
                const TensorView *t = gguf_tensor(g, i);
                int want = gold_type(&gold, sp->name, up, t->name);
                if (t->dtype != want && wrong++ < 5)
                    printf("  %s --type %s: %s is %s, llama-quantize wrote %s\n", sp->name, asked[p], t->name,
                           dtype_name(t->dtype), dtype_name(want));
            }
            if (g) {
                CHECK_EQ_INT(gguf_n_tensors(g), gold_count(&gold, sp->name, up));
                CHECK_OK(convert_mix_parse(up, &type, &e), &e);
                CHECK_OK(gguf_get_u32(g, "general.file_type", &ft, &e), &e);
                CHECK_EQ_INT((int)ft, convert_mix_file_type(type));
                gguf_close(g);
            }
            CHECK_EQ_INT(wrong, 0);
            test_system("rm -f '%s'", out);
            free(out), free(up);
        }
        shape_run_free(&r);
    }
    test_system("rm -rf '%s'", tmp);
    free(tmp), free(gold.l);
}

/* llama-quantize's file of each preset (tests/data/; commands in the
 * READMEs there): tiny-qwen2 (64-wide rows, so its K-quants fall back to
 * the 32-block types) for all but Q6_K, the 256-wide model (real Q6_K
 * blocks) for Q6_K. */
typedef struct Interop {
    const char *preset, *file;
    int wide;
} Interop;

static const Interop INTEROP[] = {
    {"Q2_K", "gguf-mix/tiny-qwen2-q2_k.gguf", 0},       {"Q3_K_S", "gguf-mix/tiny-qwen2-q3_k_s.gguf", 0},
    {"Q3_K_M", "gguf-llamacpp/tiny-qwen2-q3_k_m.gguf", 0}, {"Q3_K_L", "gguf-mix/tiny-qwen2-q3_k_l.gguf", 0},
    {"Q4_K_S", "gguf-mix/tiny-qwen2-q4_k_s.gguf", 0},   {"Q4_K_M", "gguf-llamacpp/tiny-qwen2-q4_k_m.gguf", 0},
    {"Q5_K_S", "gguf-mix/tiny-qwen2-q5_k_s.gguf", 0},   {"Q5_K_M", "gguf-llamacpp/tiny-qwen2-q5_k_m.gguf", 0},
    {"Q6_K", "gguf-llamacpp/wide-q6_k.gguf", 1},        {"Q8_0", "gguf-mix/tiny-qwen2-q8_0.gguf", 0},
    {"Q4_0", "gguf-llamacpp/tiny-qwen2-q4_0.gguf", 0},  {"Q4_1", "gguf-mix/tiny-qwen2-q4_1.gguf", 0},
    {"Q5_0", "gguf-mix/tiny-qwen2-q5_0.gguf", 0},       {"Q5_1", "gguf-mix/tiny-qwen2-q5_1.gguf", 0},
    {"IQ4_NL", "gguf-mix/tiny-qwen2-iq4_nl.gguf", 0},   {"IQ4_XS", "gguf-mix/tiny-qwen2-iq4_xs.gguf", 0},
};

/* E = sqrt(sum over the quantised matrices of (|W_q - W| / |W|)^2), W_q
 * the file's weights as aloe dequantises them, W the f32 file's. */
static void weights_error(const char *path, const char *f32path, double *E) {
    Err e;
    *E = -1;
    Gguf *q = gguf_open(path, &e), *f = q ? gguf_open(f32path, &e) : NULL;
    CHECK_MSG(q && f, "%s", e.msg);
    double sum = 0;
    for (int i = 0; f && i < gguf_n_tensors(q); i++) {
        const TensorView *t = gguf_tensor(q, i), *r = gguf_find_tensor(f, t->name);
        if (!dtype_is_quantized(t->dtype)) continue;
        CHECK_MSG(r && r->dtype == DT_F32 && tensor_numel(r) == tensor_numel(t), "%s: %s not in %s", path, t->name,
                  f32path);
        float *a = tensor_to_f32_alloc(t, &e);
        CHECK_OK(a == NULL, &e);
        const float *w = r->data;
        double d2 = 0, w2 = 0;
        for (int64_t k = 0; k < tensor_numel(t); k++)
            d2 += ((double)a[k] - w[k]) * ((double)a[k] - w[k]), w2 += (double)w[k] * w[k];
        sum += d2 / w2;
        free(a);
    }
    if (q) gguf_close(q);
    if (f) gguf_close(f);
    *E = sqrt(sum);
}

/* The file loads, its logits over ids are within 1.6 E of the f32
 * model's, and `aloe complete` continues a prompt. The bound is
 * test_gguf_llamacpp.c's (also test_gguf_legacy.c's), derived there: each
 * matrix's relative rounding error e_i carries into the activations it
 * produces, independent errors add in variance, so the logits' rms error
 * relative to their spread is about E = sqrt(sum e_i^2); 1.6 E leaves room
 * for the softmax and SiLU gains the first-order estimate ignores
 * (measured there 0.85-1.22 E). */
static void check_runs(const char *what, const char *path, const char *f32, const float *ref, const int32_t *ids,
                       int n) {
    Err e;
    float *got = NULL;
    int V = 0;
    CHECK_OK(logits_of(path, ids, n, &got, &V, &e), &e);
    double E, rel, rms;
    weights_error(path, f32, &E);
    logit_diff(got, ref, (size_t)n * V, &rel, &rms);
    printf("  %-28s logits vs f32: rms %.3f of the spread = %.2f E (E = %.3f, bound 1.6 E)\n", what, rms, rms / E, E);
    CHECK_MSG(E > 0 && rms <= 1.6 * E, "%s: logits' rms error %.3g, weights' E %.3g", what, rms, E);
    free(got);
    char *args = xasprintf("complete --model %s --prompt-ids 1,2,3 --max-tokens 3 --temperature 0 --print-ids", path),
         *out = NULL;
    int rc = aloe_sh_run(NULL, args, &out);
    /* three ids printed as [a, b, c] */
    CHECK_MSG(rc == 0 && out && strchr(out, '[') && strchr(strchr(out, '['), ',') &&
                  strchr(strchr(strchr(out, '['), ',') + 1, ','),
              "%s: aloe complete: exit %d: %s", what, rc, out ? out : "");
    free(args), free(out);
}

/* llama-quantize's file of each preset loads in aloe and runs; aloe's file
 * of the same preset from the same model has the same type for every
 * tensor and general.file_type, and runs too. */
static void test_llamacpp_presets_interop(void) {
    NEED_SHARED(tiny, "fixtures/models/tiny-qwen2");
    NEED_SHARED(tiny_f32, "fixtures/gguf/tiny-qwen2-f32.gguf");
    Err e;
    char *tmp = test_tmpdir(), *bin = test_build_path("aloe"), *wide = path_join(tmp, "wide"),
         *wide_f32 = path_join(tmp, "wide-f32.gguf");
    /* the 256-wide model tests/data/gguf-llamacpp/wide-*.gguf were made from */
    WideSpec ws = {.n_layers = 1, .ffn = 512, .seed = 7};
    WideHF w;
    wide_hf_build(&w, &ws);
    CHECK_OK(wide_hf_write(&w, &ws, wide, &e), &e);
    wide_hf_free(&w);
    CHECK(test_system("%s convert --model %s --out %s --type f32 2>/dev/null", bin, wide, wide_f32) == 0);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (int32_t)((i * 7919 + 13) % 1024);
    float *ref_tiny = NULL, *ref_wide = NULL;
    CHECK_OK(logits_of(tiny, ids, 40, &ref_tiny, NULL, &e), &e);
    CHECK_OK(logits_of(wide, ids, 40, &ref_wide, NULL, &e), &e);
    for (size_t k = 0; k < sizeof INTEROP / sizeof *INTEROP; k++) {
        const Interop *c = &INTEROP[k];
        const char *hf = c->wide ? wide : tiny, *f32 = c->wide ? wide_f32 : tiny_f32;
        const float *ref = c->wide ? ref_wide : ref_tiny;
        char *theirs = xasprintf("tests/data/%s", c->file), *mine = xasprintf("%s/aloe-%s.gguf", tmp, c->preset);
        int type;
        CHECK_OK(convert_mix_parse(c->preset, &type, &e), &e);
        int rc = test_system("%s convert --model %s --out %s --type %s 2>/dev/null", bin, hf, mine, c->preset);
        CHECK_MSG(rc == 0, "aloe convert --type %s: exit %d", c->preset, rc);
        Gguf *a = gguf_open(mine, &e), *b = a ? gguf_open(theirs, &e) : NULL;
        CHECK_MSG(a && b, "%s", e.msg);
        uint32_t fa = 0, fb = 0;
        CHECK_OK(gguf_get_u32(b, "general.file_type", &fb, &e), &e);
        CHECK_OK(gguf_get_u32(a, "general.file_type", &fa, &e), &e);
        CHECK_EQ_INT((int)fb, convert_mix_file_type(type)); /* the data are the preset they claim */
        CHECK_EQ_INT((int)fa, (int)fb);
        CHECK_EQ_INT(gguf_n_tensors(a), gguf_n_tensors(b));
        int wrong = 0;
        for (int i = 0; i < gguf_n_tensors(b); i++) {
            const TensorView *t = gguf_tensor(b, i), *u = gguf_find_tensor(a, t->name);
            if ((!u || u->dtype != t->dtype) && wrong++ < 5)
                printf("  %s: %s: aloe wrote %s, llama-quantize %s\n", c->preset, t->name, u ? dtype_name(u->dtype) : "nothing",
                       dtype_name(t->dtype));
        }
        CHECK_MSG(wrong == 0, "%s: %d tensors' types differ from llama-quantize's file", c->preset, wrong);
        gguf_close(a), gguf_close(b);
        char *what = xasprintf("%s llama-quantize", c->preset);
        check_runs(what, theirs, f32, ref, ids, 40);
        free(what), what = xasprintf("%s aloe convert", c->preset);
        check_runs(what, mine, f32, ref, ids, 40);
        test_system("rm -f '%s'", mine);
        free(what), free(theirs), free(mine);
    }
    /* and a user chats with one (the chat template comes with the file) */
    char *q4 = xasprintf("%s/chat-q4_k_m.gguf", tmp), *log = xasprintf("%s/chat.out", tmp), *out = NULL;
    size_t len = 0;
    int rc = test_system("%s convert --model %s --out %s --type q4_k_m 2>/dev/null && printf 'hello there\n' | "
                         "%s chat --model %s --max-tokens 4 --temperature 0 >%s 2>&1",
                         bin, tiny, q4, bin, q4, log);
    CHECK_OK(file_read_all(log, &out, &len, &e), &e);
    printf("  aloe chat on aloe's Q4_K_M file: %s", out);
    CHECK_MSG(rc == 0 && strstr(out, "[reply cut at --max-tokens 4]"), "aloe chat: exit %d: %s", rc, out);
    test_system("rm -rf '%s'", tmp);
    free(out), free(q4), free(log), free(ref_tiny), free(ref_wide), free(tmp), free(bin), free(wide), free(wide_f32),
        free(tiny), free(tiny_f32);
}

/* --same-values A.gguf B.gguf: every quantised tensor of A, dequantised
 * by aloe, equals B's F32 tensor of that name bit for bit (B: llama.cpp's
 * dequantisation of A, `llama-quantize --allow-requantize A B F32`). */
static int same_values(const char *pa, const char *pb) {
    Err e;
    Gguf *a = gguf_open(pa, &e), *b = a ? gguf_open(pb, &e) : NULL;
    if (!b) {
        fprintf(stderr, "%s\n", e.msg);
        if (a) gguf_close(a);
        return 1;
    }
    int n = 0, same = 0;
    for (int i = 0; i < gguf_n_tensors(a); i++) {
        const TensorView *t = gguf_tensor(a, i), *r = gguf_find_tensor(b, t->name);
        if (!dtype_is_quantized(t->dtype)) continue;
        float *x = tensor_to_f32_alloc(t, &e);
        n++;
        same += x && r && r->dtype == DT_F32 && tensor_numel(r) == tensor_numel(t) &&
                !memcmp(x, r->data, (size_t)tensor_numel(t) * sizeof(float));
        free(x);
    }
    printf("%s: %d of %d quantised tensors dequantise to the same floats in llama.cpp and aloe\n", pa, same, n);
    gguf_close(a), gguf_close(b);
    return same == n ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-moe")) {
        Err e;
        int rc = moe_gguf_write(argv[2], &e);
        if (rc) fprintf(stderr, "%s\n", e.msg);
        return rc ? 1 : 0;
    }
    if (argc == 4 && !strcmp(argv[1], "--same-values")) return same_values(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "--write-model")) {
        const MixShape *sp = mix_shape(argv[2]);
        Err e;
        if (!sp) return fprintf(stderr, "no shape %s\n", argv[2]), 1;
        int rc = mix_model_write(sp, argv[3], &e);
        if (rc) fprintf(stderr, "%s\n", rc == 1 ? "shared fixtures absent" : e.msg);
        return rc ? 1 : 0;
    }
    RUN(test_type_names);
    RUN(test_rules_match_llamacpp);
    RUN(test_moe_rules_match_llamacpp);
    RUN(test_cli_writes_the_mix);
    RUN(test_llamacpp_presets_interop);
    return test_summary();
}
