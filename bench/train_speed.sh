#!/bin/sh
# Training tokens/s of aloe on a Qwen2.5-0.5B-shaped model (random weights),
# sequence 512, full fine-tuning and LoRA r=16 over a float32 and over a
# bf16-frozen base (each mode in its own process,
# so the peak memory is that mode's). Usage: bench/train_speed.sh [SEQ] [STEPS] [THREADS]
set -e
cd "$(dirname "$0")/.."
make -j2 build/bench/train_speed >/dev/null
for mode in full lora lora-bf16; do build/bench/train_speed "$mode" "${1:-512}" "${2:-2}" "${3:-0}"; done
