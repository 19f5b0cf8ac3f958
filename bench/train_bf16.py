#!/usr/bin/python3
"""PyTorch CPU counterpart of bench/gemm_bf16.c: the linear layers of one
Qwen2.5-0.5B-shaped layer, forward and backward (dx and dW together, as
autograd runs them), float32 and under torch.autocast("cpu",
dtype=torch.bfloat16) (operands cast to bf16, bf16 outputs, f32 master
weights). Prints per shape the median milliseconds and a layer total (q, k,
v, o, gate, up, down). Usage: train_bf16.py [T] [THREADS] [RUNS]

`train_bf16.py step full|lora SEQ STEPS THREADS LAYERS f32|bf16`: whole SFT
steps instead (bench/train_pytorch.py's hand-written Qwen2.5-0.5B-shaped
model cut to LAYERS layers, forward + backward + clipping + AdamW), the
forward under autocast with bf16; one line in bench/train_speed.c's format."""
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def steps_main(argv):
    """bench/train_pytorch.py's steps, with the forward under autocast for bf16"""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import train_pytorch as tp

    mode, seq, steps, threads, layers, prec = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), int(argv[4]), argv[5]
    if layers > 0:
        tp.LAYERS = layers
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = tp.Qwen2()
    if mode == "lora":
        tp.add_lora(model, 16)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    ids = torch.tensor([(i * 2654435761) % (1 << 32) % tp.VOCAB for i in range(seq)], dtype=torch.long)
    labels = torch.cat([ids[1:], torch.tensor([-100])])
    labels[: seq // 4 - 1] = -100
    cos, sin = tp.rope_tables(seq)
    mask = torch.full((seq, seq), float("-inf")).triu(1)
    times = []
    for s in range(steps + 1):  # step 0 warms up
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
            logits = model(ids, cos, sin, mask)
        loss = F.cross_entropy(logits.float(), labels, ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if s > 0:
            times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    print(f"{mode:<5} {prec} seq {seq} threads {torch.get_num_threads()} layers {tp.LAYERS}: {seq / dt:.1f} tokens/s "
          f"({dt:.2f} s/step), loss {loss.item():.4f} [pytorch {torch.__version__}]", flush=True)


if len(sys.argv) > 1 and sys.argv[1] == "step":
    steps_main(sys.argv[2:])
    sys.exit(0)

T = int(sys.argv[1]) if len(sys.argv) > 1 else 512
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
SHAPES = [("q/o 896x896", 896, 896, 2), ("k/v 896x128", 896, 128, 2), ("gate/up 896x4864", 896, 4864, 2),
          ("down 4864x896", 4864, 896, 1)]
torch.set_num_threads(THREADS)
torch.manual_seed(0)


def timed(fwd_only, bf16, x, w, gy):
    """median seconds of forward, of backward"""
    f, b = [], []
    for r in range(RUNS + 1):
        x.grad = None
        w.grad = None
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = F.linear(x, w)
        t1 = time.perf_counter()
        y.backward(gy.to(y.dtype))
        t2 = time.perf_counter()
        if r:
            f.append(t1 - t0)
            b.append(t2 - t1)
    return statistics.median(f), statistics.median(b)


print(f"torch {torch.__version__} bench: T={T} threads={THREADS} runs={RUNS}")
total = [0.0, 0.0]
for name, fin, fout, count in SHAPES:
    x = torch.randn(T, fin, requires_grad=True)
    w = torch.randn(fout, fin, requires_grad=True)
    gy = torch.randn(T, fout)
    res = [timed(False, bf16, x, w, gy) for bf16 in (False, True)]
    for i in range(2):
        total[i] += (res[i][0] + res[i][1]) * count
    print(f"{name:<18} f32 fwd {res[0][0]*1e3:7.2f} ms bwd {res[0][1]*1e3:7.2f} ms   "
          f"bf16 fwd {res[1][0]*1e3:7.2f} ms bwd {res[1][1]*1e3:7.2f} ms")
print(f"layer total (7 linears, forward + backward): f32 {total[0]*1e3:.1f} ms, bf16 {total[1]*1e3:.1f} ms, "
      f"x{total[0]/total[1]:.2f}")
