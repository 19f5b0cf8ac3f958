/* bench_encoder: sentence embeddings per second, the figure that bounds how
 * fast `aloe personas` can filter candidates locally.
 *
 *   bench_encoder [--shape minilm-l6|bert-base] [--texts 64] [--words 40]
 *                 [--reps 3] [--threads N] [--model DIR]
 *
 * Default: a random model of the given shape (all-MiniLM-L6-v2 is hidden
 * 384, 6 layers, 12 heads, intermediate 1536, vocab 30522), fed persona-like
 * texts of about --words words tokenised by the real bert-base-uncased
 * WordPiece vocabulary (llama.cpp's ggml-vocab-bert-bge.gguf from the shared
 * data; without it, 1.25 tokens per word of random ids). With --model DIR a
 * real model directory is timed through encoder_embed instead. Prints one
 * line per repetition and a JSON summary with the best repetition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/pool.h"
#include "base/rng.h"
#include "model/encoder.h"
#include "tok/tok.h"

static const char *const WORDS[] = {
    "she", "he", "is", "a", "retired", "nurse", "who", "loves", "gardening", "and", "baking", "bread",
    "on", "weekends", "mechanical", "engineer", "enjoys", "running", "marathons", "in", "the", "city",
    "of", "Chicago", "prefers", "short", "direct", "answers", "with", "examples", "values", "honesty",
    "grew", "up", "small", "town", "near", "coast", "works", "as", "software", "developer", "for",
    "startup", "has", "two", "children", "dog", "named", "Max", "plays", "guitar", "jazz", "band",
    "speaks", "Spanish", "French", "fluently", "reads", "science", "fiction", "novels", "every", "night",
    "dislikes", "jargon", "curious", "patient", "skeptical", "of", "advertising", "volunteers", "at",
    "local", "animal", "shelter", "33-year-old", "graduate", "student", "studying", "marine", "biology",
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *make_text(Rng *r, int words) {
    StrBuf b;
    sb_init(&b);
    int n = words - 4 + (int)rng_below(r, 9); /* words +- 4 */
    for (int i = 0; i < n; i++) {
        sb_append(&b, WORDS[rng_below(r, sizeof WORDS / sizeof *WORDS)]);
        sb_append(&b, i + 1 == n ? "." : rng_below(r, 8) == 0 ? ", " : " ");
    }
    return sb_take(&b);
}

static int usage(void) {
    fprintf(stderr, "usage: bench_encoder [--shape minilm-l6|bert-base] [--texts N] [--words N] [--reps N] "
                    "[--threads N] [--model DIR]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *shape = "minilm-l6", *model = NULL;
    int n_texts = 64, words = 40, reps = 3, threads = pool_cpu_count();
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--shape")) shape = argv[++i];
        else if (!strcmp(argv[i], "--model")) model = argv[++i];
        else if (!strcmp(argv[i], "--texts")) n_texts = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--words")) words = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else return usage();
    }
    if (n_texts < 1 || words < 5 || reps < 1) return usage();
    EncoderConfig c = {.hidden = 384, .n_layers = 6, .n_heads = 12, .intermediate = 1536, .vocab = 30522,
                       .max_pos = 512, .type_vocab = 2, .eps = 1e-12f, .max_seq_len = 256,
                       .pooling = ENC_POOL_MEAN, .normalize = 1};
    if (!strcmp(shape, "bert-base")) c.hidden = 768, c.n_layers = 12, c.intermediate = 3072, c.max_seq_len = 512;
    else if (strcmp(shape, "minilm-l6")) return usage();

    Err e;
    Encoder *enc = model ? encoder_load(model, &e) : encoder_new_random(&c, 1, &e);
    if (!enc) {
        fprintf(stderr, "bench_encoder: %s\n", e.msg);
        return 1;
    }
    encoder_set_threads(enc, threads);
    Rng r;
    rng_seed(&r, 2024);
    char **texts = xcalloc((size_t)n_texts, sizeof *texts);
    for (int i = 0; i < n_texts; i++) texts[i] = make_text(&r, words);

    /* token ids for the random model: the real BERT vocabulary if we have it */
    int32_t **ids = xcalloc((size_t)n_texts, sizeof *ids);
    int *lens = xcalloc((size_t)n_texts, sizeof *lens);
    const char *shared = getenv("ALOE_SHARED");
    char *vocab = path_join(shared ? shared : "../shared", "tokenizer-data/llama.cpp-vocab/ggml-vocab-bert-bge.gguf");
    Tokenizer *tok = !model && file_exists(vocab) ? tok_load_gguf(vocab, &e) : NULL;
    double t_tok = 0;
    long tokens = 0;
    if (!model) {
        double t0 = now_s();
        for (int i = 0; i < n_texts; i++) {
            if (tok) {
                if (tok_encode(tok, texts[i], 1, 0, &ids[i], &lens[i], &e)) {
                    fprintf(stderr, "bench_encoder: %s\n", e.msg);
                    return 1;
                }
            } else {
                lens[i] = 2 + words * 5 / 4;
                ids[i] = xmalloc((size_t)lens[i] * sizeof **ids);
                for (int p = 0; p < lens[i]; p++) ids[i][p] = (int32_t)rng_below(&r, (uint64_t)c.vocab);
            }
            tokens += lens[i];
        }
        t_tok = now_s() - t0;
    }
    printf("model: %s, %d texts of ~%d words, %ld tokens (%s), %d threads\n", model ? model : shape, n_texts, words,
           tokens, model ? "tokenised by the model" : tok ? "bert-base-uncased WordPiece" : "random ids", threads);
    double best = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        float *vecs;
        int dim;
        double t0 = now_s();
        int rc = model ? encoder_embed(enc, (const char *const *)texts, n_texts, &vecs, &dim, &e)
                       : encoder_embed_ids(enc, (const int32_t *const *)ids, lens, n_texts, &vecs, &dim, &e);
        double dt = now_s() - t0;
        if (rc) {
            fprintf(stderr, "bench_encoder: %s\n", e.msg);
            return 1;
        }
        free(vecs);
        printf("rep %d: %.3f s, %.1f embeddings/s\n", rep + 1, dt, n_texts / dt);
        if (dt < best) best = dt;
    }
    printf("{\"shape\": \"%s\", \"texts\": %d, \"tokens\": %ld, \"threads\": %d, \"seconds\": %.4f, "
           "\"embeddings_per_s\": %.1f, \"tokens_per_s\": %.0f, \"tokenize_s\": %.4f}\n",
           model ? "model" : shape, n_texts, tokens, threads, best, n_texts / best, tokens / best, t_tok);
    for (int i = 0; i < n_texts; i++) free(texts[i]), free(ids[i]);
    free(texts), free(ids), free(lens), free(vocab);
    tok_free(tok);
    encoder_free(enc);
    return 0;
}
