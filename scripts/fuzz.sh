#!/bin/sh
# Builds the libFuzzer harnesses in tests/fuzz/ with clang (ASan + UBSan)
# and runs each for N seconds (default 60), seeding the corpora from the
# shared fixtures when they are present. Usage: scripts/fuzz.sh [SECONDS]
# Crashing inputs are written to build/fuzz/crash-<harness>-*.
set -e
cd "$(dirname "$0")/.."
SECS=${1:-60}
OUT=build/fuzz
SHARED=${ALOE_SHARED:-$(pwd)/../shared}
CC=${FUZZ_CC:-clang}
mkdir -p "$OUT"
SRCS="src/base/err.c src/base/mem.c src/base/fileio.c src/base/log.c $(ls src/formats/*.c)"
FLAGS="-std=c11 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
LIBS="$(pkg-config --cflags --libs jansson) -lm -pthread"

# seeds
mkdir -p "$OUT/corpus-gguf" "$OUT/corpus-safetensors"
for f in "$SHARED"/fixtures/gguf/tiny-qwen2-q8_0.gguf "$SHARED"/fixtures/gguf/tiny-llama3-f16.gguf; do
    [ -f "$f" ] && cp "$f" "$OUT/corpus-gguf/" || true
done
for f in "$SHARED"/fixtures/models/tiny-bert-st/model.safetensors; do
    [ -f "$f" ] && cp "$f" "$OUT/corpus-safetensors/" || true
done
printf '\020\000\000\000\000\000\000\000{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}    \000\000\200\077' \
    > "$OUT/corpus-safetensors/small.safetensors" 2>/dev/null || true

rc=0
for h in gguf safetensors; do
    echo "== fuzz_$h: building"
    $CC $FLAGS -o "$OUT/fuzz_$h" "tests/fuzz/fuzz_$h.c" $SRCS $LIBS
    echo "== fuzz_$h: running for ${SECS}s"
    if ! "$OUT/fuzz_$h" -max_total_time="$SECS" -max_len=262144 -rss_limit_mb=2048 \
        -artifact_prefix="$OUT/crash-$h-" "$OUT/corpus-$h" 2>"$OUT/fuzz_$h.log"; then
        echo "fuzz_$h FOUND A CRASH: see $OUT/fuzz_$h.log and $OUT/crash-$h-*"
        tail -40 "$OUT/fuzz_$h.log"
        rc=1
    else
        tail -2 "$OUT/fuzz_$h.log"
    fi
done
exit $rc
