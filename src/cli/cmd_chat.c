/* aloe chat: an interactive, multi-turn conversation with a model. Each
 * line of stdin is one user turn (a terminal or a pipe alike); the reply is
 * streamed to stdout as it is generated when the model is local, printed
 * whole when it is an endpoint's. /reset starts over, /exit or EOF ends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "llm/local.h"
#include "llm/open.h"

/* The conversation so far; contents owned. */
typedef struct {
    LlmMessage *m;
    int n, cap;
} History;

static void history_add(History *h, const char *role, const char *content) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 8;
        h->m = xrealloc(h->m, (size_t)h->cap * sizeof *h->m);
    }
    h->m[h->n++] = (LlmMessage){role, xstrdup(content)};
}

/* Drops every message after the first keep ones. */
static void history_truncate(History *h, int keep) {
    while (h->n > keep) free((char *)h->m[--h->n].content);
}

static void print_text(void *ctx, const char *text, size_t len) {
    (void)ctx;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

/* Reads one line without its newline (caller frees); NULL at EOF. */
static char *read_line(void) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    return line;
}

/* One turn: the reply is streamed (local) or printed whole, then kept. */
static int reply_turn(LlmBackend *b, History *h, const LlmParams *p, Err *e) {
    LlmReply r = {0};
    int local = llm_is_local(b);
    int rc = local ? llm_local_chat_stream(b, h->m, h->n, p, print_text, NULL, &r, e) : llm_chat(b, h->m, h->n, p, &r, e);
    if (rc) return -1;
    if (!local) print_text(NULL, r.text ? r.text : "", r.text ? strlen(r.text) : 0);
    printf("\n");
    if (r.finish_reason && !strcmp(r.finish_reason, "length")) {
        if (r.usage.completion_tokens < p->max_tokens)
            fprintf(stderr, "[reply cut at the model's context, after %ld tokens]\n", r.usage.completion_tokens);
        else
            fprintf(stderr, "[reply cut at --max-tokens %d]\n", p->max_tokens);
    }
    fflush(stdout);
    history_add(h, "assistant", r.text ? r.text : "");
    llm_reply_free(&r);
    return 0;
}

static int chat_loop(LlmBackend *b, const char *system, const LlmParams *p, Err *e) {
    int tty = isatty(0) && isatty(1);
    History h = {0};
    if (system && *system) history_add(&h, "system", system);
    int keep = h.n, rc = 0;
    if (tty) fprintf(stderr, "%s\n(type /reset to start over, /exit or Ctrl-D to quit)\n", b->describe);
    for (;;) {
        if (tty) fputs("> ", stdout), fflush(stdout);
        char *line = read_line();
        if (!line || !strcmp(line, "/exit")) {
            free(line);
            break;
        }
        if (!line[strspn(line, " \t")]) { /* a blank line is no turn (paragraph breaks in piped text) */
            free(line);
            continue;
        }
        if (!strcmp(line, "/reset")) {
            history_truncate(&h, keep);
            if (tty) fprintf(stderr, "[conversation reset]\n");
            free(line);
            continue;
        }
        history_add(&h, "user", line);
        free(line);
        if ((rc = reply_turn(b, &h, p, e))) {
            history_truncate(&h, h.n - 1); /* the turn that failed is not kept */
            if (!tty) break;
            /* at a terminal the conversation goes on (e.g. /reset after a full context) */
            fprintf(stderr, "aloe: error: %s\n", e->msg);
            rc = 0;
        }
    }
    history_truncate(&h, 0);
    free(h.m);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    const char *model = NULL, *system = NULL, *tmpl = NULL, *base_url = NULL;
    double temperature = -1, top_p = -1;
    int max_tokens = LOCAL_DEFAULT_MAX_TOKENS, seed = -1;
    ArgSpec specs[] = {
        {"--model", "-m", ARG_STR, &model, "M",
         "a Hugging Face directory, a .gguf file, hf://ORG/REPO[@REV][/FILE], or an endpoint's model name", 1, 0},
        {"--system", NULL, ARG_STR, &system, "TEXT", "the system prompt", 0, 0},
        {"--chat-template", NULL, ARG_STR, &tmpl, "NAME",
         "the model's own chat template overridden by a built-in family (chatml, qwen2.5, qwen3, llama3, llama3.1, "
         "llama3.2, gemma, phi3, mistral-nemo) or by a Jinja template file (a NAME with / or ending in .jinja); "
         "needed for a GGUF file without one", 0, 0},
        {"--temperature", NULL, ARG_DOUBLE, &temperature, "T",
         "0 = greedy; negative: the checkpoint's generation_config, else greedy", 0, 0},
        {"--top-p", NULL, ARG_DOUBLE, &top_p, "P", "nucleus sampling (1 = off; negative: the checkpoint's)", 0, 0},
        {"--max-tokens", "-n", ARG_INT, &max_tokens, "N", "reply length limit in tokens", 0, 0},
        {"--seed", NULL, ARG_INT, &seed, "S", "random seed for sampling (negative: a new one per reply)", 0, 0},
        {"--base-url", NULL, ARG_STR, &base_url, "URL",
         "OpenAI-compatible endpoint for a model name (default: $OPENAI_BASE_URL)", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const ArgCommand cmd = {
        "chat", "--model M [--system TEXT] [--chat-template NAME] [--temperature T] [--max-tokens N] [--seed S]",
        "Chats with the model, one user turn per line of standard input (a terminal or a pipe), streaming each "
        "reply as it is generated. The whole conversation is the context of every reply. /reset forgets it "
        "(the system prompt stays), /exit or end of input quits.",
        "aloe chat --model hf://Qwen/Qwen2.5-0.5B-Instruct --system 'Answer in one sentence.'", 0, 0};
    Err e;
    err_clear(&e);
    int rc = args_parse_flags(&cmd, specs, argc, argv, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    if (max_tokens < 1) { /* -1 used to mean the default silently, and the cut note then named 512 */
        err_set(&e, ERR_ARG, "--max-tokens: expected at least 1, got %d", max_tokens);
        return cli_fail(&e);
    }
    LlmParams p = llm_params_default();
    p.temperature = temperature;
    p.top_p = top_p;
    p.max_tokens = max_tokens;
    if (seed >= 0) p.has_seed = 1, p.seed = (uint64_t)seed;
    LlmRoleConfig cfg = {.role = "chat", .model = model, .base_url = base_url, .chat_template = tmpl};
    LlmBackend *b = llm_open(&cfg, NULL, &e);
    if (!b) return cli_fail(&e);
    rc = chat_loop(b, system, &p, &e);
    llm_free(b);
    return rc ? cli_fail(&e) : 0;
}
