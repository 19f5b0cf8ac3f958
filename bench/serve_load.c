/* serve_load: C concurrent clients streaming chat completions from an
 * OpenAI-compatible server (aloe serve, llama-server), for
 * bench/serve_vs_llamaserver.sh. Built with `make build/bench/serve_load`.
 *
 *   serve_load URL MODEL CLIENTS REQUESTS_PER_CLIENT MAX_TOKENS
 *
 * Each client sends its requests one after another (stream, temperature 0,
 * ignore_eos so every reply is MAX_TOKENS long on servers that honour it),
 * each with its own prompt. Prints one line per request:
 *   req TTFT_S TOKENS SECONDS
 * (TTFT: from sending to the first token chunk; TOKENS: the usage
 * chunk's completion_tokens, else the token chunks), then
 *   wall SECONDS
 * over the whole run. Exit 1 when a request failed (its line says why). */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"

typedef struct Client {
    const char *url, *model;
    int id, requests, max_tokens;
    StrBuf lines;
    int failed;
} Client;

typedef struct Stream {
    double t0, ttft;
    long tokens, usage_tokens;
    StrBuf pending;
} Stream;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads whole "data: ..." lines: a chunk with a "content" (or "text") is a
 * token, even an empty one (llama-server streams "" for a token with no
 * text of its own, e.g. a padding id of a random-weight model), except the
 * chunk that opens a chat reply with its "role" (aloe serve sends it before
 * the first token; it must not count as one). A "completion_tokens" is the
 * exact total. */
static size_t on_data(char *p, size_t size, size_t n, void *ctx) {
    Stream *s = ctx;
    sb_appendn(&s->pending, p, size * n);
    char *line = s->pending.s, *nl;
    while ((nl = strchr(line, '\n'))) {
        *nl = 0;
        if (!strncmp(line, "data: {", 7)) {
            const char *c = strstr(line, "\"content\":\"");
            if (!c) c = strstr(line, "\"text\":\"");
            if (c && !strstr(line, "\"role\":")) {
                if (s->ttft < 0) s->ttft = now() - s->t0;
                s->tokens++;
            }
            const char *u = strstr(line, "\"completion_tokens\":");
            if (u) s->usage_tokens = atol(u + 20);
        }
        line = nl + 1;
    }
    size_t rest = strlen(line);
    memmove(s->pending.s, line, rest + 1);
    s->pending.len = rest;
    return size * n;
}

static void *client_main(void *arg) {
    Client *c = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    hd = curl_slist_append(hd, "Expect:");
    char *url = xasprintf("%s/chat/completions", c->url);
    for (int r = 0; r < c->requests; r++) {
        char *body = xasprintf("{\"model\": \"%s\", \"stream\": true, \"stream_options\": {\"include_usage\": true}, "
                               "\"temperature\": 0, \"ignore_eos\": true, \"max_tokens\": %d, \"messages\": "
                               "[{\"role\": \"user\", \"content\": \"Client %d, request %d: tell me a long story "
                               "about a lighthouse keeper and the sea.\"}]}",
                               c->model, c->max_tokens, c->id, r);
        Stream s = {.t0 = now(), .ttft = -1, .usage_tokens = -1};
        sb_init(&s.pending);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        CURLcode cc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        double secs = now() - s.t0;
        if (cc != CURLE_OK || status != 200 || s.ttft < 0) {
            sb_printf(&c->lines, "error client %d request %d: %s, HTTP %ld\n", c->id, r, curl_easy_strerror(cc), status);
            c->failed = 1;
        } else {
            sb_printf(&c->lines, "req %.6f %ld %.6f\n", s.ttft, s.usage_tokens >= 0 ? s.usage_tokens : s.tokens, secs);
        }
        sb_free(&s.pending);
        free(body);
    }
    free(url);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: serve_load URL MODEL CLIENTS REQUESTS_PER_CLIENT MAX_TOKENS\n");
        return 2;
    }
    int clients = atoi(argv[3]), requests = atoi(argv[4]), max_tokens = atoi(argv[5]);
    if (clients < 1 || requests < 1 || max_tokens < 1) {
        fprintf(stderr, "serve_load: CLIENTS, REQUESTS_PER_CLIENT and MAX_TOKENS must be positive\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Client *c = xcalloc((size_t)clients, sizeof *c);
    pthread_t *th = xcalloc((size_t)clients, sizeof *th);
    double t0 = now();
    for (int i = 0; i < clients; i++) {
        c[i] = (Client){.url = argv[1], .model = argv[2], .id = i, .requests = requests, .max_tokens = max_tokens};
        sb_init(&c[i].lines);
        pthread_create(&th[i], NULL, client_main, &c[i]);
    }
    int failed = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        if (c[i].lines.s) fputs(c[i].lines.s, stdout);
        failed |= c[i].failed;
        sb_free(&c[i].lines);
    }
    printf("wall %.6f\n", now() - t0);
    free(c);
    free(th);
    return failed;
}
