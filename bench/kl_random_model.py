#!/usr/bin/python3
"""A random-weight Qwen2-shaped model directory for bench/kl_vs_llamacpp.sh.

    kl_random_model.py OUT_DIR TOKENIZER_DIR [--seed N]

Widths are multiples of 256 (hidden 256, MLP 768), so every GGUF type
llama-quantize writes -- the K-quants and IQ4_XS included, whose blocks are
256 wide -- applies to every matrix with no fallback. The tokenizer files
(tokenizer.json, tokenizer_config.json, chat_template.jinja) are copied from
TOKENIZER_DIR, so that `aloe convert` writes a real tokenizer into the GGUF
and llama-perplexity can tokenise a text.

The scales are chosen so the next-token distributions are far from uniform:
a random model with the usual std 0.02 gives logits of std ~0.3 over 1027
tokens, every distribution nearly flat and every KL divergence ~0, and
nothing would be compared. Here the (tied) embedding has std 0.15, so the
logits of a unit-RMS hidden state of width 256 have std 0.15*sqrt(256) = 2.4;
matrices have std 1/sqrt(fan_in), so each layer changes the residual stream
by as much as it holds and attention scores have std ~1 (not all ties).
Needs NumPy only (the safetensors file is written by hand)."""

import json
import os
import shutil
import struct
import sys

import numpy as np

HIDDEN, FFN, LAYERS, HEADS, KV_HEADS = 256, 768, 4, 4, 2
HEAD_DIM = HIDDEN // HEADS


def main():
    args = sys.argv[1:]
    seed = 1
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit("usage: kl_random_model.py OUT_DIR TOKENIZER_DIR [--seed N]")
    out, tok_dir = args
    with open(os.path.join(tok_dir, "tokenizer.json")) as f:
        tj = json.load(f)
    vocab = max(list(tj["model"]["vocab"].values()) + [t["id"] for t in tj.get("added_tokens", [])]) + 1
    rng = np.random.default_rng(seed)

    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    t = {"model.embed_tokens.weight": normal((vocab, HIDDEN), 0.15),
         "model.norm.weight": np.ones(HIDDEN, np.float32)}
    kv = KV_HEADS * HEAD_DIM
    for l in range(LAYERS):
        p = "model.layers.%d." % l
        t[p + "input_layernorm.weight"] = np.ones(HIDDEN, np.float32)
        t[p + "post_attention_layernorm.weight"] = np.ones(HIDDEN, np.float32)
        t[p + "self_attn.q_proj.weight"] = normal((HIDDEN, HIDDEN), HIDDEN ** -0.5)
        t[p + "self_attn.k_proj.weight"] = normal((kv, HIDDEN), HIDDEN ** -0.5)
        t[p + "self_attn.v_proj.weight"] = normal((kv, HIDDEN), HIDDEN ** -0.5)
        t[p + "self_attn.q_proj.bias"] = normal(HIDDEN, 0.1)
        t[p + "self_attn.k_proj.bias"] = normal(kv, 0.1)
        t[p + "self_attn.v_proj.bias"] = normal(kv, 0.1)
        t[p + "self_attn.o_proj.weight"] = normal((HIDDEN, HIDDEN), HIDDEN ** -0.5)
        t[p + "mlp.gate_proj.weight"] = normal((FFN, HIDDEN), HIDDEN ** -0.5)
        t[p + "mlp.up_proj.weight"] = normal((FFN, HIDDEN), HIDDEN ** -0.5)
        t[p + "mlp.down_proj.weight"] = normal((HIDDEN, FFN), FFN ** -0.5)

    os.makedirs(out, exist_ok=True)
    header, off = {}, 0
    for name, a in t.items():
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for a in t.values():
            f.write(a.tobytes())
    config = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True, "vocab_size": vocab,
        "torch_dtype": "float32", "bos_token_id": None, "eos_token_id": None,
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if os.path.exists(os.path.join(tok_dir, name)):
            dst = os.path.join(out, name)
            if os.path.exists(dst):
                os.remove(dst)  # the source may be read-only, and so its copy
            shutil.copy(os.path.join(tok_dir, name), dst)


if __name__ == "__main__":
    main()
