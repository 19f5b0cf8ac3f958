#!/usr/bin/env bash
# bench/vs_llamacpp.sh — aloe against llama.cpp on the same machine, in the
# same run, on the same files.
#
# Speed figures measured on different machines (or minutes apart on a host
# whose memory bandwidth moves) do not compare; this script makes the
# comparison one can quote: both programs read the very same GGUF files,
# take turns (llama-bench, then `aloe speed`, then the next file; the order
# flips every round so that a drift in the machine's speed hits both), and
# the result is a ratio per file and round, summarised as median (min–max).
#
# llama.cpp is not part of aloe and is never copied into this repository:
# build it yourself, outside the repository, from a snapshot you fetched,
# and point LLAMACPP_BUILD at the build directory:
#
#   git clone https://github.com/ggml-org/llama.cpp ~/llama.cpp   # or a tarball of a given commit
#   cmake -S ~/llama.cpp -B ~/llama.cpp/build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON
#   cmake --build ~/llama.cpp/build --target llama-bench llama-quantize -j
#   LLAMACPP_BUILD=~/llama.cpp/build bench/vs_llamacpp.sh
#
# Build llama.cpp for the machine (GGML_NATIVE=ON: its default, except when
# SOURCE_DATE_EPOCH is set), as aloe is (-march=native): the script reads the
# build's CMakeCache.txt and warns when llama.cpp was built without
# instructions this CPU has. A source tree that
# is not a git checkout makes llama-bench report the commit as "unknown":
# then set LLAMACPP_COMMIT to the commit of the snapshot.
#
# The test files: random bf16 weights of a real model's shape
# (build/bench/random_hf, a Hugging Face directory with a stand-in
# tokenizer; both benchmarks feed random token ids), made into GGUF by
# `aloe convert` (F32, F16, BF16) and by llama.cpp's own llama-quantize from
# the BF16 file (`--pure`, every matrix the type; the Q4_K_M preset with
# llama.cpp's mix). Where llama-quantize --pure cannot make a type (rows that
# are not a multiple of the type's 256-value blocks: Qwen2.5-0.5B's 896 with
# the K-quants and IQ4_XS) the file is `aloe convert --type T`, pure with
# llama.cpp's own fallback types; the result names the command that made
# each file. Files are cached in $ALOE_BENCH_DIR (default /tmp/aloe-bench),
# outside the repository: about 1 GB (0.5B) and 2.5 GB (1B) of bf16 source
# while a shape is made, then each file's size (F32 2.0 / 4.9 GB, F16 and
# BF16 1.0 / 2.5 GB, the quantised ones less); the 8B shape needs ~16 GB of
# source and ~16 GB per F16/BF16 file (no F32 by default).
#
# What is measured, on both sides: "pp" = tokens/s of one batch of -p
# prompt tokens from an empty KV cache; "tg" = tokens/s of -n tokens
# generated one at a time, from an empty KV cache (llama-bench runs pp and tg
# as separate tests; `aloe speed` does the same); each after a warm-up; -t
# threads; the KV cache in f16 on both sides (llama-bench's default; aloe's
# --kv-type f16; --kv f32 gives both f32). One llama-bench run (-r 1) and
# one `aloe speed` run per file and round.
#
# Usage: bench/vs_llamacpp.sh [options]
#   --shapes LIST   qwen2.5-0.5b,llama-3.2-1b (default); llama-3.1-8b too
#                   (16 GB per 16-bit file; the issue's figures used -p 128 -n 32)
#   --types LIST    f32,f16,bf16,q8_0,q4_0,q4_k (default), or "all": also
#                   q4_1,q5_0,q5_1,iq4_nl,q2_k,q3_k,q5_k,q6_k,iq4_xs,q4_k_m
#   -p N            prompt tokens (512)         -n N    generated tokens (128)
#   -t N            threads (the physical cores)  -r N  rounds (3; at least 3
#                   for a figure to quote)
#   --kv f16|f32    KV cache type on both sides (f16)
#   -o FILE.json    the result, and FILE.md beside it (default
#                   $ALOE_BENCH_DIR/results/vs_llamacpp-<UTC time>.json);
#                   every tool's raw output goes to FILE-raw/
#   --make-only     make (or find) the files and stop
#   --self-test     check the output parsers and the ratio statistics on
#                   canned outputs (bench/testdata/vs_llamacpp/); needs
#                   neither llama.cpp nor a model
# Environment: LLAMACPP_BUILD (required to run), LLAMACPP_COMMIT,
# ALOE_BENCH_DIR, ALOE (the aloe binary, default build/aloe, built if absent).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "vs_llamacpp: $*" >&2
    exit 1
}

# ---------------------------------------------------------------- parsing
# These read the tools' outputs; --self-test runs them on canned outputs.

# parse_llama FILE: "PP TG" (tokens/s) from `llama-bench -o jsonl` output; a
# test that is not there (not asked for, or a failed run) is "-".
parse_llama() {
    awk '
        function field(k,   s) {
            if (!match($0, "\"" k "\": *[-+0-9.eE]+")) return ""
            s = substr($0, RSTART, RLENGTH)
            sub(/^[^:]*: */, "", s)
            return s
        }
        /^\{/ {
            np = field("n_prompt"); ng = field("n_gen"); ts = field("avg_ts")
            if (np == "" || ng == "" || ts == "") next
            if (np + 0 > 0 && ng + 0 == 0) pp = ts
            else if (np + 0 == 0 && ng + 0 > 0) tg = ts
        }
        END { print (pp == "" ? "-" : pp), (tg == "" ? "-" : tg) }' "$1"
}

# parse_aloe FILE: "PP TG" from `aloe speed --json` output (its last JSON
# line); "-" for a test not run (-p 0 or -n 0) or not there.
parse_aloe() {
    awk '
        function field(k,   s) {
            if (!match(line, "\"" k "\": *[-+0-9.eE]+")) return ""
            s = substr(line, RSTART, RLENGTH)
            sub(/^[^:]*: */, "", s)
            return s
        }
        /^\{/ { line = $0 }
        END {
            p = field("prompt_tokens"); n = field("gen_tokens")
            pp = field("prefill_tps"); tg = field("decode_tps")
            print (p + 0 > 0 && pp != "" ? pp : "-"), (n + 0 > 0 && tg != "" ? tg : "-")
        }' "$1"
}

# summarise TSV MD JSON: TSV has one line per file and round: name, round,
# llama.cpp pp, tg, aloe pp, tg ("-": missing). Writes the markdown table
# rows to MD and the JSON array of per-file results to JSON: per file the
# ratio aloe / llama.cpp of each round that has both figures, its min,
# median and max, and the median absolute figures of each tool.
summarise() {
    awk -F '\t' -v md="$2" -v js="$3" '
        function sort(a, n,   i, j, x) { # insertion sort, a[1..n]
            for (i = 2; i <= n; i++) {
                x = a[i]
                for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]
                a[j + 1] = x
            }
        }
        function median(list,   a, n) {
            n = split(list, a, " ")
            if (n == 0) return ""
            sort(a, n)
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        function lo(list,   a, n) { n = split(list, a, " "); sort(a, n); return n ? a[1] : "" }
        function hi(list,   a, n) { n = split(list, a, " "); sort(a, n); return n ? a[n] : "" }
        function add(key, v) { if (v != "-") vals[key] = vals[key] " " v }
        function num(x, fmt) { return x == "" ? "null" : sprintf(fmt, x) }
        function cell(x, fmt) { return x == "" ? "–" : sprintf(fmt, x) }
        function ratio(list) { # "median (min–max)"
            return list == "" ? "–" : sprintf("%.2f (%.2f–%.2f)", median(list), lo(list), hi(list))
        }
        function jlist(list,   a, n, i, s) {
            n = split(list, a, " ")
            for (i = 1; i <= n; i++) s = s (i > 1 ? ", " : "") sprintf("%.4f", a[i])
            return "[" s "]"
        }
        {
            name = $1
            if (!(name in seen)) { seen[name] = 1; order[++count] = name }
            rounds[name]++
            # a round counts when the two tools gave the same figures
            if (($3 == "-") == ($5 == "-") && ($4 == "-") == ($6 == "-") && !($3 == "-" && $4 == "-")) both[name]++
            add(name SUBSEP "lpp", $3); add(name SUBSEP "ltg", $4)
            add(name SUBSEP "app", $5); add(name SUBSEP "atg", $6)
            if ($3 != "-" && $5 != "-" && $3 > 0) add(name SUBSEP "rpp", $5 / $3)
            if ($4 != "-" && $6 != "-" && $4 > 0) add(name SUBSEP "rtg", $6 / $4)
        }
        END {
            printf "[" > js
            for (i = 1; i <= count; i++) {
                f = order[i]
                rpp = vals[f SUBSEP "rpp"]; rtg = vals[f SUBSEP "rtg"]
                printf "| %s | %s | %s | %s | %s | %s | %s | %d/%d |\n", f,
                    cell(median(vals[f SUBSEP "lpp"]), "%.1f"), cell(median(vals[f SUBSEP "app"]), "%.1f"), ratio(rpp),
                    cell(median(vals[f SUBSEP "ltg"]), "%.1f"), cell(median(vals[f SUBSEP "atg"]), "%.1f"), ratio(rtg),
                    both[f] + 0, rounds[f] > md
                printf "%s\n  {\"file\": \"%s\", \"rounds\": %d,\n", (i > 1 ? "," : ""), f, rounds[f] > js
                printf "   \"pp\": {\"llamacpp_median\": %s, \"aloe_median\": %s, \"ratio_median\": %s, \"ratio_min\": %s, \"ratio_max\": %s, \"ratios\": %s,\n",
                    num(median(vals[f SUBSEP "lpp"]), "%.3f"), num(median(vals[f SUBSEP "app"]), "%.3f"),
                    num(median(rpp), "%.4f"), num(lo(rpp), "%.4f"), num(hi(rpp), "%.4f"), jlist(rpp) > js
                printf "          \"llamacpp\": %s, \"aloe\": %s},\n", jlist(vals[f SUBSEP "lpp"]), jlist(vals[f SUBSEP "app"]) > js
                printf "   \"tg\": {\"llamacpp_median\": %s, \"aloe_median\": %s, \"ratio_median\": %s, \"ratio_min\": %s, \"ratio_max\": %s, \"ratios\": %s,\n",
                    num(median(vals[f SUBSEP "ltg"]), "%.3f"), num(median(vals[f SUBSEP "atg"]), "%.3f"),
                    num(median(rtg), "%.4f"), num(lo(rtg), "%.4f"), num(hi(rtg), "%.4f"), jlist(rtg) > js
                printf "          \"llamacpp\": %s, \"aloe\": %s}}", jlist(vals[f SUBSEP "ltg"]), jlist(vals[f SUBSEP "atg"]) > js
            }
            printf "\n]\n" > js
        }' "$1"
}

# The table's head for -p P -n N.
table_head() {
    echo "| file | llama.cpp pp$1 t/s | aloe pp$1 t/s | aloe / llama.cpp pp: median (min–max) | llama.cpp tg$2 t/s | aloe tg$2 t/s | aloe / llama.cpp tg: median (min–max) | rounds with both / run |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
}

# A JSON string literal of $1.
json_str() {
    printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' | tr '\n' ' ')"
}

self_test() {
    local dir=bench/testdata/vs_llamacpp tmp fails=0 got
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    expect() { # what, got, wanted
        if [ "$2" = "$3" ]; then echo "ok   $1: $2"; else echo "FAIL $1: got '$2', wanted '$3'"; fails=$((fails + 1)); fi
    }
    # real outputs, captured from llama-bench (c392e5094) and aloe speed
    expect "llama-bench jsonl, pp and tg" "$(parse_llama $dir/llama-bench.jsonl)" "5.681898 1.180700"
    expect "llama-bench jsonl, tg only (-p 0)" "$(parse_llama $dir/llama-bench-tg-only.jsonl)" "- 1.180700"
    expect "aloe speed --json" "$(parse_aloe $dir/aloe-speed.txt)" "51.963 13.146"
    expect "aloe speed --json, -p 0" "$(parse_aloe $dir/aloe-speed-tg-only.txt)" "- 9.128"
    # a combined test (llama-bench -pg: prompt and generation in one) is neither
    { cat $dir/llama-bench.jsonl; sed -n 1p $dir/llama-bench.jsonl | sed 's/"n_gen": 0/"n_gen": 4/; s/"avg_ts": [0-9.]*/"avg_ts": 99.5/'; } > "$tmp/pg"
    expect "llama-bench jsonl with a pg test" "$(parse_llama "$tmp/pg")" "5.681898 1.180700"
    printf 'llama_model_load: error loading model\n' > "$tmp/bad"
    expect "llama-bench failed" "$(parse_llama "$tmp/bad")" "- -"
    expect "aloe speed failed" "$(parse_aloe "$tmp/bad")" "- -"
    # statistics: a, three rounds: pp ratios 1.2, 0.8, 1.0; tg 0.5, 0.5, 2.0
    # b, three rounds, one failed: ratios 1.0 and 2.0 (an even count: the
    # median is their mean); c: llama.cpp failed every time
    printf 'a\t1\t100\t10\t120\t5\na\t2\t100\t20\t80\t10\na\t3\t200\t10\t200\t20\n' > "$tmp/tsv"
    printf 'b\t1\t50\t-\t50\t-\nb\t2\t-\t-\t70\t9\nb\t3\t40\t-\t80\t-\n' >> "$tmp/tsv"
    printf 'c\t1\t-\t-\t10\t1\n' >> "$tmp/tsv"
    summarise "$tmp/tsv" "$tmp/md" "$tmp/json"
    expect "row a" "$(sed -n 1p "$tmp/md")" \
        "| a | 100.0 | 120.0 | 1.00 (0.80–1.20) | 10.0 | 10.0 | 0.50 (0.50–2.00) | 3/3 |"
    expect "row b" "$(sed -n 2p "$tmp/md")" "| b | 45.0 | 70.0 | 1.50 (1.00–2.00) | – | 9.0 | – | 2/3 |"
    expect "row c" "$(sed -n 3p "$tmp/md")" "| c | – | 10.0 | – | – | 1.0 | – | 0/1 |"
    got=$(tr -d ' \n' < "$tmp/json")
    case $got in
    *'"file":"a","rounds":3,"pp":{"llamacpp_median":100.000,"aloe_median":120.000,"ratio_median":1.0000,"ratio_min":0.8000,"ratio_max":1.2000,"ratios":[1.2000,0.8000,1.0000]'*)
        echo "ok   JSON of a" ;;
    *) echo "FAIL JSON of a: $got"; fails=$((fails + 1)) ;;
    esac
    case $got in
    *'"file":"c","rounds":1,"pp":{"llamacpp_median":null,"aloe_median":10.000,"ratio_median":null'*) echo "ok   JSON of c" ;;
    *) echo "FAIL JSON of c: $got"; fails=$((fails + 1)) ;;
    esac
    if command -v python3 >/dev/null 2>&1; then # valid JSON, where there is a checker
        if python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/json"; then echo "ok   JSON parses"
        else echo "FAIL JSON does not parse"; fails=$((fails + 1)); fi
    fi
    expect "JSON string escaping" "$(json_str 'a "q" \ b')" '"a \"q\" \\ b"'
    if [ "$fails" -gt 0 ]; then echo "self-test: $fails failed"; return 1; fi
    echo "self-test: all passed"
}

# ---------------------------------------------------------------- shapes and types

# shape -> the widths of its matrices' rows (hidden, intermediate, heads x head_dim)
shape_widths() {
    case $1 in
    qwen2.5-0.5b) echo "896 4864 896" ;;
    llama-3.2-1b) echo "2048 8192 2048" ;;
    llama-3.1-8b) echo "4096 14336 4096" ;;
    *) die "unknown shape $1 (qwen2.5-0.5b, llama-3.2-1b, llama-3.1-8b)" ;;
    esac
}

# type -> llama-quantize's name for it with --pure ("" for the 16/32-bit types)
quant_name() {
    case $1 in
    f32 | f16 | bf16) echo "" ;;
    q8_0 | q4_0 | q4_1 | q5_0 | q5_1 | iq4_nl | iq4_xs | q6_k | q2_k) echo "$1" | tr a-z A-Z ;;
    q3_k) echo Q3_K_S ;; # --pure: every matrix the preset's base type
    q4_k) echo Q4_K_S ;;
    q5_k) echo Q5_K_S ;;
    q4_k_m) echo Q4_K_M ;;
    *) die "unknown type $1 (known: $all_types)" ;;
    esac
}

# Whether every matrix row of the shape is whole blocks of the type.
fits() {
    local block=32 w
    case $1 in q2_k | q3_k | q4_k | q5_k | q6_k | iq4_xs) block=256 ;; esac
    for w in $(shape_widths "$2"); do [ $((w % block)) -eq 0 ] || return 1; done
}

# ---------------------------------------------------------------- options

shapes=qwen2.5-0.5b,llama-3.2-1b
types=f32,f16,bf16,q8_0,q4_0,q4_k
all_types=f32,f16,bf16,q8_0,q4_0,q4_k,q4_1,q5_0,q5_1,iq4_nl,q2_k,q3_k,q5_k,q6_k,iq4_xs,q4_k_m
pp=512 tg=128 rounds=3 kv=f16 out="" make_only=0
threads=$(lscpu -p=CORE,SOCKET 2>/dev/null | grep -v '^#' | sort -u | wc -l)
[ "$threads" -gt 0 ] || threads=$(nproc)
command_line="bench/vs_llamacpp.sh $*"
for v in ALOE_BENCH_DIR LLAMACPP_COMMIT LLAMACPP_BUILD; do # the environment that shapes the run, first
    [ -n "${!v:-}" ] && command_line="$v=${!v} $command_line"
done
while [ $# -gt 0 ]; do
    case $1 in
    --self-test) self_test; exit ;;
    --shapes) shapes=${2:?}; shift ;;
    --types) types=${2:?}; shift ;;
    -p) pp=${2:?}; shift ;;
    -n) tg=${2:?}; shift ;;
    -t) threads=${2:?}; shift ;;
    -r | --rounds) rounds=${2:?}; shift ;;
    --kv) kv=${2:?}; shift ;;
    -o) out=${2:?}; shift ;;
    --make-only) make_only=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (--help lists them)" ;;
    esac
    shift
done
[ "$types" = all ] && types=$all_types
for v in "$pp" "$tg" "$threads" "$rounds"; do
    case $v in '' | *[!0-9]*) die "-p, -n, -t and -r take whole numbers (got '$v')" ;; esac
done
[ "$pp" -gt 0 ] || [ "$tg" -gt 0 ] || die "-p and -n are both 0: nothing to measure"
[ "$threads" -gt 0 ] && [ "$rounds" -gt 0 ] || die "-t and -r must be at least 1"
case $kv in f16 | f32) ;; *) die "--kv takes f16 or f32 (got '$kv')" ;; esac
IFS=, read -r -a shape_list <<< "$shapes"
IFS=, read -r -a type_list <<< "$types"
for shape in "${shape_list[@]}"; do (shape_widths "$shape" > /dev/null) || exit 1; done
for type in "${type_list[@]}"; do (quant_name "$type" > /dev/null) || exit 1; done
[ -n "${LLAMACPP_BUILD:-}" ] || die "set LLAMACPP_BUILD to a llama.cpp build directory (see the head of $0)"
lbin=$LLAMACPP_BUILD/bin
for tool in llama-bench llama-quantize; do
    [ -x "$lbin/$tool" ] || die "$lbin/$tool not found: build it (cmake --build \$LLAMACPP_BUILD --target llama-bench llama-quantize)"
done
bench_dir=${ALOE_BENCH_DIR:-/tmp/aloe-bench}
case $(realpath -m "$bench_dir")/ in
"$(pwd)"/*) die "ALOE_BENCH_DIR=$bench_dir is inside the repository; the files are large: put them elsewhere" ;;
esac
aloe=${ALOE:-build/aloe}
if [ -z "${ALOE:-}" ]; then make -s -j2 build/aloe || die "cannot build build/aloe"; fi
make -s -j2 build/bench/random_hf || die "cannot build build/bench/random_hf"
[ "$rounds" -ge 3 ] || [ "$make_only" = 1 ] ||
    echo "vs_llamacpp: warning: $rounds round(s): a figure to quote needs at least 3" >&2

# ---------------------------------------------------------------- the files

# make_file SHAPE TYPE: the GGUF, made once and cached; FILE.how says how.
make_file() {
    local shape=$1 type=$2 dir=$bench_dir/$1 f how q
    f=$dir/$shape.$type.gguf
    [ -s "$f" ] && [ -s "$f.how" ] && return 0
    mkdir -p "$dir"
    q=$(quant_name "$type")
    if needs_hf "$shape" "$type"; then
        if [ ! -s "$dir/hf/model.safetensors" ]; then
            echo "  random weights: build/bench/random_hf $shape $dir/hf" >&2
            build/bench/random_hf "$shape" "$dir/hf" || die "random_hf $shape failed"
        fi
        how="aloe convert --model $dir/hf --out $f --type $type"
        [ -n "$q" ] && how="$how   (llama-quantize --pure cannot: rows of $(shape_widths "$shape" | tr ' ' '/') values; pure with llama.cpp's fallback types)"
        echo "  $how" >&2
        "$aloe" convert --model "$dir/hf" --out "$f.tmp" --type "$type" >&2 || die "aloe convert $shape $type failed"
    else
        make_file "$shape" bf16
        local pure=--pure
        [ "$type" = q4_k_m ] && pure="" # the preset: llama.cpp's own mix
        how="llama-quantize $pure $dir/$shape.bf16.gguf $f $q"
        echo "  $how" >&2
        "$lbin/llama-quantize" $pure "$dir/$shape.bf16.gguf" "$f.tmp" "$q" > "$f.quantize.log" 2>&1 ||
            die "llama-quantize $shape $type failed: see $f.quantize.log"
    fi
    mv "$f.tmp" "$f"
    echo "$how" > "$f.how"
}

files=()
# needs_hf SHAPE TYPE: whether the file is made from the Hugging Face
# directory (aloe convert) rather than from the BF16 GGUF (llama-quantize).
needs_hf() {
    [ -z "$(quant_name "$2")" ] || { [ "$2" != q4_k_m ] && ! fits "$2" "$1"; }
}

# Bytes a weight, roughly, per type; the parameters of each shape. Enough to
# see whether the files fit on the disk before making them: filling a shared
# /tmp halfway through hurts more than stopping here.
type_bytes() {
    case $1 in
    f32) echo 4 ;; f16 | bf16) echo 2 ;; q8_0) echo 1.07 ;; q6_k) echo 0.83 ;; q5_0 | q5_1 | q5_k) echo 0.7 ;;
    q4_1) echo 0.63 ;; q4_k_m) echo 0.61 ;; *) echo 0.57 ;;
    esac
}
shape_params() {
    case $1 in qwen2.5-0.5b) echo 0.494e9 ;; llama-3.2-1b) echo 1.236e9 ;; llama-3.1-8b) echo 8.03e9 ;; esac
}
need=0 source=0
for shape in "${shape_list[@]}"; do
    n=$(shape_params "$shape") missing_hf=0
    for type in $(printf '%s\n' "${type_list[@]}" bf16 | sort -u); do # bf16: the source of llama-quantize
        [ -s "$bench_dir/$shape/$shape.$type.gguf" ] && continue
        # made from the random source directory (else llama-quantize on the BF16 file)
        if [ "$type" = bf16 ] || needs_hf "$shape" "$type"; then missing_hf=1; fi
        need=$(awk -v a="$need" -v n="$n" -v b="$(type_bytes "$type")" 'BEGIN { printf "%.0f", a + n * b }')
    done
    # the random source directory (2 bytes a weight) lives while its shape's
    # files that need it are made
    [ "$missing_hf" = 1 ] && source=$(awk -v a="$source" -v n="$n" 'BEGIN { printf "%.0f", (2 * n > a) ? 2 * n : a }')
done
peak=$(awk -v a="$need" -v b="$source" 'BEGIN { printf "%.0f", a + b }')
mkdir -p "$bench_dir"
avail=$(df -P -B1 "$bench_dir" | awk 'NR == 2 { print $4 }')
if [ "$peak" -gt "$avail" ]; then
    die "the files need about $(awk -v b="$peak" 'BEGIN { printf "%.1f", b / 1e9 }') GB in $bench_dir, which has $(awk -v b="$avail" 'BEGIN { printf "%.1f", b / 1e9 }') GB free: fewer --types or --shapes, or another ALOE_BENCH_DIR"
fi

for shape in "${shape_list[@]}"; do
    echo "files of $shape in $bench_dir/$shape" >&2
    # first what needs the random Hugging Face directory (2 bytes a weight:
    # 16 GB for the 8B shape), which then goes, then what llama-quantize
    # makes from the BF16 file
    for type in "${type_list[@]}"; do
        if needs_hf "$shape" "$type" || [ "$type" = bf16 ]; then make_file "$shape" "$type"; fi
    done
    for type in "${type_list[@]}"; do needs_hf "$shape" "$type" || make_file "$shape" bf16; done
    rm -rf "$bench_dir/$shape/hf" # made again (the same: a fixed seed) if ever needed
    for type in "${type_list[@]}"; do
        make_file "$shape" "$type"
        files+=("$shape.$type")
    done
done
[ "$make_only" = 1 ] && { echo "files ready in $bench_dir"; exit 0; }

# ---------------------------------------------------------------- the machine

stamp=$(date -u +%Y%m%dT%H%M%SZ)
[ -n "$out" ] || out=$bench_dir/results/vs_llamacpp-$stamp.json
case $out in *.json) ;; *) out=$out.json ;; esac
md=${out%.json}.md raw=${out%.json}-raw
mkdir -p "$(dirname "$out")" "$raw"
cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
cpu_family=$(lscpu | sed -n 's/^CPU family: *//p' | head -1)/$(lscpu | sed -n 's/^Model: *//p' | head -1)
flags=""
for fl in avx2 avx512f avx512_vnni avx512_bf16 avx512_vbmi avx_vnni amx_tile amx_int8 amx_bf16; do
    grep -qw "$fl" /proc/cpuinfo && flags="$flags $fl"
done
flags=${flags# }
aloe_commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# uncommitted changes are named: a changed source reaches a binary this
# script builds (make, above), and one chained run after an edit measures
# the edit, not the commit
changed=$(git status --porcelain --untracked-files=no 2>/dev/null | awk '{print $NF}')
if [ -n "$changed" ]; then
    names=$(echo "$changed" | head -6 | paste -sd, - | sed 's/,/, /g')
    if [ "$(echo "$changed" | wc -l)" -gt 6 ]; then names="$names, ..."; fi
    aloe_commit="$aloe_commit+changes ($names)"
    code=$(echo "$changed" | { grep -E '^(src/|Makefile)' || true; } | head -6 | paste -sd, - | sed 's/,/, /g')
    [ -z "$code" ] || echo "vs_llamacpp: WARNING: uncommitted changes to $code:" \
        "the aloe binary measured is not the commit's${ALOE:+ (unless $ALOE was built before them)}" | tee -a "$raw/warnings" >&2
fi
cache=$LLAMACPP_BUILD/CMakeCache.txt
lcfg=""
if [ -f "$cache" ]; then
    lcfg=$(grep -E '^(CMAKE_BUILD_TYPE|GGML_NATIVE|GGML_AVX512[A-Z0-9_]*|GGML_AVX2|GGML_AVX_VNNI|GGML_AMX[A-Z0-9_]*|GGML_BLAS|GGML_OPENMP|GGML_LLAMAFILE):' "$cache" |
        sed 's/:[A-Z]*=/=/' | tr '\n' ' ')
    lcfg=${lcfg% }
    if grep -q '^GGML_NATIVE:BOOL=OFF' "$cache"; then
        for fl in avx512f avx512_vnni avx512_bf16 amx_int8; do
            want=$(echo "$fl" | tr a-z A-Z | sed 's/AVX512F/AVX512/; s/AMX_INT8/AMX_INT8/')
            if grep -qw "$fl" /proc/cpuinfo && ! grep -q "^GGML_$want:BOOL=ON" "$cache"; then
                echo "vs_llamacpp: WARNING: llama.cpp was built with GGML_NATIVE=OFF and without $fl, which this CPU has:" \
                    "its figures understate llama.cpp here; rebuild it with -DGGML_NATIVE=ON" | tee -a "$raw/warnings" >&2
                break
            fi
        done
    fi
    grep -q '^CMAKE_BUILD_TYPE:STRING=Release' "$cache" ||
        echo "vs_llamacpp: WARNING: llama.cpp's build is not a Release build" | tee -a "$raw/warnings" >&2
fi
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
case ${load_start%% *} in
0.[0-4]*) ;;
*) echo "vs_llamacpp: WARNING: load average $load_start at the start: the machine is not idle" | tee -a "$raw/warnings" >&2 ;;
esac

# ---------------------------------------------------------------- the run

tsv=$raw/results.tsv
: > "$tsv"
kvflags=(-ctk "$kv" -ctv "$kv")
echo "aloe vs llama.cpp: ${#files[@]} files x $rounds rounds, -p $pp -n $tg -t $threads, KV $kv; raw outputs in $raw" >&2
# run_llama NAME ROUND, run_aloe NAME ROUND: NAME is SHAPE.TYPE, the file
# $bench_dir/SHAPE/SHAPE.TYPE.gguf; the output goes to $raw/NAME.rROUND.*
gguf_of() { echo "$bench_dir/${1%.*}/$1.gguf"; }
run_llama() {
    "$lbin/llama-bench" -m "$(gguf_of "$1")" -p "$pp" -n "$tg" -t "$threads" -r 1 "${kvflags[@]}" -o jsonl \
        > "$raw/$1.r$2.llama.jsonl" 2> "$raw/$1.r$2.llama.err" || echo "  llama-bench failed on $1 (round $2)" >&2
}
run_aloe() {
    "$aloe" speed --model "$(gguf_of "$1")" -p "$pp" -n "$tg" -t "$threads" --kv-type "$kv" --json \
        > "$raw/$1.r$2.aloe.txt" 2> "$raw/$1.r$2.aloe.err" || echo "  aloe speed failed on $1 (round $2)" >&2
}
round_loads=""
for ((r = 1; r <= rounds; r++)); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    round_loads="$round_loads${round_loads:+, }$load"
    echo "round $r of $rounds ($(date -u +%H:%M:%S) UTC, load $load)" >&2
    for f in "${files[@]}"; do
        if [ $((r % 2)) -eq 1 ]; then run_llama "$f" "$r"; run_aloe "$f" "$r"; else run_aloe "$f" "$r"; run_llama "$f" "$r"; fi
        l=$(parse_llama "$raw/$f.r$r.llama.jsonl") a=$(parse_aloe "$raw/$f.r$r.aloe.txt")
        printf '%s\t%d\t%s\t%s\n' "$f" "$r" "${l/ /$'\t'}" "${a/ /$'\t'}" >> "$tsv"
        echo "  $f: llama.cpp pp/tg $l, aloe $a" >&2
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
lcommit=${LLAMACPP_COMMIT:-}
if [ -z "$lcommit" ]; then
    lcommit=$(cat "$raw"/*.llama.jsonl 2>/dev/null | sed -n 's/.*"build_commit": *"\([^"]*\)".*/\1/p' | head -1)
    lcommit=${lcommit:-unknown}
    [ "$lcommit" != unknown ] || echo "vs_llamacpp: llama-bench does not know its commit: set LLAMACPP_COMMIT" >&2
fi

# ---------------------------------------------------------------- the result

summarise "$tsv" "$raw/rows.md" "$raw/files.json"
date_utc=$(date -u '+%Y-%m-%d %H:%M UTC')
{
    echo "## aloe vs llama.cpp, same machine, same run"
    echo
    echo "- date: $date_utc; load average at the start $load_start, at each round's start $round_loads, at the end $load_end"
    echo "- machine: $cpu_model (family/model $cpu_family), $(nproc) CPUs; flags: $flags"
    echo "- aloe: commit $aloe_commit, $("$aloe" --version 2>/dev/null | head -1); $("$aloe" speed --kernels 2>/dev/null | sed -n 's/^kernels: /kernels /p; s/^amx: \([a-z]*\).*/AMX tiles \1/p' | paste -sd, - | sed 's/,/, /g')"
    echo "- llama.cpp: commit $lcommit, build $LLAMACPP_BUILD ($lcfg)"
    echo "- command: \`$command_line\` (-p $pp -n $tg -t $threads, rounds: $rounds, KV cache $kv on both sides)"
    [ -s "$raw/warnings" ] && sed 's/^vs_llamacpp: /- /' "$raw/warnings"
    echo
    table_head "$pp" "$tg"
    cat "$raw/rows.md"
    echo
    echo "How each file was made:"
    echo
    for f in "${files[@]}"; do
        echo "- $f ($(awk -v b="$(stat -c %s "$(gguf_of "$f")")" 'BEGIN { printf "%.2f GB", b / 1e9 }')): \`$(cat "$(gguf_of "$f").how")\`"
    done
} > "$md"
{
    echo "{"
    echo "  \"date\": $(json_str "$date_utc"), \"load_start\": $(json_str "$load_start"), \"load_end\": $(json_str "$load_end"), \"load_rounds\": $(json_str "$round_loads"),"
    echo "  \"machine\": {\"cpu\": $(json_str "$cpu_model"), \"family_model\": $(json_str "$cpu_family"), \"cpus\": $(nproc), \"flags\": $(json_str "$flags")},"
    echo "  \"aloe\": {\"commit\": $(json_str "$aloe_commit"), \"binary\": $(json_str "$aloe")},"
    echo "  \"llamacpp\": {\"commit\": $(json_str "$lcommit"), \"build\": $(json_str "$LLAMACPP_BUILD"), \"cmake\": $(json_str "$lcfg")},"
    echo "  \"command\": $(json_str "$command_line"),"
    echo "  \"prompt_tokens\": $pp, \"gen_tokens\": $tg, \"threads\": $threads, \"rounds\": $rounds, \"kv_type\": \"$kv\","
    printf '  "warnings": ['
    sep=""
    if [ -s "$raw/warnings" ]; then
        while IFS= read -r w; do printf '%s%s' "$sep" "$(json_str "${w#vs_llamacpp: }")"; sep=", "; done < "$raw/warnings"
    fi
    echo "],"
    echo "  \"made_by\": {"
    sep=""
    for f in "${files[@]}"; do
        printf '%s    %s: %s' "$sep" "$(json_str "$f")" "$(json_str "$(cat "$bench_dir/${f%.*}/$f.gguf.how")")"
        sep=$',\n'
    done
    echo
    echo "  },"
    echo "  \"files\": $(cat "$raw/files.json")"
    echo "}"
} > "$out"
echo
table_head "$pp" "$tg"
cat "$raw/rows.md"
echo
echo "written: $out and $md"
