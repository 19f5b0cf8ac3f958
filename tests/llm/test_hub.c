/* hf:// model specs: parsing, download into the cache, resume after a
 * dropped connection, verification, tokens, offline reuse. Against
 * tests/tools/fake_hub (a local stand-in for the hub). */
#include <stdlib.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "llm/hub.h"
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

static int start_hub(Hub *h, const char *root, const char *extra1, const char *extra2) {
    h->tmp = test_tmpdir();
    h->cache = path_join(h->tmp, "cache");
    h->port_file = path_join(h->tmp, "port");
    h->log = path_join(h->tmp, "requests.log");
    char *bin = test_build_path("tests/tools/fake_hub");
    char *argv[16] = {bin, "--repo", "tiny/qwen2", "--root", (char *)root, "--port-file", h->port_file,
                      "--log", h->log};
    int n = 9;
    if (extra1) {
        argv[n++] = (char *)extra1;
        argv[n++] = (char *)extra2;
    }
    argv[n] = NULL;
    int port = test_spawn_server(argv, h->port_file, &h->pid);
    free(bin);
    if (port < 0) return -1;
    h->url = xasprintf("http://127.0.0.1:%d", port);
    return 0;
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

int main(void) {
    RUN(test_parse_specs);
    RUN(test_wanted_files);
    RUN(test_download_resume_and_reuse);
    RUN(test_single_file_and_missing_file);
    RUN(test_checksum_mismatch_is_refused);
    RUN(test_token_is_sent_and_required);
    return test_summary();
}
