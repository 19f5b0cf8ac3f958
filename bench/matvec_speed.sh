#!/bin/sh
# Decode-path matrix-vector speed per weight type (GB/s of weights), out of
# cache, on 1 and 2 threads; then in cache (compute rate) on 1 thread.
# Usage: bench/matvec_speed.sh [ROWS COLS]
set -e
cd "$(dirname "$0")/.."
make -j2 build/bench/matvec_speed >/dev/null
uptime
for t in 1 2; do build/bench/matvec_speed "$t" "${1:-8192}" "${2:-2048}"; done
echo "in cache:"
build/bench/matvec_speed 1 256 "${2:-2048}" 1
