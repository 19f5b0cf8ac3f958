/* aloe train sft|dpo: fine-tune a model on aloe conversation trees or TRL
 * JSONL (train/run.h does the work; this file is flags and Ctrl-C). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "train/checkpoint.h"
#include "train/run.h"

static volatile sig_atomic_t g_stop;

static void on_sigint(int sig) {
    (void)sig;
    if (g_stop) signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends at once */
    g_stop = 1;
}

int cmd_train(int argc, char **argv) {
    TrainRunOptions o;
    train_run_defaults(&o);
    const char *loss = "sigmoid", *schedule = "linear", *loss_on = "last", *branch = "preferred";
    const char *targets = "q,k,v,o,gate,up,down", *save_dtype = NULL, *shard_size = NULL, *matmul = "f32";
    double beta = o.dpo.beta, smoothing = 0, nll = 0, lr = 0, epochs = 1, wd = 0, clip = 1.0, alpha = 0, dropout = 0;
    long steps = 0, warmup = 0, seed = 42, save_every = 0;
    int batch = 1, accum = 1, max_len = 1024, rank = 0, resume = 0, threads = 0, quiet = 0;
    ArgSpec specs[] = {
        {"--model", "-m", ARG_STR, &o.model, "M", "the model to start from (Hugging Face directory, hf://ORG/REPO or local:SPEC)", 1, 0},
        {"--data", NULL, ARG_STR, &o.data, "F", "JSONL: aloe conversation trees or TRL messages / prompt-chosen-rejected", 1, 0},
        {"--out", "-o", ARG_STR, &o.out, "DIR", "output directory (checkpoint, metrics.jsonl)", 1, 0},
        {"--ref", NULL, ARG_STR, &o.ref, "M", "DPO reference model (default: the starting model)", 0, 0},
        {"--chat-template", NULL, ARG_STR, &o.chat_template, "NAME", "chat template family instead of the model's", 0, 0},
        {"--lora-r", NULL, ARG_INT, &rank, "R", "LoRA rank (0: full fine-tuning)", 0, 0},
        {"--lora-alpha", NULL, ARG_DOUBLE, &alpha, "A", "LoRA alpha (0: 2R)", 0, 0},
        {"--lora-dropout", NULL, ARG_DOUBLE, &dropout, "P", "LoRA dropout on the adapters' input, in [0, 1)", 0, 0},
        {"--lora-targets", NULL, ARG_STR, &targets, "LIST", "modules to adapt: q,k,v,o,gate,up,down (q_proj, ...; Phi-3's fused qkv_proj, gate_up_proj), or all", 0, 0},
        {"--lr", NULL, ARG_DOUBLE, &lr, "X", "peak learning rate (0: SFT 2e-5, DPO 1e-6, as TRL)", 0, 0},
        {"--steps", NULL, ARG_LONG, &steps, "N", "optimizer steps (instead of --epochs)", 0, 0},
        {"--epochs", NULL, ARG_DOUBLE, &epochs, "E", "passes over the data", 0, 0},
        {"--batch", NULL, ARG_INT, &batch, "B", "examples per micro-batch", 0, 0},
        {"--grad-accum", NULL, ARG_INT, &accum, "G", "micro-batches per optimizer step", 0, 0},
        {"--max-len", NULL, ARG_INT, &max_len, "L", "tokens per sequence; oldest turns are dropped first", 0, 0},
        {"--weight-decay", NULL, ARG_DOUBLE, &wd, "W", "AdamW weight decay (not on biases and norm weights)", 0, 0},
        {"--max-grad-norm", NULL, ARG_DOUBLE, &clip, "C", "clip the global gradient norm (0: off)", 0, 0},
        {"--warmup", NULL, ARG_LONG, &warmup, "N", "warm-up steps", 0, 0},
        {"--schedule", NULL, ARG_STR, &schedule, "S", "constant, linear or cosine", 0, 0},
        {"--beta", NULL, ARG_DOUBLE, &beta, "B", "DPO beta (the paper used 0.9)", 0, 0},
        {"--loss", NULL, ARG_STR, &loss, "L", "DPO loss: sigmoid, ipo, hinge or robust", 0, 0},
        {"--label-smoothing", NULL, ARG_DOUBLE, &smoothing, "S", "DPO label smoothing (sigmoid, robust)", 0, 0},
        {"--nll", NULL, ARG_DOUBLE, &nll, "A", "DPO: add A x the NLL of the chosen replies (TRL rpo_alpha)", 0, 0},
        {"--loss-on", NULL, ARG_STR, &loss_on, "WHICH", "SFT on TRL messages: last or all-assistant", 0, 0},
        {"--branch", NULL, ARG_STR, &branch, "B", "SFT on trees: preferred or rejected replies", 0, 0},
        {"--seed", NULL, ARG_LONG, &seed, "S", "seed for data order, LoRA init and LoRA dropout", 0, 0},
        {"--save-every", NULL, ARG_LONG, &save_every, "N", "checkpoint every N steps (0: at the end only)", 0, 0},
        {"--save-dtype", NULL, ARG_STR, &save_dtype, "T", "float32, bfloat16 or float16 (default: the model's)", 0, 0},
        {"--max-shard-size", NULL, ARG_STR, &shard_size, "SIZE",
         "full fine-tuning: split model.safetensors into shards of at most SIZE (500MB, 2GB, 1GiB)", 0, 0},
        {"--gguf", NULL, ARG_STR, &o.gguf_type, "T",
         "full fine-tuning: also write DIR/model.gguf at the end (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_xs, or a llama.cpp preset: Q4_K_M, Q5_K_M, ..., as aloe convert --type)", 0, 0},
        {"--resume", NULL, ARG_FLAG, &resume, NULL, "continue from the newest complete DIR/checkpoint-N", 0, 0},
        {"--matmul", NULL, ARG_STR, &matmul, "P",
         "f32, or bf16: the training GEMMs multiply bf16-rounded operands with f32 sums (weights, gradients and "
         "optimiser stay f32) where the CPU has AVX512-BF16, else f32 with a notice", 0, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (0: one per CPU)", 0, 0},
        {"--quiet", "-q", ARG_FLAG, &quiet, NULL, "no progress bar", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const ArgCommand cmd = {
        "train", "sft|dpo --model M --data F --out DIR [options]",
        "Fine-tunes a model with SFT or DPO, fully or with LoRA, on the CPU. Data: the trees of `aloe dialogues` "
        "(SFT: one example per turn, the history along the branch taken, loss on the preferred reply; DPO: per turn, "
        "preferred vs rejected) or TRL JSONL. Writes DIR/metrics.jsonl (TRL's names), checkpoints DIR/checkpoint-N "
        "(only the newest kept) and at the end the trained model in DIR (model.safetensors + config/tokenizer, or a "
        "peft adapter); Ctrl-C saves a checkpoint before exiting.",
        "aloe train dpo --model Qwen2.5-0.5B-Instruct --data trees.jsonl --out run1 --lora-r 16 --beta 0.9 --lr 5e-6",
        1, 1};
    char *pos[2];
    int npos;
    Err e;
    err_clear(&e);
    if (argc < 2) { /* no subcommand: say which there are, not which flag is missing */
        fprintf(stderr, "usage: aloe train %s\n  sft: supervised fine-tuning on the preferred replies\n"
                        "  dpo: direct preference optimisation on preferred/rejected pairs\n"
                        "(aloe train --help for the options)\n", cmd.usage);
        return 2;
    }
    int rc = args_parse(&cmd, specs, argc, argv, pos, &npos, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    if (!strcmp(pos[0], "sft")) o.kind = RUN_SFT;
    else if (!strcmp(pos[0], "dpo")) o.kind = RUN_DPO;
    else {
        err_set(&e, ERR_ARG, "train: expected sft or dpo, got \"%s\"", pos[0]);
        return cli_fail(&e);
    }
    if (lr_kind_parse(schedule, &o.schedule, &e) || dpo_kind_parse(loss, &o.dpo.kind, &e) ||
        loss_on_parse(loss_on, &o.loss_on, &e) || tree_branch_parse(branch, &o.branch, &e) ||
        lora_targets_parse(targets, &o.lora_targets, &e) || (save_dtype && ckpt_dtype_parse(save_dtype, &o.save_dtype, &e)) ||
        (shard_size && ckpt_size_parse(shard_size, &o.max_shard_bytes, &e)))
        return cli_fail(&e);
    if (!strcmp(matmul, "bf16") || !strcmp(matmul, "bfloat16")) o.matmul = 1;
    else if (strcmp(matmul, "f32") && strcmp(matmul, "float32")) {
        err_set(&e, ERR_ARG, "--matmul: expected f32 or bf16, got \"%s\"", matmul);
        return cli_fail(&e);
    }
    if (steps < 0 || warmup < 0 || save_every < 0 || rank < 0) {
        err_set(&e, ERR_ARG, "--steps, --warmup, --save-every and --lora-r must be >= 0");
        return cli_fail(&e);
    }
    o.dpo.beta = beta, o.dpo.label_smoothing = smoothing, o.dpo.nll_alpha = nll;
    o.lr = lr, o.steps = steps, o.epochs = epochs, o.batch = batch, o.grad_accum = accum, o.max_len = max_len;
    o.weight_decay = wd, o.max_grad_norm = clip, o.warmup = warmup, o.seed = (uint64_t)seed;
    o.lora_r = rank, o.lora_alpha = alpha, o.lora_dropout = dropout, o.resume = resume, o.save_every = save_every;
    o.threads = threads, o.quiet = quiet;
    signal(SIGINT, on_sigint);
    rc = train_run(&o, &g_stop, &e);
    signal(SIGINT, SIG_DFL);
    if (rc && e.code == ERR_CANCELLED) { /* Ctrl-C: the checkpoint is saved; the documented status is 130 */
        fprintf(stderr, "aloe train: %s\n", e.msg);
        return 130;
    }
    if (rc) return cli_fail(&e);
    fprintf(stderr, "aloe: trained %s; checkpoint and metrics.jsonl in %s\n", o.kind == RUN_SFT ? "SFT" : "DPO", o.out);
    return 0;
}
