/* fake_hub: a stand-in for the Hugging Face hub, used ONLY by the tests.
 *
 *   fake_hub --repo ORG/REPO --root DIR [--port 0] --port-file F [--log F]
 *            [--token T] [--drop-after BYTES] [--corrupt NAME] [--no-hash NAME]
 *            [--wrong-size NAME] [--short-size NAME] [--listing-hashes 0] [--redirect-lfs 1]
 *            [--extra JSON] [--serve-any TEXT]
 *
 * Serves DIR as the repository ORG/REPO at one fixed commit, as the hub does:
 *   GET /api/models/ORG/REPO/revision/REV  -> {"sha", "siblings": [{rfilename}]}
 *       ...?blobs=true                     -> siblings also carry size, blobId (the git blob id;
 *                                             for LFS files that of the pointer file) and, for
 *                                             .safetensors/.gguf (LFS), lfs: {sha256, size}
 *   GET /ORG/REPO/resolve/REV/PATH         -> the file, honouring "Range: bytes=N-", with
 *                                             X-Repo-Commit and ETag (blob id, or the SHA-256
 *                                             for LFS files; LFS files also X-Linked-Etag)
 * Faults for the download tests (NAME options may repeat): --token requires
 * "Authorization: Bearer T" (401 otherwise); --drop-after cuts the FIRST
 * transfer of every file after that many bytes (the client must resume);
 * --corrupt serves NAME with one byte flipped (its hashes no longer match);
 * --no-hash gives NAME no hash in the listing nor in its answer's headers;
 * --wrong-size lists NAME one byte longer than it is, --short-size one
 * byte shorter; --listing-hashes 0
 * lists no hashes at all (only the answers' headers carry them);
 * --redirect-lfs 1 answers LFS files with a 302 to /cdn/PATH (carrying
 * X-Linked-Etag), whose answer has an unrelated ETag and no X-Repo-Commit, as
 * the hub's CDN does. A hostile hub: --extra appends the JSON object given to
 * the siblings (names with "..", NULs ...), and --serve-any answers any other
 * GET with 200 and TEXT (what a traversal URL, normalised by the client's
 * HTTP library, would fetch). --log appends one line per request:
 * "GET PATH RANGE-START". */
#include <dirent.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/sha1.h"
#include "base/sha256.h"

#define COMMIT "0123456789abcdef0123456789abcdef01234567"

static const char *g_repo, *g_root, *g_token, *g_corrupt, *g_log, *g_serve_any;
static long g_drop_after = -1;
static int g_listing_hashes = 1, g_redirect_lfs;
static json_t *g_no_hash, *g_wrong_size, *g_short_size, *g_extra; /* names (object keys); sibling objects */
static json_t *g_dropped; /* names already cut once */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_request(const char *path, long start) {
    if (!g_log) return;
    pthread_mutex_lock(&g_lock);
    FILE *f = fopen(g_log, "a");
    if (f) {
        fprintf(f, "GET %s %ld\n", path, start);
        fclose(f);
    }
    pthread_mutex_unlock(&g_lock);
}

static int is_lfs(const char *rel) {
    const char *dot = strrchr(rel, '.');
    return dot && (!strcmp(dot, ".safetensors") || !strcmp(dot, ".gguf"));
}

static void git_blob_id(const char *data, size_t n, char hex[41]) {
    Sha1 c;
    uint8_t d[20];
    sha1_init_git_blob(&c, n);
    sha1_update(&c, data, n);
    sha1_final(&c, d);
    sha1_to_hex(d, hex);
}

/* The hash the hub would give `rel` with content data: the SHA-256 for an
 * LFS file, else the git blob id. */
static void content_hash(const char *rel, const char *data, size_t n, char hex[65]) {
    if (is_lfs(rel))
        sha256_hex(data, n, hex);
    else
        git_blob_id(data, n, hex);
}

static void list_files(const char *dir, const char *rel, int blobs, json_t *out) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *full = path_join(dir, de->d_name);
        char *r = *rel ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
        struct stat st;
        char *data;
        size_t n;
        Err e;
        if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
            list_files(full, r, blobs, out);
        } else if (file_read_all(full, &data, &n, &e) == 0) {
            json_t *f = json_pack("{s:s}", "rfilename", r);
            json_int_t size = (json_int_t)n + (json_object_get(g_wrong_size, r) ? 1 : 0) -
                              (json_object_get(g_short_size, r) ? 1 : 0);
            int hashes = g_listing_hashes && !json_object_get(g_no_hash, r);
            if (blobs) json_object_set_new(f, "size", json_integer(size));
            if (blobs && hashes && is_lfs(r)) {
                char hex[65], blob[41];
                sha256_hex(data, n, hex);
                char *pointer = xasprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %zu\n",
                                          hex, n);
                git_blob_id(pointer, strlen(pointer), blob);
                free(pointer);
                json_object_set_new(f, "blobId", json_string(blob));
                json_object_set_new(f, "lfs", json_pack("{s:s, s:I, s:i}", "sha256", hex, "size", size,
                                                        "pointerSize", 134));
            } else if (blobs && hashes) {
                char blob[41];
                git_blob_id(data, n, blob);
                json_object_set_new(f, "blobId", json_string(blob));
            }
            json_array_append_new(out, f);
            free(data);
        }
        free(full);
        free(r);
    }
    closedir(d);
}

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

typedef struct {
    char *data;
    size_t len, start, cut; /* serve [start, len), dropping at `cut` */
} Body;

static ssize_t read_body(void *cls, uint64_t pos, char *buf, size_t max) {
    Body *b = cls;
    size_t at = b->start + (size_t)pos;
    if (at >= b->cut) return at >= b->len ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = b->cut - at;
    if (n > max) n = max;
    memcpy(buf, b->data + at, n);
    return (ssize_t)n;
}

static void free_body(void *cls) {
    Body *b = cls;
    free(b->data);
    free(b);
}

/* cdn: the answer after a redirect, without the hub's headers. */
static enum MHD_Result serve_file(struct MHD_Connection *c, const char *rel, int cdn) {
    if (strstr(rel, "..")) return reply(c, 400, "bad path");
    char *full = path_join(g_root, rel);
    Body *b = xcalloc(1, sizeof *b);
    Err e;
    if (file_read_all(full, &b->data, &b->len, &e)) {
        free(full);
        free(b);
        return reply(c, 404, "{\"error\": \"Entry not found\"}");
    }
    free(full);
    char hash[65];
    content_hash(rel, b->data, b->len, hash); /* before any corruption, as the hub knows it */
    int tagged = !json_object_get(g_no_hash, rel);
    if (!cdn && g_redirect_lfs && is_lfs(rel)) {
        free_body(b);
        char *loc = xasprintf("/cdn/%s", rel);
        struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Location", loc);
        MHD_add_response_header(r, "X-Repo-Commit", COMMIT);
        if (tagged) MHD_add_response_header(r, "X-Linked-Etag", hash);
        free(loc);
        log_request(rel, 0);
        enum MHD_Result ret = MHD_queue_response(c, 302, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (g_corrupt && !strcmp(rel, g_corrupt) && b->len) b->data[b->len / 2] ^= 0x5a;
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    long start = 0;
    if (range && sscanf(range, "bytes=%ld-", &start) == 1 && start > 0 && (size_t)start >= b->len) {
        /* Nothing left to send: 416, as HTTP servers answer (RFC 9110 14.1.1). */
        char cr[64];
        snprintf(cr, sizeof cr, "bytes */%zu", b->len);
        free_body(b);
        log_request(rel, start);
        struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Content-Range", cr);
        enum MHD_Result ret = MHD_queue_response(c, 416, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (range && sscanf(range, "bytes=%ld-", &start) == 1 && start >= 0)
        b->start = (size_t)start;
    else
        start = 0;
    log_request(rel, start);
    b->cut = b->len;
    pthread_mutex_lock(&g_lock);
    if (g_drop_after >= 0 && !json_object_get(g_dropped, rel) && b->start + (size_t)g_drop_after < b->len) {
        json_object_set_new(g_dropped, rel, json_true());
        b->cut = b->start + (size_t)g_drop_after;
    }
    pthread_mutex_unlock(&g_lock);
    struct MHD_Response *r = MHD_create_response_from_callback(b->len - b->start, 64 * 1024, read_body, b, free_body);
    if (cdn) {
        /* A CDN's own tag: 40 hex digits that are no hash of the file. */
        MHD_add_response_header(r, "ETag", "\"0000000000000000000000000000000000000000\"");
    } else {
        MHD_add_response_header(r, "X-Repo-Commit", COMMIT);
        char *tag = xasprintf("\"%s\"", hash);
        if (tagged) MHD_add_response_header(r, "ETag", tag);
        if (tagged && is_lfs(rel)) MHD_add_response_header(r, "X-Linked-Etag", hash);
        free(tag);
    }
    int status = 200;
    if (b->start > 0) {
        char cr[128];
        snprintf(cr, sizeof cr, "bytes %zu-%zu/%zu", b->start, b->len - 1, b->len);
        MHD_add_response_header(r, "Content-Range", cr);
        status = 206;
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)cls;
    (void)version;
    (void)upload;
    (void)upload_size;
    if (!*state) {
        *state = (void *)1; /* first call: headers only */
        return MHD_YES;
    }
    if (strcmp(method, "GET")) return reply(c, 405, "method not allowed");
    if (g_token) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        char *want = xasprintf("Bearer %s", g_token);
        int ok = auth && !strcmp(auth, want);
        free(want);
        if (!ok) return reply(c, 401, "{\"error\": \"Invalid credentials\"}");
    }
    char *api = xasprintf("/api/models/%s/revision/", g_repo);
    char *res = xasprintf("/%s/resolve/", g_repo);
    enum MHD_Result ret;
    if (!strncmp(url, api, strlen(api))) {
        json_t *sib = json_array();
        const char *blobs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "blobs");
        list_files(g_root, "", blobs && !strcmp(blobs, "true"), sib);
        size_t i;
        json_t *x;
        json_array_foreach(g_extra, i, x) json_array_append(sib, x);
        json_t *info = json_pack("{s:s, s:s, s:o}", "id", g_repo, "sha", COMMIT, "siblings", sib);
        char *s = json_dumps(info, JSON_COMPACT);
        log_request(url, 0);
        ret = reply(c, 200, s);
        free(s);
        json_decref(info);
    } else if (!strncmp(url, res, strlen(res))) {
        const char *rest = url + strlen(res);
        const char *slash = strchr(rest, '/');
        ret = slash ? serve_file(c, slash + 1, 0) : reply(c, 404, "no file");
    } else if (!strncmp(url, "/cdn/", 5)) {
        ret = serve_file(c, url + 5, 1);
    } else if (g_serve_any) {
        log_request(url, 0);
        ret = reply(c, 200, g_serve_any);
    } else {
        ret = reply(c, 404, "{\"error\": \"Repository not found\"}");
    }
    free(api);
    free(res);
    return ret;
}

int main(int argc, char **argv) {
    int port = 0;
    const char *port_file = NULL;
    g_no_hash = json_object();
    g_wrong_size = json_object();
    g_short_size = json_object();
    g_extra = json_array();
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--repo")) g_repo = argv[i + 1];
        else if (!strcmp(argv[i], "--root")) g_root = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--port-file")) port_file = argv[i + 1];
        else if (!strcmp(argv[i], "--log")) g_log = argv[i + 1];
        else if (!strcmp(argv[i], "--token")) g_token = argv[i + 1];
        else if (!strcmp(argv[i], "--drop-after")) g_drop_after = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--corrupt")) g_corrupt = argv[i + 1];
        else if (!strcmp(argv[i], "--no-hash")) json_object_set_new(g_no_hash, argv[i + 1], json_true());
        else if (!strcmp(argv[i], "--wrong-size")) json_object_set_new(g_wrong_size, argv[i + 1], json_true());
        else if (!strcmp(argv[i], "--short-size")) json_object_set_new(g_short_size, argv[i + 1], json_true());
        else if (!strcmp(argv[i], "--listing-hashes")) g_listing_hashes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--redirect-lfs")) g_redirect_lfs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--serve-any")) g_serve_any = argv[i + 1];
        else if (!strcmp(argv[i], "--extra")) {
            json_error_t jerr;
            json_t *x = json_loads(argv[i + 1], JSON_ALLOW_NUL, &jerr);
            if (!x) {
                fprintf(stderr, "fake_hub: --extra: %s\n", jerr.text);
                return 2;
            }
            json_array_append_new(g_extra, x);
        } else {
            fprintf(stderr, "fake_hub: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!g_repo || !g_root || !port_file) {
        fprintf(stderr, "usage: fake_hub --repo ORG/REPO --root DIR --port-file F [options]\n");
        return 2;
    }
    g_dropped = json_object();
    signal(SIGPIPE, SIG_IGN);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
                                            (uint16_t)port, NULL, NULL, handle, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "fake_hub: cannot start the server\n");
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char buf[32];
    snprintf(buf, sizeof buf, "%u\n", info ? info->port : 0);
    Err e;
    if (file_write_atomic(port_file, buf, strlen(buf), &e)) {
        fprintf(stderr, "fake_hub: %s\n", e.msg);
        return 1;
    }
    for (;;) pause();
}
