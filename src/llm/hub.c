#include "llm/hub.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/progress.h"
#include "base/sha256.h"

/* ---- specs ---- */

int hub_is_spec(const char *spec) { return spec && !strncmp(spec, "hf://", 5); }

void hub_spec_free(HubSpec *s) {
    free(s->repo);
    free(s->revision);
    free(s->path);
    memset(s, 0, sizeof *s);
}

static int valid_name(const char *s, size_t n) {
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z')))
            return 0;
    }
    return 1;
}

int hub_parse_spec(const char *spec, HubSpec *out, Err *e) {
    memset(out, 0, sizeof *out);
    if (!hub_is_spec(spec)) return err_set(e, ERR_ARG, "%s: expected hf://ORG/REPO[@REV][/FILE]", spec);
    const char *s = spec + 5;
    const char *slash = strchr(s, '/');
    if (!slash || !valid_name(s, (size_t)(slash - s)))
        return err_set(e, ERR_ARG, "%s: expected hf://ORG/REPO[@REV][/FILE]", spec);
    const char *name = slash + 1;
    size_t nlen = strcspn(name, "@/");
    if (!valid_name(name, nlen)) return err_set(e, ERR_ARG, "%s: invalid repository name", spec);
    out->repo = xstrndup(s, (size_t)(name + nlen - s));
    const char *rest = name + nlen;
    if (*rest == '@') {
        rest++;
        size_t rlen = strcspn(rest, "/");
        if (!valid_name(rest, rlen)) {
            hub_spec_free(out);
            return err_set(e, ERR_ARG, "%s: invalid revision after '@'", spec);
        }
        out->revision = xstrndup(rest, rlen);
        rest += rlen;
    } else {
        out->revision = xstrdup("main");
    }
    if (*rest == '/' && rest[1]) {
        rest++;
        /* Each path segment must be a plain name: no "..", no absolute paths. */
        for (const char *seg = rest; *seg;) {
            size_t l = strcspn(seg, "/");
            if (!valid_name(seg, l)) {
                hub_spec_free(out);
                return err_set(e, ERR_ARG, "%s: invalid file path in the repository", spec);
            }
            seg += l;
            if (*seg == '/') seg++;
        }
        out->path = xstrdup(rest);
    }
    return 0;
}

int hub_wanted_file(const char *f) {
    static const char *skip_dirs[] = {"original/", "onnx/", "openvino/", "coreml/", "flax_model", "tf_model",
                                      NULL};
    for (int i = 0; skip_dirs[i]; i++)
        if (strstr(f, skip_dirs[i])) return 0;
    const char *dot = strrchr(f, '.');
    const char *base = strrchr(f, '/');
    base = base ? base + 1 : f;
    if (!strcmp(base, "tokenizer.model") || !strcmp(base, "vocab.txt") || !strcmp(base, "merges.txt"))
        return 1;
    if (!dot) return 0;
    return !strcmp(dot, ".json") || !strcmp(dot, ".safetensors") || !strcmp(dot, ".jinja");
}

/* ---- HTTP ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct {
    const char *endpoint, *token, *cache;
    int quiet, attempts;
} Opts;

static CURL *new_handle(const Opts *o, const char *url, struct curl_slist **hdrs) {
    pthread_once(&curl_once, curl_init_once);
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A stalled transfer (under 1 kB/s for 60 s) is retried, resuming. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "aloe/0.1");
    *hdrs = NULL;
    if (o->token && *o->token) {
        char *h = xasprintf("Authorization: Bearer %s", o->token);
        *hdrs = curl_slist_append(*hdrs, h);
        free(h);
        /* Redirects to a CDN must not carry the token to another host. */
        curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
    }
    if (*hdrs) curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    return c;
}

static size_t to_strbuf(char *p, size_t size, size_t n, void *ud) {
    sb_appendn(ud, p, size * n);
    return size * n;
}

static int status_error(long status, const char *url, const char *body, Err *e) {
    if (status == 401 || status == 403)
        return err_set(e, ERR_AUTH, "%s: HTTP %ld: access denied (gated or private repository? set HF_TOKEN)",
                       url, status);
    if (status == 404)
        return err_set(e, ERR_NOTFOUND, "%s: HTTP 404: no such repository, revision or file", url);
    return err_set(e, ERR_HTTP, "%s: HTTP %ld: %.300s", url, status, body ? body : "");
}

static int get_json(const Opts *o, const char *url, json_t **out, Err *e) {
    struct curl_slist *hdrs;
    CURL *c = new_handle(o, url, &hdrs);
    if (!c) return err_set(e, ERR_INTERNAL, "cannot create an HTTP handle");
    StrBuf body;
    sb_init(&body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_strbuf);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    int ret = 0;
    if (rc != CURLE_OK) {
        ret = err_set(e, ERR_HTTP, "%s: %s", url, curl_easy_strerror(rc));
    } else if (status != 200) {
        ret = status_error(status, url, body.s, e);
    } else {
        json_error_t jerr;
        *out = json_loadb(body.s, body.len, 0, &jerr);
        if (!*out) ret = err_set(e, ERR_PARSE, "%s: response is not JSON: %s", url, jerr.text);
    }
    sb_free(&body);
    return ret;
}

/* ---- downloads ---- */

typedef struct {
    FILE *f;
    const char *name;
    long long offset, total;
    double start, last_draw;
    int quiet, tty;
} Transfer;

static size_t to_file(char *p, size_t size, size_t n, void *ud) {
    Transfer *t = ud;
    return fwrite(p, size, n, t->f) * size;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ult, curl_off_t uln) {
    (void)dltotal;
    (void)ult;
    (void)uln;
    Transfer *t = ud;
    double now = now_seconds();
    if (t->quiet || !t->tty || now - t->last_draw < 0.2) return 0;
    t->last_draw = now;
    double done = (double)(t->offset + dlnow), rate = (double)dlnow / (now - t->start + 1e-9);
    char eta[32] = "--";
    if (t->total > 0 && rate > 0) format_duration(((double)t->total - done) / rate, eta, sizeof eta);
    fprintf(stderr, "\r\033[K  %s  %.1f/%.1f MB  %.1f MB/s  ETA %s", t->name, done / 1e6, (double)t->total / 1e6,
            rate / 1e6, eta);
    fflush(stderr);
    return 0;
}

static long long file_size_or(const char *path, long long dflt) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : dflt;
}

static int file_sha256_hex(const char *path, char hex[65], Err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
    Sha256 c;
    sha256_init(&c);
    static __thread unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&c, buf, n);
    fclose(f);
    uint8_t d[32];
    sha256_final(&c, d);
    sha256_to_hex(d, hex);
    return 0;
}

/* One attempt: continue dest.incomplete from its current size. Returns 0,
 * or -1 with e set; *retryable tells whether another attempt may help. */
static int download_attempt(const Opts *o, const char *url, const char *part, const char *name, long long size,
                            int *retryable, Err *e) {
    long long have = file_size_or(part, 0);
    if (size >= 0 && have > size) {
        unlink(part);
        have = 0;
    }
    FILE *f = fopen(part, have ? "ab" : "wb");
    if (!f) {
        *retryable = 0;
        return err_set(e, ERR_IO, "%s: %s", part, strerror(errno));
    }
    struct curl_slist *hdrs;
    CURL *c = new_handle(o, url, &hdrs);
    Transfer t = {.f = f, .name = name, .offset = have, .total = size, .start = now_seconds(),
                  .quiet = o->quiet, .tty = isatty(2)};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_file);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    if (have > 0) curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)have);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    int bad_close = fclose(f);
    if (t.tty && !o->quiet) fputs("\r\033[K", stderr);
    *retryable = 1;
    if (rc == CURLE_RANGE_ERROR || (have > 0 && status == 200)) {
        /* The server ignored or refused the range: start over. */
        unlink(part);
        return err_set(e, ERR_HTTP, "%s: server did not resume the download; restarting", url);
    }
    if (rc == CURLE_HTTP_RETURNED_ERROR) {
        *retryable = status == 429 || status >= 500;
        return status_error(status, url, NULL, e);
    }
    if (rc != CURLE_OK) return err_set(e, ERR_HTTP, "%s: %s", url, curl_easy_strerror(rc));
    if (bad_close) {
        *retryable = 0;
        return err_set(e, ERR_IO, "%s: write error: %s", part, strerror(errno));
    }
    return 0;
}

static char *file_url(const Opts *o, const char *repo, const char *rev, const char *rfilename) {
    pthread_once(&curl_once, curl_init_once);
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "%s/%s/resolve/%s/", o->endpoint, repo, rev);
    /* Escape each path segment, keeping the '/' between them. */
    for (const char *s = rfilename; *s;) {
        size_t l = strcspn(s, "/");
        char *esc = curl_easy_escape(NULL, s, (int)l);
        sb_append(&b, esc);
        curl_free(esc);
        s += l;
        if (*s == '/') {
            sb_appendc(&b, '/');
            s++;
        }
    }
    return sb_take(&b);
}

/* Downloads one file into the snapshot unless it is already there whole. */
static int fetch_file(const Opts *o, const char *repo, const char *commit, const char *snap,
                      const char *rfilename, long long size, const char *sha, Err *e) {
    char *dest = path_join(snap, rfilename);
    if (file_size_or(dest, -1) >= 0 && (size < 0 || file_size_or(dest, -1) == size)) {
        free(dest);
        return 0;
    }
    char *dir = xstrdup(dest);
    *strrchr(dir, '/') = 0;
    int rc = file_mkdirs(dir, e);
    free(dir);
    if (rc) {
        free(dest);
        return -1;
    }
    char *part = xasprintf("%s.incomplete", dest);
    char *url = file_url(o, repo, commit, rfilename);
    if (!o->quiet) log_info("downloading %s/%s (%.1f MB)", repo, rfilename, size >= 0 ? (double)size / 1e6 : 0.0);
    rc = -1;
    for (int attempt = 1; attempt <= o->attempts; attempt++) {
        int retryable = 0;
        Err ae = {0};
        if (download_attempt(o, url, part, rfilename, size, &retryable, &ae) == 0) {
            rc = 0;
            break;
        }
        if (!retryable || attempt == o->attempts) {
            *e = ae;
            break;
        }
        log_warn("%s (attempt %d of %d); resuming", ae.msg, attempt, o->attempts);
        usleep((useconds_t)(200000 * attempt));
    }
    if (rc == 0 && size >= 0 && file_size_or(part, -1) != size)
        rc = err_set(e, ERR_HTTP, "%s: downloaded %lld bytes, expected %lld", url, file_size_or(part, -1), size);
    if (rc == 0 && sha && *sha) {
        char hex[65];
        rc = file_sha256_hex(part, hex, e);
        if (rc == 0 && strcmp(hex, sha)) {
            unlink(part);
            rc = err_set(e, ERR_HTTP, "%s: SHA-256 mismatch (got %s, expected %s); the partial file was removed",
                         url, hex, sha);
        }
    }
    if (rc == 0 && rename(part, dest)) rc = err_set(e, ERR_IO, "%s: %s", dest, strerror(errno));
    free(part);
    free(url);
    free(dest);
    return rc;
}

static char *repo_dir(const Opts *o, const char *repo) {
    char *flat = xstrdup(repo);
    for (char *p = flat; *p; p++)
        if (*p == '/') *p = '-';
    /* "ORG/REPO" -> "models--ORG--REPO", as the hub's own cache names it. */
    char *slash = strchr(repo, '/');
    char *name = xasprintf("models--%.*s--%s", (int)(slash - repo), repo, slash + 1);
    char *dir = path_join(o->cache, name);
    free(name);
    free(flat);
    return dir;
}

static int read_ref(const char *rdir, const char *rev, char **commit) {
    char *ref = xasprintf("%s/refs/%s", rdir, rev);
    char *s = NULL;
    Err ignore;
    int rc = file_read_all(ref, &s, NULL, &ignore);
    free(ref);
    if (rc) return -1;
    s[strcspn(s, "\r\n")] = 0;
    *commit = s;
    return 0;
}

static int write_ref(const char *rdir, const char *rev, const char *commit, Err *e) {
    char *refs = path_join(rdir, "refs");
    char *ref = path_join(refs, rev);
    int rc = file_mkdirs(refs, e);
    if (!rc) rc = file_write_atomic(ref, commit, strlen(commit), e);
    free(refs);
    free(ref);
    return rc;
}

static void resolve_opts(const HubOptions *in, Opts *o, char **cache_alloc) {
    HubOptions none = {0};
    if (!in) in = &none;
    o->endpoint = in->endpoint ? in->endpoint : getenv("HF_ENDPOINT");
    if (!o->endpoint || !*o->endpoint) o->endpoint = "https://huggingface.co";
    o->token = in->token ? in->token : getenv("HF_TOKEN");
    o->quiet = in->quiet;
    o->attempts = in->max_attempts > 0 ? in->max_attempts : 5;
    *cache_alloc = NULL;
    if (in->cache_dir) {
        o->cache = in->cache_dir;
    } else if (getenv("ALOE_CACHE") && *getenv("ALOE_CACHE")) {
        o->cache = *cache_alloc = path_join(getenv("ALOE_CACHE"), "hub");
    } else {
        const char *home = getenv("HOME");
        o->cache = *cache_alloc = xasprintf("%s/.cache/aloe/hub", home && *home ? home : "/tmp");
    }
}

/* Lists the files to fetch from the API answer and fetches them. */
static int fetch_snapshot(const Opts *o, const HubSpec *s, json_t *info, const char *snap, Err *e) {
    const char *commit = json_string_value(json_object_get(info, "sha"));
    json_t *sib = json_object_get(info, "siblings");
    if (!json_is_array(sib)) return err_set(e, ERR_PARSE, "hub answer for %s has no file list", s->repo);
    int found = 0, n_gguf = 0;
    StrBuf ggufs;
    sb_init(&ggufs);
    size_t i;
    json_t *f;
    int rc = 0;
    json_array_foreach(sib, i, f) {
        const char *name = json_string_value(json_object_get(f, "rfilename"));
        if (!name) continue;
        const char *dot = strrchr(name, '.');
        if (dot && !strcmp(dot, ".gguf") && n_gguf++ < 8) sb_printf(&ggufs, "\n  hf://%s/%s", s->repo, name);
        int want = s->path ? !strcmp(name, s->path) : hub_wanted_file(name);
        if (!want) continue;
        found++;
        json_t *sz = json_object_get(f, "size");
        json_t *lfs = json_object_get(f, "lfs");
        long long size = json_is_integer(sz) ? json_integer_value(sz) : -1;
        const char *sha = lfs ? json_string_value(json_object_get(lfs, "sha256")) : NULL;
        if (lfs && size < 0 && json_is_integer(json_object_get(lfs, "size")))
            size = json_integer_value(json_object_get(lfs, "size"));
        if ((rc = fetch_file(o, s->repo, commit, snap, name, size, sha, e))) break;
    }
    if (!rc && s->path && !found)
        rc = err_set(e, ERR_NOTFOUND, "hf://%s@%s has no file %s", s->repo, s->revision, s->path);
    else if (!rc && !s->path && !found)
        rc = err_set(e, ERR_NOTFOUND, "hf://%s has no model files (safetensors/json)%s%s", s->repo,
                     n_gguf ? "; it holds GGUF files, name one:" : "", ggufs.s);
    sb_free(&ggufs);
    return rc;
}

int hub_resolve(const char *spec, const HubOptions *opts, char **local_path, Err *e) {
    if (!hub_is_spec(spec)) {
        *local_path = xstrdup(spec);
        return 0;
    }
    HubSpec s;
    if (hub_parse_spec(spec, &s, e)) return -1;
    Opts o;
    char *cache_alloc;
    resolve_opts(opts, &o, &cache_alloc);
    char *rdir = repo_dir(&o, s.repo);
    char *url = xasprintf("%s/api/models/%s/revision/%s?blobs=true", o.endpoint, s.repo, s.revision);
    json_t *info = NULL;
    Err api_err = {0};
    int rc = get_json(&o, url, &info, &api_err);
    char *commit = NULL;
    if (rc == 0) {
        const char *sha = json_string_value(json_object_get(info, "sha"));
        if (!sha || !valid_name(sha, strlen(sha)))
            rc = err_set(e, ERR_PARSE, "%s: answer has no valid commit \"sha\"", url);
        else
            commit = xstrdup(sha);
    } else if (api_err.code == ERR_HTTP && read_ref(rdir, s.revision, &commit) == 0) {
        /* Offline, or the hub is down: a snapshot fetched before still serves. */
        log_warn("%s; using the cached snapshot %.12s", api_err.msg, commit);
        rc = 0;
    } else {
        *e = api_err;
    }
    char *snapdir = NULL;
    if (rc == 0) {
        char *snaps = path_join(rdir, "snapshots");
        snapdir = path_join(snaps, commit);
        free(snaps);
        if (info) rc = fetch_snapshot(&o, &s, info, snapdir, e);
        if (rc == 0 && info) rc = write_ref(rdir, s.revision, commit, e);
    }
    if (rc == 0) {
        *local_path = s.path ? path_join(snapdir, s.path) : xstrdup(snapdir);
        if (!file_exists(*local_path)) {
            rc = err_set(e, ERR_NOTFOUND, "%s: not in the cache (%s) and the hub is unreachable", spec, *local_path);
            free(*local_path);
            *local_path = NULL;
        }
    }
    if (rc) err_wrap(e, "%s", spec);
    json_decref(info);
    free(snapdir);
    free(commit);
    free(url);
    free(rdir);
    free(cache_alloc);
    hub_spec_free(&s);
    return rc;
}
