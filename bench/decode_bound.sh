#!/bin/sh
# Decode (and prefill) speed of every benchmark shape and weight type, with
# the memory bound aloe speed measures during the decode (reading the
# weights a step reads, every 8 steps): the share of the bound reached is the
# figure that holds on a shared host, whose bandwidth moves by 2x within
# minutes; tokens/s are given too. Usage: bench/decode_bound.sh [PP TG REPS]
set -e
cd "$(dirname "$0")/.."
make -j2 build/aloe >/dev/null
pp=${1:-512} tg=${2:-128} reps=${3:-1}
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| shape | type | pp$pp tok/s | tg$tg tok/s | read GB/s (during tg) | decode bound tok/s | reached |"
echo "|---|---|---:|---:|---:|---:|---:|"
for cfg in "qwen2.5-0.5b q8_0" "qwen2.5-0.5b q4_0" "qwen2.5-0.5b bf16" "qwen2.5-0.5b f32" "llama-3.2-1b q8_0" "llama-3.2-1b q4_0" \
    "llama-3.2-1b q4_k" "llama-3.2-1b q6_k"; do
    set -- $cfg
    build/aloe speed --shape "$1" --type "$2" -p "$pp" -n "$tg" -r "$reps" -t 2 --json | tail -1 |
        python3 -c 'import json,sys; j=json.load(sys.stdin); print("| %s | %s | %.1f | %.1f | %.1f | %.1f | %.0f%% |" % (j["model"], j["type"], j["prefill_tps"], j["decode_tps"], j["stream_gbps"], j["decode_bound_tps"], 100*j["decode_tps"]/j["decode_bound_tps"]))'
done
