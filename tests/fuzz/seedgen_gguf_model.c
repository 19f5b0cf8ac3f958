/* Writes the seeds of fuzz_gguf_model (tests/data/fuzz/gguf_model/): two
 * tiny but complete GGUF decoder models -- a qwen2 one with a byte-level
 * BPE vocabulary and a llama one with a SentencePiece vocabulary named
 * "Phi3" (llama.cpp's rstrip quirk) -- small enough for libFuzzer to mutate.
 * Not built by make; regenerate with
 *   cc -std=c11 -D_GNU_SOURCE -Isrc tests/fuzz/seedgen_gguf_model.c build/libaloe.a \
 *      $(pkg-config --libs jansson libpcre2-8 libutf8proc openblas libcurl sqlite3) -lm -pthread \
 *      -o /tmp/seedgen && /tmp/seedgen tests/data/fuzz/gguf_model */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/gguf_write.h"
#include "formats/hfdir.h"

enum { D = 8, F = 16, L = 2, H = 2, KV = 1, HD = 4 };

static void add(GgufWriter *w, const char *name, int64_t rows, int64_t cols, unsigned *seed) {
    int64_t n = rows * (cols ? cols : 1);
    float *v = xmalloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        v[i] = cols ? ((float)(*seed >> 16 & 0x7fff) / 32768.0f - 0.5f) * 0.2f : 1.0f;
    }
    TensorView t = {.name = xstrdup(name), .dtype = DT_F32, .ndim = cols ? 2 : 1, .shape = {rows, cols ? cols : 1, 1, 1},
                    .data = v, .nbytes = (size_t)n * sizeof *v};
    Err e;
    if (gguf_writer_add_tensor(w, &t, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    /* the writer keeps the name and data until it writes: both are left to the exit */
}

static void weights(GgufWriter *w, int V, int bias) {
    unsigned seed = 1;
    char n[64];
    add(w, "token_embd.weight", V, D, &seed);
    add(w, "output_norm.weight", D, 0, &seed);
    for (int l = 0; l < L; l++) {
#define T(s, r, c) (snprintf(n, sizeof n, "blk.%d.%s", l, s), add(w, n, r, c, &seed))
        T("attn_norm.weight", D, 0);
        T("ffn_norm.weight", D, 0);
        T("attn_q.weight", H * HD, D);
        T("attn_k.weight", KV * HD, D);
        T("attn_v.weight", KV * HD, D);
        T("attn_output.weight", D, H * HD);
        T("ffn_gate.weight", F, D);
        T("ffn_up.weight", F, D);
        T("ffn_down.weight", D, F);
        if (bias) {
            T("attn_q.bias", H * HD, 0);
            T("attn_k.bias", KV * HD, 0);
            T("attn_v.bias", KV * HD, 0);
        }
#undef T
    }
}

static void config(GgufWriter *w, int arch, int V) {
    ModelConfig c = {.arch = arch, .hidden_size = D, .intermediate_size = F, .n_layers = L, .n_heads = H,
                     .n_kv_heads = KV, .head_dim = HD, .vocab_size = V, .max_pos = 64, .norm_eps = 1e-6f,
                     .rope = {.theta = 10000, .factor = 1}};
    Err e;
    if (gguf_set_model_config(w, &c, &e)) exit(1);
}

static void write(GgufWriter *w, const char *dir, const char *name) {
    char *p = path_join(dir, name);
    Err e;
    if (gguf_writer_write(w, p, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    free(p);
    gguf_writer_free(w);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    /* qwen2, byte-level BPE */
    static const char *const bpe[] = {"a", "e", "h", "t", "\xc4\xa0", "\xc4\x8a", "th", "the", "\xc4\xa0the",
                                      "<|im_start|>", "<|im_end|>", "<|endoftext|>"};
    static const char *const merges[] = {"t h", "th e", "\xc4\xa0 the"};
    int32_t types[12];
    for (int i = 0; i < 12; i++) types[i] = i >= 9 ? 3 : 1;
    GgufWriter *w = gguf_writer_new();
    config(w, ARCH_QWEN2, 12);
    gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_set_str(w, "tokenizer.ggml.pre", "qwen2");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", bpe, 12);
    gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, 12);
    gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 3);
    gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 10);
    gguf_set_str(w, "tokenizer.chat_template",
                 "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                 "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}");
    weights(w, 12, 1);
    write(w, dir, "qwen2-bpe.gguf");
    /* llama, SentencePiece, named Phi3 */
    static const char *const spm[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "H", "i", "\xe2\x96\x81H", "\xe2\x96\x81Hi",
                                      "<0x0A>", "<|user|>", "<|end|>", "<|assistant|>"};
    float scores[12];
    for (int i = 0; i < 12; i++) scores[i] = (float)-i, types[i] = i < 2 || i >= 9 ? 3 : i == 2 ? 4 : i == 8 ? 6 : 1;
    w = gguf_writer_new();
    config(w, ARCH_LLAMA, 12);
    gguf_set_str(w, "general.name", "Phi3");
    gguf_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", spm, 12);
    gguf_set_arr(w, "tokenizer.ggml.scores", GGUF_F32, scores, 12);
    gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, 12);
    gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    weights(w, 12, 0);
    write(w, dir, "phi3-spm.gguf");
    return 0;
}
