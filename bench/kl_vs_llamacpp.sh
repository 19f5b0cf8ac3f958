#!/bin/sh
# kl_vs_llamacpp.sh: the KL divergence of each quantised GGUF type from the
# f32 file, measured by aloe (`aloe kld`) and by llama.cpp
# (`llama-perplexity --kl-divergence`) on the same files and the same text,
# side by side (docs/ACCURACY.md, "KL divergence of quantised files").
#
#   LLAMACPP_BUILD=/path/to/llama.cpp/build bench/kl_vs_llamacpp.sh [WORKDIR]
#
# Makes a random-weight Qwen2-shaped model with 256-multiple widths and the
# chatml test tokenizer (bench/kl_random_model.py), writes it as f32 GGUF
# with `aloe convert`, quantises it with llama.cpp's llama-quantize to every
# type aloe reads (--pure: every matrix that type; Q4_K_M and Q5_K_M as
# llama.cpp mixes them), and scores each file against the f32 one with both
# tools. aloe runs twice: as `aloe kld` runs by default (a chunk per forward
# pass: GEMM on dequantised weights, f32 activations) and with --ubatch 8
# (the row-dot path: activations quantised to Q8_0, as llama.cpp's CPU
# matmuls quantise them). First it checks that both tokenise the text into
# the same ids (the ids llama-perplexity scored are in its base file).
#
# Environment: LLAMACPP_BUILD (required; bin/llama-quantize and
# bin/llama-perplexity in it), CTX (256), CHUNKS (8), THREADS (2),
# TEXT_BYTES (12000 bytes of ../shared/aloe-data/profile.jsonl, as ASCII),
# TYPES (the list below), ALOE (build/aloe), ALOE_SHARED (../shared).
# Needs /usr/bin/python3 with NumPy. Prints a Markdown table on stdout.
set -eu
cd "$(dirname "$0")/.."
: "${LLAMACPP_BUILD:?set LLAMACPP_BUILD to a llama.cpp build directory (bin/llama-quantize, bin/llama-perplexity)}"
ALOE=${ALOE:-build/aloe}
SHARED=${ALOE_SHARED:-../shared}
CTX=${CTX:-256} CHUNKS=${CHUNKS:-8} THREADS=${THREADS:-2} TEXT_BYTES=${TEXT_BYTES:-12000}
TYPES=${TYPES:-"F32 F16 BF16 Q8_0 Q6_K Q5_K Q5_1 Q5_0 Q4_K Q4_1 Q4_0 IQ4_NL IQ4_XS Q3_K Q2_K Q5_K_M Q4_K_M"}
WORK=${1:-/tmp/kl_vs_llamacpp}
PY=/usr/bin/python3
Q=$LLAMACPP_BUILD/bin/llama-quantize PPL=$LLAMACPP_BUILD/bin/llama-perplexity
for f in "$ALOE" "$Q" "$PPL" "$SHARED/aloe-data/profile.jsonl" "$SHARED/fixtures/tokenizers/chatml/tokenizer.json"; do
    [ -e "$f" ] || { echo "kl_vs_llamacpp: missing $f (make; set LLAMACPP_BUILD / ALOE_SHARED)" >&2; exit 1; }
done
mkdir -p "$WORK"
LOG=$WORK/log
: >"$LOG"
say() { echo "kl_vs_llamacpp: $*" >&2; }

say "model and text in $WORK"
$PY bench/kl_random_model.py "$WORK/model" "$SHARED/fixtures/tokenizers/chatml" >>"$LOG" 2>&1
"$ALOE" convert --model "$WORK/model" --out "$WORK/F32-src.gguf" --type f32 >>"$LOG" 2>&1
# Plain ASCII persona text: the profiles, one per line (line 6 of the file
# holds two JSON strings back to back).
$PY - "$SHARED/aloe-data/profile.jsonl" "$TEXT_BYTES" >"$WORK/text.txt" <<'EOF'
import json, sys
dec, out = json.JSONDecoder(), []
for line in open(sys.argv[1]):
    line, i = line.strip(), 0
    while i < len(line):
        v, i = dec.raw_decode(line, i)
        out.append(v)
        while i < len(line) and line[i] in " \t":
            i += 1
sys.stdout.write("\n".join(out).encode("ascii", "ignore").decode()[: int(sys.argv[2])])
EOF

say "llama.cpp: base log-probs of the f32 file"
"$PPL" -m "$WORK/F32-src.gguf" -f "$WORK/text.txt" --kl-divergence-base "$WORK/base.kld" -c "$CTX" --chunks "$CHUNKS" \
    -t "$THREADS" -ctk f32 -ctv f32 >>"$LOG" 2>&1
# The same ids: those llama-perplexity stored with its base log-probs (before
# it puts BOS at chunk starts) against aloe's tokenisation of the text.
"$ALOE" tokenize --model "$WORK/F32-src.gguf" --special "$(cat "$WORK/text.txt")" >"$WORK/aloe_ids.json"
$PY - "$WORK/base.kld" "$WORK/aloe_ids.json" <<'EOF' >&2
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n_ctx, n_vocab, n_chunk = struct.unpack("<Iii", b[8:20])
ll = list(struct.unpack("<%di" % (n_ctx * n_chunk), b[20:20 + 4 * n_ctx * n_chunk]))
al = json.load(open(sys.argv[2]))
same = al[: len(ll)] == ll
print("kl_vs_llamacpp: %d tokens by aloe; llama-perplexity scored %d (%d chunks of %d): %s"
      % (len(al), len(ll), n_chunk, n_ctx, "the same ids" if same else "THE IDS DIFFER"))
sys.exit(0 if same else 1)
EOF

# "Mean    KLD:   0.002407 ±   0.000028" and "Same top p: 93.701 ± 0.763 %" of a llama-perplexity log.
llama_field() { sed -n "s/^$2 *: *\([-0-9.e+]*\) ± *\([-0-9.e+]*\).*/\1 \2/p" "$1"; }
aloe_field() { $PY -c "import json,sys; j=json.load(open(sys.argv[1])); print(j['$2']['value'], j['$2']['err'])" "$1"; }

echo "| type | aloe KLD (default: GEMM, f32 activations) | aloe KLD (--ubatch 8: Q8_0 activations) | llama.cpp KLD | ratio ub8 / llama.cpp | ratio default / llama.cpp | aloe same top p (ub8) | llama.cpp same top p |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for T in $TYPES; do
    F=$WORK/$T.gguf
    case $T in
    F32) cp "$WORK/F32-src.gguf" "$F" ;;
    *_M) "$Q" "$WORK/F32-src.gguf" "$F" "$T" "$THREADS" >>"$LOG" 2>&1 ;;
    *) "$Q" --pure "$WORK/F32-src.gguf" "$F" "$T" "$THREADS" >>"$LOG" 2>&1 ;;
    esac
    say "$T"
    "$PPL" -m "$F" --kl-divergence-base "$WORK/base.kld" --kl-divergence -c "$CTX" --chunks "$CHUNKS" -t "$THREADS" \
        -ctk f32 -ctv f32 >"$WORK/$T.llama.log" 2>&1
    for mode in default ub8; do
        extra=
        [ $mode = ub8 ] && extra="--ubatch 8"
        "$ALOE" kld --base "$WORK/F32-src.gguf" --model "$F" --text "$WORK/text.txt" --ctx "$CTX" --chunks "$CHUNKS" \
            -t "$THREADS" $extra --json "$WORK/$T.aloe-$mode.json" >"$WORK/$T.aloe-$mode.log" 2>&1
    done
    set -- $(llama_field "$WORK/$T.llama.log" "Mean    KLD") $(llama_field "$WORK/$T.llama.log" "Same top p") \
        $(aloe_field "$WORK/$T.aloe-default.json" kld) $(aloe_field "$WORK/$T.aloe-ub8.json" kld) \
        $(aloe_field "$WORK/$T.aloe-ub8.json" same_top)
    $PY -c '
import sys
t, lk, lke, lt, lte, ak, ake, bk, bke, bt, bte = sys.argv[1], *map(float, sys.argv[2:])
r = lambda a, b: "%.3f" % (a / b) if b > 0 else "-"
print("| %s | %.4g ± %.2g | %.4g ± %.2g | %.4g ± %.2g | %s | %s | %.2f ± %.2f %% | %.2f ± %.2f %% |"
      % (t, ak, ake, bk, bke, lk, lke, r(bk, lk), r(ak, lk), 100 * bt, 100 * bte, lt, lte))' "$T" "$@"
done
