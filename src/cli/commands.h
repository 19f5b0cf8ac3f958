/* The subcommands. Each lives in its own cmd_<name>.c and returns the
 * process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef ALOE_CLI_COMMANDS_H
#define ALOE_CLI_COMMANDS_H

/* Declared weak so the binary links while a command is still being built;
 * main.c reports a missing one clearly instead of failing to link. */
#define ALOE_COMMANDS(X)                                                                  \
    X(run, "run a whole study from one recipe: pools, dialogues, training arms, bench, report") \
    X(bench, "run the ALOE benchmark: AL(k), AVG, IR, N-IR per turn")                     \
    X(personas, "grow a pool of user profiles or personalities from seed examples")       \
    X(dialogues, "generate multi-turn preference conversation trees")                      \
    X(report, "compare benchmark runs: Markdown table and SVG chart")                      \
    X(view, "one HTML page to read runs or trees: scores next to the conversations")        \
    X(export, "convert conversation trees to TRL SFT/DPO JSONL")                           \
    X(train, "fine-tune a model: aloe train sft|dpo")                                      \
    X(merge, "fold a LoRA adapter into a full model")                                     \
    X(convert, "write a Hugging Face model as one GGUF file (f32/f16/bf16/q8_0/q4_0/q4_k/q6_k)")\
    X(chat, "interactive chat with a model")                                               \
    X(complete, "complete a prompt with a model")                                          \
    X(tokenize, "print the token ids of a text")                                           \
    X(logits, "write the logits of a token sequence to safetensors")                       \
    X(kld, "KL divergence of a model from a base model on a text (like llama-perplexity)")  \
    X(speed, "measure prefill and decode speed (like llama-bench)")                         \
    X(embed, "print sentence embeddings of texts")                                         \
    X(serve, "serve local models over the OpenAI API (chat, completions, embeddings)")

#define ALOE_DECLARE(name, summary) int cmd_##name(int argc, char **argv) __attribute__((weak));
ALOE_COMMANDS(ALOE_DECLARE)
#undef ALOE_DECLARE

/* Shows an error from a command in the standard form and returns its exit
 * status: 2 for usage errors, 1 otherwise. */
struct Err;
int cli_fail(const struct Err *e);

#endif
