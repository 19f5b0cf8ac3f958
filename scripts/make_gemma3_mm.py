#!/usr/bin/env python3
"""Makes tests/data/arch/gemma3-mm: tests/data/arch/models/tiny-gemma3 laid out
as a Gemma3ForConditionalGeneration checkpoint from the hub (google/gemma-3-4b-it
and its siblings), so that the engine's reading of that layout is tested on
weights whose gold logits exist.

- config.json: the multimodal class with a nested text_config that holds only
  the fields that differ from Gemma3TextConfig's defaults (as transformers
  writes a sub-config: gemma-3-4b's text_config is that sparse), token ids and
  dtype at the top level, and a vision_config;
- model.safetensors: tiny-gemma3's tensors renamed "model." -> "language_model.model."
  (the published layout; transformers >= 4.52 maps it to "model.language_model."
  in memory, which the C test writes itself from this file), plus two tiny
  dummy tensors of the vision tower and projector the engine must ignore;
- the tokenizer files, template and generation_config copied unchanged.

Pure Python (no torch): python3 scripts/make_gemma3_mm.py
"""
import json
import os
import shutil
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "tests/data/arch/models/tiny-gemma3")
OUT = os.path.join(ROOT, "tests/data/arch/gemma3-mm")

# Gemma3TextConfig's defaults (transformers configuration_gemma3.py): a field
# with this value is left out of text_config, as to_diff_dict leaves it out.
TEXT_DEFAULTS = {
    "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 131072, "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0, "attention_bias": False, "query_pre_attn_scalar": 256, "sliding_window": 4096,
    "final_logit_softcapping": None, "attn_logit_softcapping": None, "rope_local_base_freq": 10000.0,
    "sliding_window_pattern": 6, "tie_word_embeddings": True, "attention_dropout": 0.0,
    "initializer_range": 0.02, "use_cache": True, "cache_implementation": "hybrid",
}
TOP_LEVEL = ("bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype", "transformers_version", "architectures")


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    return header, data, meta


def write_st(path, tensors):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, off = {}, 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for t in tensors:
            f.write(t[3])


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(SRC, "config.json")) as f:
        text = json.load(f)
    text_config = {k: v for k, v in text.items()
                   if k not in TOP_LEVEL and not (k in TEXT_DEFAULTS and TEXT_DEFAULTS[k] == v)}
    text_config["model_type"] = "gemma3_text"
    config = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "boi_token_index": 1020, "eoi_token_index": 1021, "image_token_index": 1022, "mm_tokens_per_image": 4,
        "bos_token_id": text.get("bos_token_id"), "eos_token_id": text["eos_token_id"],
        "pad_token_id": text["pad_token_id"], "torch_dtype": "float32", "transformers_version": "4.50.0.dev0",
        "text_config": text_config,
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 4, "intermediate_size": 8,
                          "num_hidden_layers": 1, "num_attention_heads": 1, "image_size": 4, "patch_size": 2,
                          "vision_use_head": False},
    }
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    header, data, _ = read_st(os.path.join(SRC, "model.safetensors"))
    tensors = []
    for name, h in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        assert name.startswith("model."), name
        a, b = h["data_offsets"]
        tensors.append(("language_model." + name, h["dtype"], h["shape"], data[a:b]))
    # the other towers: tiny, fixed values (never read by the engine)
    def f32(n, scale):
        return struct.pack("<%df" % n, *[scale * ((i * 7) % 5 - 2) for i in range(n)])
    tensors.append(("vision_tower.vision_model.embeddings.patch_embedding.weight", "F32", [4, 3, 2, 2], f32(48, 0.1)))
    tensors.append(("multi_modal_projector.mm_input_projection_weight", "F32", [4, 32], f32(128, 0.05)))
    write_st(os.path.join(OUT, "model.safetensors"), tensors)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        shutil.copy(os.path.join(SRC, name), os.path.join(OUT, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
