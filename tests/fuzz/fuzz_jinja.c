/* libFuzzer harness for the Jinja interpreter (tok/jinja.h): any bytes as a
 * chat template are lexed, parsed and rendered over a small conversation
 * without a crash, a hang or unbounded memory: the step, nesting and output
 * limits are set low, and a failure always carries a message. Seeds: the
 * real templates in tests/data/templates/. Built and run by scripts/fuzz.sh
 * (not by make test). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tok/jinja.h"

static const char VARS[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": \"Hi \\u00e9 {{ x }}\"},"
    " {\"role\": \"assistant\", \"content\": \"<think>t</think>Yo\","
    "  \"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1}}}]},"
    " {\"role\": \"tool\", \"content\": \"42\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {}}}],"
    " \"documents\": null, \"add_generation_prompt\": true, \"bos_token\": \"<s>\","
    " \"eos_token\": \"</s>\", \"enable_thinking\": false}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_t *vars;
    if (!vars) vars = json_loads(VARS, 0, NULL);
    char *src = malloc(size + 1);
    memcpy(src, data, size);
    src[size] = 0;
    JinjaLimits lim = {.max_steps = 20000, .max_depth = 48, .max_output = 1 << 16};
    Err e = {0};
    JinjaTemplate *t = jinja_parse(src, &lim, &e);
    if (!t) {
        if (!e.msg[0]) abort();
    } else {
        char *out = NULL;
        if (jinja_render(t, vars, 1721995200, &out, &e)) {
            if (!e.msg[0] || out) abort();
        } else if (!out || strlen(out) > lim.max_output) {
            abort();
        }
        free(out);
        jinja_free(t);
    }
    free(src);
    return 0;
}
