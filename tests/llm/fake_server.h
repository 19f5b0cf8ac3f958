/* fake_server: starts and stops tests/tools/fake_openai for a test program,
 * and reads what it saw (its request log and /stats). Header-only so that any
 * test program can `#include "llm/fake_server.h"`.
 *
 *   FakeServer fs;
 *   if (fake_start(&fs, "{\"models\": {...}}", 0)) -> could not start (message on stderr)
 *   ... use fs.url ("http://127.0.0.1:PORT/v1") ...
 *   fake_log_count(&fs, "judge")   requests that reached the server for a model
 *   fake_stat(&fs, "peak")         most requests in flight at once
 *   fake_stop(&fs);
 */
#ifndef ALOE_TESTS_FAKE_SERVER_H
#define ALOE_TESTS_FAKE_SERVER_H

#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

extern char **environ;

typedef struct FakeServer {
    pid_t pid;
    int port;
    char *dir, *url, *log_path;
} FakeServer;

/* script: JSON text of a fake_openai script (NULL: none). Returns 0 when the
 * server is up and fs->url is set. */
static inline int fake_start(FakeServer *fs, const char *script, int latency_ms) {
    memset(fs, 0, sizeof *fs);
    fs->dir = test_tmpdir();
    char *bin = test_build_path("tests/tools/fake_openai");
    char *port_file = path_join(fs->dir, "port");
    char *script_path = path_join(fs->dir, "script.json");
    fs->log_path = path_join(fs->dir, "requests.jsonl");
    Err e;
    if (script && file_write_atomic(script_path, script, strlen(script), &e)) {
        fprintf(stderr, "fake_start: %s\n", e.msg);
        return -1;
    }
    char lat[32];
    snprintf(lat, sizeof lat, "%d", latency_ms);
    char *argv[] = {bin, "--port", "0", "--port-file", port_file, "--latency-ms", lat, "--log", fs->log_path,
                    "--exit-with-parent", "1", script ? "--script" : NULL, script_path, NULL};
    fs->port = test_spawn_server(argv, port_file, &fs->pid);
    if (fs->port < 0) fs->port = 0, fs->pid = 0;
    free(bin);
    free(port_file);
    free(script_path);
    if (!fs->port) return -1;
    fs->url = xasprintf("http://127.0.0.1:%d/v1", fs->port);
    return 0;
}

static inline void fake_stop(FakeServer *fs) {
    if (fs->pid > 0) {
        kill(fs->pid, SIGTERM);
        waitpid(fs->pid, NULL, 0);
    }
    fs->pid = 0;
    free(fs->dir);
    free(fs->url);
    free(fs->log_path);
    fs->dir = fs->url = fs->log_path = NULL;
}

/* The request log as a JSON array of records (caller decrefs). */
static inline json_t *fake_log(FakeServer *fs) {
    json_t *all = json_array();
    char *txt = NULL;
    size_t len;
    Err e;
    if (file_read_all(fs->log_path, &txt, &len, &e)) return all;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = json_loads(line, 0, NULL);
        if (j) json_array_append_new(all, j);
    }
    free(txt);
    return all;
}

/* Requests that reached the server for a model (NULL: all). */
static inline int fake_log_count(FakeServer *fs, const char *model) {
    json_t *all = fake_log(fs);
    int n = 0;
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r) {
        const char *m = json_string_value(json_object_get(r, "model"));
        if (!model || (m && !strcmp(m, model))) n++;
    }
    json_decref(all);
    return n;
}

/* The last logged request for a model (caller decrefs), or NULL. */
static inline json_t *fake_log_last(FakeServer *fs, const char *model) {
    json_t *all = fake_log(fs), *last = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r) {
        const char *m = json_string_value(json_object_get(r, "model"));
        if (m && !strcmp(m, model)) last = r;
    }
    if (last) json_incref(last);
    json_decref(all);
    return last;
}

static inline size_t fake_on_body_(char *p, size_t s, size_t n, void *ctx) {
    sb_appendn(ctx, p, s * n);
    return s * n;
}

/* GET or POST a path of the server root ("/stats", "/stats/reset"); the body
 * as JSON (caller decrefs) or NULL. */
static inline json_t *fake_call(FakeServer *fs, const char *path, int post) {
    CURL *h = curl_easy_init();
    StrBuf b;
    sb_init(&b);
    char *url = xasprintf("http://127.0.0.1:%d%s", fs->port, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fake_on_body_);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (post) curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    json_t *j = curl_easy_perform(h) == CURLE_OK && b.s ? json_loads(b.s, 0, NULL) : NULL;
    curl_easy_cleanup(h);
    sb_free(&b);
    free(url);
    return j;
}

/* A counter from /stats: "requests", "active" or "peak"; -1 on failure. */
static inline long fake_stat(FakeServer *fs, const char *name) {
    json_t *j = fake_call(fs, "/stats", 0);
    long v = j && json_object_get(j, name) ? (long)json_integer_value(json_object_get(j, name)) : -1;
    json_decref(j);
    return v;
}

static inline double fake_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

#endif
