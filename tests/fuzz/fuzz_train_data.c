/* libFuzzer harness for training data (train/data.h): any bytes as a JSONL
 * file of aloe trees or TRL records load as SFT and as DPO data, or fail
 * with an error naming the file, never crash; every example loaded names
 * where it came from and has a target. Built and run by scripts/fuzz.sh
 * (not by make test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "train/data.h"

static void check_err(int rc, const Err *e) {
    if (rc && strncmp(e->msg, "fuzz.jsonl", 10) != 0) abort(); /* errors name the file */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    for (int mode = 0; mode < 2; mode++) {
        SftOptions o = {mode ? BRANCH_REJECTED : BRANCH_PREFERRED, mode ? LOSS_ON_ALL_ASSISTANT : LOSS_ON_LAST};
        SftData d = {0};
        Err e = {0};
        int rc = sft_data_load_buf("fuzz.jsonl", buf, size, &o, &d, &e);
        check_err(rc, &e);
        for (int i = 0; i < d.n; i++) {
            int targets = 0;
            for (int k = 0; k < d.items[i].msgs.n; k++) targets += d.items[i].is_target[k];
            if (!d.items[i].where || targets < 1) abort();
        }
        sft_data_free(&d);
    }
    DpoData d = {0};
    Err e = {0};
    int rc = dpo_data_load_buf("fuzz.jsonl", buf, size, &d, &e);
    check_err(rc, &e);
    for (int i = 0; i < d.n; i++)
        if (!d.items[i].where) abort();
    dpo_data_free(&d);
    return 0;
}
