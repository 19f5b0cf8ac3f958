#!/bin/sh
# bf16 matmuls for training, aloe against PyTorch CPU in the same run, two
# parts alternating aloe and PyTorch ROUNDS times (indicative on a shared
# machine):
#  1. gemm: the linear layers of a Qwen2.5-0.5B-shaped layer (T tokens),
#     forward and backward, f32 and bf16 products with f32 accumulation --
#     aloe's kernels/gemm_bf16.h against OpenBLAS sgemm
#     (build/bench/gemm_bf16) and torch.autocast("cpu", dtype=torch.bfloat16)
#     against torch f32 (bench/train_bf16.py);
#  2. steps: whole SFT steps (forward, backward, clipping, AdamW) of the
#     Qwen2.5-0.5B shape cut to LAYERS layers, full fine-tuning and LoRA
#     r=16: build/bench/train_speed with ALOE_MATMUL=f32|bf16 (aloe train
#     --matmul) against bench/train_bf16.py step (train_pytorch.py's model,
#     its forward under autocast for bf16).
# PyTorch is Debian's python3-torch, run with /usr/bin/python3.
# Usage: bench/train_bf16.sh [T] [THREADS] [ROUNDS] [PARTS] [LAYERS] [STEPS]
# (PARTS: gemm, steps or both, the default "gemm steps"; LAYERS 4, STEPS 2)
set -e
cd "$(dirname "$0")/.."
make -j2 build/bench/gemm_bf16 build/bench/train_speed >/dev/null
T=${1:-512}
THREADS=${2:-2}
ROUNDS=${3:-3}
PARTS=${4:-"gemm steps"}
LAYERS=${5:-4}
STEPS=${6:-2}
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
     "avx512_bf16: $(grep -q avx512_bf16 /proc/cpuinfo && echo yes || echo no), amx_bf16: $(grep -q amx_bf16 /proc/cpuinfo && echo yes || echo no)"
i=1
while [ "$i" -le "$ROUNDS" ]; do
    for part in $PARTS; do
        echo "== $part round $i, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
        if [ "$part" = gemm ]; then
            printf 'aloe    '; build/bench/gemm_bf16 "$T" "$THREADS" 5 | tail -1
            printf 'pytorch '; /usr/bin/python3 bench/train_bf16.py "$T" "$THREADS" 5 | tail -1
        else
            for mode in full lora; do
                for p in f32 bf16; do
                    printf 'aloe    %s ' "$p"; ALOE_MATMUL=$p build/bench/train_speed "$mode" "$T" "$STEPS" "$THREADS" "$LAYERS"
                    printf 'pytorch '; /usr/bin/python3 bench/train_bf16.py step "$mode" "$T" "$STEPS" "$THREADS" "$LAYERS" "$p"
                done
            done
        fi
    done
    i=$((i + 1))
done
