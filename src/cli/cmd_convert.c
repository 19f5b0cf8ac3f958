/* aloe convert: a Hugging Face model directory to a GGUF file for
 * llama.cpp, Ollama and aloe itself. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "formats/dtype.h"
#include "model/open.h"
#include "model/convert.h"
#include "model/convert_mix.h"

int cmd_convert(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *type_name = "f16";
    ArgSpec specs[] = {
        {"--model", "-m", ARG_STR, &model, "M", "a Hugging Face model directory or hf://ORG/REPO", 1, 0},
        {"--out", "-o", ARG_STR, &out, "F.gguf", "the GGUF file to write (replaced atomically)", 1, 0},
        {"--type", NULL, ARG_STR, &type_name, "T",
         "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_xs: every matrix that "
         "type (rows that are not whole blocks fall back as llama.cpp's do); or a llama-quantize preset in any case "
         "(q4_k_m, but q4_0 in lower case is the type, Q4_0 the preset): " CONVERT_MIX_NAMES
         ", each tensor the type llama.cpp chooses; vectors and norms stay f32",
         0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const ArgCommand cmd = {"convert", "--model M --out F.gguf [--type T]",
                            "Writes the model as one GGUF file the way llama.cpp's convert_hf_to_gguf.py does: "
                            "architecture and tokenizer metadata, the chat template, and the weights in the requested "
                            "type (rows that are not whole blocks fall back as llama.cpp's: the 32-block types to f16; q4_k, q5_k, q6_k "
                            "rows that are not a multiple of 256 to q5_0, q5_1, q8_0, q2_k/q3_k/iq4_xs to iq4_nl). The presets write what `llama-quantize F32.gguf OUT PRESET` writes: per tensor the "
                            "type llama.cpp's rules choose (more bits for attn_v and ffn_down in some layers, Q6_K for "
                            "the output matrix, the same fallbacks), and its general.file_type.",
                            "aloe convert --model run1-merged --out run1.q8_0.gguf --type q8_0", 0, 0};
    Err e;
    err_clear(&e);
    int rc = args_parse_flags(&cmd, specs, argc, argv, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    int type;
    if (convert_type_parse(type_name, &type, &e)) {
        err_wrap(&e, "--type");
        return cli_fail(&e);
    }
    char *local = NULL; /* hf://ORG/REPO specs are downloaded once into the cache */
    rc = model_spec_resolve(model, 0, &local, &e) || convert_hf_to_gguf(local, out, type, &e);
    free(local);
    if (rc) return cli_fail(&e);
    fprintf(stderr, "aloe: wrote %s (%s)\n", out, convert_mix_name(type));
    return 0;
}
