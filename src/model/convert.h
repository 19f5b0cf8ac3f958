/* convert: a Hugging Face decoder checkpoint (Llama, Qwen2, Qwen3,
 * Mistral) to one GGUF file that llama.cpp, Ollama and aloe load, the way
 * llama.cpp's convert_hf_to_gguf.py writes it:
 *
 *  - metadata: general.architecture and the `<arch>.*` hyper-parameters
 *    (gguf_set_model_config), general.file_type, the tokenizer
 *    (convert_set_tokenizer) and the chat template;
 *  - tensors under llama.cpp's names, Q/K rows permuted for the `llama`
 *    architecture, Llama-3 RoPE scaling as rope_freqs.weight;
 *  - types: 1-D tensors, norms and biases stay f32; matrices take the
 *    requested type, except that the 32-block types need rows that are a
 *    multiple of 32 and fall back to f16 otherwise (as llama.cpp's
 *    converter does); the K-quants and IQ4_XS need multiples of 256 and
 *    fall back as llama.cpp's quantiser does (dtype_row_fallback: q4_k to
 *    q5_0, q5_k to q5_1, q6_k to q8_0, q2_k/q3_k/iq4_xs to iq4_nl), then
 *    f16. Every type is "pure" (every matrix that type, like
 *    llama-quantize --pure); llama.cpp's presets (Q4_K_M ...) choose per
 *    tensor: convert_mix.h.
 *
 * The file is written atomically. Tensors whose stored type is already the
 * target are used from the memory map; the others are converted into a
 * scratch file beside the output (mapped, unlinked at once), so memory use
 * stays near one f32 tensor while the disk briefly holds the converted
 * tensors twice. */
#ifndef ALOE_MODEL_CONVERT_H
#define ALOE_MODEL_CONVERT_H

#include "base/err.h"

struct GgufWriter;

/* A lower-case type name ("q8_0": every matrix that type) -> DT_*, else a
 * llama-quantize preset in any case ("Q4_K_M") -> its convert_mix type. */
int convert_type_parse(const char *name, int *type, Err *e);
/* llama.cpp's general.file_type (LLAMA_FTYPE_*) for a DT_* type. */
int convert_file_type(int type);

/* Writes the GGUF of the model in hf_dir to out_path in type (DT_F32,
 * DT_F16, DT_BF16, DT_Q8_0 or DT_Q4_0). Errors name the directory, file,
 * tensor or field at fault. */
int convert_hf_to_gguf(const char *hf_dir, const char *out_path, int type, Err *e);

/* The tokenizer.* metadata llama.cpp's converter writes for the byte-level
 * BPE tokenizer in dir (tokenizer.json, tokenizer_config.json,
 * config.json): model "gpt2", tokens padded to vocab_size with [PADi],
 * token types, merges, the pre-tokenizer name of its regex, bos/eos/unk/pad
 * ids, and add_bos/add_eos as the tokenizer's post-processor adds them;
 * plus tokenizer.chat_template when the directory has one. */
int convert_set_tokenizer(struct GgufWriter *w, const char *dir, int vocab_size, Err *e);

#endif
