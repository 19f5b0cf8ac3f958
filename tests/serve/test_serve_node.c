/* The official `openai` npm package, run by Node, against aloe serve
 * (tests/node/openai.mjs). SKIPPED only where node or the installed
 * package (npm ci --prefix tests/node) is absent; CI installs both, and
 * with ALOE_REQUIRE_ALL a skip fails the run. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "serve/served.h"
#include "test.h"

static void test_openai_node_client(void) {
    NEED_SHARED(qwen, "fixtures/models/tiny-qwen2");
    NEED_SHARED(bert, "fixtures/models/tiny-bert-st");
    if (test_system("command -v node >/dev/null 2>&1") != 0) {
        free(qwen), free(bert);
        SKIP("node is not installed (scripts/install-deps.sh installs nodejs)");
    }
    if (!file_exists("tests/node/node_modules/openai/package.json")) {
        free(qwen), free(bert);
        SKIP("the openai npm package is not installed: npm ci --prefix tests/node");
    }
    const char *key = "sk-node-test-key-77";
    Served sv;
    char *args = xasprintf("--model %s --alias tq --model %s --alias bert --api-key %s --threads 1", qwen, bert, key);
    NEED_STARTED(!served_start(&sv, args, NULL), "aloe serve");
    char *log = path_join(sv.dir, "node.log");
    int rc = test_system("ALOE_BASE_URL=%s/v1 ALOE_KEY=%s ALOE_MODEL=tq ALOE_EMBED_MODEL=bert "
                         "node tests/node/openai.mjs >'%s' 2>&1", sv.url, key, log);
    char *out = test_read_text(log);
    CHECK_MSG(rc == 0, "node tests/node/openai.mjs failed (exit %d):\n%s", rc, out);
    CHECK(strstr(out, "all passed") != NULL);
    CHECK_EQ_INT(served_signal_wait(&sv, SIGTERM), 0);
    free(out);
    free(log);
    served_free(&sv);
    free(args);
    free(qwen);
    free(bert);
}

int main(void) {
    RUN(test_openai_node_client);
    return test_summary();
}
