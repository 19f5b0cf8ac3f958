#include "model/convert.h"

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/dtype.h"
#include "formats/gguf_write.h"
#include "formats/hfdir.h"
#include "formats/safetensors.h"

int convert_type_parse(const char *name, int *type, Err *e) {
    static const int OK[] = {DT_F32, DT_F16, DT_BF16, DT_Q8_0, DT_Q4_0};
    for (size_t i = 0; i < sizeof OK / sizeof *OK; i++)
        if (!strcmp(name, dtype_name(OK[i]))) {
            *type = OK[i];
            return 0;
        }
    return err_set(e, ERR_ARG, "GGUF type \"%s\": expected f32, f16, bf16, q8_0 or q4_0", name);
}

int convert_file_type(int type) {
    switch (type) {
    case DT_F16: return 1;  /* LLAMA_FTYPE_MOSTLY_F16 */
    case DT_Q4_0: return 2; /* MOSTLY_Q4_0 */
    case DT_Q8_0: return 7; /* MOSTLY_Q8_0 */
    case DT_BF16: return 32; /* MOSTLY_BF16 */
    default: return 0;      /* ALL_F32 */
    }
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* llama.cpp's choice: vectors, norms and biases stay f32; a quantised type
 * needs whole blocks per row, else f16. */
static int tensor_type(const TensorView *t, const char *gguf_name, int want) {
    if (t->ndim <= 1 || ends_with(gguf_name, "_norm.weight") || !ends_with(gguf_name, ".weight")) return DT_F32;
    if (dtype_is_quantized(want) && t->shape[t->ndim - 1] % dtype_block_size(want)) return DT_F16;
    return want;
}

/* What the output holds: names and converted data that must outlive the
 * writer. */
typedef struct Outputs {
    char **names;
    void **bufs;
    int n;
} Outputs;

static void outputs_free(Outputs *o) {
    for (int i = 0; i < o->n; i++) free(o->names[i]), free(o->bufs[i]);
    free(o->names);
    free(o->bufs);
}

/* One HF tensor under its GGUF name in its GGUF type: used from the map
 * when nothing changes, else converted through f32 (with llama.cpp's Q/K
 * row permutation for the llama architecture). */
static int add_tensor(GgufWriter *w, const ModelConfig *c, const TensorView *src, int want, Outputs *o, Err *e) {
    char gname[160];
    if (gguf_name_from_hf(src->name, gname, sizeof gname))
        return err_set(e, ERR_UNSUPPORTED, "tensor %s: no GGUF counterpart for %s", src->name, model_arch_name(c->arch));
    int is_q = ends_with(gname, "attn_q.weight"), is_k = ends_with(gname, "attn_k.weight");
    int permute = (c->arch == ARCH_LLAMA || c->arch == ARCH_MISTRAL) && (is_q || is_k);
    int type = tensor_type(src, gname, want);
    int i = o->n++;
    o->names[i] = xstrdup(gname);
    TensorView t = *src;
    t.name = o->names[i];
    if (type != src->dtype || permute) {
        int64_t n = tensor_numel(src), rows = tensor_rows(src), cols = tensor_cols(src);
        float *f = tensor_to_f32_alloc(src, e);
        if (!f) return err_wrap(e, "tensor %s", src->name);
        if (permute &&
            gguf_permute_qk(f, rows, (size_t)cols * sizeof(float), is_q ? c->n_heads : c->n_kv_heads, e)) {
            free(f);
            return err_wrap(e, "tensor %s", src->name);
        }
        if (type == DT_F32) {
            o->bufs[i] = f;
        } else {
            o->bufs[i] = xmalloc(dtype_nbytes(type, n) + 1);
            int rc = quantize_row(type, f, o->bufs[i], n);
            free(f);
            if (rc) return err_set(e, ERR_UNSUPPORTED, "tensor %s: cannot convert to %s", src->name, dtype_name(type));
        }
        t.dtype = type;
        t.data = o->bufs[i];
        t.nbytes = dtype_nbytes(type, n);
    }
    return gguf_writer_add_tensor(w, &t, e) ? err_wrap(e, "tensor %s", src->name) : 0;
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
                     "Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM)", cj, model_arch_name(c->arch));
    free(cj);
    return rc;
}

int convert_hf_to_gguf(const char *hf_dir, const char *out_path, int type, Err *e) {
    ModelConfig c;
    if (type != DT_F32 && type != DT_F16 && type != DT_BF16 && type != DT_Q8_0 && type != DT_Q4_0)
        return err_set(e, ERR_ARG, "GGUF type %s: expected f32, f16, bf16, q8_0 or q4_0", dtype_name(type));
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
    Outputs o = {xcalloc((size_t)n + 1, sizeof(char *)), xcalloc((size_t)n + 1, sizeof(void *)), 0};
    float *freqs = NULL;
    if (!rc && c.rope.type == ROPE_LLAMA3) {
        /* llama.cpp keeps Llama-3 RoPE scaling as per-frequency divisors */
        freqs = xmalloc((size_t)c.head_dim / 2 * sizeof(float));
        rope_freq_factors(&c.rope, c.head_dim, freqs);
        TensorView rf = {.name = "rope_freqs.weight", .dtype = DT_F32, .ndim = 1, .shape = {c.head_dim / 2, 1, 1, 1},
                         .data = freqs, .nbytes = (size_t)c.head_dim / 2 * sizeof(float)};
        rc = gguf_writer_add_tensor(w, &rf, e);
    }
    for (int i = 0; i < n && !rc; i++) {
        const TensorView *t = st_tensor(st, i);
        if (ends_with(t->name, "rotary_emb.inv_freq")) continue; /* recomputed from the config, as llama.cpp does */
        if (add_tensor(w, &c, t, type, &o, e)) rc = err_wrap(e, "%s", hf_dir);
    }
    if (!rc) rc = gguf_writer_write(w, out_path, e);
    gguf_writer_free(w);
    outputs_free(&o);
    free(freqs);
    st_close(st);
    return rc;
}
