#!/usr/bin/python3
"""tests/data/arch/phi3-partial: tiny-phi3 with partial_rotary_factor 0.5 and its float64 reference.

Run with Debian's /usr/bin/python3 (torch 1.13, numpy). The weights are tiny-phi3's (model.safetensors
is a link to them); config.json is tiny-phi3's with partial_rotary_factor 0.5, so RoPE turns the
first 4 of each head's 8 dims (transformers: rotary_ndims = int(head_dim * partial_rotary_factor);
q_rot, q_pass = q[..., :4], q[..., 4:]; rotate_half over q_rot; inv_freq over the rotary dims:
1 / (ext[i] * theta^(2i/4)), i = 0, 1, so LongRoPE's factor lists have 2 entries) and the other 4
pass through. Written from tests/data/arch/README.md's Phi-3 rules (own reference, not
transformers'). expected.safetensors holds, for ids[t] = (37 t + 11) mod 1000, t < 24 (24 <= 64:
short factors):
  logits                  [24, 1027] float64 forward
  grad.<param>            d S / d param for S = sum_tv logits[t, v] * R[t, v],
                          R[t, v] = sin(0.37 t + 0.11 v) (the test builds the same R as float32)
"""
import json, math, os, struct
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "tests", "data", "arch", "models", "tiny-phi3")
DST = os.path.join(HERE, "..", "tests", "data", "arch", "phi3-partial")
T = 24
GRADS = ["model.layers.0.self_attn.qkv_proj.weight",
         "model.layers.1.self_attn.qkv_proj.weight", "model.layers.0.input_layernorm.weight"]


def st_read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        body = f.read()
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32"
        a, b = v["data_offsets"]
        out[k] = torch.tensor(np.frombuffer(body[a:b], dtype="<f4").reshape(v["shape"]).astype(np.float64))
    return out


def st_write(path, tensors):
    head, off, blobs = {}, 0, []
    for k in sorted(tensors):
        b = np.ascontiguousarray(tensors[k].detach().numpy().astype("<f8")).tobytes()
        head[k] = {"dtype": "F64", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def rms(x, w, eps):
    return w * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat((-x[..., d:], x[..., :d]), dim=-1)


def forward(c, W, ids):
    H, KV, hd = c["num_attention_heads"], c["num_key_value_heads"], c["hidden_size"] // c["num_attention_heads"]
    rot = int(hd * c["partial_rotary_factor"])
    I, eps, L = c["intermediate_size"], c["rms_norm_eps"], len(ids)
    rs, omax = c["rope_scaling"], c["original_max_position_embeddings"]
    ext = rs["long_factor"] if L > omax else rs["short_factor"]
    inv = torch.tensor([1.0 / (ext[i] * c["rope_theta"] ** (2.0 * i / rot)) for i in range(rot // 2)],
                       dtype=torch.float64)
    s = c["max_position_embeddings"] / omax
    amp = math.sqrt(1 + math.log(s) / math.log(omax)) if s > 1 else 1.0
    fr = torch.arange(L, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = torch.cat((fr, fr), -1).cos() * amp, torch.cat((fr, fr), -1).sin() * amp

    def rope(x):  # [heads, L, hd]
        xr, xp = x[..., :rot], x[..., rot:]
        return torch.cat((xr * cos + rotate_half(xr) * sin, xp), -1)

    win = c.get("sliding_window") or L + 1
    i_, j_ = torch.arange(L)[:, None], torch.arange(L)[None, :]
    allowed = (j_ <= i_) & (i_ - j_ < win)
    x = W["model.embed_tokens.weight"][ids]
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        a = rms(x, W[p + "input_layernorm.weight"], eps)
        qkv = a @ W[p + "self_attn.qkv_proj.weight"].T
        q = qkv[:, :H * hd].reshape(L, H, hd).transpose(0, 1)
        k = qkv[:, H * hd:(H + KV) * hd].reshape(L, KV, hd).transpose(0, 1)
        v = qkv[:, (H + KV) * hd:].reshape(L, KV, hd).transpose(0, 1)
        q, k = rope(q), rope(k)
        k, v = k.repeat_interleave(H // KV, 0), v.repeat_interleave(H // KV, 0)
        sc = (q @ k.transpose(1, 2)) * hd ** -0.5
        sc = sc.masked_fill(~allowed, float("-inf")).softmax(-1)
        o = (sc @ v).transpose(0, 1).reshape(L, H * hd)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        a = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        gu = a @ W[p + "mlp.gate_up_proj.weight"].T
        x = x + (gu[:, I:] * torch.nn.functional.silu(gu[:, :I])) @ W[p + "mlp.down_proj.weight"].T
    return rms(x, W["model.norm.weight"], eps) @ W["lm_head.weight"].T


def main():
    with open(os.path.join(SRC, "config.json")) as f:
        c = json.load(f)
    c["partial_rotary_factor"] = 0.5
    c["rope_scaling"] = {"type": "longrope", "short_factor": [1.0, 2.5], "long_factor": [1.5, 12.0]}
    with open(os.path.join(DST, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")
    W = st_read(os.path.join(SRC, "model.safetensors"))
    for k in GRADS:
        W[k].requires_grad_(True)
    ids = torch.tensor([(37 * t + 11) % 1000 for t in range(T)])
    logits = forward(c, W, ids)
    tt, vv = torch.meshgrid(torch.arange(T, dtype=torch.float64),
                            torch.arange(c["vocab_size"], dtype=torch.float64), indexing="ij")
    R = torch.sin(0.37 * tt + 0.11 * vv).float().double()  # the test's float32 R
    (logits * R).sum().backward()
    out = {"logits": logits.detach()}
    for k in GRADS:
        out["grad." + k] = W[k].grad
    # the rule bites: RoPE over the whole head moves the logits by this much
    c1 = dict(c, partial_rotary_factor=1.0,
              rope_scaling={"type": "longrope", "short_factor": [1.0, 1.25, 2.5, 4.0],
                            "long_factor": [1.5, 4.0, 12.0, 40.0]})
    with torch.no_grad():
        print("max |logits(full rotary) - logits(partial)| =", (forward(c1, W, ids) - logits).abs().max().item())
    st_write(os.path.join(DST, "expected.safetensors"), out)


if __name__ == "__main__":
    main()
