/* aloe embed: sentence embeddings of texts as JSON arrays of floats, one
 * line per text, from a local BERT-family sentence-transformers model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "formats/jsonl.h"
#include "model/open.h"
#include "model/encoder.h"

/* texts are embedded this many at a time: one batch keeps both cores busy */
#define EMBED_BATCH 64

typedef struct {
    const Encoder *enc;
    StrList batch;
    StrBuf line;
    int last_line; /* input line of the last text taken */
} EmbedRun;

static int print_vectors(EmbedRun *r, const char *const *texts, int n, Err *e) {
    float *vecs;
    int dim;
    if (encoder_embed(r->enc, texts, n, &vecs, &dim, e)) return -1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        sb_clear(&r->line);
        sb_appendc(&r->line, '[');
        /* %.9g: every float comes back bit-exact when parsed */
        for (int j = 0; j < dim; j++) sb_printf(&r->line, "%s%.9g", j ? ", " : "", vecs[(size_t)i * dim + j]);
        sb_append(&r->line, "]\n");
        if (fwrite(r->line.s, 1, r->line.len, stdout) != r->line.len)
            rc = err_set(e, ERR_IO, "embed: writing to stdout failed");
    }
    free(vecs);
    return rc;
}

static int flush_batch(EmbedRun *r, Err *e) {
    int rc = r->batch.n ? print_vectors(r, (const char *const *)r->batch.items, r->batch.n, e) : 0;
    strlist_free(&r->batch);
    memset(&r->batch, 0, sizeof r->batch);
    return rc;
}

/* Output line N answers input line N. */
static int on_value(void *ctx, json_t *v, const char *path, int line, int nth, Err *e) {
    EmbedRun *r = ctx;
    if (jsonl_expect_next_line(&r->last_line, path, line, nth, e)) return -1;
    if (!json_is_string(v))
        return err_set(e, ERR_PARSE, "%s:%d: expected a JSON string, got %s", path, line, json_type_name(v));
    strlist_push(&r->batch, json_string_value(v));
    return r->batch.n >= EMBED_BATCH ? flush_batch(r, e) : 0;
}

int cmd_embed(int argc, char **argv) {
    const char *model = NULL, *jsonl = NULL;
    ArgSpec specs[] = {
        {"--model", "-m", ARG_STR, &model, "M",
         "a sentence-transformers directory (BERT encoder), a plain BertModel directory, or hf://ORG/REPO", 1,
         0},
        {"--jsonl", NULL, ARG_STR, &jsonl, "FILE", "embed each JSON string of FILE (- for stdin); one array per line",
         0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const ArgCommand cmd = {
        "embed", "--model M (TEXT... | --jsonl FILE)",
        "Prints the sentence embedding of each TEXT as a JSON array of floats, one line per text, in order, "
        "pooled and normalised as the model's sentence-transformers configuration says (a plain BERT "
        "directory: mean pooling, L2-normalised). Texts longer than the model's max_seq_length are truncated.",
        "aloe embed --model hf://sentence-transformers/all-MiniLM-L6-v2 'She is a nurse.' 'He runs marathons.'",
        0, -1};
    char **pos = malloc(sizeof(char *) * (argc > 0 ? argc : 1));
    int npos;
    Err e;
    err_clear(&e);
    int rc = args_parse(&cmd, specs, argc, argv, pos, &npos, &e);
    if (rc) {
        free(pos);
        return rc > 0 ? 0 : cli_fail(&e);
    }
    if ((npos > 0) == (jsonl != NULL)) {
        free(pos);
        err_set(&e, ERR_ARG, "aloe embed: give either TEXT arguments or --jsonl FILE (see aloe embed --help)");
        return cli_fail(&e);
    }
    char *dir = NULL;
    Encoder *enc = NULL;
    if (model_spec_resolve(model, 0, &dir, &e) || !(enc = encoder_load(dir, &e))) {
        free(dir);
        free(pos);
        return cli_fail(&e);
    }
    EmbedRun r = {.enc = enc};
    sb_init(&r.line);
    if (jsonl && !strcmp(jsonl, "-")) jsonl = "/dev/stdin";
    if (jsonl) rc = jsonl_foreach(jsonl, on_value, &r, &e) < 0 || flush_batch(&r, &e) ? -1 : 0;
    else rc = print_vectors(&r, (const char *const *)pos, npos, &e);
    if (!rc && fflush(stdout)) rc = err_set(&e, ERR_IO, "embed: writing to stdout failed");
    strlist_free(&r.batch);
    sb_free(&r.line);
    encoder_free(enc);
    free(dir);
    free(pos);
    return rc ? cli_fail(&e) : 0;
}
