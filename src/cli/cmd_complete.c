/* aloe complete: continue a prompt with a local model, streaming the text
 * (or, with --print-ids, printing the new ids as a JSON array). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "infer/generate.h"
#include "infer/idlist.h"
#include "model/open.h"
#include "model/decoder.h"
#include "tok/tok.h"

/* Streams the reply text as generate() produces it (stop strings never shown). */
static void print_text(void *ctx, const char *text, size_t len) {
    (void)ctx;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

int cmd_complete(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *prompt_ids = NULL, *stop = NULL, *kv_type = NULL;
    int max_tokens = 128, threads = 0, print_ids = 0, top_k = -1, seed = 0;
    double temperature = -1, top_p = -1, min_p = -1, repeat_penalty = -1;
    ArgSpec specs[] = {
        {"--model", "-m", ARG_STR, &model, "M", "a Hugging Face model directory, a .gguf file or hf://ORG/REPO", 1, 0},
        {"--prompt", NULL, ARG_STR, &prompt, "TEXT", "the prompt text (BOS added as the tokenizer says)", 0, 0},
        {"--prompt-ids", NULL, ARG_STR, &prompt_ids, "1,2,3", "the prompt as token ids instead of text", 0, 0},
        {"--max-tokens", "-n", ARG_INT, &max_tokens, "N", "new tokens at most", 0, 0},
        {"--temperature", NULL, ARG_DOUBLE, &temperature, "T",
         "0 = greedy (default: the checkpoint's generation_config, else greedy)", 0, 0},
        {"--top-k", NULL, ARG_INT, &top_k, "K", "sample from the K most likely tokens (0 = off)", 0, 0},
        {"--top-p", NULL, ARG_DOUBLE, &top_p, "P", "nucleus sampling (1 = off)", 0, 0},
        {"--min-p", NULL, ARG_DOUBLE, &min_p, "P", "drop tokens below P times the most likely (0 = off)", 0, 0},
        {"--repeat-penalty", NULL, ARG_DOUBLE, &repeat_penalty, "R", "repetition penalty (1 = off)", 0, 0},
        {"--seed", NULL, ARG_INT, &seed, "S", "random seed for sampling", 0, 0},
        {"--stop", NULL, ARG_STR, &stop, "TEXT", "also stop when the output contains TEXT (not printed)", 0, 0},
        {"--print-ids", NULL, ARG_FLAG, &print_ids, NULL, "print the new ids as a JSON array instead of text", 0, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (0: one per CPU)", 0, 0},
        {"--kv-type", NULL, ARG_STR, &kv_type, "T",
         "KV cache type, f32 or f16 (half the memory; default: $ALOE_KV_TYPE, else f32)", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const ArgCommand cmd = {
        "complete", "--model M (--prompt TEXT | --prompt-ids 1,2,3) [--max-tokens N] [--temperature T] [--seed S] "
                    "[--print-ids]",
        "Continues the prompt with the model and streams the new text to stdout, stopping at the end-of-sequence "
        "or end-of-turn token or after --max-tokens. No chat template is applied (see aloe chat).",
        "aloe complete --model ../shared/fixtures/models/tiny-qwen2 --prompt-ids 1025,82,287 --max-tokens 8 "
        "--print-ids",
        0, 0};
    Err e;
    err_clear(&e);
    int rc = args_parse_flags(&cmd, specs, argc, argv, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    if (!prompt == !prompt_ids) {
        err_set(&e, ERR_ARG, "aloe complete: give either --prompt TEXT or --prompt-ids 1,2,3");
        return cli_fail(&e);
    }
    if (max_tokens < 1) {
        err_set(&e, ERR_ARG, "--max-tokens: expected at least 1, got %d", max_tokens);
        return cli_fail(&e);
    }
    char *local = NULL; /* hf://ORG/REPO specs are downloaded once into the cache */
    if (model_spec_resolve(model, 0, &local, &e)) return cli_fail(&e);
    model = local;
    GenParams gp;
    gen_params_default(&gp);
    gp.max_tokens = max_tokens;
    gen_sampling_from_checkpoint(model, &gp.sampling);
    if (temperature >= 0) gp.sampling.temperature = (float)temperature;
    if (top_k >= 0) gp.sampling.top_k = top_k;
    if (top_p >= 0) gp.sampling.top_p = (float)top_p;
    if (min_p >= 0) gp.sampling.min_p = (float)min_p;
    if (repeat_penalty >= 0) gp.sampling.repetition_penalty = (float)repeat_penalty;
    gp.sampling.seed = (uint64_t)seed;
    if (sampler_params_check(&gp.sampling, &e)) {
        free(local);
        return cli_fail(&e);
    }
    /* the tokenizer is needed for text in or out; ids-only runs go on without one */
    Tokenizer *tok = tok_load(model, &e);
    if (!tok && (prompt || !print_ids || stop)) {
        free(local);
        return cli_fail(&e);
    }
    if (stop && !*stop) stop = NULL;
    int32_t *ids = NULL;
    int n = 0;
    if (prompt ? tok_encode(tok, prompt, 1, 1, &ids, &n, &e) : idlist_parse(prompt_ids, &ids, &n, &e)) {
        tok_free(tok);
        free(local);
        return cli_fail(&e);
    }
    Model *m = model_load(model, threads, &e);
    if (m && model_set_kv_type_name(m, kv_type, &e)) model_free(m), m = NULL;
    if (!m) {
        free(ids);
        tok_free(tok);
        free(local);
        return cli_fail(&e);
    }
    /* Positions past the model's context (max_position_embeddings, or
     * $ALOE_CTX as for the local role backend) are not generated. */
    int n_ctx = m->cfg.max_pos;
    const char *env = getenv("ALOE_CTX");
    if (env && *env) n_ctx = atoi(env);
    int cut_at_ctx = 0;
    if ((env && *env && n_ctx <= 0) || (n_ctx > 0 && n >= n_ctx)) {
        if (n_ctx <= 0)
            err_set(&e, ERR_ARG, "ALOE_CTX: expected a positive number of tokens, got \"%s\"", env);
        else
            err_set(&e, ERR_ARG, "the prompt is %d tokens, the model's context is %d%s", n, n_ctx,
                    env && *env ? " ($ALOE_CTX)" : " (set ALOE_CTX to allow a longer one)");
        model_free(m);
        free(ids);
        tok_free(tok);
        free(local);
        return cli_fail(&e);
    }
    if (n_ctx > 0 && gp.max_tokens > n_ctx - n) gp.max_tokens = n_ctx - n, cut_at_ctx = 1;
    /* stop at the model's EOS ids, the tokenizer's end-of-turn ids and --stop */
    gen_params_add_model_stops(&gp, m, tok);
    const char *stops[] = {stop, NULL};
    gp.tok = tok;
    gp.stop_strings = stops;
    if (!print_ids) gp.on_text = print_text;
    GenSeq seq;
    gen_seq_init(&seq, ids, n, &gp);
    rc = generate(m, &seq, 1, &e);
    if (!rc && print_ids) {
        StrBuf b;
        sb_init(&b);
        idlist_format(&b, seq.out, seq.n_out);
        printf("%s\n", b.s);
        sb_free(&b);
    } else if (!rc) {
        printf("\n");
    }
    if (!rc && cut_at_ctx && seq.n_out >= gp.max_tokens)
        fprintf(stderr, "[cut at the model's context of %d tokens]\n", n_ctx);
    gen_seq_free(&seq);
    model_free(m);
    tok_free(tok);
    free(ids);
    free(local);
    return rc ? cli_fail(&e) : 0;
}
