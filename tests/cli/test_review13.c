/* Issue 13's features used as a user would (review of the convert presets,
 * aloe kld, Jinja templates and the new architectures): each check here is a
 * defect found by that review, run through the aloe binary on the tiny
 * architecture models of tests/data/arch. */
#include <stdlib.h>
#include <string.h>

#include "aloe_sh.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "formats/gguf.h"
#include "tok/chat_template.h"
#include "test.h"

#define ARCH_MODELS "tests/data/arch/models/"

/* general.file_type of path, or -1. */
static int file_type(const char *path) {
    Err e;
    Gguf *g = gguf_open(path, &e);
    uint32_t ft = 0;
    int rc = g && !gguf_get_u32(g, "general.file_type", &ft, &e) ? (int)ft : -1;
    if (g) gguf_close(g);
    return rc;
}

/* README: `aloe merge --gguf TYPE` does what `aloe convert --type TYPE` does
 * after merging, and `aloe train --gguf TYPE` writes DIR/model.gguf "as aloe
 * convert": llama-quantize's presets (Q4_K_M, 15) included. */
static void test_gguf_flag_takes_presets(void) {
    char *tmp = test_tmpdir(), *out = NULL;
    char *args = xasprintf("merge --model " ARCH_MODELS "tiny-olmo --adapter " ARCH_MODELS "tiny-olmo-lora --out %s/m "
                           "--gguf Q4_K_M",
                           tmp);
    int rc = aloe_sh_run(NULL, args, &out);
    CHECK_MSG(rc == 0, "aloe %s: exit %d: %s", args, rc, out);
    char *g = xasprintf("%s/m/model.gguf", tmp);
    CHECK_EQ_INT(file_type(g), 15); /* LLAMA_FTYPE_MOSTLY_Q4_K_M */
    free(out), free(args), free(g);

    char *data = xasprintf("%s/sft.jsonl", tmp);
    test_put_text(data, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":"
                        "\"Hello there.\"}]}\n");
    args = xasprintf("train sft --model " ARCH_MODELS "tiny-gemma2 --data %s --out %s/t --steps 1 --threads 1 --quiet "
                     "--gguf q5_k_m",
                     data, tmp);
    rc = aloe_sh_run(NULL, args, &out);
    CHECK_MSG(rc == 0, "aloe %s: exit %d: %s", args, rc, out);
    g = xasprintf("%s/t/model.gguf", tmp);
    CHECK_EQ_INT(file_type(g), 17); /* LLAMA_FTYPE_MOSTLY_Q5_K_M */
    free(out), free(args), free(g), free(data);
    /* a wrong name still lists the types and the presets */
    args = xasprintf("merge --model " ARCH_MODELS "tiny-olmo --adapter " ARCH_MODELS "tiny-olmo-lora --out %s/m2 "
                     "--gguf Q4_K_X",
                     tmp);
    rc = aloe_sh_run(NULL, args, &out);
    CHECK_MSG(rc != 0 && strstr(out, "Q4_K_X") && strstr(out, "q8_0") && strstr(out, "Q4_K_M"),
              "aloe %s: exit %d: %s", args, rc, out);
    free(out), free(args), free(tmp);
}

/* README: --chat-template takes a built-in family or a .jinja file; the
 * help of the commands that document it says both, every family named. */
static void test_chat_template_help(void) {
    const char *cmds[] = {"chat", "bench"};
    for (int i = 0; i < 2; i++) {
        char *out = NULL, *args = xasprintf("%s --help", cmds[i]);
        int rc = aloe_sh_run(NULL, args, &out);
        CHECK_EQ_INT(rc, 0);
        const char *h = strstr(out, "--chat-template");
        CHECK_MSG(h && strstr(h, ".jinja"), "aloe %s: --chat-template does not mention a .jinja file", args);
        for (const char *const *n = chat_template_names(); *n; n++)
            CHECK_MSG(strstr(h, *n), "aloe %s: --chat-template does not name the family %s", args, *n);
        free(out), free(args);
    }
}

/* aloe kld's default --ctx 512 on a model of 256 positions ran past the
 * context without a word; llama-perplexity warns there, and so must kld. */
static void test_kld_warns_past_context(void) {
    char *tmp = test_tmpdir(), *ids = xasprintf("%s/ids.txt", tmp), *out = NULL;
    char *text = xstrdup("");
    for (int i = 0; i < 600; i++) {
        char *t = xasprintf("%s%d ", text, 10 + i % 1000);
        free(text);
        text = t;
    }
    test_put_text(ids, text);
    char *args = xasprintf("kld --base " ARCH_MODELS "tiny-olmo --model tests/data/arch/gguf-llamacpp/tiny-olmo-q8_0.gguf "
                           "--ids %s --ctx 300 -t 1",
                           ids);
    int rc = aloe_sh_run(NULL, args, &out);
    CHECK_MSG(rc == 0, "aloe %s: exit %d: %s", args, rc, out);
    CHECK_MSG(strstr(out, "warning: --ctx 300 is longer than the base model's context of 256 tokens"), "%s", out);
    free(out), free(args);
    /* within the context: no warning */
    args = xasprintf("kld --base " ARCH_MODELS "tiny-olmo --model tests/data/arch/gguf-llamacpp/tiny-olmo-q8_0.gguf "
                     "--ids %s --ctx 256 --chunks 1 -t 1",
                     ids);
    rc = aloe_sh_run(NULL, args, &out);
    CHECK_MSG(rc == 0 && !strstr(out, "warning"), "aloe %s: exit %d: %s", args, rc, out);
    free(out), free(args), free(ids), free(text), free(tmp);
}

int main(void) {
    RUN(test_kld_warns_past_context);
    RUN(test_gguf_flag_takes_presets);
    RUN(test_chat_template_help);
    return test_summary();
}
