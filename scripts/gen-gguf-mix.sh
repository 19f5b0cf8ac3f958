#!/bin/sh
# Regenerates tests/data/gguf-mix/ (README.md there), for
# tests/model/test_convert_mix.c:
#  - llama-quantize-types.txt: the type llama.cpp's llama-quantize gives
#    every tensor of tests/model/mix_models.h's shapes under each preset aloe
#    convert writes (no importance matrix, no --pure); aloe convert must
#    choose the same;
#  - tiny-qwen2-PRESET.gguf: the shared tiny-qwen2 fixture quantised with
#    the presets tests/data/gguf-llamacpp/ has no file of; aloe must load them.
# Run from the repository root (needs the shared fixtures, ALOE_SHARED or
# ../shared):
#
#   LLAMA_QUANTIZE=/path/to/llama-quantize scripts/gen-gguf-mix.sh
#
# llama-quantize: llama.cpp commit in LLAMA_COMMIT below, built as
# tests/data/gguf-llamacpp/README.md says. One thread, one run at a time.
set -eu
Q=${LLAMA_QUANTIZE:-/work/llamacpp-build/bin/llama-quantize}
LLAMA_COMMIT=c392e5094deaf2d1a7c18683214f007fad3fe42b
PRESETS="Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL IQ4_XS"
SHAPES="gqa4-l16 untied-l9 qwen2-l80"
INTEROP="Q2_K Q3_K_S Q3_K_L Q4_K_S Q5_K_S Q8_0 Q4_1 Q5_0 Q5_1 IQ4_NL IQ4_XS"
SHARED=${ALOE_SHARED:-../shared}
OUT=tests/data/gguf-mix/llama-quantize-types.txt
make -j2 build/aloe build/tests/model/test_convert_mix >/dev/null
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
{
    echo "# llama-quantize F32.gguf OUT.gguf PRESET 1 (llama.cpp $LLAMA_COMMIT), no imatrix:"
    echo "# the type of every tensor. F32.gguf: build/tests/model/test_convert_mix --write-model SHAPE DIR,"
    echo "# then build/aloe convert --model DIR --out F32.gguf --type f32 (moe-l8: test_convert_mix --write-moe F32.gguf)."
    echo "# Made by scripts/gen-gguf-mix.sh."
    echo "# Lines: SHAPE PRESET TENSOR TYPE, or SHAPE PRESET blk.KIND TYPE*LAYERS... (layer 0 up)."
    for m in $SHAPES; do
        build/tests/model/test_convert_mix --write-model "$m" "$T/$m"
        build/aloe convert --model "$T/$m" --out "$T/$m-f32.gguf" --type f32 2>/dev/null
        for p in $PRESETS; do
            "$Q" "$T/$m-f32.gguf" "$T/q.gguf" "$p" 1 >"$T/log" 2>&1 || { cat "$T/log" >&2; exit 1; }
            python3 scripts/gguf-types.py "$T/q.gguf" "$m" "$p"
        done
        rm -rf "$T/$m" "$T/$m-f32.gguf" "$T/q.gguf"
    done
    # the 8-expert shape: written as an F32 GGUF directly (mix_models.h)
    build/tests/model/test_convert_mix --write-moe "$T/moe-f32.gguf"
    for p in $PRESETS; do
        "$Q" "$T/moe-f32.gguf" "$T/q.gguf" "$p" 1 >"$T/log" 2>&1 || { cat "$T/log" >&2; exit 1; }
        python3 scripts/gguf-types.py "$T/q.gguf" moe-l8 "$p"
    done
} >"$T/types.txt"
mv "$T/types.txt" "$OUT"
for p in $INTEROP; do
    "$Q" "$SHARED/fixtures/gguf/tiny-qwen2-f32.gguf" "$T/q.gguf" "$p" 1 >"$T/log" 2>&1 || { cat "$T/log" >&2; exit 1; }
    mv "$T/q.gguf" "tests/data/gguf-mix/tiny-qwen2-$(echo "$p" | tr A-Z a-z).gguf"
done
(cd tests/data/gguf-mix && sha256sum ./*.gguf ./*.txt)
