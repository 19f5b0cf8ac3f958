# aloe's GGUF logits against the reference stack on the same file's weights.
# For each tiny fixture model and each of its f32 / f16 / bf16 / q8_0 GGUF files: load the
# HF model with transformers, replace its weights with the file's
# (dequantised here; llama.cpp's Q/K row permutation undone; the file's
# rope_freqs applied where it has them), run the forward pass, and compare
#  - with the fixture's logits (the original f32 weights): how much the
#    file's own rounding moves the argmax, whatever engine runs it;
#  - with aloe's logits for the same file (gguf_prepare.sh wrote them).
# Needs numpy, PyTorch, transformers, safetensors (a CUDA device is used when
# present). Usage: scripts/reference/gguf_prepare.sh DIR here, then
# python3 DIR/gguf_vs_transformers.py wherever PyTorch is; the report goes to
# stdout and to $OUT/gguf_reference.json (OUT: DIR by default).
# The GGUF reader below handles the F32, F16, BF16 and Q8_0 tensors these files hold.
import json, os, struct, sys
import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.environ.get("OUT", HERE)


def read_gguf(path):
    buf = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = buf[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t in scalar:
            return take(scalar[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        raise ValueError("gguf value type %d" % t)

    assert buf[:4] == b"GGUF", path
    pos = 4
    version, n_tensors, n_kv = take("I"), take("Q"), take("Q")
    meta = {}
    for _ in range(n_kv):
        k = string()
        meta[k] = value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        typ, off = take("I"), take("Q")
        infos.append((name, ne, typ, off))
    align = meta.get("general.alignment", 32)
    base = (pos + align - 1) // align * align
    tensors = {}
    for name, ne, typ, off in infos:
        count = int(np.prod(ne))
        shape = list(reversed(ne))
        p = base + off
        if typ == 0:  # F32
            a = np.frombuffer(buf, np.float32, count, p)
        elif typ == 1:  # F16
            a = np.frombuffer(buf, np.float16, count, p).astype(np.float32)
        elif typ == 30:  # BF16: the high half of an f32
            a = (np.frombuffer(buf, np.uint16, count, p).astype(np.uint32) << 16).view(np.float32)
        elif typ == 8:  # Q8_0: f16 scale + 32 int8 per block
            nb = count // 32
            raw = np.frombuffer(buf, np.uint8, nb * 34, p).reshape(nb, 34)
            d = raw[:, :2].copy().view(np.float16).astype(np.float32)
            q = raw[:, 2:].copy().view(np.int8).astype(np.float32)
            a = (d * q).reshape(-1)
        else:
            raise ValueError("%s: type %d not handled here" % (name, typ))
        tensors[name] = a.reshape(shape).copy()
    return meta, tensors


def unpermute(w, n_head):
    # inverse of llama.cpp's convert_hf_to_gguf permute (rows of Q and K)
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_state(meta, t, cfg):
    arch = meta["general.architecture"]
    sd = {}
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
    for name, a in t.items():
        if name == "rope_freqs.weight":
            continue
        if name == "token_embd.weight":
            sd["model.embed_tokens.weight"] = a
        elif name == "output_norm.weight":
            sd["model.norm.weight"] = a
        elif name == "output.weight":
            sd["lm_head.weight"] = a
        else:
            _, layer, kind, what = name.split(".")
            if arch == "llama" and kind == "attn_q":
                a = unpermute(a, cfg.num_attention_heads)
            if arch == "llama" and kind == "attn_k":
                a = unpermute(a, cfg.num_key_value_heads)
            sd["model.layers.%s.%s.%s" % (layer, names[kind], what)] = a
    return {k: torch.from_numpy(v) for k, v in sd.items()}


def argmax_agree(a, b):
    return float((a.argmax(-1) == b.argmax(-1)).mean())


report = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
import transformers
report["transformers"] = transformers.__version__
dev = "cuda" if torch.cuda.is_available() else "cpu"
for arch in ["llama3", "qwen2", "mistral"]:
    d = os.path.join(HERE, arch)
    exp = load_file(os.path.join(d, "expected.safetensors"))["forward.logits"]
    ids = json.load(open(os.path.join(d, "expected.json")))["forward"]["input_ids"]
    r = {}
    for q in ["f32", "f16", "bf16", "q8_0"]:
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
        meta, t = read_gguf(os.path.join(d, "tiny-%s-%s.gguf" % (arch, q)))
        sd = hf_state(meta, t, model.config)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        missing = [m for m in missing if not (m == "lm_head.weight" and model.config.tie_word_embeddings)]
        assert not missing and not unexpected, (missing, unexpected)
        if model.config.tie_word_embeddings:
            model.tie_weights()
        if "rope_freqs.weight" in t:
            # the file's Llama-3 RoPE (llama.cpp's converter wrote factors for
            # its default original context, 8192, not the config's 32): run
            # the HF model with the file's frequencies
            hd = model.config.head_dim
            theta = meta["llama.rope.freq_base"]
            base = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
            model.model.rotary_emb.inv_freq = torch.tensor(base / t["rope_freqs.weight"].astype(np.float64), dtype=torch.float32)
            model.model.rotary_emb.original_inv_freq = model.model.rotary_emb.inv_freq
            r.setdefault("note", "HF model run with the GGUF's rope_freqs")
        model = model.to(dev).eval()
        with torch.no_grad():
            ref = model(torch.tensor(ids, device=dev)).logits.float().cpu().numpy()
        ours = load_file(os.path.join(d, "ours-%s.safetensors" % q))["logits"]
        rng = float(ref[0].max() - ref[0].min())
        r[q] = {
            "hf_on_file_vs_fixture_argmax": argmax_agree(ref[0], exp[0]),
            "hf_on_file_vs_fixture_maxerr_rel": float(np.abs(ref[0] - exp[0]).max()) / rng,
            "aloe_vs_hf_on_file_argmax": argmax_agree(ours, ref[0]),
            "aloe_vs_hf_on_file_maxerr_rel": float(np.abs(ours - ref[0]).max()) / rng,
            "aloe_vs_fixture_argmax": argmax_agree(ours, exp[0]),
            "positions": len(ids[0]),
        }
    report[arch] = r
print(json.dumps(report, indent=1))
json.dump(report, open(os.path.join(OUT, "gguf_reference.json"), "w"), indent=1)
