#!/bin/sh
# Prepares the check of aloe's GGUF logits against transformers run on the
# same file's weights (scripts/reference/gguf_vs_transformers.py, which needs
# PyTorch and transformers and may run on another machine): copies the tiny
# fixture models and their f32/f16/bf16/q8_0 GGUF files into DIR and writes aloe's
# logits for each file beside them.
# Usage: scripts/reference/gguf_prepare.sh DIR   (ALOE_SHARED: ../shared)
set -e
cd "$(dirname "$0")/../.."
dir=${1:?usage: gguf_prepare.sh DIR}
shared=${ALOE_SHARED:-../shared}
make -j2 build/aloe >/dev/null
for a in llama3 qwen2 mistral; do
    src=$shared/fixtures/models/tiny-$a
    mkdir -p "$dir/$a"
    cp "$src"/config.json "$src"/generation_config.json "$src"/model.safetensors \
       "$src"/expected.json "$src"/expected.safetensors "$dir/$a/"
    ids=$(python3 -c 'import json, sys; print(",".join(map(str, json.load(open(sys.argv[1]))["forward"]["input_ids"][0])))' \
          "$src/expected.json")
    for q in f32 f16 bf16 q8_0; do
        cp "$shared/fixtures/gguf/tiny-$a-$q.gguf" "$dir/$a/"
        build/aloe logits --model "$dir/$a/tiny-$a-$q.gguf" --ids "$ids" --out "$dir/$a/ours-$q.safetensors" -t 2
    done
done
cp scripts/reference/gguf_vs_transformers.py "$dir/"
echo "now: python3 $dir/gguf_vs_transformers.py (PyTorch + transformers)"
