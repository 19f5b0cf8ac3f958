#include "model/hub.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/progress.h"
#include "base/sha1.h"
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

/* ---- the listing ---- */

/* A listed name as a message may show it: printable ASCII kept, every other
 * byte (control characters, NUL, non-ASCII) as \xNN, long names cut. */
static void show_name(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0, shown = n > 120 ? 120 : n;
    for (size_t i = 0; i < shown && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    if (shown < n && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = 0;
}

int hub_check_filename(const char *name, size_t len, Err *e) {
    static const char partial[] = ".incomplete";
    const size_t np = sizeof partial - 1;
    if (len == 0) return err_set(e, ERR_PARSE, "empty name");
    if (len > HUB_MAX_NAME) return err_set(e, ERR_PARSE, "name of %zu bytes, more than %d", len, HUB_MAX_NAME);
    if (name[0] == '/') return err_set(e, ERR_PARSE, "absolute path; expected one relative to the repository");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == 0) return err_set(e, ERR_PARSE, "NUL byte at offset %zu", i);
        if (c < 0x20 || c == 0x7f) return err_set(e, ERR_PARSE, "control character 0x%02x at offset %zu", c, i);
        /* Not a separator here, but one on Windows and in some tools. */
        if (c == '\\') return err_set(e, ERR_PARSE, "backslash at offset %zu; expected '/' as the only separator", i);
    }
    for (size_t start = 0, i = 0; i <= len; i++) {
        if (i < len && name[i] != '/') continue;
        const char *comp = name + start;
        size_t cl = i - start;
        if (cl == 0) return err_set(e, ERR_PARSE, "empty path component at offset %zu (\"//\" or a trailing '/')", i);
        if ((cl == 1 && comp[0] == '.') || (cl == 2 && comp[0] == '.' && comp[1] == '.'))
            return err_set(e, ERR_PARSE, "\"%.*s\" path component at offset %zu; expected plain names", (int)cl, comp,
                           start);
        if (cl > HUB_MAX_COMPONENT)
            return err_set(e, ERR_PARSE, "path component of %zu bytes at offset %zu, more than %d", cl, start,
                           HUB_MAX_COMPONENT);
        /* A listed "x.incomplete" would be written where the download of
         * "x" keeps its partial data (or be taken for it). */
        if (cl >= np && !memcmp(comp + cl - np, partial, np))
            return err_set(e, ERR_PARSE, "ends in \"%s\", the cache's suffix for partial downloads", partial);
        start = i + 1;
    }
    return 0;
}

static int is_hex(const char *s, size_t n, size_t want) {
    if (n != want) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F'))) return 0;
    return 1;
}

static void copy_lower(char *dst, const char *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = (char)(src[i] >= 'A' && src[i] <= 'F' ? src[i] - 'A' + 'a' : src[i]);
    dst[n] = 0;
}

/* A "size" member: absent or null gives -1; anything but a non-negative
 * integer is an error. */
static int listed_size(json_t *v, long long *out) {
    *out = -1;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (long long)json_integer_value(v);
    return 0;
}

/* A hash member: absent or null gives ""; otherwise `digits` hex digits. */
static int listed_hash(json_t *v, size_t digits, char *out) {
    out[0] = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) || !is_hex(json_string_value(v), json_string_length(v), digits)) return -1;
    copy_lower(out, json_string_value(v), digits);
    return 0;
}

static int parse_entry(json_t *f, size_t i, const char *origin, HubFile *out, Err *e) {
    char shown[512];
    json_t *rn = json_object_get(f, "rfilename");
    if (!json_is_object(f) || !json_is_string(rn))
        return err_set(e, ERR_PARSE, "%s: siblings[%zu]: expected an object with a string \"rfilename\"", origin, i);
    const char *name = json_string_value(rn);
    size_t nlen = json_string_length(rn);
    show_name(name, nlen, shown, sizeof shown);
    if (hub_check_filename(name, nlen, e))
        return err_wrap(e, "%s: siblings[%zu].rfilename \"%s\": refusing the repository", origin, i, shown);
    out->name = xstrndup(name, nlen);
    json_t *lfs = json_object_get(f, "lfs");
    long long lfs_size = -1;
    if (listed_size(json_object_get(f, "size"), &out->size))
        return err_set(e, ERR_PARSE, "%s: siblings[%zu] \"%s\": \"size\": expected a non-negative integer", origin, i,
                       shown);
    if (lfs && !json_is_null(lfs)) {
        if (!json_is_object(lfs) || listed_hash(json_object_get(lfs, "sha256"), 64, out->sha256) || !out->sha256[0])
            return err_set(e, ERR_PARSE, "%s: siblings[%zu] \"%s\": \"lfs\": expected {\"sha256\": 64 hex digits}",
                           origin, i, shown);
        if (listed_size(json_object_get(lfs, "size"), &lfs_size))
            return err_set(e, ERR_PARSE, "%s: siblings[%zu] \"%s\": \"lfs.size\": expected a non-negative integer",
                           origin, i, shown);
        if (lfs_size >= 0 && out->size >= 0 && lfs_size != out->size)
            return err_set(e, ERR_PARSE, "%s: siblings[%zu] \"%s\": \"lfs.size\" %lld differs from \"size\" %lld",
                           origin, i, shown, lfs_size, out->size);
        if (out->size < 0) out->size = lfs_size;
    }
    char blob[41];
    if (listed_hash(json_object_get(f, "blobId"), 40, blob))
        return err_set(e, ERR_PARSE, "%s: siblings[%zu] \"%s\": \"blobId\": expected 40 hex digits", origin, i, shown);
    /* An LFS file's blobId is that of its pointer file, not of the content. */
    if (!out->sha256[0]) memcpy(out->blob_id, blob, sizeof blob);
    return 0;
}

static int parse_listing(json_t *root, const char *origin, HubListing *out, Err *e) {
    if (!json_is_object(root)) return err_set(e, ERR_PARSE, "%s: answer is not a JSON object", origin);
    json_t *sha = json_object_get(root, "sha");
    if (!json_is_string(sha) || json_string_length(sha) > HUB_MAX_COMPONENT ||
        !valid_name(json_string_value(sha), json_string_length(sha)))
        return err_set(e, ERR_PARSE, "%s: answer has no valid commit \"sha\"", origin);
    out->commit = xstrdup(json_string_value(sha));
    json_t *sib = json_object_get(root, "siblings");
    if (!json_is_array(sib)) return err_set(e, ERR_PARSE, "%s: answer has no file list (\"siblings\")", origin);
    size_t n = json_array_size(sib);
    out->files = xcalloc(n ? n : 1, sizeof *out->files);
    json_t *seen = json_object(); /* name -> index */
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        HubFile *hf = &out->files[out->n_files++];
        if ((rc = parse_entry(json_array_get(sib, i), i, origin, hf, e))) break;
        json_t *dup = json_object_get(seen, hf->name);
        if (dup)
            rc = err_set(e, ERR_PARSE, "%s: siblings[%zu] \"%s\": listed twice (also siblings[%lld])", origin, i,
                         hf->name, (long long)json_integer_value(dup));
        else
            json_object_set_new(seen, hf->name, json_integer((json_int_t)i));
    }
    /* A name that is also the directory of another cannot be both. */
    for (size_t i = 0; i < out->n_files && !rc; i++) {
        const char *name = out->files[i].name;
        for (const char *sl = strchr(name, '/'); sl && !rc; sl = strchr(sl + 1, '/')) {
            json_t *other = json_object_getn(seen, name, (size_t)(sl - name));
            if (other)
                rc = err_set(e, ERR_PARSE, "%s: siblings[%zu] \"%s\": its directory \"%.*s\" is listed as a file "
                             "(siblings[%lld])", origin, i, name, (int)(sl - name), name,
                             (long long)json_integer_value(other));
        }
    }
    json_decref(seen);
    return rc;
}

void hub_listing_free(HubListing *l) {
    for (size_t i = 0; i < l->n_files; i++) free(l->files[i].name);
    free(l->files);
    free(l->commit);
    memset(l, 0, sizeof *l);
}

int hub_parse_listing(const char *json, size_t len, const char *origin, HubListing *out, Err *e) {
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    /* NULs are let through the decoder so that a name holding one is
     * refused by hub_check_filename, naming the entry. */
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &jerr);
    if (!root)
        return err_set(e, ERR_PARSE, "%s: answer is not JSON (line %d, column %d): %s", origin, jerr.line,
                       jerr.column, jerr.text);
    int rc = parse_listing(root, origin, out, e);
    json_decref(root);
    if (rc) hub_listing_free(out);
    return rc;
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

/* The largest listing read: the biggest repositories' listings with blob
 * ids are a few MB; an endless answer must not exhaust memory. */
#define HUB_MAX_LISTING (64L << 20)

static size_t to_strbuf(char *p, size_t size, size_t n, void *ud) {
    StrBuf *b = ud;
    if (b->len + size * n > (size_t)HUB_MAX_LISTING) return 0; /* ends the transfer: CURLE_WRITE_ERROR */
    sb_appendn(b, p, size * n);
    return size * n;
}

static int status_error(long status, const char *url, const char *body, Err *e) {
    if (status == 401 || status == 403)
        return err_set(e, ERR_AUTH, "%s: HTTP %ld: access denied (a gated or private repository: accept its terms on "
                       "the repository's page, make a read token at https://huggingface.co/settings/tokens and "
                       "export HF_TOKEN=hf_...)", url, status);
    if (status == 404)
        return err_set(e, ERR_NOTFOUND, "%s: HTTP 404: no such repository, revision or file", url);
    return err_set(e, ERR_HTTP, "%s: HTTP %ld: %.300s", url, status, body ? body : "");
}

/* GETs a small answer (the listing) into *body. */
static int get_text(const Opts *o, const char *url, StrBuf *body, Err *e) {
    struct curl_slist *hdrs;
    CURL *c = new_handle(o, url, &hdrs);
    if (!c) return err_set(e, ERR_INTERNAL, "cannot create an HTTP handle");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_strbuf);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    if (rc == CURLE_WRITE_ERROR)
        return err_set(e, ERR_PARSE, "%s: answer longer than %ld MB; refusing it", url, HUB_MAX_LISTING >> 20);
    if (rc != CURLE_OK) return err_set(e, ERR_HTTP, "%s: %s", url, curl_easy_strerror(rc));
    if (status != 200) return status_error(status, url, body->s, e);
    return 0;
}

/* ---- downloads ---- */

/* Hashes the hub's download answers carry: for an LFS file the redirect
 * answer's X-Linked-Etag is the content's SHA-256; a file the hub serves
 * itself (its answer carries X-Repo-Commit) has its git blob id, or for LFS
 * its SHA-256, as ETag. Used only when the listing names no hash. */
typedef struct {
    char linked[65]; /* X-Linked-Etag of any answer in the transfer */
    char etag[65];   /* ETag of the last answer */
    int from_hub;    /* the last answer carried X-Repo-Commit */
} Etags;

typedef struct {
    FILE *f;
    const char *name;
    long long offset, total, written;
    double start, last_draw;
    int quiet, tty, too_long;
    Etags *tags;
} Transfer;

static size_t to_file(char *p, size_t size, size_t n, void *ud) {
    Transfer *t = ud;
    /* More than the listed size cannot verify: stop before it fills the disk. */
    if (t->total >= 0 && t->offset + t->written + (long long)(size * n) > t->total) {
        t->too_long = 1;
        return 0;
    }
    t->written += (long long)(size * n);
    return fwrite(p, size, n, t->f) * size;
}

/* Copies a header's value when it is a strong tag of 40 or 64 hex digits. */
static void take_hex_tag(const char *v, size_t n, char out[65]) {
    while (n && (*v == ' ' || *v == '\t')) v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') v++, n -= 2;
    if (is_hex(v, n, 40) || is_hex(v, n, 64)) copy_lower(out, v, n);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    Etags *t = ud;
    size_t len = size * n;
    if (len >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new answer (after a redirect) */
        t->etag[0] = 0;
        t->from_hub = 0;
    } else if (len > 14 && !strncasecmp(p, "x-linked-etag:", 14)) {
        take_hex_tag(p + 14, len - 14, t->linked);
    } else if (len > 5 && !strncasecmp(p, "etag:", 5)) {
        take_hex_tag(p + 5, len - 5, t->etag);
    } else if (len > 14 && !strncasecmp(p, "x-repo-commit:", 14)) {
        t->from_hub = 1;
    }
    return len;
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

/* Size of path itself (a symbolic link is not followed), or dflt. */
static long long file_size_or(const char *path, long long dflt) {
    struct stat st;
    return lstat(path, &st) == 0 ? (long long)st.st_size : dflt;
}

/* Opens the partial download for appending (or afresh), never through a
 * symbolic link someone left in its place. */
static FILE *open_part(const char *part, int append, Err *e) {
    int fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (append ? O_APPEND : O_TRUNC), 0644);
    if (fd < 0 && errno == ELOOP)
        return err_set(e, ERR_IO, "%s: is a symbolic link; refusing to write through it", part), NULL;
    if (fd < 0) return err_set(e, ERR_IO, "%s: %s", part, strerror(errno)), NULL;
    FILE *f = fdopen(fd, append ? "ab" : "wb");
    if (!f) {
        close(fd);
        err_set(e, ERR_IO, "%s: %s", part, strerror(errno));
    }
    return f;
}

/* One attempt: continue dest.incomplete from its current size. Returns 0,
 * or -1 with e set; *retryable tells whether another attempt may help. */
static int download_attempt(const Opts *o, const char *url, const char *part, const char *name, long long size,
                            Etags *tags, int *retryable, Err *e) {
    long long have = file_size_or(part, 0);
    if (size >= 0 && have > size) {
        unlink(part);
        have = 0;
    }
    *retryable = 0;
    FILE *f = open_part(part, have > 0, e);
    if (!f) return -1;
    struct curl_slist *hdrs;
    CURL *c = new_handle(o, url, &hdrs);
    Transfer t = {.f = f, .name = name, .offset = have, .total = size, .start = now_seconds(),
                  .quiet = o->quiet, .tty = isatty(2), .tags = tags};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_file);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, tags);
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
    /* Flushed to disk before it can be verified and renamed into place. */
    int bad_close = fflush(f) || fsync(fileno(f));
    bad_close |= fclose(f);
    if (t.tty && !o->quiet) fputs("\r\033[K", stderr);
    *retryable = 1;
    if (rc == CURLE_RANGE_ERROR || (have > 0 && (status == 200 || status == 416))) {
        /* The server ignored or refused the range: start over. */
        unlink(part);
        return err_set(e, ERR_HTTP, "%s: server did not resume the download; restarting", url);
    }
    if (t.too_long) {
        unlink(part);
        *retryable = 0;
        return err_set(e, ERR_HTTP, "%s: size mismatch: the server sent more than the listed %lld bytes; the download "
                       "was deleted", url, size);
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

/* Creates the directories of rfilename below the snapshot directory, one
 * at a time, refusing to go through a symbolic link or a non-directory: the
 * listing never creates links, so one there was put by someone else. */
static int make_dirs_below(const char *snap, const char *rfilename, Err *e) {
    if (file_mkdirs(snap, e)) return -1;
    char *path = path_join(snap, rfilename);
    size_t base = strlen(path) - strlen(rfilename);
    int rc = 0;
    for (char *sl = strchr(path + base, '/'); sl && !rc; sl = strchr(sl + 1, '/')) {
        *sl = 0;
        struct stat st;
        if (lstat(path, &st) != 0 && errno == ENOENT && mkdir(path, 0755) != 0 && errno != EEXIST)
            rc = err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
        else if (lstat(path, &st) != 0)
            rc = err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
        else if (S_ISLNK(st.st_mode))
            rc = err_set(e, ERR_IO, "%s: is a symbolic link; refusing to write through it", path);
        else if (!S_ISDIR(st.st_mode))
            rc = err_set(e, ERR_IO, "%s: exists and is not a directory", path);
        *sl = '/';
    }
    free(path);
    return rc;
}

/* Hashes the file once for the digests wanted (NULL: not wanted). */
static int hash_file(const char *path, char sha256_hex[65], char blob_hex[41], Err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
    Sha256 c2;
    Sha1 c1;
    sha256_init(&c2);
    sha1_init_git_blob(&c1, (unsigned long long)file_size_or(path, 0));
    static __thread unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (sha256_hex) sha256_update(&c2, buf, n);
        if (blob_hex) sha1_update(&c1, buf, n);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) return err_set(e, ERR_IO, "%s: read error", path);
    if (sha256_hex) {
        uint8_t d[32];
        sha256_final(&c2, d);
        sha256_to_hex(d, sha256_hex);
    }
    if (blob_hex) {
        uint8_t d[20];
        sha1_final(&c1, d);
        sha1_to_hex(d, blob_hex);
    }
    return 0;
}

/* Checks the finished partial download against its size and hash, deleting
 * it when they differ. The listing's hash is used, else one the hub's
 * answer carried; a file with neither is reported as unverified. */
static int verify_part(const char *repo, const HubFile *hf, const char *part, const Etags *tags, Err *e) {
    long long got = file_size_or(part, -1);
    if (hf->size >= 0 && got != hf->size) {
        unlink(part);
        return err_set(e, ERR_HTTP,
                       "%s/%s: size mismatch: the listing says %lld bytes, the download has %lld; it was deleted",
                       repo, hf->name, hf->size, got);
    }
    const char *sha = hf->sha256, *blob = hf->blob_id, *source = "the listing's";
    if (!sha[0] && !blob[0]) {
        source = "the hub's ETag";
        if (strlen(tags->linked) == 64) {
            sha = tags->linked;
            source = "the hub's X-Linked-Etag";
        } else if (tags->from_hub && strlen(tags->etag) == 64) {
            sha = tags->etag;
        } else if (tags->from_hub && strlen(tags->etag) == 40) {
            blob = tags->etag;
        }
    }
    if (!sha[0] && !blob[0]) {
        log_warn("%s/%s: not verified: the hub gave no hash for it%s", repo, hf->name,
                 hf->size >= 0 ? " (its size matches)" : " nor its size");
        return 0;
    }
    char got256[65], got1[41];
    if (hash_file(part, sha[0] ? got256 : NULL, sha[0] ? NULL : got1, e)) return -1;
    const char *want = sha[0] ? sha : blob, *have = sha[0] ? got256 : got1;
    if (strcmp(want, have)) {
        unlink(part);
        return err_set(e, ERR_HTTP, "%s/%s: %s mismatch: expected %s (%s), got %s; the download was deleted", repo,
                       hf->name, sha[0] ? "SHA-256" : "git blob id", want, source, have);
    }
    return 0;
}

/* Downloads one file into the snapshot unless it is already there whole.
 * The data goes to NAME.incomplete (kept between runs to resume) and is
 * renamed to NAME only once verified, so a kill at any moment leaves no
 * partial file under the name a reader looks for. */
static int fetch_file(const Opts *o, const char *repo, const char *commit, const char *snap, const HubFile *hf,
                      Err *e) {
    char *dest = path_join(snap, hf->name);
    struct stat st;
    /* Present from an earlier run (renamed only after verification), or
     * laid out by the hub's own tools (a link into blobs/). */
    if (stat(dest, &st) == 0 && S_ISREG(st.st_mode) && (hf->size < 0 || st.st_size == hf->size)) {
        free(dest);
        return 0;
    }
    if (make_dirs_below(snap, hf->name, e)) {
        free(dest);
        return -1;
    }
    char *part = xasprintf("%s.incomplete", dest);
    char *url = file_url(o, repo, commit, hf->name);
    Etags tags = {{0}, {0}, 0};
    int rc = 0;
    struct stat pst;
    if (lstat(part, &pst) == 0 && S_ISLNK(pst.st_mode)) {
        rc = err_set(e, ERR_IO, "%s: is a symbolic link; refusing to write through it", part);
    } else if (hf->size >= 0 && file_size_or(part, -1) == hf->size) {
        /* A run killed between the last byte and the rename: verify it. */
    } else {
        if (!o->quiet)
            log_info("downloading %s/%s (%.1f MB)", repo, hf->name, hf->size >= 0 ? (double)hf->size / 1e6 : 0.0);
        rc = -1;
        for (int attempt = 1; attempt <= o->attempts; attempt++) {
            int retryable = 0;
            Err ae = {0};
            if (download_attempt(o, url, part, hf->name, hf->size, &tags, &retryable, &ae) == 0) {
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
    }
    if (rc == 0) rc = verify_part(repo, hf, part, &tags, e);
    if (rc == 0 && rename(part, dest)) rc = err_set(e, ERR_IO, "%s: %s", dest, strerror(errno));
    if (rc == 0) file_fsync_parent(dest);
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

/* Fetches the wanted files of a listing every name of which was checked. */
static int fetch_snapshot(const Opts *o, const HubSpec *s, const HubListing *l, const char *snap, Err *e) {
    int found = 0, n_gguf = 0, rc = 0;
    StrBuf ggufs;
    sb_init(&ggufs);
    for (size_t i = 0; i < l->n_files && !rc; i++) {
        const HubFile *hf = &l->files[i];
        const char *dot = strrchr(hf->name, '.');
        if (dot && !strcmp(dot, ".gguf") && n_gguf++ < 8) sb_printf(&ggufs, "\n  hf://%s/%s", s->repo, hf->name);
        int want = s->path ? !strcmp(hf->name, s->path) : hub_wanted_file(hf->name);
        if (!want) continue;
        found++;
        rc = fetch_file(o, s->repo, l->commit, snap, hf, e);
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
    /* The explicit forms of a model spec (llm/open.c): local:SPEC is the
     * local model SPEC names; openai:NAME is an endpoint's model, whose
     * weights a command that reads them cannot have. */
    if (!strncmp(spec, "local:", 6)) spec += 6;
    else if (!strncmp(spec, "openai:", 7))
        return err_set(e, ERR_ARG, "%s: a model served by an endpoint; this needs the weights (a Hugging Face "
                       "directory, a .gguf file or hf://ORG/REPO)", spec);
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
    StrBuf body;
    sb_init(&body);
    HubListing l = {0};
    int listed = 0;
    Err api_err = {0};
    int rc = get_text(&o, url, &body, &api_err);
    char *commit = NULL;
    if (rc == 0) {
        /* Every name is checked here, before anything is written. */
        rc = hub_parse_listing(body.s ? body.s : "", body.len, url, &l, e);
        if (rc == 0) {
            listed = 1;
            commit = xstrdup(l.commit);
        }
    } else if (api_err.code == ERR_HTTP && read_ref(rdir, s.revision, &commit) == 0) {
        /* Offline, or the hub is down: a snapshot fetched before still serves. */
        if (!valid_name(commit, strlen(commit))) {
            rc = err_set(e, ERR_PARSE, "%s/refs/%s: not a commit name", rdir, s.revision);
        } else {
            log_warn("%s; using the cached snapshot %.12s", api_err.msg, commit);
            rc = 0;
        }
    } else {
        *e = api_err;
    }
    char *snapdir = NULL;
    if (rc == 0) {
        char *snaps = path_join(rdir, "snapshots");
        snapdir = path_join(snaps, commit);
        free(snaps);
        if (listed) rc = fetch_snapshot(&o, &s, &l, snapdir, e);
        if (rc == 0 && listed) rc = write_ref(rdir, s.revision, commit, e);
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
    hub_listing_free(&l);
    sb_free(&body);
    free(snapdir);
    free(commit);
    free(url);
    free(rdir);
    free(cache_alloc);
    hub_spec_free(&s);
    return rc;
}
