/* aloe convert's llama.cpp presets (convert_mix.c).
 *
 *   test_convert_mix --write-model NAME DIR   writes mix_models.h's shape NAME
 *                                             (scripts/gen-mix-gold.sh uses it) */
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/dtype.h"
#include "formats/gguf.h"
#include "test.h"
#include "mix_models.h"

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--write-model")) {
        const MixShape *sp = mix_shape(argv[2]);
        Err e;
        if (!sp) return fprintf(stderr, "no shape %s\n", argv[2]), 1;
        int rc = mix_model_write(sp, argv[3], &e);
        if (rc) fprintf(stderr, "%s\n", rc == 1 ? "shared fixtures absent" : e.msg);
        return rc ? 1 : 0;
    }
    return test_summary();
}
