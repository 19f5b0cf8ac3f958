/* served: starts `aloe serve` for a test program and talks HTTP to it with
 * libcurl (raw bodies, statuses and headers, so the wire format itself is
 * what the tests check). Header-only, like llm/fake_server.h.
 *
 *   Served sv;
 *   if (served_start(&sv, "--model DIR --alias tq", NULL)) -> did not start (NEED_STARTED)
 *   HttpReply r = served_post(&sv, "/v1/chat/completions", body, NULL);
 *   r.status, r.body, r.headers; http_reply_free(&r);
 *   served_stop(&sv) -> SIGTERM, and its exit status
 */
#ifndef ALOE_TESTS_SERVED_H
#define ALOE_TESTS_SERVED_H

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

typedef struct Served {
    pid_t pid;
    int port;
    char *dir, *url, *out_path; /* url: http://127.0.0.1:PORT */
} Served;

/* args: the flags after `aloe serve` (one shell-free string split at
 * spaces; no argument here holds one). env: "VAR=value" to add, or NULL. */
static inline int served_start(Served *sv, const char *args, const char *env) {
    memset(sv, 0, sizeof *sv);
    sv->dir = test_tmpdir();
    char *port_file = path_join(sv->dir, "port");
    sv->out_path = xasprintf("%s.out", port_file);
    char *bin = test_build_path("aloe");
    char *copy = xstrdup(args);
    char *argv[64];
    int n = 0;
    if (env) argv[n++] = "/usr/bin/env", argv[n++] = (char *)env;
    argv[n++] = bin;
    argv[n++] = "serve";
    for (char *t = strtok(copy, " "); t && n < 56; t = strtok(NULL, " ")) argv[n++] = t;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--port-file";
    argv[n++] = port_file;
    argv[n] = NULL;
    sv->port = test_spawn_server(argv, port_file, &sv->pid);
    free(copy);
    free(bin);
    free(port_file);
    if (sv->port <= 0) {
        sv->port = 0, sv->pid = 0;
        return -1;
    }
    sv->url = xasprintf("http://127.0.0.1:%d", sv->port);
    return 0;
}

/* The server's stdout and stderr so far (caller frees). */
static inline char *served_output(const Served *sv) { return test_read_text(sv->out_path); }

/* SIGTERM (sig) and wait: the exit status, 128 + a signal, or -1. */
static inline int served_signal_wait(Served *sv, int sig) {
    int st = 0, rc = -1;
    if (sv->pid > 0) {
        kill(sv->pid, sig);
        if (waitpid(sv->pid, &st, 0) == sv->pid) rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    sv->pid = 0;
    return rc;
}

static inline void served_free(Served *sv) {
    if (sv->pid > 0) test_kill(sv->pid);
    free(sv->dir);
    free(sv->url);
    free(sv->out_path);
    memset(sv, 0, sizeof *sv);
}

typedef struct HttpReply {
    long status;
    StrBuf body, headers;
} HttpReply;

static inline size_t http_collect(char *p, size_t size, size_t n, void *ctx) {
    sb_appendn(ctx, p, size * n);
    return size * n;
}

/* One request; body NULL for GET. auth: the whole Authorization value, or NULL. */
static inline HttpReply served_request(const Served *sv, const char *method, const char *path, const char *body,
                                       const char *auth) {
    HttpReply r;
    memset(&r, 0, sizeof r);
    sb_init(&r.body);
    sb_init(&r.headers);
    CURL *h = curl_easy_init();
    char *url = xasprintf("%s%s", sv->url, path);
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    hd = curl_slist_append(hd, "Expect:");
    char *ah = auth ? xasprintf("Authorization: %s", auth) : NULL;
    if (ah) hd = curl_slist_append(hd, ah);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L); /* a liveness cap only */
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http_collect);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r.headers);
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hd);
    free(ah);
    free(url);
    if (!r.body.s) sb_append(&r.body, "");
    if (!r.headers.s) sb_append(&r.headers, "");
    return r;
}

static inline HttpReply served_post(const Served *sv, const char *path, const char *body, const char *auth) {
    return served_request(sv, "POST", path, body, auth);
}

static inline HttpReply served_get(const Served *sv, const char *path, const char *auth) {
    return served_request(sv, "GET", path, NULL, auth);
}

static inline void http_reply_free(HttpReply *r) {
    sb_free(&r->body);
    sb_free(&r->headers);
}

/* The body as JSON (caller decrefs), or NULL. */
static inline json_t *http_json(const HttpReply *r) { return json_loads(r->body.s, 0, NULL); }

/* A Prometheus sample's value from /metrics ("name{labels}" exactly as
 * printed), or -1 when absent. */
static inline double served_metric(const Served *sv, const char *sample) {
    HttpReply r = served_get(sv, "/metrics", NULL);
    double v = -1;
    size_t n = strlen(sample);
    for (const char *p = r.body.s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, sample, n) && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
    http_reply_free(&r);
    return v;
}

#endif
