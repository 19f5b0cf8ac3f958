/* hf:// model specs: parsing, download into the cache, resume after a
 * dropped connection, verification, tokens, offline reuse, and a hostile
 * hub (names that leave the cache, files that do not match their hashes).
 * Against tests/tools/fake_hub (a local stand-in for the hub). */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/sha1.h"
#include "model/hub.h"
#include "test.h"

static void test_parse_specs(void) {
    HubSpec s;
    Err e;
    CHECK_OK(hub_parse_spec("hf://Qwen/Qwen2.5-0.5B-Instruct", &s, &e), &e);
    CHECK_EQ_STR(s.repo, "Qwen/Qwen2.5-0.5B-Instruct");
    CHECK_EQ_STR(s.revision, "main");
    CHECK(s.path == NULL);
    hub_spec_free(&s);
    CHECK_OK(hub_parse_spec("hf://org/repo-GGUF@v1.0/sub/model-q8_0.gguf", &s, &e), &e);
    CHECK_EQ_STR(s.repo, "org/repo-GGUF");
    CHECK_EQ_STR(s.revision, "v1.0");
    CHECK_EQ_STR(s.path, "sub/model-q8_0.gguf");
    hub_spec_free(&s);
    CHECK(hub_parse_spec("hf://justone", &s, &e) == -1);
    CHECK(hub_parse_spec("hf://org/repo/../../etc/passwd", &s, &e) == -1);
    CHECK(hub_parse_spec("hf://org/repo@/x", &s, &e) == -1);
    CHECK(hub_is_spec("hf://a/b") && !hub_is_spec("/models/x"));
}

static void test_wanted_files(void) {
    CHECK(hub_wanted_file("model.safetensors"));
    CHECK(hub_wanted_file("config.json"));
    CHECK(hub_wanted_file("1_Pooling/config.json"));
    CHECK(hub_wanted_file("vocab.txt"));
    CHECK(hub_wanted_file("chat_template.jinja"));
    CHECK(!hub_wanted_file("pytorch_model.bin"));
    CHECK(!hub_wanted_file("original/consolidated.00.pth"));
    CHECK(!hub_wanted_file("onnx/model.onnx"));
    CHECK(!hub_wanted_file("model-q8_0.gguf"));
}

typedef struct {
    char *tmp, *cache, *port_file, *log, *url;
    pid_t pid;
} Hub;

#define COMMIT "0123456789abcdef0123456789abcdef01234567"

/* The cache lies two levels below the test's directory (TMP/a/b/cache), so
 * that a name climbing out of it lands in directories that must stay as
 * they were. */
static void prepare_hub(Hub *h) {
    memset(h, 0, sizeof *h);
    h->tmp = test_tmpdir();
    h->cache = xasprintf("%s/a/b/cache", h->tmp);
    h->port_file = path_join(h->tmp, "port");
    h->log = path_join(h->tmp, "requests.log");
    test_system("mkdir -p '%s/a/b'", h->tmp);
}

/* extra: NULL-terminated option/value pairs for fake_hub. */
static int launch_hub(Hub *h, const char *root, const char *const *extra) {
    char *bin = test_build_path("tests/tools/fake_hub");
    char *argv[48] = {bin, "--repo", "tiny/qwen2", "--root", (char *)root, "--port-file", h->port_file,
                      "--log", h->log};
    int n = 9;
    for (int i = 0; extra && extra[i] && n < 46; i++) argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    int port = test_spawn_server(argv, h->port_file, &h->pid);
    free(bin);
    if (port < 0) return -1;
    h->url = xasprintf("http://127.0.0.1:%d", port);
    return 0;
}

static int start_hub(Hub *h, const char *root, const char *extra1, const char *extra2) {
    prepare_hub(h);
    const char *extra[] = {extra1, extra2, NULL};
    return launch_hub(h, root, extra);
}

static void stop_hub(Hub *h) {
    test_kill(h->pid);
    test_system("rm -rf '%s'", h->tmp);
    free(h->tmp);
    free(h->cache);
    free(h->port_file);
    free(h->log);
    free(h->url);
}

static int same_file(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    Err e;
    if (file_read_all(a, &x, &nx, &e)) return 0;
    if (file_read_all(b, &y, &ny, &e)) {
        free(x);
        return 0;
    }
    int same = nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

static int count_lines(const char *path, const char *needle) {
    char *s;
    Err e;
    if (file_read_all(path, &s, NULL, &e)) return 0;
    int n = 0;
    for (char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    free(s);
    return n;
}

static void test_download_resume_and_reuse(void) {
    char *root = test_shared_path("fixtures/models/tiny-qwen2");
    if (!root) SKIP("shared fixtures not found (set ALOE_SHARED)");
    Hub h;
    /* Every file's first transfer is cut after 1000 bytes: the client resumes. */
    CHECK(start_hub(&h, root, "--drop-after", "1000") == 0);
    HubOptions o = {.endpoint = h.url, .cache_dir = h.cache, .quiet = 1};
    char *dir = NULL;
    Err e;
    CHECK_OK(hub_resolve("hf://tiny/qwen2", &o, &dir, &e), &e);
    char *want = path_join(root, "model.safetensors");
    char *got = path_join(dir, "model.safetensors");
    CHECK(same_file(want, got));
    char *cfg = path_join(dir, "config.json");
    CHECK(file_exists(cfg));
    char *exp = path_join(dir, "expected.json");
    CHECK(file_exists(exp)); /* every .json is fetched */
    /* The resumed request started past 0. */
    CHECK(count_lines(h.log, "model.safetensors 1000") == 1);
    /* Second resolve: nothing downloaded again. */
    int before = count_lines(h.log, "GET model.safetensors");
    free(dir);
    CHECK_OK(hub_resolve("hf://tiny/qwen2@main", &o, &dir, &e), &e);
    CHECK_EQ_INT(count_lines(h.log, "GET model.safetensors"), before);
    /* Hub gone: the cached snapshot still serves. */
    test_kill(h.pid);
    h.pid = 0;
    free(dir);
    CHECK_OK(hub_resolve("hf://tiny/qwen2", &o, &dir, &e), &e);
    CHECK(file_exists(dir));
    free(dir);
    free(want);
    free(got);
    free(cfg);
    free(exp);
    stop_hub(&h);
    free(root);
}

static void test_single_file_and_missing_file(void) {
    char *root = test_shared_path("fixtures/gguf");
    if (!root) SKIP("shared fixtures not found (set ALOE_SHARED)");
    Hub h;
    CHECK(start_hub(&h, root, NULL, NULL) == 0);
    HubOptions o = {.endpoint = h.url, .cache_dir = h.cache, .quiet = 1};
    char *path = NULL;
    Err e;
    CHECK_OK(hub_resolve("hf://tiny/qwen2/tiny-qwen2-q8_0.gguf", &o, &path, &e), &e);
    char *want = path_join(root, "tiny-qwen2-q8_0.gguf");
    CHECK(same_file(want, path));
    free(want);
    free(path);
    /* A repository of GGUFs only: the error lists them. */
    CHECK(hub_resolve("hf://tiny/qwen2", &o, &path, &e) == -1);
    CHECK_MSG(strstr(e.msg, "hf://tiny/qwen2/tiny-qwen2-f32.gguf") != NULL, "%s", e.msg);
    CHECK(hub_resolve("hf://tiny/qwen2/nope.gguf", &o, &path, &e) == -1);
    CHECK_MSG(strstr(e.msg, "no file nope.gguf") != NULL, "%s", e.msg);
    CHECK(hub_resolve("hf://other/repo", &o, &path, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_NOTFOUND);
    stop_hub(&h);
    free(root);
}

static void test_checksum_mismatch_is_refused(void) {
    char *root = test_shared_path("fixtures/models/tiny-qwen2");
    if (!root) SKIP("shared fixtures not found (set ALOE_SHARED)");
    Hub h;
    CHECK(start_hub(&h, root, "--corrupt", "model.safetensors") == 0);
    HubOptions o = {.endpoint = h.url, .cache_dir = h.cache, .quiet = 1, .max_attempts = 1};
    char *dir = NULL;
    Err e;
    CHECK(hub_resolve("hf://tiny/qwen2", &o, &dir, &e) == -1);
    CHECK_MSG(strstr(e.msg, "SHA-256 mismatch") != NULL, "%s", e.msg);
    stop_hub(&h);
    free(root);
}

static void test_token_is_sent_and_required(void) {
    char *root = test_shared_path("fixtures/models/tiny-qwen2");
    if (!root) SKIP("shared fixtures not found (set ALOE_SHARED)");
    Hub h;
    CHECK(start_hub(&h, root, "--token", "hf_secret") == 0);
    HubOptions o = {.endpoint = h.url, .cache_dir = h.cache, .quiet = 1, .token = ""};
    char *dir = NULL;
    Err e;
    CHECK(hub_resolve("hf://tiny/qwen2", &o, &dir, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_AUTH);
    CHECK(strstr(e.msg, "HF_TOKEN") != NULL);
    setenv("HF_TOKEN", "hf_secret", 1);
    setenv("HF_ENDPOINT", h.url, 1);
    HubOptions env_only = {.cache_dir = h.cache, .quiet = 1};
    CHECK_OK(hub_resolve("hf://tiny/qwen2", &env_only, &dir, &e), &e);
    CHECK(strstr(dir, "models--tiny--qwen2/snapshots/") != NULL);
    free(dir);
    unsetenv("HF_TOKEN");
    unsetenv("HF_ENDPOINT");
    stop_hub(&h);
    free(root);
}

/* ---- a hostile or faulty hub, against a small repository of our own ---- */

static void write_file(const char *root, const char *name, const void *data, size_t n) {
    char *p = path_join(root, name);
    char *dir = xstrdup(p);
    *strrchr(dir, '/') = 0;
    Err e;
    file_mkdirs(dir, &e);
    file_write_atomic(p, data, n, &e);
    free(dir);
    free(p);
}

/* config.json, tokenizer.json, sub/pooling.json and a 5000-byte
 * model.safetensors (fake_hub lists .safetensors as LFS files). */
static char *make_repo(void) {
    char *root = test_tmpdir();
    const char *cfg = "{\"model_type\": \"qwen2\", \"hidden_size\": 8}\n";
    const char *tok = "{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}\n";
    const char *pool = "{\"pooling_mode_mean_tokens\": true}\n";
    write_file(root, "config.json", cfg, strlen(cfg));
    write_file(root, "tokenizer.json", tok, strlen(tok));
    write_file(root, "sub/pooling.json", pool, strlen(pool));
    char model[5000];
    for (size_t i = 0; i < sizeof model; i++) model[i] = (char)(i * 131 + 7);
    write_file(root, "model.safetensors", model, sizeof model);
    return root;
}

static char *snap_path(const Hub *h, const char *name) {
    return xasprintf("%s/models--tiny--qwen2/snapshots/" COMMIT "/%s", h->cache, name);
}

/* Entries in a directory, or -1 if it does not exist. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* hub_resolve with what it writes to stderr (warnings) caught in *log. */
static int resolve_logged(const char *spec, const HubOptions *o, char **out, Err *e, char **log) {
    char *tmp = test_tmpdir();
    char *path = path_join(tmp, "stderr");
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    int rc = hub_resolve(spec, o, out, e);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    *log = test_read_text(path);
    test_system("rm -rf '%s'", tmp);
    free(path);
    free(tmp);
    return rc;
}

static void git_blob_hex(const char *data, size_t n, char hex[41]) {
    Sha1 c;
    uint8_t d[20];
    sha1_init_git_blob(&c, n);
    sha1_update(&c, data, n);
    sha1_final(&c, d);
    sha1_to_hex(d, hex);
}

/* Serves the repository with one more listing entry (TMP in it replaced by
 * the test's directory) and resolves it. Returns NULL when the client
 * refused the repository, naming the entry and saying `expect`, and wrote
 * nothing at all; else what went wrong. */
static const char *hostile_case(const char *root, const char *entry, const char *expect) {
    static char why[2048];
    why[0] = 0;
    Hub h;
    prepare_hub(&h);
    StrBuf b;
    sb_init(&b);
    for (const char *p = entry; *p; p++) {
        if (!strncmp(p, "TMP", 3)) {
            sb_append(&b, h.tmp);
            p += 2;
        } else {
            sb_appendc(&b, *p);
        }
    }
    const char *extra[] = {"--extra", b.s, "--serve-any", "pwned\n", NULL};
    if (launch_hub(&h, root, extra)) {
        snprintf(why, sizeof why, "fake_hub did not start");
    } else {
        HubOptions o = {.endpoint = h.url, .cache_dir = h.cache, .quiet = 1, .max_attempts = 1};
        char *dir = NULL;
        Err e = {0};
        int rc = hub_resolve("hf://tiny/qwen2", &o, &dir, &e);
        char *a = path_join(h.tmp, "a"), *ab = xasprintf("%s/a/b", h.tmp);
        char *snaps = xasprintf("%s/models--tiny--qwen2/snapshots", h.cache);
        if (rc == 0)
            snprintf(why, sizeof why, "the repository was accepted");
        else if (!strstr(e.msg, expect) || !strstr(e.msg, "siblings["))
            snprintf(why, sizeof why, "the message does not name the entry and say \"%s\": %s", expect, e.msg);
        else if (test_system("find '%s' -name 'PWNED*' | grep -q .", h.tmp) == 0)
            snprintf(why, sizeof why, "a PWNED file was written");
        else if (count_entries(a) != 1 || count_entries(ab) > 1)
            snprintf(why, sizeof why, "something was written beside the cache (%d, %d entries)", count_entries(a),
                     count_entries(ab));
        else if (file_exists(snaps))
            snprintf(why, sizeof why, "files were downloaded before the listing was refused");
        free(dir);
        free(a);
        free(ab);
        free(snaps);
    }
    stop_hub(&h);
    sb_free(&b);
    return why[0] ? why : NULL;
}

static void test_hostile_names_are_refused(void) {
    char *root = make_repo();
    char long_comp[400], long_path[1400];
    snprintf(long_comp, sizeof long_comp, "{\"rfilename\": \"%0300d.json\"}", 0);
    size_t n = (size_t)snprintf(long_path, sizeof long_path, "{\"rfilename\": \"");
    for (int i = 0; i < 600; i++) n += (size_t)snprintf(long_path + n, sizeof long_path - n, "d/");
    snprintf(long_path + n, sizeof long_path - n, "x.json\"}");
    const struct {
        const char *entry, *expect;
    } cases[] = {
        {"{\"rfilename\": \"../../../../PWNED.json\", \"size\": 6}", "\"..\" path component"},
        {"{\"rfilename\": \"sub/../../../../../../PWNED.json\"}", "\"..\" path component"},
        {"{\"rfilename\": \"TMP/a/PWNED.json\"}", "absolute path"},
        {"{\"rfilename\": \"..\\\\..\\\\..\\\\..\\\\PWNED.json\"}", "backslash at offset 2"},
        {"{\"rfilename\": \"evil\\n.json\"}", "rfilename \"evil\\x0a.json\": refusing the repository: control character 0x0a at offset 4"},
        {"{\"rfilename\": \"\\u001b]0;owned\\u0007.json\"}", "\"\\x1b]0;owned\\x07.json\""},
        {"{\"rfilename\": \"x\\u007f.json\"}", "control character 0x7f"},
        {"{\"rfilename\": \"config.json\\u0000/../../../../PWNED.json\"}", "NUL byte at offset 11"},
        {"{\"rfilename\": \"sub//x.json\"}", "empty path component"},
        {"{\"rfilename\": \"sub/./x.json\"}", "\".\" path component"},
        {"{\"rfilename\": \"sub/\"}", "empty path component"},
        {"{\"rfilename\": \"\"}", "empty name"},
        {long_comp, "path component of 305 bytes"},
        {long_path, "name of 1206 bytes"},
        {"{\"rfilename\": \"model.safetensors.incomplete\"}", "partial downloads"},
        {"{\"rfilename\": \"config.json/x.json\"}", "is listed as a file"},
        {"{\"rfilename\": \"config.json\"}", "listed twice"},
        {"{\"rfilename\": 5}", "expected an object with a string \"rfilename\""},
        {"{\"rfilename\": \"ok.json\", \"blobId\": \"../x\"}", "\"blobId\": expected 40 hex digits"},
        {"{\"rfilename\": \"ok.safetensors\", \"lfs\": {\"sha256\": \"00\"}}", "\"lfs\": expected"},
        {"{\"rfilename\": \"ok.json\", \"size\": -5}", "\"size\": expected a non-negative integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = hostile_case(root, cases[i].entry, cases[i].expect);
        CHECK_MSG(why == NULL, "entry %.80s: %s", cases[i].entry, why);
    }
    test_system("rm -rf '%s'", root);
    free(root);
}

static void test_good_listing_verifies(void) {
    /* The hub's real shape: small files by git blob id, the LFS file by
     * SHA-256 behind a redirect to a CDN. Nothing is left unverified. */
    char *root = make_repo();
    Hub h;
    CHECK(start_hub(&h, root, "--redirect-lfs", "1") == 0);
    HubOptions o = {.endpoint = h.url, .cache_dir = h.cache, .quiet = 1};
    char *dir = NULL, *log = NULL;
    Err e;
    int rc = resolve_logged("hf://tiny/qwen2", &o, &dir, &e, &log);
    const char *names[] = {"config.json", "tokenizer.json", "sub/pooling.json", "model.safetensors"};
    int bad = -1;
    for (int i = 0; i < 4 && rc == 0 && bad < 0; i++) {
        char *a = path_join(root, names[i]), *b = path_join(dir, names[i]), *part = xasprintf("%s.incomplete", b);
        if (!same_file(a, b) || file_exists(part)) bad = i;
        free(a);
        free(b);
        free(part);
    }
    int redirected = count_lines(h.log, "GET model.safetensors");
    stop_hub(&h);
    CHECK_OK(rc, &e);
    CHECK_MSG(!strstr(log, "not verified"), "%s", log);
    CHECK_MSG(bad < 0, "%s", names[bad]);
    CHECK_EQ_INT(redirected, 2); /* the hub's 302, then the CDN */
    free(log);
    free(dir);
    test_system("rm -rf '%s'", root);
    free(root);
}

/* Resolves against a fake_hub started with `extra`; fills the error, the
 * warnings and whether NAME or NAME.incomplete is in the snapshot. */
typedef struct {
    int rc, final_left, part_left;
    Err e;
    char *log;
} Outcome;

static void run_faulty(const char *root, const char *const *extra, const char *name, Outcome *out) {
    Hub h;
    prepare_hub(&h);
    memset(out, 0, sizeof *out);
    if (launch_hub(&h, root, extra)) {
        out->rc = -2;
        stop_hub(&h);
        return;
    }
    HubOptions o = {.endpoint = h.url, .cache_dir = h.cache, .quiet = 1, .max_attempts = 1};
    char *dir = NULL;
    out->rc = resolve_logged("hf://tiny/qwen2", &o, &dir, &out->e, &out->log);
    char *f = snap_path(&h, name), *part = xasprintf("%s.incomplete", f);
    out->final_left = file_exists(f);
    out->part_left = file_exists(part);
    free(f);
    free(part);
    free(dir);
    stop_hub(&h);
}

static void test_corrupt_small_file_is_refused(void) {
    /* config.json is not LFS: it is checked by its git blob id. */
    char *root = make_repo();
    char *cfg = path_join(root, "config.json"), *data;
    size_t n;
    Err e;
    CHECK_OK(file_read_all(cfg, &data, &n, &e), &e);
    char want[41], got[41];
    git_blob_hex(data, n, want);
    data[n / 2] ^= 0x5a; /* as fake_hub --corrupt flips it */
    git_blob_hex(data, n, got);
    free(data);
    free(cfg);
    const char *extra[] = {"--corrupt", "config.json", NULL};
    Outcome r;
    run_faulty(root, extra, "config.json", &r);
    CHECK(r.rc == -1);
    CHECK_MSG(strstr(r.e.msg, "tiny/qwen2/config.json: git blob id mismatch") && strstr(r.e.msg, want) &&
                  strstr(r.e.msg, got),
              "%s (expected %s, got %s)", r.e.msg, want, got);
    CHECK(!r.final_left && !r.part_left);
    free(r.log);
    test_system("rm -rf '%s'", root);
    free(root);
}

static void test_size_mismatch_is_refused(void) {
    char *root = make_repo();
    const char *extra[] = {"--wrong-size", "tokenizer.json", NULL};
    Outcome r;
    run_faulty(root, extra, "tokenizer.json", &r);
    CHECK(r.rc == -1);
    CHECK_MSG(strstr(r.e.msg, "tiny/qwen2/tokenizer.json: size mismatch"), "%s", r.e.msg);
    CHECK(!r.final_left && !r.part_left);
    free(r.log);
    /* Listed shorter than served: the transfer stops at the listed size. */
    const char *shorter[] = {"--short-size", "model.safetensors", NULL};
    run_faulty(root, shorter, "model.safetensors", &r);
    CHECK(r.rc == -1);
    CHECK_MSG(strstr(r.e.msg, "size mismatch: the server sent more than the listed 4999 bytes"), "%s", r.e.msg);
    CHECK(!r.final_left && !r.part_left);
    free(r.log);
    test_system("rm -rf '%s'", root);
    free(root);
}

static void test_unlisted_hash_warns_or_uses_etag(void) {
    char *root = make_repo();
    Outcome r;
    /* No hash anywhere: downloaded, and said to be unverified. */
    const char *nohash[] = {"--no-hash", "config.json", NULL};
    run_faulty(root, nohash, "config.json", &r);
    CHECK_OK(r.rc, &r.e);
    CHECK_MSG(strstr(r.log, "tiny/qwen2/config.json: not verified") && !strstr(r.log, "tokenizer.json"), "%s",
              r.log);
    free(r.log);
    /* A listing without hashes: the hub's answers carry them (ETag for a
     * small file, X-Linked-Etag on the LFS redirect), and they are used. */
    const char *bad_small[] = {"--listing-hashes", "0", "--corrupt", "config.json", NULL};
    run_faulty(root, bad_small, "config.json", &r);
    CHECK(r.rc == -1);
    CHECK_MSG(strstr(r.e.msg, "config.json: git blob id mismatch") && strstr(r.e.msg, "ETag"), "%s", r.e.msg);
    CHECK(!r.final_left && !r.part_left);
    free(r.log);
    const char *bad_lfs[] = {"--listing-hashes", "0", "--redirect-lfs", "1", "--corrupt", "model.safetensors", NULL};
    run_faulty(root, bad_lfs, "model.safetensors", &r);
    CHECK(r.rc == -1);
    CHECK_MSG(strstr(r.e.msg, "model.safetensors: SHA-256 mismatch") && strstr(r.e.msg, "X-Linked-Etag"), "%s",
              r.e.msg);
    CHECK(!r.final_left && !r.part_left);
    free(r.log);
    const char *good[] = {"--listing-hashes", "0", "--redirect-lfs", "1", NULL};
    run_faulty(root, good, "model.safetensors", &r);
    CHECK_OK(r.rc, &r.e);
    CHECK_MSG(!strstr(r.log, "not verified"), "%s", r.log);
    free(r.log);
    /* The CDN's own ETag (no X-Repo-Commit) is no hash of the file. */
    const char *cdn_only[] = {"--listing-hashes", "0", "--redirect-lfs", "1", "--no-hash", "model.safetensors", NULL};
    run_faulty(root, cdn_only, "model.safetensors", &r);
    CHECK_OK(r.rc, &r.e);
    CHECK_MSG(strstr(r.log, "model.safetensors: not verified"), "%s", r.log);
    free(r.log);
    test_system("rm -rf '%s'", root);
    free(root);
}

static void test_symlinks_in_the_cache_are_not_followed(void) {
    /* Links someone left in the snapshot: one in place of a partial file,
     * then one in place of a directory. Each is refused in its own run, in
     * whichever order the listing names the files. */
    char *root = make_repo();
    Hub h;
    prepare_hub(&h);
    char *outside = path_join(h.tmp, "outside");
    char *snap = snap_path(&h, "");
    test_system("mkdir -p '%s' '%s' && echo keep > '%s/victim' && ln -s '%s/victim' '%sconfig.json.incomplete'",
                outside, snap, outside, outside, snap);
    CHECK(launch_hub(&h, root, NULL) == 0);
    HubOptions o = {.endpoint = h.url, .cache_dir = h.cache, .quiet = 1, .max_attempts = 1};
    char *dir = NULL;
    Err e1, e2;
    int rc1 = hub_resolve("hf://tiny/qwen2", &o, &dir, &e1);
    test_system("rm -rf '%sconfig.json.incomplete' '%ssub' && ln -s '%s' '%ssub'", snap, snap, outside, snap);
    int rc2 = hub_resolve("hf://tiny/qwen2", &o, &dir, &e2);
    int n_outside = count_entries(outside);
    char *victim = path_join(outside, "victim"), *text = NULL;
    Err ignore;
    file_read_all(victim, &text, NULL, &ignore);
    stop_hub(&h);
    CHECK_MSG(rc1 == -1 && rc2 == -1, "%d %d", rc1, rc2);
    CHECK_MSG(strstr(e1.msg, "config.json.incomplete: is a symbolic link"), "%s", e1.msg);
    CHECK_MSG(strstr(e2.msg, "sub: is a symbolic link"), "%s", e2.msg);
    CHECK_EQ_INT(n_outside, 1);
    CHECK_EQ_STR(text, "keep\n");
    free(text);
    free(victim);
    free(snap);
    free(outside);
    test_system("rm -rf '%s'", root);
    free(root);
}

static void test_partial_downloads(void) {
    char *root = make_repo();
    Hub h;
    /* Cut after 100 bytes with no retry: the run fails, and nothing is
     * under a final name unless it is whole. */
    CHECK(start_hub(&h, root, "--drop-after", "100") == 0);
    HubOptions o = {.endpoint = h.url, .cache_dir = h.cache, .quiet = 1, .max_attempts = 1};
    char *dir = NULL;
    Err e;
    int rc1 = hub_resolve("hf://tiny/qwen2", &o, &dir, &e);
    char *model = snap_path(&h, "model.safetensors"), *want = path_join(root, "model.safetensors");
    char *model_part = xasprintf("%s.incomplete", model);
    int model_ok = !file_exists(model) || same_file(want, model);
    int parts = test_system("find '%s' -name '*.incomplete' | grep -q .", h.cache) == 0;
    /* The next run resumes and completes. */
    int rc2 = hub_resolve("hf://tiny/qwen2", &o, &dir, &e);
    int model_done = same_file(want, model) && !file_exists(model_part);
    free(dir);
    dir = NULL;
    test_kill(h.pid);
    h.pid = 0;
    CHECK(rc1 == -1 && model_ok && parts);
    CHECK_OK(rc2, &e);
    CHECK(model_done);
    stop_hub(&h);

    /* A run killed after the last byte but before the rename left a whole
     * NAME.incomplete: it is verified and put in place, not fetched again
     * (a range past the end would be answered 416). */
    CHECK(start_hub(&h, root, NULL, NULL) == 0);
    o.endpoint = h.url;
    o.cache_dir = h.cache;
    char *cfg_want = path_join(root, "config.json"), *cfg = snap_path(&h, "config.json");
    char *cfg_part = xasprintf("%s.incomplete", cfg), *data;
    size_t n;
    CHECK_OK(file_read_all(cfg_want, &data, &n, &e), &e);
    char *snap = snap_path(&h, "");
    Err me;
    file_mkdirs(snap, &me);
    file_write_atomic(cfg_part, data, n, &me);
    /* And a whole-sized leftover that is wrong: refused and deleted. */
    char *tok = snap_path(&h, "tokenizer.json"), *tok_part = xasprintf("%s.incomplete", tok);
    char *tok_want = path_join(root, "tokenizer.json"), *tdata;
    size_t tn;
    CHECK_OK(file_read_all(tok_want, &tdata, &tn, &e), &e);
    tdata[0] ^= 1;
    file_write_atomic(tok_part, tdata, tn, &me);
    rc1 = hub_resolve("hf://tiny/qwen2", &o, &dir, &e);
    free(dir);
    dir = NULL;
    Err e1 = e;
    int tok_gone = !file_exists(tok) && !file_exists(tok_part);
    rc2 = hub_resolve("hf://tiny/qwen2", &o, &dir, &e);
    int cfg_ok = same_file(cfg_want, cfg) && !file_exists(cfg_part);
    int tok_ok = same_file(tok_want, tok) && !file_exists(tok_part);
    int cfg_fetched = count_lines(h.log, "GET config.json");
    free(dir);
    stop_hub(&h);
    CHECK(rc1 == -1);
    CHECK_MSG(strstr(e1.msg, "tokenizer.json: git blob id mismatch"), "%s", e1.msg);
    CHECK(tok_gone);
    CHECK_OK(rc2, &e);
    CHECK(cfg_ok && tok_ok);
    CHECK_EQ_INT(cfg_fetched, 0);
    free(data);
    free(tdata);
    free(snap);
    free(cfg_want);
    free(cfg);
    free(cfg_part);
    free(tok);
    free(tok_part);
    free(tok_want);
    free(model);
    free(model_part);
    free(want);
    test_system("rm -rf '%s'", root);
    free(root);
}

/* The listing parser on its own: hashes, sizes and what an LFS blobId is. */
static void test_parse_listing(void) {
    const char *good =
        "{\"sha\": \"" COMMIT "\", \"siblings\": ["
        "{\"rfilename\": \"config.json\", \"size\": 12, \"blobId\": \"3B18E512DBA79E4C8300DD08AEB37F8E728B8DAD\"},"
        "{\"rfilename\": \"model.safetensors\", \"size\": 5000, \"blobId\": \"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\","
        " \"lfs\": {\"sha256\": \"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "\", \"size\": 5000}},"
        "{\"rfilename\": \"README.md\"}]}";
    HubListing l;
    Err e;
    CHECK_OK(hub_parse_listing(good, strlen(good), "test", &l, &e), &e);
    CHECK_EQ_STR(l.commit, COMMIT);
    CHECK_EQ_INT(l.n_files, 3);
    CHECK_EQ_STR(l.files[0].blob_id, "3b18e512dba79e4c8300dd08aeb37f8e728b8dad");
    CHECK_EQ_STR(l.files[0].sha256, "");
    CHECK_EQ_INT(l.files[0].size, 12);
    CHECK_EQ_STR(l.files[1].blob_id, ""); /* the pointer file's, not the content's */
    CHECK_EQ_INT(strlen(l.files[1].sha256), 64);
    CHECK_EQ_INT(l.files[2].size, -1);
    CHECK_EQ_STR(l.files[2].blob_id, "");
    hub_listing_free(&l);
    const char *bad = "{\"sha\": \"" COMMIT "\", \"siblings\": [{\"rfilename\": \"m.safetensors\", \"size\": 5,"
                      " \"lfs\": {\"sha256\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
                      " \"size\": 6}}]}";
    CHECK(hub_parse_listing(bad, strlen(bad), "test", &l, &e) == -1);
    CHECK_MSG(strstr(e.msg, "test: siblings[0] \"m.safetensors\": \"lfs.size\" 6 differs"), "%s", e.msg);
    CHECK(hub_parse_listing("[]", 2, "u", &l, &e) == -1);
    CHECK(hub_parse_listing("{\"sha\": \"../x\", \"siblings\": []}", 30, "u", &l, &e) == -1);
    CHECK(hub_check_filename("a/b.json", 8, &e) == 0);
    CHECK(hub_check_filename("a/b\0c", 5, &e) == -1);
    CHECK(hub_check_filename("..foo/...bar", 12, &e) == 0); /* dots inside names are fine */
}

int main(void) {
    RUN(test_parse_specs);
    RUN(test_wanted_files);
    RUN(test_download_resume_and_reuse);
    RUN(test_single_file_and_missing_file);
    RUN(test_checksum_mismatch_is_refused);
    RUN(test_token_is_sent_and_required);
    RUN(test_parse_listing);
    RUN(test_hostile_names_are_refused);
    RUN(test_good_listing_verifies);
    RUN(test_corrupt_small_file_is_refused);
    RUN(test_size_mismatch_is_refused);
    RUN(test_unlisted_hash_warns_or_uses_etag);
    RUN(test_symlinks_in_the_cache_are_not_followed);
    RUN(test_partial_downloads);
    return test_summary();
}
