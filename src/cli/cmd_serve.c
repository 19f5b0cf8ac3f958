/* aloe serve: an OpenAI-compatible server for local models (serve/server.h).
 * Wiring only: flags, the key from $ALOE_API_KEY, the "listening on" line,
 * and SIGTERM/SIGINT to a drained stop. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "formats/jsonl.h"
#include "serve/server.h"

#define STR(x) #x
#define XSTR(x) STR(x)

/* --model and --alias may be given several times: every value, in order
 * (the flag parser keeps only the last). */
static void collect_repeated(int argc, char **argv, const char *name, const char *alias, StrList *out) {
    size_t nl = strlen(name);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) break;
        if ((!strcmp(a, name) || (alias && !strcmp(a, alias))) && i + 1 < argc) strlist_push(out, argv[++i]);
        else if (!strncmp(a, name, nl) && a[nl] == '=') strlist_push(out, a + nl + 1);
    }
}

static void log_line(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "%s\n", line);
}

int cmd_serve(int argc, char **argv) {
    const char *model = NULL, *alias = NULL, *host = SERVE_DEFAULT_HOST, *api_key = NULL, *tpl = NULL,
               *port_file = NULL;
    int port = SERVE_DEFAULT_PORT, jobs = SERVE_DEFAULT_MAX_ACTIVE, ctx = 0, threads = 0,
        max_body_mib = SERVE_DEFAULT_MAX_BODY_MIB, max_prompt = 0, max_tokens = SERVE_DEFAULT_MAX_TOKENS,
        max_queue = SERVE_DEFAULT_MAX_QUEUE, cache_mib = -1;
    double drain = SERVE_DEFAULT_DRAIN_S;
    ArgSpec specs[] = {
        {"--model", "-m", ARG_STR, &model, "M",
         "a model to serve (repeatable): a Hugging Face directory, a .gguf file or hf://ORG/REPO; a BERT "
         "sentence-transformers directory serves /v1/embeddings", 1, 0},
        {"--alias", NULL, ARG_STR, &alias, "NAME",
         "the name clients use for the --model in the same position (repeatable; default: the spec, and its "
         "last path component)", 0, 0},
        {"--host", NULL, ARG_STR, &host, "H", "address to listen on (default " SERVE_DEFAULT_HOST
         ", this machine only; 0.0.0.0 for every interface)", 0, 0},
        {"--port", NULL, ARG_INT, &port, "N", "port (default " XSTR(SERVE_DEFAULT_PORT) "; 0: any free port, printed)",
         0, 0},
        {"--api-key", NULL, ARG_STR, &api_key, "K",
         "require Authorization: Bearer K on every endpoint but /health (default: $ALOE_API_KEY; unset: no key)", 0,
         0},
        {"--parallel", "-j", ARG_INT, &jobs, "N",
         "sequences decoded together per model (default " XSTR(SERVE_DEFAULT_MAX_ACTIVE) ")", 0, 0},
        {"--ctx", NULL, ARG_INT, &ctx, "N", "context length in tokens (default: the model's)", 0, 0},
        {"--chat-template", NULL, ARG_STR, &tpl, "NAME|FILE",
         "chat template family by name, or a Jinja file (default: the model's own)", 0, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (0: one per CPU)", 0, 0},
        {"--max-body-mib", NULL, ARG_INT, &max_body_mib, "N",
         "largest request body, MiB (default " XSTR(SERVE_DEFAULT_MAX_BODY_MIB) "; larger: 413)", 0, 0},
        {"--max-prompt-tokens", NULL, ARG_INT, &max_prompt, "N",
         "longest prompt in tokens (default: the context less one; longer: 413)", 0, 0},
        {"--max-tokens", NULL, ARG_INT, &max_tokens, "N",
         "most new tokens a request may ask for, and what it gets when it asks for none (default "
         XSTR(SERVE_DEFAULT_MAX_TOKENS) ", within the context)", 0, 0},
        {"--max-queue", NULL, ARG_INT, &max_queue, "N",
         "sequences that may wait for a place in a model's batch (default " XSTR(SERVE_DEFAULT_MAX_QUEUE)
         "; more: 503 with Retry-After)", 0, 0},
        {"--prefix-cache-mib", NULL, ARG_INT, &cache_mib, "N",
         "prompt keys and values kept for reuse across requests, MiB per model (default: $ALOE_PREFIX_CACHE, else "
         XSTR(SERVE_DEFAULT_PREFIX_CACHE_MIB) "; 0: none)", 0, 0},
        {"--drain-s", NULL, ARG_DOUBLE, &drain, "S",
         "on SIGTERM/SIGINT, how long requests in flight may take to finish before they are cut at their next "
         "token (default 30)", 0, 0},
        {"--port-file", NULL, ARG_STR, &port_file, "FILE", "also write the port to FILE once listening (for scripts)",
         0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const ArgCommand cmd = {
        "serve",
        "--model M [--model M2 ...] [--alias NAME] [--host 127.0.0.1] [--port 8080] [--api-key K] [-j N] [--ctx N] "
        "[--chat-template NAME|FILE]",
        "Serves local models over the OpenAI API: POST /v1/chat/completions (streaming too), /v1/completions, "
        "/v1/embeddings; GET /v1/models, /health, /metrics (Prometheus). Requests join each model's continuous "
        "batch and share its prefix cache. Prints `listening on http://HOST:PORT` once ready and one line per "
        "request on stderr; SIGTERM or SIGINT lets the requests in flight finish (--drain-s) and exits 0.",
        "aloe serve --model hf://Qwen/Qwen2.5-0.5B-Instruct --alias qwen --port 8080",
        0, 0};
    Err e;
    err_clear(&e);
    int rc = args_parse_flags(&cmd, specs, argc, argv, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    StrList models = {0}, aliases = {0};
    collect_repeated(argc, argv, "--model", "-m", &models);
    collect_repeated(argc, argv, "--alias", NULL, &aliases);
    ServeOptions o;
    serve_options_default(&o);
    o.models = (const char *const *)models.items;
    o.n_models = models.n;
    o.aliases = (const char *const *)aliases.items;
    o.n_aliases = aliases.n;
    o.host = host;
    o.port = port;
    o.api_key = api_key ? api_key : getenv("ALOE_API_KEY");
    o.max_active = jobs;
    o.n_ctx = ctx;
    o.chat_template = tpl;
    o.n_threads = threads;
    o.max_prompt_tokens = max_prompt;
    o.max_tokens = max_tokens;
    o.max_queue = max_queue;
    o.log_line = log_line;
    if (max_body_mib < 1 || max_body_mib > 4095) {
        err_set(&e, ERR_ARG, "--max-body-mib: expected 1 to 4095, got %d", max_body_mib);
        goto usage;
    }
    o.max_body = (size_t)max_body_mib << 20;
    const char *env = getenv("ALOE_PREFIX_CACHE");
    if (cache_mib < 0 && env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end || v < 0 || v > (1L << 30)) {
            err_set(&e, ERR_ARG, "ALOE_PREFIX_CACHE: expected MiB of prompt keys and values (0: none), got \"%s\"", env);
            goto usage;
        }
        cache_mib = (int)v;
    }
    if (cache_mib >= 0) o.prefix_cache_bytes = (size_t)cache_mib << 20;
    if (!(drain >= 0)) {
        err_set(&e, ERR_ARG, "--drain-s: expected seconds >= 0");
        goto usage;
    }
    /* Every thread the server starts inherits this mask: the stop signals
     * reach only sigwait below; a write to a closed socket is an error, not
     * a death. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    Server *s = serve_start(&o, &e);
    if (!s) goto fail;
    const char *h = serve_host(s);
    printf(strchr(h, ':') ? "listening on http://[%s]:%d\n" : "listening on http://%s:%d\n", h, serve_port(s));
    fflush(stdout);
    /* after the line: whoever waits for the file finds the line written */
    if (port_file) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%d\n", serve_port(s));
        if (file_write_atomic(port_file, buf, (size_t)n, &e)) {
            serve_stop(s, 0);
            goto fail;
        }
    }
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "aloe serve: %s: finishing the requests in flight (up to %.0f s)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", drain);
    serve_stop(s, drain);
    strlist_free(&models);
    strlist_free(&aliases);
    return 0;
usage:
    e.code = ERR_ARG;
fail:
    strlist_free(&models);
    strlist_free(&aliases);
    return cli_fail(&e);
}
