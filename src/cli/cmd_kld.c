/* aloe kld: the KL divergence of a model's next-token distributions from a
 * base model's on a text -- llama.cpp's `llama-perplexity --kl-divergence`
 * on the same positions with the same statistics (infer/kld.h), in one
 * run rather than two (both models are loaded together). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "infer/idlist.h"
#include "infer/kld.h"
#include "model/open.h"

static void on_chunk(void *ctx, int chunk, int n_chunks, const KldStats *s) {
    (void)ctx;
    KldSummary m;
    if (kld_summarize(s, &m)) return;
    fprintf(stderr, "aloe kld: chunk %d/%d: PPL %.4f, KLD %.6f ± %.6f, same top %.3f%%\n", chunk, n_chunks,
            m.ppl.value, m.kld.value, m.kld.err, 100 * m.same_top.value);
}

static void print_summary(const KldSummary *m) {
    printf("====== Perplexity statistics ======\n");
    printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", m->ppl.value, m->ppl.err);
    printf("Mean PPL(base)                : %10.6f ± %10.6f\n", m->ppl_base.value, m->ppl_base.err);
    printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100 * m->log_ppl_cor);
    printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", m->log_ppl_ratio.value, m->log_ppl_ratio.err);
    printf("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", m->ppl_ratio.value, m->ppl_ratio.err);
    printf("Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", m->ppl_diff.value, m->ppl_diff.err);
    printf("\n====== KL divergence statistics ======\n");
    printf("Mean    KLD: %10.6f ± %10.6f\n", m->kld.value, m->kld.err);
    printf("Maximum KLD: %10.6f\n", m->kld_max);
    for (int i = 0; i < 4; i++) printf("%4.1f%%   KLD: %10.6f\n", 100 * KLD_KLD_PCT[i], m->kld_pct[i]);
    printf("Median  KLD: %10.6f\n", m->kld_median);
    for (int i = 4; i < KLD_N_KLD_PCT; i++) printf("%4.1f%%   KLD: %10.6f\n", 100 * KLD_KLD_PCT[i], m->kld_pct[i]);
    printf("Minimum KLD: %10.6f\n", m->kld_min);
    printf("\n====== Token probability statistics ======\n");
    printf("Mean    Δp: %6.3f ± %5.3f %%\n", 100 * m->p_diff.value, 100 * m->p_diff.err);
    printf("Maximum Δp: %6.3f%%\n", 100 * m->p_diff_max);
    for (int i = 0; i < 5; i++) printf("%4.1f%%   Δp: %6.3f%%\n", 100 * KLD_PDIFF_PCT[i], 100 * m->p_diff_pct[i]);
    printf("Median  Δp: %6.3f%%\n", 100 * m->p_diff_median);
    for (int i = 5; i < KLD_N_PDIFF_PCT; i++)
        printf("%4.1f%%   Δp: %6.3f%%\n", 100 * KLD_PDIFF_PCT[i], 100 * m->p_diff_pct[i]);
    printf("Minimum Δp: %6.3f%%\n", 100 * m->p_diff_min);
    printf("RMS Δp    : %6.3f ± %5.3f %%\n", 100 * m->rms_p_diff.value, 100 * m->rms_p_diff.err);
    printf("Same top p: %6.3f ± %5.3f %%\n", 100 * m->same_top.value, 100 * m->same_top.err);
}

static json_t *est(KldEstimate x) { return json_pack("{s:f, s:f}", "value", x.value, "err", x.err); }

static json_t *pct_object(const double *fractions, const double *values, int n, double median) {
    json_t *o = json_object();
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%g", 100 * fractions[i]);
        json_object_set_new(o, key, json_real(values[i]));
    }
    json_object_set_new(o, "50", json_real(median));
    return o;
}

static int write_json(const char *path, const KldSummary *m, int n_ctx, int n_chunks, long n_tokens, Err *e) {
    json_t *j = json_pack("{s:i, s:i, s:i, s:I, s:o, s:o, s:f, s:o, s:o, s:o, s:o, s:f, s:f, s:o, s:o, s:f, s:f, "
                          "s:o, s:o, s:o}",
                          "n_ctx", n_ctx, "chunks", n_chunks, "positions", (int)m->count, "tokens",
                          (json_int_t)n_tokens, "ppl", est(m->ppl), "ppl_base", est(m->ppl_base), "log_ppl_cor",
                          m->log_ppl_cor, "log_ppl_ratio", est(m->log_ppl_ratio), "ppl_ratio", est(m->ppl_ratio),
                          "ppl_diff", est(m->ppl_diff), "kld", est(m->kld), "kld_max", m->kld_max, "kld_min",
                          m->kld_min, "kld_percentiles",
                          pct_object(KLD_KLD_PCT, m->kld_pct, KLD_N_KLD_PCT, m->kld_median), "p_diff",
                          est(m->p_diff), "p_diff_max", m->p_diff_max, "p_diff_min", m->p_diff_min,
                          "p_diff_percentiles",
                          pct_object(KLD_PDIFF_PCT, m->p_diff_pct, KLD_N_PDIFF_PCT, m->p_diff_median),
                          "rms_p_diff", est(m->rms_p_diff), "same_top", est(m->same_top));
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(j);
    if (!text) return err_set(e, ERR_INTERNAL, "kld: could not format the JSON summary");
    size_t len = strlen(text);
    text = realloc(text, len + 2);
    text[len++] = '\n';
    int rc = file_write_atomic(path, text, len, e);
    free(text);
    if (rc) err_wrap(e, "--json %s", path);
    return rc;
}

/* The ids of --ids FILE, or of --text FILE tokenised by the base model's
 * tokenizer; *bos as kld_tokenize gives it (-1 for --ids). */
static int read_ids(const char *text_path, const char *ids_path, const Tokenizer *t, int32_t **ids, int *n, int *bos,
                    Err *e) {
    char *s;
    size_t len;
    *bos = -1;
    if (ids_path) {
        if (file_read_text(ids_path, "a list of token ids", &s, &len, e)) return err_wrap(e, "--ids");
        int rc = idlist_parse(s, ids, n, e);
        free(s);
        if (rc) return err_wrap(e, "--ids %s: expected token ids separated by commas or spaces, or a JSON array",
                                ids_path);
        return 0;
    }
    if (file_read_text(text_path, "the text to score", &s, &len, e)) return err_wrap(e, "--text");
    int rc = kld_tokenize(t, s, len, ids, n, bos, e);
    free(s);
    return rc ? err_wrap(e, "--text %s", text_path) : 0;
}

int cmd_kld(int argc, char **argv) {
    const char *base_spec = NULL, *model_spec = NULL, *text = NULL, *ids_path = NULL, *json = NULL;
    int n_ctx = 512, n_chunks = 0, threads = 0, ubatch = 0;
    ArgSpec specs[] = {
        {"--base", NULL, ARG_STR, &base_spec, "M", "the reference model (e.g. the f32 or f16 file): p", 1, 0},
        {"--model", "-m", ARG_STR, &model_spec, "M", "the model compared with it (e.g. a quantised file): q", 1, 0},
        {"--text", "-f", ARG_STR, &text, "FILE", "a text file, tokenised by the base model's tokenizer", 0, 0},
        {"--ids", NULL, ARG_STR, &ids_path, "FILE", "token ids instead of a text (commas/spaces or a JSON array), used as they are: no BOS is put at chunk starts", 0,
         0},
        {"--ctx", "-c", ARG_INT, &n_ctx, "N", "tokens per chunk; the second half of each is scored", 0,
         0},
        {"--chunks", NULL, ARG_INT, &n_chunks, "N", "score the first N chunks only (0: all)", 0, 0},
        {"--ubatch", NULL, ARG_INT, &ubatch, "N",
         "tokens per forward pass (0: a whole chunk); below ~40 the quantised matrices take the row-dot path "
         "with Q8_0-quantised activations, as llama.cpp's CPU matmuls do",
         0, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (0: one per CPU)", 0, 0},
        {"--json", NULL, ARG_STR, &json, "FILE", "also write the statistics as JSON", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const ArgCommand cmd = {
        "kld", "--base M --model M (--text FILE | --ids FILE) [--ctx N] [--chunks N] [-t N] [--json FILE]",
        "Scores how far the model's next-token distributions are from the base model's: KL divergence, its "
        "percentiles, the change of the next token's probability and how often both rank the same token first, "
        "plus both perplexities -- on the positions llama-perplexity --kl-divergence scores (chunks of --ctx "
        "tokens, the second half of each), with the same statistics.",
        "aloe kld --base model-f32.gguf --model model-q4_k.gguf --text wiki.txt --ctx 512 --chunks 20", 0, 0};
    Err e;
    err_clear(&e);
    int rc = args_parse_flags(&cmd, specs, argc, argv, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    if ((text != NULL) == (ids_path != NULL)) {
        err_set(&e, ERR_ARG, "aloe kld: give either --text FILE or --ids FILE (see aloe kld --help)");
        return cli_fail(&e);
    }
    KldOptions ko = {.n_ctx = n_ctx, .n_chunks = n_chunks, .bos = -1, .ubatch = ubatch, .on_chunk = on_chunk};
    if (kld_n_chunks(2L * n_ctx, &ko, &e) < 0) return cli_fail(&e); /* --ctx alone, before loading anything */
    /* The tokenizer is loaded alone: a chat template (which model_open's
     * tokenizer option also reads) is not needed here, and a base model's
     * file often has none. */
    ModelOpenOptions bo = {.weights = 1, .n_threads = threads};
    ModelOpenOptions mo = {.weights = 1, .n_threads = threads};
    ModelBundle b, m;
    memset(&m, 0, sizeof m);
    if (model_open(base_spec, &bo, &b, &e)) {
        err_wrap(&e, "--base");
        return cli_fail(&e);
    }
    int32_t *ids = NULL;
    int n_ids = 0;
    KldStats st;
    kld_stats_init(&st);
    rc = 0;
    if (text && !(b.tok = tok_load(b.path, &e))) rc = err_wrap(&e, "--base %s: the tokenizer", base_spec);
    if (!rc) rc = read_ids(text, ids_path, b.tok, &ids, &n_ids, &ko.bos, &e);
    if (!rc && (rc = kld_n_chunks(n_ids, &ko, &e) < 0)) err_wrap(&e, "%s %s", text ? "--text" : "--ids", text ? text : ids_path);
    if (!rc && (rc = model_open(model_spec, &mo, &m, &e))) err_wrap(&e, "--model");
    /* llama-perplexity runs past the training context with a warning; so
     * does this, so that both still compare, but never silently */
    for (int k = 0; k < 2 && !rc; k++) {
        const ModelBundle *x = k ? &m : &b;
        if (x->model->cfg.max_pos > 0 && n_ctx > x->model->cfg.max_pos)
            fprintf(stderr,
                    "aloe kld: warning: --ctx %d is longer than the %s model's context of %d tokens "
                    "(max_position_embeddings): the positions past it were never trained\n",
                    n_ctx, k ? "compared" : "base", x->model->cfg.max_pos);
    }
    if (!rc) {
        fprintf(stderr, "aloe kld: %d tokens, %d chunks of %d, %d positions scored per chunk\n", n_ids,
                kld_n_chunks(n_ids, &ko, &e), n_ctx, n_ctx - 1 - n_ctx / 2);
        rc = kld_eval(b.model, m.model, ids, n_ids, &ko, &st, &e);
    }
    KldSummary sum;
    if (!rc && kld_summarize(&st, &sum) == 0) {
        print_summary(&sum);
        if (json) rc = write_json(json, &sum, n_ctx, kld_n_chunks(n_ids, &ko, &e), n_ids, &e);
    }
    kld_stats_free(&st);
    free(ids);
    model_bundle_free(&m);
    model_bundle_free(&b);
    return rc ? cli_fail(&e) : 0;
}
