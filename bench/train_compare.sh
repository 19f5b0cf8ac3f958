#!/bin/sh
# aloe's trainer against PyTorch on CPU, side by side: a Qwen2.5-0.5B-shaped
# model (random weights, float32), one sequence of SEQ tokens per step,
# forward + backward + clipping + AdamW, full fine-tuning and LoRA r=16 on
# q,k,v,o,gate,up,down. Each run is its own process (so its peak RSS is its
# own), and aloe and PyTorch alternate within a mode, ROUNDS times, so that
# other jobs on the machine load both alike.
# Needs Debian's python3-torch and libopenblas0-pthread (apt-get install -y
# python3-torch libopenblas0-pthread), run with /usr/bin/python3.
# Usage: bench/train_compare.sh [SEQ] [STEPS] [THREADS] [ROUNDS] [MODES]
# (MODES: any of full, lora, lora-bf16 -- LoRA over aloe's base frozen in bf16)
set -e
cd "$(dirname "$0")/.."
SEQ=${1:-512} STEPS=${2:-2} THREADS=${3:-2} ROUNDS=${4:-1} MODES=${5:-"full lora"}
make -j2 build/bench/train_speed >/dev/null
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
for mode in $MODES; do
    r=0
    while [ "$r" -lt "$ROUNDS" ]; do
        echo "# $mode round $((r + 1)), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
        printf 'aloe    '; build/bench/train_speed "$mode" "$SEQ" "$STEPS" "$THREADS"
        # lora-bf16 (aloe's base frozen in bf16) runs against PyTorch's float32 LoRA
        printf 'pytorch '; /usr/bin/python3 bench/train_pytorch.py "${mode%-bf16}" "$SEQ" "$STEPS" "$THREADS"
        r=$((r + 1))
    done
done
