#include "model/convert.h"
#include "model/convert_mix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "formats/dtype.h"
#include "formats/gguf_write.h"
#include "formats/arch.h"
#include "formats/hfdir.h"
#include "formats/safetensors.h"

/* Every type a GGUF conversion writes: llama.cpp's common presets' types. */
static const int CONVERT_TYPES[] = {DT_F32,  DT_F16,  DT_BF16, DT_Q8_0, DT_Q4_0, DT_Q4_1,   DT_Q5_0, DT_Q5_1,
                                    DT_IQ4_NL, DT_Q2_K, DT_Q3_K, DT_Q4_K, DT_Q5_K, DT_Q6_K, DT_IQ4_XS};
#define CONVERT_TYPES_TEXT "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k or iq4_xs"

static int convert_type_ok(int type) {
    for (size_t i = 0; i < sizeof CONVERT_TYPES / sizeof *CONVERT_TYPES; i++)
        if (CONVERT_TYPES[i] == type) return 1;
    return convert_mix_is_preset(type); /* llama.cpp's presets: convert_mix.c */
}

/* A lower-case type name: every matrix that type. */
static int pure_type_parse(const char *name, int *type, Err *e) {
    for (size_t i = 0; i < sizeof CONVERT_TYPES / sizeof *CONVERT_TYPES; i++)
        if (!strcmp(name, dtype_name(CONVERT_TYPES[i]))) {
            *type = CONVERT_TYPES[i];
            return 0;
        }
    return err_set(e, ERR_ARG, "GGUF type \"%s\": expected " CONVERT_TYPES_TEXT, name);
}

/* Every caller (convert --type, merge and train --gguf) takes the presets
 * too: the README promises them wherever a GGUF is written. */
int convert_type_parse(const char *name, int *type, Err *e) {
    Err as_type, ignored;
    if (!pure_type_parse(name, type, &as_type) || !convert_mix_parse(name, type, &ignored)) return 0;
    return err_set(e, ERR_ARG, "%s (every matrix that type), or a llama.cpp preset in any case: " CONVERT_MIX_NAMES,
                   as_type.msg);
}

int convert_file_type(int type) {
    if (convert_mix_is_preset(type)) return convert_mix_file_type(type);
    switch (type) {
    case DT_F16: return 1;  /* LLAMA_FTYPE_MOSTLY_F16 */
    case DT_Q4_0: return 2; /* MOSTLY_Q4_0 */
    case DT_Q8_0: return 7; /* MOSTLY_Q8_0 */
    case DT_BF16: return 32; /* MOSTLY_BF16 */
    case DT_Q4_K: return 14; /* MOSTLY_Q4_K_S: every matrix Q4_K (no Q4_K_M mix) */
    case DT_Q6_K: return 18; /* MOSTLY_Q6_K */
    case DT_Q4_1: return 3;   /* MOSTLY_Q4_1 */
    case DT_Q5_0: return 8;   /* MOSTLY_Q5_0 */
    case DT_Q5_1: return 9;   /* MOSTLY_Q5_1 */
    case DT_Q2_K: return 10;  /* MOSTLY_Q2_K */
    case DT_Q3_K: return 11;  /* MOSTLY_Q3_K_S: every matrix Q3_K */
    case DT_Q5_K: return 16;  /* MOSTLY_Q5_K_S: every matrix Q5_K */
    case DT_IQ4_NL: return 25; /* MOSTLY_IQ4_NL */
    case DT_IQ4_XS: return 30; /* MOSTLY_IQ4_XS */
    default: return 0;      /* ALL_F32 */
    }
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* llama.cpp's choice: vectors, norms and biases stay f32; a quantised type
 * needs whole blocks per row, and a row that is not falls back as
 * llama.cpp's quantiser does (dtype_row_fallback: a K-quant row that is not
 * a multiple of 256 takes Q5_0, Q5_1, Q8_0 or IQ4_NL; anything still
 * without whole blocks f16). */
static int tensor_type(const TensorView *t, const char *gguf_name, int want, const ConvertMix *mix) {
    if (mix) return convert_mix_tensor_type(mix, gguf_name, t->ndim, t->shape[t->ndim - 1]);
    if (t->ndim <= 1 || ends_with(gguf_name, "_norm.weight") || !ends_with(gguf_name, ".weight")) return DT_F32;
    return dtype_row_fallback(want, t->shape[t->ndim - 1]);
}

/* Converted tensors go to an unlinked file beside the output, mapped
 * shared: the kernel can write them back and drop them under memory
 * pressure, so a conversion needs about one f32 tensor of RAM rather than
 * the size of the output. The space is reserved up front, so a full disk is
 * an error here and never a SIGBUS later. */
typedef struct Scratch {
    char *base;
    size_t size;
} Scratch;

static int scratch_open(Scratch *s, const char *out_path, size_t size, Err *e) {
    s->base = NULL, s->size = size;
    if (size == 0) return 0;
    char *tmpl = xasprintf("%s.scratch-XXXXXX", out_path);
    int fd = mkstemp(tmpl), rc = 0;
    if (fd < 0) {
        rc = err_set(e, ERR_IO, "cannot create a scratch file beside %s: %s", out_path, strerror(errno));
    } else {
        unlink(tmpl);
        int err = posix_fallocate(fd, 0, (off_t)size);
        void *p = err ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (err) rc = err_set(e, ERR_IO, "%s: cannot reserve %zu bytes of scratch space: %s", tmpl, size, strerror(err));
        else if (p == MAP_FAILED) rc = err_set(e, ERR_IO, "%s: cannot map the scratch file: %s", tmpl, strerror(errno));
        else s->base = p;
        close(fd);
    }
    free(tmpl);
    return rc;
}

static void scratch_close(Scratch *s) {
    if (s->base) munmap(s->base, s->size);
    s->base = NULL;
}

/* One output tensor: its GGUF name and type, and where its converted bytes
 * go in the scratch (NO_COPY: used from the map as stored). */
#define NO_COPY ((size_t)-1)

typedef struct Planned {
    char name[160];
    int type, permute, n_head;
    int plus_one; /* llama.cpp's converter stores Gemma's norm weights as w + 1 */
    size_t offset;
} Planned;

/* llama.cpp's name, type and Q/K permutation of src; the bytes it needs
 * in the scratch are added to *scratch_size. */
static int plan_tensor(const ModelConfig *c, const TensorView *src, int want, const ConvertMix *mix, Planned *p,
                       size_t *scratch_size, Err *e) {
    int layer, kind = arch_kind_of_hf_in(c->arch, src->name, &layer);
    if (kind < 0 || arch_gguf_name_of(c->arch, (ParamKind)kind, layer, p->name, sizeof p->name))
        return err_set(e, ERR_UNSUPPORTED, "tensor %s: no GGUF counterpart for %s", src->name, model_arch_name(c->arch));
    /* llama.cpp permutes the Q and K rows of the llama architecture, the
     * biases' too (convert_hf_to_gguf.py: q_proj.weight and q_proj.bias) */
    int is_q = kind == PARAM_WQ || kind == PARAM_BQ, is_k = kind == PARAM_WK || kind == PARAM_BK;
    const ArchDesc *ad = arch_desc(c->arch);
    p->permute = ad && (ad->flags & ARCHF_GGUF_PERMUTED) && (is_q || is_k);
    p->n_head = is_q ? c->n_heads : c->n_kv_heads;
    p->plus_one = ad && (ad->flags & ARCHF_NORM_PLUS1) && (arch_tensor_of(c->arch, (ParamKind)kind)->flags & TK_NORM);
    p->type = tensor_type(src, p->name, want, mix);
    p->offset = NO_COPY;
    if (p->type != src->dtype || p->permute || p->plus_one) {
        p->offset = *scratch_size;
        *scratch_size += (dtype_nbytes(p->type, tensor_numel(src)) + 63) & ~(size_t)63;
    }
    return 0;
}

/* Adds src to the writer as planned: converted through f32 into the
 * scratch (with llama.cpp's Q/K row permutation for the llama
 * architecture), or straight from the map. */
static int add_tensor(GgufWriter *w, const TensorView *src, const Planned *p, Scratch *s, Err *e) {
    TensorView t = *src;
    t.name = p->name;
    if (p->offset != NO_COPY) {
        int64_t n = tensor_numel(src);
        float *f = tensor_to_f32_alloc(src, e);
        if (!f) return -1;
        if (p->permute &&
            /* a bias is one column of rows */
            gguf_permute_qk(f, src->ndim == 1 ? n : tensor_rows(src),
                            (src->ndim == 1 ? 1 : (size_t)tensor_cols(src)) * sizeof(float), p->n_head, e)) {
            free(f);
            return -1;
        }
        for (int64_t i = 0; p->plus_one && i < n; i++) f[i] += 1.0f;
        int rc = quantize_row(p->type, f, s->base + p->offset, n);
        free(f);
        if (rc) return err_set(e, ERR_UNSUPPORTED, "cannot convert to %s", dtype_name(p->type));
        t.dtype = p->type;
        t.data = s->base + p->offset;
        t.nbytes = dtype_nbytes(p->type, n);
    }
    return gguf_writer_add_tensor(w, &t, e);
}

static void set_general(GgufWriter *w, const char *hf_dir, int type) {
    gguf_set_str(w, "general.type", "model");
    /* llama.cpp derives a display name from the directory name; ours is
     * the directory's base name as it is */
    char *dir = xstrdup(hf_dir);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = 0;
    const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    gguf_set_str(w, "general.name", base);
    free(dir);
    gguf_set_u32(w, "general.file_type", (uint32_t)convert_file_type(type));
    gguf_set_u32(w, "general.quantization_version", 2);
}

static int check_dir(const char *hf_dir, ModelConfig *c, Err *e) {
    char *cj = path_join(hf_dir, "config.json");
    int rc = 0;
    if (!file_is_dir(hf_dir) && ends_with(hf_dir, ".gguf"))
        rc = err_set(e, ERR_ARG, "%s: already a GGUF file (convert reads a Hugging Face model directory)", hf_dir);
    else if (!file_is_dir(hf_dir))
        rc = err_set(e, ERR_NOTFOUND, "%s: not a Hugging Face model directory (expected a directory with config.json, "
                     "the weights and tokenizer.json)", hf_dir);
    else if (!file_exists(cj))
        rc = err_set(e, ERR_NOTFOUND, "%s: not a Hugging Face model directory: no config.json", hf_dir);
    else if (hf_config_load(hf_dir, c, e))
        rc = -1;
    else if (c->arch == ARCH_BERT)
        rc = err_set(e, ERR_UNSUPPORTED, "%s: %s: GGUF export handles the decoder models (LlamaForCausalLM, "
                     "Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM, OlmoForCausalLM, Olmo2ForCausalLM, "
                     "Gemma2ForCausalLM, Gemma3ForCausalLM, Phi3ForCausalLM)", cj, model_arch_name(c->arch));
    free(cj);
    return rc;
}

int convert_hf_to_gguf(const char *hf_dir, const char *out_path, int type, Err *e) {
    ModelConfig c;
    if (!convert_type_ok(type))
        return err_set(e, ERR_ARG, "GGUF type %s: expected " CONVERT_TYPES_TEXT, dtype_name(type));
    if (check_dir(hf_dir, &c, e)) return -1;
    SafeTensors *st = st_open(hf_dir, e);
    if (!st) return -1;
    GgufWriter *w = gguf_writer_new();
    int rc = gguf_set_model_config(w, &c, e);
    if (!rc) {
        set_general(w, hf_dir, type);
        rc = convert_set_tokenizer(w, hf_dir, c.vocab_size, e);
    }
    int n = st_count(st);
    ConvertMix mix_, *mix = convert_mix_is_preset(type) ? &mix_ : NULL; /* a llama.cpp preset: per-tensor types */
    if (!rc && mix) rc = convert_mix_init(mix, type, &c, st, e);
    Planned *plan = xcalloc((size_t)n + 1, sizeof *plan);
    size_t scratch_size = 0;
    int fell_back = 0, matrices = 0;
    for (int i = 0; i < n && !rc; i++) {
        const TensorView *t = st_tensor(st, i);
        if (ends_with(t->name, "rotary_emb.inv_freq")) continue; /* recomputed from the config, as llama.cpp does */
        int lyr; /* a multimodal checkpoint's vision tower: llama.cpp writes it to a separate mmproj file */
        if ((arch_desc(c.arch)->flags & ARCHF_TEXT_OF_MM) && arch_kind_of_hf_in(c.arch, t->name, &lyr) < 0) continue;
        if (plan_tensor(&c, t, type, mix, &plan[i], &scratch_size, e)) rc = err_wrap(e, "%s", hf_dir);
        if (t->ndim >= 2 && plan[i].type != DT_F32) matrices++, fell_back += !mix && plan[i].type != type;
    }
    /* Say so when the requested type did not fit every matrix: a "q4_k" file
     * whose matrices are mostly q8_0 should not come as a surprise. */
    if (!rc && fell_back)
        log_warn("%s: %d of %d matrices are not %s: their rows are not a multiple of %d, so they are %s (or f16)",
                 out_path, fell_back, matrices, dtype_name(type), (int)dtype_block_size(type),
                 dtype_row_fallback(type, 32) != type ? dtype_name(dtype_row_fallback(type, 32)) : "f16");
    Scratch s = {0};
    if (!rc) rc = scratch_open(&s, out_path, scratch_size, e);
    float *freqs = NULL;
    if (!rc && c.rope.type == ROPE_LLAMA3) {
        /* llama.cpp keeps Llama-3 RoPE scaling as per-frequency divisors */
        freqs = xmalloc((size_t)c.head_dim / 2 * sizeof(float));
        rope_freq_factors(&c.rope, c.head_dim, freqs);
        TensorView rf = {.name = "rope_freqs.weight", .dtype = DT_F32, .ndim = 1, .shape = {c.head_dim / 2, 1, 1, 1},
                         .data = freqs, .nbytes = (size_t)c.head_dim / 2 * sizeof(float)};
        rc = gguf_writer_add_tensor(w, &rf, e);
    }
    /* LongRoPE: llama.cpp keeps the factors as two tensors */
    if (!rc && c.rope.type == ROPE_LONGROPE) {
        const char *names[2] = {"rope_factors_long.weight", "rope_factors_short.weight"};
        float *vals[2] = {c.rope.long_factor, c.rope.short_factor};
        for (int i = 0; i < 2 && !rc; i++) {
            TensorView rf = {.name = names[i], .dtype = DT_F32, .ndim = 1, .shape = {c.rope.n_factors, 1, 1, 1},
                             .data = vals[i], .nbytes = (size_t)c.rope.n_factors * sizeof(float)};
            rc = gguf_writer_add_tensor(w, &rf, e);
        }
    }
    for (int i = 0; i < n && !rc; i++)
        if (plan[i].name[0] && add_tensor(w, st_tensor(st, i), &plan[i], &s, e))
            rc = err_wrap(e, "%s: tensor %s", hf_dir, st_tensor(st, i)->name);
    if (!rc) rc = gguf_writer_write(w, out_path, e);
    gguf_writer_free(w);
    scratch_close(&s);
    free(plan);
    free(freqs);
    st_close(st);
    return rc;
}
