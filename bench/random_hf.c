/* random_hf: a Hugging Face model directory of a known checkpoint's shape
 * with random bf16 weights, for bench/vs_llamacpp.sh. `aloe convert` turns
 * it into GGUF files and llama-quantize into the quantised ones, so that
 * llama.cpp and aloe read the very same files, and nobody has to download
 * (or be licensed for) the real weights: the speed of the matrix products
 * does not depend on the values.
 *
 * Writes DIR/config.json, DIR/tokenizer.json and DIR/model.safetensors.
 * The tokenizer is a stand-in: the 256 byte-level tokens, one special
 * token (<|endoftext|>, BOS and EOS) and nothing else; the rest of the
 * vocabulary becomes llama.cpp's "[PADi]" tokens on conversion. Both
 * benchmarks feed random token ids, so only the vocabulary's size matters
 * (the embedding and the output matrix).
 *
 * Weights: sign and 7 mantissa bits random, exponent 2^-8..2^-5, so |w| is
 * spread over 0.004..0.06 (about the 0.02 of trained checkpoints); norm
 * weights 1. The tensors are streamed to the file, so memory stays small
 * even for the 8B shape (16 GB of bf16).
 *
 * Usage: random_hf SHAPE DIR [SEED]; SHAPE is one of the names below. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct Shape {
    const char *name, *arch, *model_type;
    int D, F, L, H, KV, hd, V, tied, bias;
    double theta, eps;
    double rope_factor; /* Llama 3 RoPE scaling (0: none) */
    int max_pos;
} Shape;

/* From the checkpoints' config.json files. */
static const Shape SHAPES[] = {
    {"qwen2.5-0.5b", "Qwen2ForCausalLM", "qwen2", 896, 4864, 24, 14, 2, 64, 151936, 1, 1, 1e6, 1e-6, 0, 32768},
    {"llama-3.2-1b", "LlamaForCausalLM", "llama", 2048, 8192, 16, 32, 8, 64, 128256, 1, 0, 5e5, 1e-5, 32, 131072},
    {"llama-3.1-8b", "LlamaForCausalLM", "llama", 4096, 14336, 32, 32, 8, 128, 128256, 0, 0, 5e5, 1e-5, 8, 131072},
};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

/* ---- output helpers: a bench tool, so failures end the program ---- */

static void die(const char *what, const char *path) {
    fprintf(stderr, "random_hf: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static char *join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (!p) exit(1);
    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

static void write_json(const char *dir, const char *file, json_t *j) {
    char *p = join(dir, file);
    if (!j || json_dump_file(j, p, JSON_INDENT(1) | JSON_ENSURE_ASCII)) die("cannot write", p);
    json_decref(j);
    free(p);
}

/* ---- config.json ---- */

static void write_config(const char *dir, const Shape *s) {
    json_t *c = json_object();
    json_object_set_new(c, "architectures", json_pack("[s]", s->arch));
    json_object_set_new(c, "model_type", json_string(s->model_type));
    json_object_set_new(c, "hidden_size", json_integer(s->D));
    json_object_set_new(c, "intermediate_size", json_integer(s->F));
    json_object_set_new(c, "num_hidden_layers", json_integer(s->L));
    json_object_set_new(c, "num_attention_heads", json_integer(s->H));
    json_object_set_new(c, "num_key_value_heads", json_integer(s->KV));
    json_object_set_new(c, "head_dim", json_integer(s->hd));
    json_object_set_new(c, "vocab_size", json_integer(s->V));
    json_object_set_new(c, "max_position_embeddings", json_integer(s->max_pos));
    json_object_set_new(c, "rms_norm_eps", json_real(s->eps));
    json_object_set_new(c, "rope_theta", json_real(s->theta));
    json_object_set_new(c, "tie_word_embeddings", json_boolean(s->tied));
    json_object_set_new(c, "hidden_act", json_string("silu"));
    json_object_set_new(c, "torch_dtype", json_string("bfloat16"));
    json_object_set_new(c, "bos_token_id", json_integer(256));
    json_object_set_new(c, "eos_token_id", json_integer(256));
    if (s->rope_factor > 0)
        json_object_set_new(c, "rope_scaling",
                            json_pack("{s:f, s:f, s:f, s:i, s:s}", "factor", s->rope_factor, "low_freq_factor", 1.0,
                                      "high_freq_factor", 4.0, "original_max_position_embeddings", 8192, "rope_type",
                                      "llama3"));
    if (!strcmp(s->model_type, "qwen2")) json_object_set_new(c, "use_sliding_window", json_false());
    write_json(dir, "config.json", c);
}

/* ---- tokenizer.json: GPT-2's byte-to-character map, no merges ---- */

/* GPT-2's printable stand-in for byte b (bytes_to_unicode). */
static unsigned byte_char(unsigned b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    unsigned n = 0; /* the others take 256, 257, ... in byte order */
    for (unsigned x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
    return 256 + n;
}

static void utf8(unsigned cp, char out[4]) {
    if (cp < 0x80) out[0] = (char)cp, out[1] = 0;
    else if (cp < 0x800) out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    else out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
         out[2] = (char)(0x80 | (cp & 0x3F)), out[3] = 0;
}

static void write_tokenizer(const char *dir) {
    json_t *vocab = json_object();
    for (unsigned b = 0; b < 256; b++) {
        char s[4];
        utf8(byte_char(b), s);
        json_object_set_new(vocab, s, json_integer(b));
    }
    json_t *t = json_pack("{s:s, s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}], s:n, s:{s:s, s:b, s:b, s:b}, s:n, "
                          "s:{s:s}, s:{s:s, s:o, s:[]}}",
                          "version", "1.0", "added_tokens", "id", 256, "content", "<|endoftext|>", "single_word", 0,
                          "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1, "normalizer", "pre_tokenizer",
                          "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0, "use_regex", 1,
                          "post_processor", "decoder", "type", "ByteLevel", "model", "type", "BPE", "vocab", vocab,
                          "merges");
    write_json(dir, "tokenizer.json", t);
}

/* ---- model.safetensors, streamed ---- */

typedef struct Tensor {
    char name[96];
    long rows, cols; /* cols 0: a vector of `rows` */
    int ones;        /* a norm: every weight 1 */
} Tensor;

static int add(Tensor *t, int n, int ones, long rows, long cols, const char *fmt, int layer) {
    snprintf(t[n].name, sizeof t[n].name, fmt, layer);
    t[n].rows = rows, t[n].cols = cols, t[n].ones = ones;
    return n + 1;
}

/* The tensors of the checkpoint, in Hugging Face's names. */
static int list_tensors(const Shape *s, Tensor *t) {
    int n = 0, q = s->H * s->hd, kv = s->KV * s->hd;
    n = add(t, n, 0, s->V, s->D, "model.embed_tokens.weight", 0);
    for (int l = 0; l < s->L; l++) {
        n = add(t, n, 1, s->D, 0, "model.layers.%d.input_layernorm.weight", l);
        n = add(t, n, 0, q, s->D, "model.layers.%d.self_attn.q_proj.weight", l);
        n = add(t, n, 0, kv, s->D, "model.layers.%d.self_attn.k_proj.weight", l);
        n = add(t, n, 0, kv, s->D, "model.layers.%d.self_attn.v_proj.weight", l);
        if (s->bias) {
            n = add(t, n, 0, q, 0, "model.layers.%d.self_attn.q_proj.bias", l);
            n = add(t, n, 0, kv, 0, "model.layers.%d.self_attn.k_proj.bias", l);
            n = add(t, n, 0, kv, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        }
        n = add(t, n, 0, s->D, q, "model.layers.%d.self_attn.o_proj.weight", l);
        n = add(t, n, 1, s->D, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        n = add(t, n, 0, s->F, s->D, "model.layers.%d.mlp.gate_proj.weight", l);
        n = add(t, n, 0, s->F, s->D, "model.layers.%d.mlp.up_proj.weight", l);
        n = add(t, n, 0, s->D, s->F, "model.layers.%d.mlp.down_proj.weight", l);
    }
    n = add(t, n, 1, s->D, 0, "model.norm.weight", 0);
    if (!s->tied) n = add(t, n, 0, s->V, s->D, "lm_head.weight", 0);
    return n;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A random bf16 from 16 random bits: sign and mantissa as they come,
 * exponent 2^-8..2^-5 from two of the bits. */
static uint16_t random_bf16(unsigned r) {
    return (uint16_t)((r & 0x807F) | (unsigned)(0x77 + ((r >> 7) & 3)) << 7);
}

static void write_safetensors(const char *dir, const Shape *s, uint64_t seed) {
    Tensor *t = calloc((size_t)s->L * 12 + 4, sizeof *t);
    if (!t) exit(1);
    int n = list_tensors(s, t);
    json_t *h = json_object();
    json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)t[i].rows * (uint64_t)(t[i].cols ? t[i].cols : 1) * 2;
        json_t *shape = t[i].cols ? json_pack("[I, I]", (json_int_t)t[i].rows, (json_int_t)t[i].cols)
                                  : json_pack("[I]", (json_int_t)t[i].rows);
        json_object_set_new(h, t[i].name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", "BF16", "shape", shape, "data_offsets",
                                      (json_int_t)off, (json_int_t)(off + bytes)));
        off += bytes;
    }
    char *text = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    size_t len = strlen(text), padded = (len + 7) / 8 * 8; /* the data starts 8-aligned */
    char *p = join(dir, "model.safetensors");
    FILE *f = fopen(p, "wb");
    if (!f) die("cannot create", p);
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(text, 1, len, f);
    for (size_t i = len; i < padded; i++) fputc(' ', f);
    free(text);
    enum { CHUNK = 1 << 19 }; /* values per write */
    uint16_t *buf = malloc(CHUNK * sizeof *buf);
    if (!buf) exit(1);
    uint64_t rng = seed;
    for (int i = 0; i < n; i++) {
        uint64_t left = (uint64_t)t[i].rows * (uint64_t)(t[i].cols ? t[i].cols : 1);
        while (left) {
            size_t m = left < CHUNK ? (size_t)left : CHUNK;
            for (size_t k = 0; k < m; k += 4) {
                uint64_t r = splitmix(&rng);
                for (size_t j = 0; j < 4 && k + j < m; j++)
                    buf[k + j] = t[i].ones ? 0x3F80 : random_bf16((unsigned)(r >> (16 * j)));
            }
            if (fwrite(buf, sizeof *buf, m, f) != m) die("cannot write", p);
            left -= m;
        }
    }
    if (fclose(f)) die("cannot write", p);
    free(buf), free(p), free(t);
}

int main(int argc, char **argv) {
    const Shape *s = NULL;
    for (int i = 0; argc >= 3 && i < N_SHAPES; i++)
        if (!strcmp(argv[1], SHAPES[i].name)) s = &SHAPES[i];
    if (!s) {
        fprintf(stderr, "usage: random_hf SHAPE DIR [SEED]\nshapes:");
        for (int i = 0; i < N_SHAPES; i++) fprintf(stderr, " %s", SHAPES[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    const char *dir = argv[2];
    if (mkdir(dir, 0777) && errno != EEXIST) die("cannot create", dir);
    write_config(dir, s);
    write_tokenizer(dir);
    write_safetensors(dir, s, argc > 3 ? strtoull(argv[3], NULL, 10) : 1);
    return 0;
}
