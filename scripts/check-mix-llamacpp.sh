#!/bin/sh
# llama.cpp reads the files aloe convert writes with each preset: for each
# shape of tests/model/mix_models.h (but the 80-layer one) and each preset,
# `aloe convert --type PRESET`, then llama.cpp's llama-quantize, reading it
# (it validates every tensor's blocks as it loads) and dequantising it to
# F32 (--allow-requantize ... F32); aloe's dequantisation of every tensor
# must equal llama.cpp's bit for bit. Not part of `make test` (it needs a
# llama.cpp build); the result is recorded in tests/data/gguf-mix/README.md.
#
#   LLAMA_QUANTIZE=/path/to/llama-quantize scripts/check-mix-llamacpp.sh
set -eu
Q=${LLAMA_QUANTIZE:-/work/llamacpp-build/bin/llama-quantize}
PRESETS="Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL IQ4_XS"
make -j2 build/aloe build/tests/model/test_convert_mix >/dev/null
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
for m in gqa4-l16 untied-l9; do
    build/tests/model/test_convert_mix --write-model "$m" "$T/$m"
    for p in $PRESETS; do
        build/aloe convert --model "$T/$m" --out "$T/a.gguf" --type "$p" 2>/dev/null
        if ! "$Q" --allow-requantize "$T/a.gguf" "$T/f32.gguf" F32 1 >"$T/log" 2>&1; then
            echo "$m $p: llama-quantize cannot read aloe's file:"; tail -5 "$T/log"; fail=1; continue
        fi
        printf '%s %s: ' "$m" "$p"
        build/tests/model/test_convert_mix --same-values "$T/a.gguf" "$T/f32.gguf" | sed 's/^[^:]*: //' || fail=1
    done
    rm -rf "$T/$m"
done
exit $fail
