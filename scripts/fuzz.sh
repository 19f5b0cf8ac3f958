#!/bin/sh
# Builds the libFuzzer harnesses in tests/fuzz/ with clang (ASan + UBSan)
# and runs each for N seconds (default 60), seeding the corpora from the
# repository's seeds and the shared fixtures when they are present.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]
# The harnesses are tests/fuzz/fuzz_NAME.c (all of them by default); each
# one's corpus starts from tests/data/fuzz/NAME/* plus the shared fixtures
# named below. Crashing inputs are written to build-fuzz/crash-<harness>-*.
# SECONDS 0 builds the library and the harnesses and runs none (CI builds
# on both cores, then runs them on one core while the other runs the tests).
# A harness is relinked only when its source or the library is newer.
set -e
cd "$(dirname "$0")/.."
SECS=${1:-60}
[ $# -gt 0 ] && shift
HARNESSES=${*:-$(for f in tests/fuzz/fuzz_*.c; do n=${f#tests/fuzz/fuzz_}; echo "${n%.c}"; done)}
OUT=build-fuzz
SHARED=${ALOE_SHARED:-$(pwd)/../shared}
nproc=$(nproc)
# The library, instrumented for coverage and sanitizers -- except the SIMD
# kernels (src/kernels/<level>/): no parser runs in them, the sanitizer
# tests cover them (gcc, ASan+UBSan), and clang took minutes per level to
# instrument their unrolled intrinsics (Makefile: KLEVEL_CFLAGS).
make -s -j"$nproc" BUILD="$OUT" CC=clang SAN=1 CFLAGS="-fsanitize=fuzzer-no-link" \
    KLEVEL_CFLAGS="-fno-sanitize=all" "$OUT/libaloe.a"
LIBS="$(pkg-config --libs libcurl jansson sqlite3 libpcre2-8 libutf8proc openblas) -lyaml -lm -pthread"
INC="$(pkg-config --cflags jansson libpcre2-8 libutf8proc openblas)"

seed() { # seed HARNESS FILE...
    d="$OUT/corpus-$1"; shift
    mkdir -p "$d"
    for f in "$@"; do [ -f "$f" ] && cp "$f" "$d/" || true; done
}
seed gguf tests/data/formats/gguf-numel-overflow.gguf "$SHARED"/fixtures/gguf/tiny-qwen2-q8_0.gguf "$SHARED"/fixtures/gguf/tiny-llama3-f16.gguf
seed safetensors "$SHARED"/fixtures/models/tiny-bert-st/model.safetensors
seed tokenizer_json tests/data/tok/fuzz-seeds/*
seed jsonl "$SHARED"/aloe-data/personality_eval.jsonl
seed train_data tests/data/fuzz/jsonl/*
seed jinja tests/data/templates/*.jinja
seed tok_config "$SHARED"/tokenizer-data/chat-templates/* \
    "$SHARED"/fixtures/models/tiny-qwen2/chat_template.jinja "$SHARED"/tokenizer-data/llama3/tokenizer_config.json
# Every harness: its own seeds in the repository.
for h in $HARNESSES; do seed "$h" tests/data/fuzz/"$h"/*; done

rc=0
for h in $HARNESSES; do
    if ! [ "$OUT/fuzz_$h" -nt "tests/fuzz/fuzz_$h.c" ] || ! [ "$OUT/fuzz_$h" -nt "$OUT/libaloe.a" ]; then
        echo "== fuzz_$h: building"
        clang -std=c11 -g -O1 -D_GNU_SOURCE -Isrc $INC -fsanitize=fuzzer,address,undefined \
            -fno-sanitize-recover=undefined -o "$OUT/fuzz_$h" "tests/fuzz/fuzz_$h.c" "$OUT/libaloe.a" $LIBS
    fi
    [ "$SECS" -gt 0 ] || continue
    echo "== fuzz_$h: running for ${SECS}s"
    if ! "$OUT/fuzz_$h" -max_total_time="$SECS" -max_len=262144 -rss_limit_mb=2048 \
        -artifact_prefix="$OUT/crash-$h-" "$OUT/corpus-$h" 2>"$OUT/fuzz_$h.log"; then
        echo "fuzz_$h FOUND A CRASH: see $OUT/fuzz_$h.log and $OUT/crash-$h-*"
        tail -40 "$OUT/fuzz_$h.log"
        rc=1
    else
        tail -1 "$OUT/fuzz_$h.log"
    fi
done
exit $rc
