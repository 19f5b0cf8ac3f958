#!/bin/sh
# Decode-path matrix-vector speed per weight type (GB/s of weights), out of
# cache, on 1 and 2 threads; then in cache (compute rate) on 1 thread.
# Usage: bench/matvec_speed.sh [ROWS COLS]
set -e
cd "$(dirname "$0")/.."
make -j2 build/libaloe.a >/dev/null
cc -std=c11 -O2 -march=native -D_GNU_SOURCE -Isrc bench/matvec_speed.c build/libaloe.a \
    $(pkg-config --cflags --libs openblas) -lm -pthread -o build/matvec_speed
uptime
for t in 1 2; do build/matvec_speed "$t" "${1:-8192}" "${2:-2048}"; done
echo "in cache:"
build/matvec_speed 1 256 "${2:-2048}" 1
