#!/usr/bin/python3
"""PyTorch CPU counterpart of bench/gemm_bf16.c: the linear layers of one
Qwen2.5-0.5B-shaped layer, forward and backward (dx and dW together, as
autograd runs them), float32 and under torch.autocast("cpu",
dtype=torch.bfloat16) (operands cast to bf16, bf16 outputs, f32 master
weights). Prints per shape the median milliseconds and a layer total (q, k,
v, o, gate, up, down). Usage: train_bf16.py [T] [THREADS] [RUNS]"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

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
