/* aloe merge: fold a peft LoRA adapter into its base model and write a full
 * Hugging Face model directory (whole beside --out, then published into it:
 * a kill leaves --out without config.json or complete). */
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/open.h"
#include "model/convert.h"
#include "model/convert_mix.h"
#include "train/checkpoint.h"

int cmd_merge(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *out = NULL, *save_dtype = NULL, *shard_size = NULL, *gguf = NULL;
    ArgSpec specs[] = {
        {"--model", "-m", ARG_STR, &model, "M", "the base model (Hugging Face directory or hf://ORG/REPO)", 1, 0},
        {"--adapter", NULL, ARG_STR, &adapter, "DIR", "the peft adapter directory", 1, 0},
        {"--out", "-o", ARG_STR, &out, "DIR", "where to write the merged model", 1, 0},
        {"--save-dtype", NULL, ARG_STR, &save_dtype, "T", "float32, bfloat16 or float16 (default: the model's)", 0, 0},
        {"--max-shard-size", NULL, ARG_STR, &shard_size, "SIZE",
         "split the weights into shards of at most SIZE (500MB, 2GB, 1GiB, bytes) as transformers does", 0, 0},
        {"--gguf", NULL, ARG_STR, &gguf, "T", "also write DIR/model.gguf in type T (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_xs) or a llama.cpp preset (Q4_K_M, Q5_K_M, ...), as aloe convert --type", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const ArgCommand cmd = {"merge", "--model M --adapter DIR --out DIR",
                            "Folds the adapter into the base weights (W += alpha/r * B A) and writes a Hugging Face "
                            "model directory (model.safetensors or shards with their index, config, tokenizer files) "
                            "that loads without peft, and with --gguf a GGUF file of it as well.",
                            "aloe merge --model Qwen2.5-0.5B-Instruct --adapter run1 --out run1-merged "
                            "--max-shard-size 2GB --gguf q8_0", 0, 0};
    Err e;
    err_clear(&e);
    int rc = args_parse_flags(&cmd, specs, argc, argv, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    ModelConfig cfg;
    TrainDecoder m;
    CkptSaveOpts opts = {-1, 0, gguf};
    if (save_dtype && ckpt_dtype_parse(save_dtype, &opts.dtype, &e)) return cli_fail(&e);
    int gguf_type;
    if (gguf && convert_type_parse(gguf, &gguf_type, &e)) {
        err_wrap(&e, "--gguf");
        return cli_fail(&e);
    }
    if (shard_size && ckpt_size_parse(shard_size, &opts.max_shard_bytes, &e)) {
        err_wrap(&e, "--max-shard-size");
        return cli_fail(&e);
    }
    char *local = NULL; /* hf://ORG/REPO specs are downloaded once into the cache */
    if (model_spec_resolve(model, 0, &local, &e)) return cli_fail(&e);
    rc = hf_config_load(local, &cfg, &e) || td_init(&m, &cfg, &e);
    if (rc) {
        free(local);
        return cli_fail(&e);
    }
    if (opts.dtype < 0) opts.dtype = cfg.dtype == DT_BF16 || cfg.dtype == DT_F16 ? cfg.dtype : DT_F32;
    rc = td_load(&m, local, &e) || ckpt_adapter_load(&m, adapter, model, &e);
    if (!rc) {
        td_lora_merge(&m);
        rc = ckpt_save_model_atomic(&m, local, out, &opts, &e); /* complete or absent, never a mix */
    }
    td_free(&m);
    free(local);
    if (rc) return cli_fail(&e);
    fprintf(stderr, "aloe: merged %s into %s\n", adapter, out);
    return 0;
}
