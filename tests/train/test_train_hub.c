/* Training takes hf://ORG/REPO for --model and --ref (model/open.c resolves
 * them below train/, downloading once into the cache): a DPO run whose
 * model and reference are hub specs (tests/tools/fake_hub serving the
 * tiny-qwen2 fixture) trains as on the directory. Before the opener moved
 * below train/, train_run read "hf://.../config.json" as a path. */
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"
#include "train/run.h"

static const char *TREES =
    "{\"profile\": \"P\", \"personality\": \"Q\", \"conversations\": ["
    "{\"user\": \"Hi! I just finished my exam.\", \"assistant\": {\"preferred\": \"Congrats! How did it go?\", "
    "\"rejected\": \"OK.\"}, \"chosen\": \"rejected\"}]}\n";

static void test_dpo_with_hub_specs(void) {
    char *dir = test_shared_path("fixtures/models/tiny-qwen2");
    if (!dir) SKIP("fixtures not found (set ALOE_SHARED)");
    char *tmp = test_tmpdir(), *port_file = path_join(tmp, "port"), *bin = test_build_path("tests/tools/fake_hub");
    char *argv[] = {bin, "--repo", "tiny/qwen2", "--root", dir, "--port-file", port_file, NULL};
    pid_t pid;
    int port = test_spawn_server(argv, port_file, &pid);
    free(bin);
    NEED_STARTED(port >= 0, "fake_hub");
    char *url = xasprintf("http://127.0.0.1:%d", port), *cache = path_join(tmp, "cache"), *out = path_join(tmp, "out");
    setenv("HF_ENDPOINT", url, 1);
    setenv("ALOE_CACHE", cache, 1);
    char *data = test_write_file("trees.jsonl", TREES);
    TrainRunOptions o;
    train_run_defaults(&o);
    o.kind = RUN_DPO, o.model = "hf://tiny/qwen2", o.ref = "hf://tiny/qwen2", o.data = data, o.out = out;
    o.steps = 1, o.lr = 1e-3, o.quiet = 1, o.threads = 1;
    Err e = {0};
    int rc = train_run(&o, NULL, &e);
    test_kill(pid);
    unsetenv("HF_ENDPOINT");
    unsetenv("ALOE_CACHE");
    CHECK_OK(rc, &e);
    char *cfg = path_join(out, "config.json");
    CHECK_MSG(file_exists(cfg), "no %s after training", cfg);
    free(cfg);
    test_system("rm -rf '%s'", tmp);
    free(url), free(cache), free(out), free(data), free(tmp), free(port_file), free(dir);
}

int main(void) {
    RUN(test_dpo_with_hub_specs);
    return test_summary();
}
