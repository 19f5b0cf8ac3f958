#!/bin/sh
# bf16 matmuls for training, aloe against PyTorch CPU in the same run: the
# linear layers of a Qwen2.5-0.5B-shaped layer (T tokens), forward and
# backward, f32 and bf16 products with f32 accumulation -- aloe's
# kernels/gemm_bf16.h against OpenBLAS sgemm (build/bench/gemm_bf16) and
# torch.autocast("cpu", dtype=torch.bfloat16) against torch f32
# (bench/train_bf16.py, Debian's /usr/bin/python3 with torch), alternating
# ROUNDS times. Indicative on a shared machine.
# Usage: bench/train_bf16.sh [T] [THREADS] [ROUNDS]
set -e
cd "$(dirname "$0")/.."
make -j2 build/bench/gemm_bf16 >/dev/null
T=${1:-512}
THREADS=${2:-2}
ROUNDS=${3:-3}
i=1
while [ "$i" -le "$ROUNDS" ]; do
    echo "== round $i"
    build/bench/gemm_bf16 "$T" "$THREADS" 5 | tail -1
    /usr/bin/python3 bench/train_bf16.py "$T" "$THREADS" 5 | tail -1
    i=$((i + 1))
done
