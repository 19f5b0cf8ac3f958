#!/usr/bin/python3
"""PyTorch CPU baseline for bench/train_speed.c: SFT steps of a
Qwen2.5-0.5B-shaped decoder (random weights, float32) over one sequence,
forward + backward + gradient clipping + one AdamW step per iteration, full
fine-tuning or LoRA r=16 on q,k,v,o,gate,up,down. The Qwen2 block is written
out by hand from torch.nn pieces (Debian packages neither transformers nor
peft for this torch), following transformers' Qwen2 modelling code: RMSNorm,
q/k/v with bias, o without, rotate-half RoPE (theta 1e6), GQA by repeating
the key/value heads, causal softmax attention, SwiGLU MLP, tied embeddings.

Usage: train_pytorch.py full|lora [SEQ] [STEPS] [THREADS]
Prints one line in train_speed's format: tokens/s (median step after a
warm-up step) and the peak resident memory of this process."""
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 896, 24, 14, 2, 64
INTER, VOCAB, EPS, THETA = 4864, 151936, 1e-6, 1000000.0


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + EPS))


class LoraLinear(nn.Module):
    """peft's LoRA: y = x Wᵀ + b + scale · (x Aᵀ) Bᵀ, W frozen, B zero."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(r, base.in_features).uniform_(-1, 1) / math.sqrt(base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.A.t()) @ self.B.t() * self.scale


def rope_tables(T):
    inv = 1.0 / (THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM))
    f = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    emb = torch.cat([f, f], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm = RMSNorm(HIDDEN)
        self.q_proj = nn.Linear(HIDDEN, HEADS * HEAD_DIM, bias=True)
        self.k_proj = nn.Linear(HIDDEN, KV_HEADS * HEAD_DIM, bias=True)
        self.v_proj = nn.Linear(HIDDEN, KV_HEADS * HEAD_DIM, bias=True)
        self.o_proj = nn.Linear(HEADS * HEAD_DIM, HIDDEN, bias=False)
        self.post_attention_layernorm = RMSNorm(HIDDEN)
        self.gate_proj = nn.Linear(HIDDEN, INTER, bias=False)
        self.up_proj = nn.Linear(HIDDEN, INTER, bias=False)
        self.down_proj = nn.Linear(INTER, HIDDEN, bias=False)

    def forward(self, x, cos, sin, mask):
        T = x.shape[0]
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(T, HEADS, HEAD_DIM).transpose(0, 1)
        k = self.k_proj(h).view(T, KV_HEADS, HEAD_DIM).transpose(0, 1)
        v = self.v_proj(h).view(T, KV_HEADS, HEAD_DIM).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(HEADS // KV_HEADS, dim=0)
        v = v.repeat_interleave(HEADS // KV_HEADS, dim=0)
        att = (q @ k.transpose(1, 2)) / math.sqrt(HEAD_DIM) + mask
        ctx = (att.softmax(-1) @ v).transpose(0, 1).reshape(T, HEADS * HEAD_DIM)
        x = x + self.o_proj(ctx)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Qwen2(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, HIDDEN)
        self.layers = nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = RMSNorm(HIDDEN)
        for m in self.modules():  # transformers' init: normal(0, 0.02), biases 0
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, ids, cos, sin, mask):
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x) @ self.embed_tokens.weight.t()  # tied head


def add_lora(model, r):
    for p in model.parameters():
        p.requires_grad_(False)
    for b in model.layers:
        for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
            setattr(b, name, LoraLinear(getattr(b, name), r, 2.0 * r))


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    T = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    threads = int(sys.argv[4]) if len(sys.argv) > 4 and int(sys.argv[4]) > 0 else 2
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = Qwen2()
    if mode == "lora":
        add_lora(model, 16)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    # The same tokens and targets as train_speed.c: the last 3/4 are trained on.
    ids = torch.tensor([(i * 2654435761) % (1 << 32) % VOCAB for i in range(T)], dtype=torch.long)
    labels = torch.cat([ids[1:], torch.tensor([-100])])
    labels[: T // 4 - 1] = -100
    cos, sin = rope_tables(T)
    mask = torch.full((T, T), float("-inf")).triu(1)
    times = []
    for s in range(steps + 1):  # step 0 warms up
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(ids, cos, sin, mask), labels, ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if s > 0:
            times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0 * 1024.0)
    n = sum(p.numel() for p in params)
    print(f"{mode:<5} seq {T} threads {torch.get_num_threads()}: {T / dt:.1f} tokens/s ({dt:.2f} s/step), "
          f"trainable {n}, peak RSS {rss:.2f} GiB [pytorch {torch.__version__}]", flush=True)


if __name__ == "__main__":
    main()
