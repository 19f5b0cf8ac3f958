#!/usr/bin/env python3
"""Gold data for the decoder architectures OLMo, OLMo 2, Gemma 2, Gemma 3 (text) and Phi-3.

Writes tests/data/arch/models/tiny-<arch>{,-ref,-lora}/ in the layout of the shared fixtures
(/work/shared/fixtures/models, see its README and tests/data/arch/README.md): a tiny random model
per architecture with the real config keys and HF tensor names, and expected.json +
expected.safetensors holding forward logits, greedy ids, SFT loss and gradients, one AdamW step,
DPO against the -ref copy, and LoRA (peft layout) logits and gradients.

Two implementations of the same computation:
  --impl own           this file's PyTorch implementation of each architecture (written from a
                       reading of transformers' modelling code; runs on Debian's torch 1.13):
                       writes the model directories, the expected files, and quirks.json (how
                       much the logits move when each architecture quirk is removed). It also runs
                       self-checks: a slow per-query attention path, the SFT loss recomputed from
                       the logits in float64, greedy ids against one forward, and float64
                       finite differences of a few gradients.
  --impl transformers  transformers' own modelling code (AutoModelForCausalLM, eager attention;
                       peft for LoRA when installed, else the same LoRA update by forward hooks):
                       reads the model directories the own run wrote (the weights are
                       regenerated from the seed and must match them byte for byte) and rewrites
                       only expected.json / expected.safetensors, in the identical layout.

Usage: /usr/bin/python3 scripts/arch_gold.py --impl own|transformers [--out tests/data/arch/models]
       [--arch olmo2,gemma2,...] [--tokenizer DIR] [--no-check]
Deterministic: weights come from numpy's RandomState (stable across numpy versions), inputs from
tests/data/arch/inputs.json; computations in float32 on CPU.
"""
import argparse
import copy
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

ARCHS = ["olmo2", "gemma2", "phi3", "olmo", "gemma3"]
VOCAB = 1027
PAD_ID = 1024  # <|endoftext|>: occurs in no input, so padding_idx's frozen row never matters
EOS_ID = 1026  # <|im_end|>
LORA_R, LORA_ALPHA = 4, 8
DPO_BETA = 0.1
ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
CLIP_NORM = 1.0
GREEDY_NEW = 12
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(ROOT, "tests", "data", "arch")

# ---------------------------------------------------------------------------------------------
# configs: what a hub checkpoint's config.json holds (transformers-4 style rope keys)
# ---------------------------------------------------------------------------------------------


def base_config(arch_cls, model_type):
    return {
        "architectures": [arch_cls],
        "model_type": model_type,
        "vocab_size": VOCAB,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "bos_token_id": None,
        "eos_token_id": EOS_ID,
        "pad_token_id": PAD_ID,
        "use_cache": True,
        "torch_dtype": "float32",
        "transformers_version": "4.57.1",
    }


def make_config(arch):
    if arch == "olmo":
        c = base_config("OlmoForCausalLM", "olmo")
        # clip_qkv low enough that a good share of q/k/v entries are clamped
        c.update(hidden_act="silu", clip_qkv=1.5, rope_theta=10000.0, rope_scaling=None,
                 tie_word_embeddings=False, pretraining_tp=1)
    elif arch == "olmo2":
        c = base_config("Olmo2ForCausalLM", "olmo2")
        c.update(hidden_act="silu", rms_norm_eps=1e-6, rope_theta=500000.0, rope_scaling=None,
                 tie_word_embeddings=False, pretraining_tp=1)
    elif arch == "gemma2":
        c = base_config("Gemma2ForCausalLM", "gemma2")
        c.update(head_dim=16, hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh",
                 rms_norm_eps=1e-6, rope_theta=10000.0, query_pre_attn_scalar=64,
                 attn_logit_softcapping=2.0, final_logit_softcapping=8.0, sliding_window=16,
                 cache_implementation="hybrid", tie_word_embeddings=True)
    elif arch == "gemma3":
        c = base_config("Gemma3ForCausalLM", "gemma3_text")
        c.update(num_hidden_layers=3, head_dim=16, hidden_activation="gelu_pytorch_tanh",
                 rms_norm_eps=1e-6, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                 rope_scaling={"rope_type": "linear", "factor": 8.0}, query_pre_attn_scalar=32,
                 attn_logit_softcapping=None, final_logit_softcapping=None, sliding_window=16,
                 sliding_window_pattern=3,
                 layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                 cache_implementation="hybrid", tie_word_embeddings=True)
    elif arch == "phi3":
        c = base_config("Phi3ForCausalLM", "phi3")
        c.update(hidden_act="silu", rms_norm_eps=1e-5, rope_theta=10000.0,
                 original_max_position_embeddings=64, sliding_window=32,
                 rope_scaling={"type": "longrope",
                               "short_factor": [1.0, 1.25, 2.5, 4.0],
                               "long_factor": [1.5, 4.0, 12.0, 40.0]},
                 resid_pdrop=0.0, embd_pdrop=0.0, partial_rotary_factor=1.0,
                 tie_word_embeddings=False)
    else:
        raise SystemExit("unknown arch " + arch)
    return c


def head_dim(c):
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def layer_is_sliding(c, arch, l):
    if arch == "gemma2":
        return (l + 1) % 2 != 0  # transformers' default layer_types for Gemma 2
    if arch == "gemma3":
        return c["layer_types"][l] == "sliding_attention"
    if arch == "phi3":
        return c.get("sliding_window") is not None
    return False


# ---------------------------------------------------------------------------------------------
# weights (numpy RandomState: identical bytes under any numpy/torch version)
# ---------------------------------------------------------------------------------------------


def param_shapes(c, arch):
    H, I, hd = c["hidden_size"], c["intermediate_size"], head_dim(c)
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    s = {"model.embed_tokens.weight": (VOCAB, H)}
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        if arch == "phi3":
            s[p + "self_attn.qkv_proj.weight"] = ((nh + 2 * nkv) * hd, H)
            s[p + "mlp.gate_up_proj.weight"] = (2 * I, H)
        else:
            s[p + "self_attn.q_proj.weight"] = (nh * hd, H)
            s[p + "self_attn.k_proj.weight"] = (nkv * hd, H)
            s[p + "self_attn.v_proj.weight"] = (nkv * hd, H)
            s[p + "mlp.gate_proj.weight"] = (I, H)
            s[p + "mlp.up_proj.weight"] = (I, H)
        s[p + "self_attn.o_proj.weight"] = (H, nh * hd)
        s[p + "mlp.down_proj.weight"] = (H, I)
        if arch in ("phi3",):
            s[p + "input_layernorm.weight"] = (H,)
            s[p + "post_attention_layernorm.weight"] = (H,)
        if arch == "olmo2":
            s[p + "post_attention_layernorm.weight"] = (H,)
            s[p + "post_feedforward_layernorm.weight"] = (H,)
            s[p + "self_attn.q_norm.weight"] = (nh * hd,)
            s[p + "self_attn.k_norm.weight"] = (nkv * hd,)
        if arch in ("gemma2", "gemma3"):
            for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                      "post_feedforward_layernorm"):
                s[p + n + ".weight"] = (H,)
        if arch == "gemma3":
            s[p + "self_attn.q_norm.weight"] = (hd,)
            s[p + "self_attn.k_norm.weight"] = (hd,)
    if arch != "olmo":
        s["model.norm.weight"] = (H,)
    if not c["tie_word_embeddings"]:
        s["lm_head.weight"] = (VOCAB, H)
    return s


def make_weights(c, arch, seed):
    """Scales chosen so every quirk moves the logits (see quirks.json): projections large enough
    that OLMo's clip_qkv clamps and Gemma's soft-caps bend, norm weights far from their identity."""
    rng = np.random.RandomState(seed)
    gemma = arch.startswith("gemma")
    W = {}
    for name, shape in sorted(param_shapes(c, arch).items()):
        if name.endswith("norm.weight"):
            if gemma:  # stored as the offset from 1: (1 + w) is the scale
                a = rng.normal(0.0, 0.3, shape)
            else:
                a = 1.0 + rng.normal(0.0, 0.3, shape)
        elif name == "model.embed_tokens.weight":
            a = rng.normal(0.0, {"gemma2": 0.5, "gemma3": 0.3}.get(arch, 1.0), shape)
        elif name == "lm_head.weight":
            a = rng.normal(0.0, 0.3, shape)
        else:
            fan_in = shape[1]
            a = rng.normal(0.0, 1.6 / math.sqrt(fan_in), shape)
        W[name] = a.astype(np.float32)
    return W


def perturb(W, seed):
    rng = np.random.RandomState(seed)
    return {k: (v + rng.normal(0.0, 0.05 * float(np.std(v)) + 1e-3, v.shape)).astype(np.float32)
            for k, v in sorted(W.items())}


def lora_targets(arch):
    if arch == "phi3":
        return ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    return ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_lora(c, arch, seed):
    """peft names as saved (adapter file): base_model.model.<module>.lora_A.weight [r, in] and
    lora_B.weight [out, r]; B is non-zero so the adapter changes the logits."""
    rng = np.random.RandomState(seed)
    shapes = param_shapes(c, arch)
    A = {}
    for name, shape in sorted(shapes.items()):
        mod = name[: -len(".weight")]
        if mod.split(".")[-1] not in lora_targets(arch):
            continue
        out_f, in_f = shape
        A["base_model.model." + mod + ".lora_A.weight"] = rng.normal(0, 1.0 / math.sqrt(in_f), (LORA_R, in_f)).astype(np.float32)
        A["base_model.model." + mod + ".lora_B.weight"] = rng.normal(0, 0.3 / math.sqrt(LORA_R), (out_f, LORA_R)).astype(np.float32)
    return A


# ---------------------------------------------------------------------------------------------
# safetensors (own writer/reader: Debian has no safetensors module)
# ---------------------------------------------------------------------------------------------


def st_write(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for k in sorted(tensors):
        a = np.ascontiguousarray(np.asarray(tensors[k], dtype=np.float32))
        b = a.tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def st_read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (path, k, v["dtype"])
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=np.float32).reshape(v["shape"]).copy()
    return out


# ---------------------------------------------------------------------------------------------
# own reference implementation
# ---------------------------------------------------------------------------------------------


def rms(x, eps):
    xf = x.float() if x.dtype != torch.float64 else x
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat((-x[..., d:], x[..., :d]), dim=-1)


def default_inv_freq(theta, d):
    return 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))


def rope_tables(c, arch, l, L, off):
    """(cos, sin) [L, head_dim] for layer l of a forward over positions 0..L-1."""
    d = head_dim(c)
    scale = 1.0
    if arch == "gemma3":
        if layer_is_sliding(c, arch, l) and "local_base" not in off:
            inv = default_inv_freq(c["rope_local_base_freq"], d)
        else:
            inv = default_inv_freq(c["rope_theta"], d)
            rs = c.get("rope_scaling")
            if rs and "rope_linear" not in off:
                inv = inv / rs["factor"]
    elif arch == "phi3" and "longrope" not in off:
        rs = c["rope_scaling"]
        omax = c["original_max_position_embeddings"]
        long_regime = L > omax  # max(position_ids) + 1 > original_max_position_embeddings
        if "long_short_swap" in off:
            long_regime = not long_regime
        ext = torch.tensor(rs["long_factor"] if long_regime else rs["short_factor"], dtype=torch.float32)
        inv = 1.0 / (ext * c["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        s = c["max_position_embeddings"] / omax
        if "attention_factor" not in off:
            scale = math.sqrt(1.0 + math.log(s) / math.log(omax)) if s > 1.0 else 1.0
    else:
        inv = default_inv_freq(c["rope_theta"], d)
    pos = torch.arange(L, dtype=torch.float32)
    fr = pos[:, None] * inv[None, :].float()
    emb = torch.cat((fr, fr), dim=-1)
    return emb.cos() * scale, emb.sin() * scale


def slow_rope(c, arch, l, T, x):
    """x [heads, T, d] -> rotated; pair (i, i + d/2) turned by angle p·inv_freq[i], scaled by the
    attention factor, all from the README's rules in Python floats."""
    d = head_dim(c)
    theta, div, ext, amp = c["rope_theta"], 1.0, [1.0] * (d // 2), 1.0
    if arch == "gemma3":
        if c["layer_types"][l] == "sliding_attention":
            theta = c["rope_local_base_freq"]
        elif c.get("rope_scaling"):
            div = c["rope_scaling"]["factor"]
    if arch == "phi3":
        omax = c["original_max_position_embeddings"]
        ext = c["rope_scaling"]["long_factor" if T > omax else "short_factor"]
        ratio = c["max_position_embeddings"] / omax
        amp = math.sqrt(1 + math.log(ratio) / math.log(omax)) if ratio > 1 else 1.0
    y = x.clone()
    for i in range(d // 2):
        inv = 1.0 / (ext[i] * theta ** (2.0 * i / d)) / div
        for p in range(T):
            ca, sa = math.cos(p * inv) * amp, math.sin(p * inv) * amp
            a, b = x[:, p, i], x[:, p, i + d // 2]
            y[:, p, i] = a * ca - b * sa
            y[:, p, i + d // 2] = b * ca + a * sa
    return y


def allowed_mask(L, window, off):
    i = torch.arange(L)[:, None]
    j = torch.arange(L)[None, :]
    m = j <= i
    if window is not None:
        if "window_le" in off:
            m = m & (i - j <= window)  # the off-by-one a reader could make
        else:
            m = m & (i - j < window)  # masking_utils: kv_idx > q_idx - sliding_window
    return m


class OwnModel:
    """Forward of one architecture as a function of a dict of HF-named tensors.
    `off` is a set of quirk names to remove (for quirks.json); empty for the gold data."""

    def __init__(self, c, arch, P, lora=None, off=frozenset(), slow=False, modules=None):
        self.c, self.arch, self.P, self.lora, self.off, self.slow = c, arch, P, lora, set(off), slow
        self.modules = modules or {}  # nn.Linear per projection (only --fake-transformers)

    def lin(self, x, mod):
        if mod in self.modules:
            y = self.modules[mod](x)
        else:
            y = x @ self.P[mod + ".weight"].t()
        if self.lora is not None and ("base_model.model." + mod + ".lora_A.weight") in self.lora:
            A = self.lora["base_model.model." + mod + ".lora_A.weight"]
            B = self.lora["base_model.model." + mod + ".lora_B.weight"]
            y = y + (LORA_ALPHA / LORA_R) * ((x @ A.t()) @ B.t())
        return y

    def norm(self, x, wname):
        """The architecture's norm; wname None for OLMo's weightless LayerNorm."""
        c, arch, off = self.c, self.arch, self.off
        if arch == "olmo":
            xf = x.float() if x.dtype != torch.float64 else x
            if "layernorm" in off:  # RMS instead of mean-centred LayerNorm
                return rms(xf, 1e-5).to(x.dtype)
            return F.layer_norm(xf, (x.shape[-1],), None, None, eps=1e-5).to(x.dtype)
        w = self.P[wname]
        if arch.startswith("gemma"):
            g = w if "one_plus_w" in off else (1.0 + w)
            return (rms(x, c["rms_norm_eps"]) * g).to(x.dtype)
        return (w * rms(x, c["rms_norm_eps"])).to(x.dtype)

    def attention(self, x, l):
        c, arch, off = self.c, self.arch, self.off
        p = "model.layers.%d.self_attn." % l
        T = x.shape[0]
        hd, nh, nkv = head_dim(c), c["num_attention_heads"], c["num_key_value_heads"]
        if arch == "phi3":
            qkv = self.lin(x, p + "qkv_proj")
            q, k, v = qkv[:, : nh * hd], qkv[:, nh * hd: (nh + nkv) * hd], qkv[:, (nh + nkv) * hd:]
            if "qkv_order" in off:
                k, q = qkv[:, : nkv * hd], qkv[:, nkv * hd: (nkv + nh) * hd]
        else:
            q, k, v = self.lin(x, p + "q_proj"), self.lin(x, p + "k_proj"), self.lin(x, p + "v_proj")
        if arch == "olmo" and c.get("clip_qkv") is not None and "clip_qkv" not in off:
            cl = c["clip_qkv"]
            q, k, v = q.clamp(-cl, cl), k.clamp(-cl, cl), v.clamp(-cl, cl)
        if arch == "olmo2" and "qk_norm" not in off:
            if "qk_norm_per_head" in off:  # RMS over each head instead of the whole projection
                q = (self.P[p + "q_norm.weight"] * rms(q.view(T, nh, hd), c["rms_norm_eps"]).view(T, -1))
                k = (self.P[p + "k_norm.weight"] * rms(k.view(T, nkv, hd), c["rms_norm_eps"]).view(T, -1))
            else:
                q = self.norm(q, p + "q_norm.weight")
                k = self.norm(k, p + "k_norm.weight")
        q = q.view(T, nh, hd).transpose(0, 1)
        k = k.view(T, nkv, hd).transpose(0, 1)
        v = v.view(T, nkv, hd).transpose(0, 1)
        if arch == "gemma3" and "qk_norm" not in off:
            q = self.norm(q, p + "q_norm.weight")
            k = self.norm(k, p + "k_norm.weight")
        cos, sin = rope_tables(c, arch, l, T, off)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        if self.slow:  # README's rope written out pair by pair, apart from rope_tables
            q, k = slow_rope(c, arch, l, T, q), slow_rope(c, arch, l, T, k)
        elif "rope" not in off:
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=0)
        v = v.repeat_interleave(rep, dim=0)
        if arch.startswith("gemma") and "query_pre_attn_scalar" not in off:
            scale = c["query_pre_attn_scalar"] ** -0.5
        else:
            scale = hd ** -0.5
        sliding = layer_is_sliding(c, arch, l)
        if "pattern_shift" in off and arch == "gemma3":
            sliding = (l % c["sliding_window_pattern"]) != 0  # a wrong reading of the pattern
        window = c.get("sliding_window") if (sliding and "sliding" not in off) else None
        cap = c.get("attn_logit_softcapping") if "attn_softcap" not in off else None
        allowed = allowed_mask(T, window, off)
        if self.slow:
            out = torch.zeros(nh, T, hd, dtype=q.dtype)
            for h in range(nh):
                for i in range(T):
                    js = [j for j in range(i + 1) if window is None or i - j < window]
                    if "window_le" in off and window is not None:
                        js = [j for j in range(i + 1) if i - j <= window]
                    sc = torch.stack([(q[h, i] * k[h, j]).sum() * scale for j in js])
                    if cap is not None:
                        sc = cap * torch.tanh(sc / cap)
                    a = torch.softmax(sc, dim=0)
                    out[h, i] = sum(a[t] * v[h, j] for t, j in enumerate(js))
        else:
            s = (q @ k.transpose(1, 2)) * scale
            if cap is not None:
                s = cap * torch.tanh(s / cap)
            s = s.masked_fill(~allowed, float("-inf"))
            a = torch.softmax(s.float() if s.dtype != torch.float64 else s, dim=-1).to(q.dtype)
            out = a @ v
        out = out.transpose(0, 1).reshape(T, nh * hd)
        return self.lin(out, p + "o_proj")

    def mlp(self, x, l):
        c, arch, off = self.c, self.arch, self.off
        p = "model.layers.%d.mlp." % l
        if arch == "phi3":
            gu = self.lin(x, p + "gate_up_proj")
            I = c["intermediate_size"]
            gate, up = gu[:, :I], gu[:, I:]
            if "gate_up_order" in off:
                gate, up = up, gate
            return self.lin(up * F.silu(gate), p + "down_proj")
        g, u = self.lin(x, p + "gate_proj"), self.lin(x, p + "up_proj")
        if arch.startswith("gemma"):
            act = F.gelu(g) if "gelu_tanh" in off else 0.5 * g * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (g + 0.044715 * g.pow(3))))
        else:
            act = F.silu(g)
        return self.lin(act * u, p + "down_proj")

    def logits1(self, ids):
        """ids: list of ints (one sequence) -> [L, V]"""
        c, arch, off, P = self.c, self.arch, self.off, self.P
        x = P["model.embed_tokens.weight"][torch.tensor(ids, dtype=torch.long)]
        if arch.startswith("gemma") and "embed_scale" not in off:
            # transformers: torch.tensor(hidden**0.5, dtype=activations' dtype) -> rounded first
            x = x * torch.tensor(c["hidden_size"] ** 0.5, dtype=x.dtype)
        for l in range(c["num_hidden_layers"]):
            p = "model.layers.%d." % l
            if arch == "olmo2":
                if "post_norm" in off:  # the norms placed as pre-norms (llama order) instead
                    x = x + self.attention(self.norm(x, p + "post_attention_layernorm.weight"), l)
                    x = x + self.mlp(self.norm(x, p + "post_feedforward_layernorm.weight"), l)
                else:
                    x = x + self.norm(self.attention(x, l), p + "post_attention_layernorm.weight")
                    x = x + self.norm(self.mlp(x, l), p + "post_feedforward_layernorm.weight")
            elif arch.startswith("gemma"):
                h = self.attention(self.norm(x, p + "input_layernorm.weight"), l)
                if "sandwich" not in off:
                    h = self.norm(h, p + "post_attention_layernorm.weight")
                x = x + h
                h = self.mlp(self.norm(x, p + "pre_feedforward_layernorm.weight"), l)
                if "sandwich" not in off:
                    h = self.norm(h, p + "post_feedforward_layernorm.weight")
                x = x + h
            else:  # olmo, phi3: llama-style pre-norm
                x = x + self.attention(self.norm(x, p + "input_layernorm.weight"), l)
                x = x + self.mlp(self.norm(x, p + "post_attention_layernorm.weight"), l)
        x = self.norm(x, "model.norm.weight")
        if c["tie_word_embeddings"] or "untied" in off:
            head = P["model.embed_tokens.weight"]
        else:
            head = P["lm_head.weight"]
        logits = x @ head.t()
        cap = c.get("final_logit_softcapping")
        if cap is not None and "final_softcap" not in off:
            logits = cap * torch.tanh(logits / cap)
        return logits

    def logits(self, batch):
        return torch.stack([self.logits1(s) for s in batch])


# ---------------------------------------------------------------------------------------------
# the computations, shared by both implementations
# ---------------------------------------------------------------------------------------------


def sft_loss_from_logits(logits, ids, n_prompt):
    """HF ForCausalLMLoss: labels = ids with the first n_prompt masked; shift inside; mean CE."""
    lg = logits[:-1].float() if logits.dtype != torch.float64 else logits[:-1]
    tgt = torch.tensor(ids[1:], dtype=torch.long)
    keep = torch.arange(1, len(ids)) >= n_prompt
    return F.cross_entropy(lg[keep], tgt[keep], reduction="mean")


def response_logp(logits, ids, n_prompt):
    lp = torch.log_softmax(logits.float() if logits.dtype != torch.float64 else logits, dim=-1)
    tgt = torch.tensor(ids[1:], dtype=torch.long)
    tok = lp[:-1].gather(1, tgt[:, None])[:, 0]
    return tok[n_prompt - 1:].sum()


class Runner:
    """Wraps one implementation: params() -> {name: leaf tensor}, logits1(ids), and a LoRA twin."""

    def __init__(self, impl, c, arch, mdir, W, Wref, LA):
        self.impl, self.c, self.arch = impl, c, arch
        if impl == "own":
            self.P = {k: torch.tensor(v) for k, v in W.items()}
            self.Pref = {k: torch.tensor(v) for k, v in Wref.items()}
            self.LA = {k: torch.tensor(v) for k, v in LA.items()}
        else:
            import transformers
            def load(d):
                # eager: the reference attention (sdpa/flash would drop Gemma 2's soft-cap)
                return transformers.AutoModelForCausalLM.from_pretrained(
                    d, dtype=torch.float32, attn_implementation="eager")
            self.hf, self.hf_ref = load(mdir), load(mdir + "-ref")
            self.hf.eval()
            self.hf_ref.eval()
            self.LA = {k: torch.tensor(v) for k, v in LA.items()}

    # named trainable parameters of the base model, in HF names (tied head listed once)
    def params(self):
        if self.impl == "own":
            return self.P
        return dict(self.hf.named_parameters())

    def logits(self, batch, which="policy"):
        if self.impl == "own":
            P = self.P if which == "policy" else self.Pref
            return OwnModel(self.c, self.arch, P).logits(batch)
        m = self.hf if which == "policy" else self.hf_ref
        return m(input_ids=torch.tensor(batch, dtype=torch.long)).logits

    def lora_logits(self, batch, LA):
        """LA: {peft in-memory name (…lora_A.default.weight): tensor}"""
        if self.impl == "own":
            saved = {k.replace(".default.weight", ".weight"): v for k, v in LA.items()}
            return OwnModel(self.c, self.arch, self.P, lora=saved).logits(batch)
        hooks = []
        scale = LORA_ALPHA / LORA_R
        mods = dict(self.hf.named_modules())
        for k in LA:
            if ".lora_A." not in k:
                continue
            mod = k[len("base_model.model."): k.index(".lora_A.")]
            A, B = LA[k], LA[k.replace(".lora_A.", ".lora_B.")]

            def hook(module, inp, out, A=A, B=B):
                return out + scale * F.linear(F.linear(inp[0], A), B)
            hooks.append(mods[mod].register_forward_hook(hook))
        try:
            return self.hf(input_ids=torch.tensor(batch, dtype=torch.long)).logits
        finally:
            for h in hooks:
                h.remove()


def lora_runtime_names(LA):
    return {k.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight"): v
            for k, v in LA.items()}


def compute_all(run, inp):
    """Returns (expected_json_sections, tensors)."""
    T = {}
    E = {}
    fw = inp["forward"]["input_ids"]
    with torch.no_grad():
        logits = run.logits(fw)
    T["forward.logits"] = logits.detach().numpy()
    E["forward"] = {"input_ids": fw}

    # greedy: argmax, each step one full forward of prompt + ids so far (no KV cache)
    prompt = inp["greedy"]["prompt_ids"]
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(GREEDY_NEW):
            lg = run.logits([seq])[0, -1]
            seq.append(int(torch.argmax(lg)))
    E["greedy"] = {"prompt_ids": prompt, "new_ids": seq[len(prompt):],
                   "note": "argmax; each step a full forward of prompt + ids so far (no KV cache)"}

    # SFT
    ids, n_prompt = inp["sft"]["input_ids"], inp["sft"]["n_prompt"]
    params = run.params()
    for p in params.values():
        p.requires_grad_(True)
        p.grad = None
    loss = sft_loss_from_logits(run.logits([ids])[0], ids, n_prompt)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in params.items()}
    gnorm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values())).item()
    for k, g in grads.items():
        T["sft.grad." + k] = g.numpy()
    E["sft"] = {"input_ids": ids, "n_prompt": n_prompt, "loss": loss.item(),
                "note": "labels are the inputs with the first n_prompt positions masked; HF shifts inside",
                "grad_norm_before_clip": gnorm}

    # AdamW: one step after clipping to global norm 1.0, from the saved weights
    names = sorted(params)
    work = [params[k].detach().clone().requires_grad_(True) for k in names]
    for w, k in zip(work, names):
        w.grad = grads[k].clone()
    torch.nn.utils.clip_grad_norm_(work, CLIP_NORM)
    opt = torch.optim.AdamW(work, **ADAMW)
    opt.step()
    for w, k in zip(work, names):
        T["adamw1." + k] = w.detach().numpy()
    E["adamw"] = {"lr": ADAMW["lr"], "betas": list(ADAMW["betas"]), "eps": ADAMW["eps"],
                  "weight_decay": ADAMW["weight_decay"], "clip_grad_norm": CLIP_NORM,
                  "note": "adamw1.* = parameters after one step from the saved weights"}

    # DPO
    for p in params.values():
        p.grad = None
    pairs, losses = [], []
    for pr in inp["dpo"]["pairs"]:
        n = len(pr["prompt_ids"])
        pc = response_logp(run.logits([pr["chosen_ids"]])[0], pr["chosen_ids"], n)
        pj = response_logp(run.logits([pr["rejected_ids"]])[0], pr["rejected_ids"], n)
        with torch.no_grad():
            rc = response_logp(run.logits([pr["chosen_ids"]], "ref")[0], pr["chosen_ids"], n)
            rj = response_logp(run.logits([pr["rejected_ids"]], "ref")[0], pr["rejected_ids"], n)
        l = -F.logsigmoid(DPO_BETA * ((pc - rc) - (pj - rj)))
        losses.append(l)
        pairs.append({"prompt_ids": pr["prompt_ids"], "chosen_ids": pr["chosen_ids"],
                      "rejected_ids": pr["rejected_ids"], "policy_chosen_logp": pc.item(),
                      "policy_rejected_logp": pj.item(), "ref_chosen_logp": rc.item(),
                      "ref_rejected_logp": rj.item(), "loss": l.item(),
                      "reward_chosen": DPO_BETA * (pc - rc).item(),
                      "reward_rejected": DPO_BETA * (pj - rj).item()})
    mean = torch.stack(losses).mean()
    mean.backward()
    for k, p in params.items():
        T["dpo.grad." + k] = p.grad.detach().numpy().copy()
        p.grad = None
        p.requires_grad_(False)
    E["dpo"] = {"beta": DPO_BETA, "loss_type": "sigmoid", "mean_loss": mean.item(), "pairs": pairs,
                "note": "logp = sum over response tokens (after the prompt) of log-softmax; loss averaged over pairs; dpo.grad.* = d mean_loss / d policy param"}

    # LoRA
    LA = {k: v.clone().requires_grad_(True) for k, v in lora_runtime_names(run.LA).items()}
    with torch.no_grad():
        T["lora.forward.logits"] = run.lora_logits(fw, LA).detach().numpy()
    ll = sft_loss_from_logits(run.lora_logits([ids], LA)[0], ids, n_prompt)
    ll.backward()
    for k, v in LA.items():
        T["lora.grad." + k] = v.grad.detach().numpy()
    E["lora"] = {"r": LORA_R, "alpha": LORA_ALPHA, "loss": ll.item(),
                 "target_modules": lora_targets(run.arch),
                 "note": "lora.grad.* = SFT-loss gradients of the adapter weights (peft names)"}
    return E, T


# ---------------------------------------------------------------------------------------------
# self-checks (own implementation)
# ---------------------------------------------------------------------------------------------


def self_check(c, arch, W, inp, E, T):
    report = {}
    P64 = {k: torch.tensor(v, dtype=torch.float64) for k, v in W.items()}
    fw = inp["forward"]["input_ids"]
    # 1. slow per-query attention (explicit allowed-key lists) in float64 vs the fast path
    fast = OwnModel(c, arch, P64).logits1(fw[0][:40])
    slow = OwnModel(c, arch, P64, slow=True).logits1(fw[0][:40])
    d = (fast - slow).abs().max().item()
    # the fast path's cos/sin tables are float32 (as transformers makes them), the slow rope float64
    assert d < 1e-4, ("slow attention/rope path disagrees", arch, d)
    f32 = torch.tensor(T["forward.logits"][0]).double()
    d32 = (f32 - fast).abs().max().item()
    assert d32 < 2e-3, ("float32 forward vs float64", arch, d32)
    report["slow_path_max_abs_diff_f64"] = d
    report["forward_f32_vs_f64_max_abs_diff"] = d32
    # 2. SFT loss recomputed from the forward logits in float64 numpy
    ids, n = inp["sft"]["input_ids"], inp["sft"]["n_prompt"]
    with torch.no_grad():
        lg = OwnModel(c, arch, P64).logits1(ids).numpy()
    lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
    nll = [lse[t - 1] - lg[t - 1, ids[t]] for t in range(n, len(ids))]
    l64 = float(np.mean(nll))
    assert abs(l64 - E["sft"]["loss"]) < 1e-4 * max(1.0, abs(l64)), ("sft loss", arch, l64, E["sft"]["loss"])
    report["sft_loss_f64"] = l64
    # 3. greedy: one forward of prompt + new ids; its argmaxes must be the new ids
    pr, new = E["greedy"]["prompt_ids"], E["greedy"]["new_ids"]
    with torch.no_grad():
        lg = OwnModel(c, arch, {k: torch.tensor(v) for k, v in W.items()}).logits1(pr + new[:-1])
    am = [int(x) for x in lg[len(pr) - 1:].argmax(-1)]
    if arch == "phi3" and len(pr) <= c["original_max_position_embeddings"] < len(pr) + len(new) - 1:
        pass  # the LongRoPE regime differs between the steps and the single pass
    else:
        assert am == new, ("greedy vs one forward", arch, am, new)
    top2 = torch.topk(lg[len(pr) - 1:], 2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1]).min().item()
    # a near-tie would let float32 rounding in another engine pick a different id
    assert margin > 1e-3, ("greedy near-tie", arch, margin)
    report["greedy_min_top2_margin"] = margin
    # 4. finite differences in float64 of a few SFT-loss gradients
    names = sorted(P64)
    picks = []
    emb_row = ids[n + 3]
    picks.append(("model.embed_tokens.weight", (emb_row, 5)))
    for nm in names:
        if ".0.self_attn." in nm and ("q_proj" in nm or "qkv_proj" in nm):
            picks.append((nm, (3, 7)))
        if ".1.mlp.down_proj" in nm:
            picks.append((nm, (2, 11)))
        if nm.endswith("norm.weight") and ".0." in nm and len(picks) < 5:
            picks.append((nm, (1,)))
    Pg = {k: v.clone().requires_grad_(True) for k, v in P64.items()}
    loss = sft_loss_from_logits(OwnModel(c, arch, Pg).logits1(ids), ids, n)
    loss.backward()
    fd = []
    h = 1e-6
    for nm, idx in picks:
        def f(delta):
            Q = dict(P64)
            t = P64[nm].clone()
            t[idx] += delta
            Q[nm] = t
            with torch.no_grad():
                return sft_loss_from_logits(OwnModel(c, arch, Q).logits1(ids), ids, n).item()
        num = (f(h) - f(-h)) / (2 * h)
        ana = Pg[nm].grad[idx].item()
        rel = abs(num - ana) / max(1e-8, abs(num) + abs(ana))
        assert rel < 1e-5 or abs(num - ana) < 1e-9, ("finite difference", arch, nm, idx, num, ana)
        g32 = float(T["sft.grad." + nm][idx])
        assert abs(g32 - ana) <= 1e-3 * abs(ana) + 1e-6, ("f32 grad vs f64", arch, nm, g32, ana)
        fd.append({"param": nm, "index": list(idx), "autograd_f64": ana, "finite_diff_f64": num})
    report["finite_differences"] = fd
    return report


QUIRKS = {
    "olmo": [("clip_qkv", "no clamp of q/k/v"), ("layernorm", "RMS norm instead of mean-centred LayerNorm"),
             ("untied", "head tied to the embedding")],
    "olmo2": [("qk_norm", "no q/k norm"), ("qk_norm_per_head", "q/k norm per head instead of whole projection"),
              ("post_norm", "norms as pre-norms (llama placement)")],
    "gemma2": [("embed_scale", "no x·sqrt(hidden)"), ("one_plus_w", "w instead of (1+w) in RMSNorm"),
               ("gelu_tanh", "exact erf GELU instead of tanh approximation"),
               ("query_pre_attn_scalar", "scale head_dim^-1/2"), ("attn_softcap", "no attention soft-cap"),
               ("final_softcap", "no final logit soft-cap"), ("sliding", "no sliding window"),
               ("window_le", "window rule i-j <= W instead of < W"), ("sandwich", "no post-attention/post-ffw norms")],
    "gemma3": [("qk_norm", "no per-head q/k norm"), ("one_plus_w", "w instead of (1+w)"),
               ("local_base", "rope_theta on local layers"), ("rope_linear", "no linear factor on global layers"),
               ("sliding", "no sliding window"), ("window_le", "window rule i-j <= W"),
               ("pattern_shift", "layer l sliding iff l % P != 0"), ("embed_scale", "no x·sqrt(hidden)"),
               ("query_pre_attn_scalar", "scale head_dim^-1/2")],
    "phi3": [("longrope", "plain RoPE (no factors, no attention factor)"),
             ("long_short_swap", "the other factor list"),
             ("attention_factor", "cos/sin not scaled"), ("sliding", "no sliding window"),
             ("window_le", "window rule i-j <= W"), ("gate_up_order", "up first in gate_up_proj"),
             ("qkv_order", "k before q in qkv_proj")],
}


def quirk_bite(c, arch, W, inp):
    P = {k: torch.tensor(v) for k, v in W.items()}
    fw = inp["forward"]["input_ids"]
    sft = inp["sft"]["input_ids"]
    with torch.no_grad():
        base_f = OwnModel(c, arch, P).logits(fw)
        base_s = OwnModel(c, arch, P).logits1(sft)
        rows = []
        for q, what in QUIRKS[arch]:
            lf = OwnModel(c, arch, P, off={q}).logits(fw)
            ls = OwnModel(c, arch, P, off={q}).logits1(sft)
            rows.append({"quirk": q, "removed": what,
                         "forward_max_abs": round((lf - base_f).abs().max().item(), 4),
                         "sft_max_abs": round((ls - base_s).abs().max().item(), 4),
                         "logit_std": round(base_s.std().item(), 3)})
    return rows


def clamp_share(c, W, inp):
    """Fraction of OLMo's q/k/v entries the clip changes, over the SFT sequence (layer 0)."""
    P = {k: torch.tensor(v) for k, v in W.items()}
    x = P["model.embed_tokens.weight"][torch.tensor(inp["sft"]["input_ids"])]
    a = F.layer_norm(x, (x.shape[-1],), None, None, eps=1e-5)
    tot = hit = 0
    for n in ("q_proj", "k_proj", "v_proj"):
        y = a @ P["model.layers.0.self_attn.%s.weight" % n].t()
        tot += y.numel()
        hit += (y.abs() > c["clip_qkv"]).sum().item()
    return hit / tot


# ---------------------------------------------------------------------------------------------
# writing the directories
# ---------------------------------------------------------------------------------------------


def write_model_dir(d, c, W, tokdir):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        g = {"_from_model_config": True, "bos_token_id": c["bos_token_id"], "eos_token_id": c["eos_token_id"],
             "pad_token_id": c["pad_token_id"], "transformers_version": c["transformers_version"]}
        if c.get("cache_implementation"):
            g["cache_implementation"] = c["cache_implementation"]
        json.dump(g, f, indent=2)
        f.write("\n")
    st_write(os.path.join(d, "model.safetensors"), W, {"format": "pt"})
    for fn in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copyfile(os.path.join(tokdir, fn), os.path.join(d, fn))


def write_lora_dir(d, c, arch, LA, base_rel):
    os.makedirs(d, exist_ok=True)
    cfg = {"base_model_name_or_path": base_rel, "bias": "none", "fan_in_fan_out": False,
           "inference_mode": True, "init_lora_weights": True, "lora_alpha": LORA_ALPHA, "lora_dropout": 0.0,
           "modules_to_save": None, "peft_type": "LORA", "r": LORA_R, "target_modules": lora_targets(arch),
           "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False,
           "auto_mapping": None}
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    st_write(os.path.join(d, "adapter_model.safetensors"), LA, {"format": "pt"})


def arch_seed(arch):
    return 1000 + ARCHS.index(arch) * 17


def build(arch):
    c = make_config(arch)
    W = make_weights(c, arch, arch_seed(arch))
    Wref = perturb(W, arch_seed(arch) + 1)
    LA = make_lora(c, arch, arch_seed(arch) + 2)
    return c, W, Wref, LA


def install_fake_transformers():
    """--fake-transformers: exercises the --impl transformers plumbing on a machine without
    transformers (loading the directories, named_parameters, LoRA forward hooks on nn.Linear
    modules) with a stand-in module whose models wrap OwnModel. Its numbers must equal --impl own's
    to float32 rounding; it says nothing about transformers itself."""
    import types
    arch_of = {"olmo": "olmo", "olmo2": "olmo2", "gemma2": "gemma2", "gemma3_text": "gemma3", "phi3": "phi3"}

    class Out:
        def __init__(self, logits):
            self.logits = logits

    class Fake(torch.nn.Module):
        def __init__(self, d):
            super().__init__()
            with open(os.path.join(d, "config.json")) as f:
                self.c = json.load(f)
            self.arch = arch_of[self.c["model_type"]]
            self.lins = {}
            for name, a in sorted(st_read(os.path.join(d, "model.safetensors")).items()):
                parts = name[: -len(".weight")].split(".")
                parent = self
                for q in parts[:-1]:
                    if q not in parent._modules:
                        parent.add_module(q, torch.nn.Module())
                    parent = parent._modules[q]
                if a.ndim == 2 and name not in ("model.embed_tokens.weight", "lm_head.weight"):
                    m = torch.nn.Linear(a.shape[1], a.shape[0], bias=False)
                    self.lins[name[: -len(".weight")]] = m
                else:
                    m = torch.nn.Module()
                m.weight = torch.nn.Parameter(torch.tensor(a))
                parent.add_module(parts[-1], m)

        def forward(self, input_ids):
            P = dict(self.named_parameters())
            return Out(OwnModel(self.c, self.arch, P, modules=self.lins).logits(input_ids.tolist()))

    class Auto:
        @staticmethod
        def from_pretrained(d, dtype=None, attn_implementation=None):
            return Fake(d)

    mod = types.ModuleType("transformers")
    mod.__version__ = "fake (OwnModel behind nn.Modules)"
    mod.AutoModelForCausalLM = Auto
    sys.modules["transformers"] = mod


def compare_with_previous(mdir, E, T):
    """Before the transformers run overwrites the own-reference gold: how far apart they are."""
    try:
        with open(os.path.join(mdir, "expected.json")) as f:
            E0 = json.load(f)
        T0 = st_read(os.path.join(mdir, "expected.safetensors"))
    except OSError:
        return None
    rep = {"previous_impl": E0.get("generator", {}).get("impl"),
           "greedy_same": E0["greedy"]["new_ids"] == E["greedy"]["new_ids"],
           "scalars": {k: [E0[k0][k1], E[k0][k1]] for k, (k0, k1) in {
               "sft.loss": ("sft", "loss"), "sft.grad_norm": ("sft", "grad_norm_before_clip"),
               "dpo.mean_loss": ("dpo", "mean_loss"), "lora.loss": ("lora", "loss")}.items()}}
    groups = {}
    for k, v in T.items():
        g = k.split(".")[0] + ("." + k.split(".")[1] if k.split(".")[1] in ("grad", "forward") else "")
        if k not in T0 or T0[k].shape != v.shape:
            groups.setdefault(g, {"missing_or_reshaped": []})["missing_or_reshaped"].append(k)
            continue
        d = float(np.abs(T0[k] - v).max())
        ref = float(np.abs(v).max()) or 1.0
        cur = groups.setdefault(g, {"max_abs": 0.0, "max_rel_to_max": 0.0})
        if "max_abs" in cur:
            cur["max_abs"] = max(cur["max_abs"], d)
            cur["max_rel_to_max"] = max(cur["max_rel_to_max"], d / ref)
    rep["tensors"] = groups
    return rep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["own", "transformers"], required=True)
    ap.add_argument("--out", default=os.path.join(DATA, "models"))
    ap.add_argument("--arch", default=",".join(ARCHS))
    ap.add_argument("--tokenizer", default="/work/shared/fixtures/tokenizers/chatml")
    ap.add_argument("--inputs", default=os.path.join(DATA, "inputs.json"))
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--fake-transformers", action="store_true",
                    help="plumbing check of --impl transformers without transformers (see install_fake_transformers)")
    a = ap.parse_args()
    if a.fake_transformers:
        install_fake_transformers()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    with open(a.inputs) as f:
        inp = json.load(f)
    gen = {"impl": a.impl, "torch": torch.__version__, "script": "scripts/arch_gold.py"}
    if a.impl == "transformers":
        import transformers
        gen["transformers"] = transformers.__version__
        gen["lora"] = "forward hooks adding (alpha/r)*B(A(x)) to the target Linear outputs (peft LoRA, dropout 0)"
    quirks_path = os.path.join(os.path.dirname(a.out.rstrip("/")), "quirks.json")
    quirks = {}
    if os.path.exists(quirks_path):
        with open(quirks_path) as f:
            quirks = json.load(f)
    for arch in a.arch.split(","):
        c, W, Wref, LA = build(arch)
        mdir = os.path.join(a.out, "tiny-" + arch)
        if a.impl == "own":
            write_model_dir(mdir, c, W, a.tokenizer)
            write_model_dir(mdir + "-ref", c, Wref, a.tokenizer)
            write_lora_dir(mdir + "-lora", c, arch, LA, "../tiny-" + arch)
        else:
            for d, w in ((mdir, W), (mdir + "-ref", Wref)):
                have = st_read(os.path.join(d, "model.safetensors"))
                assert sorted(have) == sorted(w) and all(np.array_equal(have[k], w[k]) for k in w), \
                    d + ": weights differ from the seeded ones; regenerate with --impl own first"
        run = Runner(a.impl, c, arch, mdir, W, Wref, LA)
        E, T = compute_all(run, inp)
        out = {"arch": arch, "config": c, "generator": gen}
        out.update(E)
        if a.impl == "transformers":
            vs = compare_with_previous(mdir, E, T)
            if vs is not None:
                out["vs_previous"] = vs
                print(json.dumps({arch: vs}, indent=1), flush=True)
        if a.impl == "own" and not a.no_check:
            out["self_check"] = self_check(c, arch, W, inp, E, T)
            quirks[arch] = {"rows": quirk_bite(c, arch, W, inp)}
            if arch == "olmo":
                quirks[arch]["clip_qkv_share_clamped_layer0"] = round(clamp_share(c, W, inp), 3)
        with open(os.path.join(mdir, "expected.json"), "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        st_write(os.path.join(mdir, "expected.safetensors"), T, {"format": "pt"})
        print("%s: forward %s sft loss %.6f dpo %.6f lora %.6f greedy %s" % (
            arch, list(T["forward.logits"].shape), E["sft"]["loss"], E["dpo"]["mean_loss"],
            E["lora"]["loss"], E["greedy"]["new_ids"]), flush=True)
    if a.impl == "own" and not a.no_check:
        with open(quirks_path, "w") as f:
            json.dump(quirks, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
