#!/usr/bin/env bash
# bench/serve_vs_llamaserver.sh — `aloe serve` against llama.cpp's
# llama-server on the same GGUF file, in the same run, with 1, 4 and 16
# concurrent streaming clients.
#
# For each number of clients C, each server in turn (the order flips every
# round, so a drift in the machine's speed hits both) is started alone with
# C parallel slots, warmed up with one request, and loaded by
# build/bench/serve_load: C clients, each streaming R chat completions of N
# tokens (temperature 0, ignore_eos, a prompt of its own), one after
# another. Reported per server and C: total tokens/s (all completion tokens
# over the wall time of the load) and time to first token p50 / p99 over
# every request; the ratio aloe / llama-server of the throughput, and of
# the TTFT p50 (lower is better).
#
# llama.cpp is not part of aloe and is never copied into this repository:
# build llama-server outside it from a snapshot you fetched, and point
# LLAMACPP_BUILD at the build directory (as bench/vs_llamacpp.sh):
#   cmake -S ~/llama.cpp -B ~/llama.cpp/build -DCMAKE_BUILD_TYPE=Release
#   cmake --build ~/llama.cpp/build --target llama-server -j
#   LLAMACPP_BUILD=~/llama.cpp/build bench/serve_vs_llamaserver.sh --model FILE.gguf
#
# Usage: bench/serve_vs_llamaserver.sh --model FILE.gguf [options]
#   --clients LIST  concurrent clients (default 1,4,16)
#   -n N            tokens per reply (128)      -r N   requests per client (4)
#   -t N            threads for both servers (default: the CPUs)
#   --rounds N      rounds (1; 3 for a figure to quote)
#   --chat-template NAME  the template both servers apply (default chatml:
#                   llama-server's fallback for a file without one, which
#                   aloe refuses unless told); "file": each uses the GGUF's own
#   -o FILE.md      the table (default $ALOE_BENCH_DIR/results/serve_vs_llamaserver-<UTC>.md);
#                   raw outputs in FILE-raw/
#   --self-test     check the parser and the summary on canned outputs
#                   (bench/testdata/serve_vs_llamaserver/); needs no server
# Environment: LLAMACPP_BUILD (required to run), ALOE (default build/aloe),
# ALOE_BENCH_DIR (default /tmp/aloe-bench).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "serve_vs_llamaserver: $*" >&2
    exit 1
}

# summarise_load FILE: "TOKENS_PER_S TTFT_P50 TTFT_P99 REQUESTS" from
# serve_load's output ("req TTFT TOKENS SECONDS" lines and "wall SECONDS");
# percentiles by nearest rank. "- - - 0" when nothing was measured.
summarise_load() {
    awk '
        $1 == "req" { n++; ttft[n] = $2 + 0; tokens += $3 }
        $1 == "wall" { wall = $2 + 0 }
        function rank(p,   k) { k = int(p * n + 0.999999); if (k < 1) k = 1; if (k > n) k = n; return ttft[k] }
        END {
            if (n == 0 || wall <= 0) { print "- - - 0"; exit }
            for (i = 2; i <= n; i++) { x = ttft[i]; for (j = i - 1; j >= 1 && ttft[j] > x; j--) ttft[j + 1] = ttft[j]; ttft[j + 1] = x }
            printf "%.1f %.4f %.4f %d\n", tokens / wall, rank(0.50), rank(0.99), n
        }' "$1"
}

# table_row C LLAMA_SUMMARY ALOE_SUMMARY: one Markdown row.
table_row() {
    local c=$1
    read -r lt l50 l99 _ <<<"$2"
    read -r at a50 a99 _ <<<"$3"
    awk -v c="$c" -v lt="$lt" -v l50="$l50" -v l99="$l99" -v at="$at" -v a50="$a50" -v a99="$a99" 'BEGIN {
        r = (lt != "-" && at != "-" && lt > 0) ? sprintf("%.2f", at / lt) : "–"
        q = (l50 != "-" && a50 != "-" && l50 > 0) ? sprintf("%.2f", a50 / l50) : "–"
        printf "| %s | %s | %s | %s | %s / %s | %s / %s | %s |\n", c, lt, at, r, l50, l99, a50, a99, q
    }'
}

table_head() {
    echo "| clients | llama-server tok/s | aloe tok/s | aloe / llama-server tok/s | llama-server TTFT p50 / p99 s | aloe TTFT p50 / p99 s | aloe / llama-server TTFT p50 |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
}

self_test() {
    local dir=bench/testdata/serve_vs_llamaserver fails=0 got
    expect() {
        if [ "$2" = "$3" ]; then echo "ok   $1: $2"; else echo "FAIL $1: got '$2', wanted '$3'"; fails=$((fails + 1)); fi
    }
    expect "summary of 4 requests" "$(summarise_load "$dir/load4.txt")" "160.0 0.2000 0.4000 4"
    expect "summary of 1 request" "$(summarise_load "$dir/load1.txt")" "50.0 0.0200 0.0200 1"
    expect "summary of nothing" "$(summarise_load "$dir/failed.txt")" "- - - 0"
    expect "row" "$(table_row 4 "160.0 0.1000 0.4000 4" "200.0 0.0500 0.2000 4")" \
        "| 4 | 160.0 | 200.0 | 1.25 | 0.1000 / 0.4000 | 0.0500 / 0.2000 | 0.50 |"
    expect "row with a failed side" "$(table_row 16 "- - - 0" "200.0 0.0500 0.2000 4")" \
        "| 16 | - | 200.0 | – | - / - | 0.0500 / 0.2000 | – |"
    if [ "$fails" -eq 0 ]; then echo "self-test: all passed"; else echo "self-test: $fails failed"; return 1; fi
}

model="" clients="1,4,16" ntok=128 reqs=4 threads=$(nproc) rounds=1 out="" template=chatml
while [ $# -gt 0 ]; do
    case "$1" in
    --self-test) self_test; exit $? ;;
    --model) model=${2:-}; shift 2 ;;
    --clients) clients=${2:-}; shift 2 ;;
    -n) ntok=${2:-}; shift 2 ;;
    -r) reqs=${2:-}; shift 2 ;;
    -t) threads=${2:-}; shift 2 ;;
    --rounds) rounds=${2:-}; shift 2 ;;
    -o) out=${2:-}; shift 2 ;;
    --chat-template) template=${2:-}; shift 2 ;;
    *) die "unknown option $1 (see the header of $0)" ;;
    esac
done
for v in "$ntok" "$reqs" "$threads" "$rounds" ${clients//,/ }; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "-n, -r, -t, --rounds and --clients take whole numbers >= 1 (got '$v')"
done
[ -n "${LLAMACPP_BUILD:-}" ] || die "set LLAMACPP_BUILD to a llama.cpp build directory (see the header of $0)"
llama_server=$LLAMACPP_BUILD/bin/llama-server
[ -x "$llama_server" ] || die "$llama_server not found: build the llama-server target"
[ -n "$model" ] || die "give --model FILE.gguf (the same file for both servers)"
[ -f "$model" ] || die "$model: no such file"
[[ "$template" =~ ^[A-Za-z0-9._-]+$ ]] || die "--chat-template takes a template name (got '$template')"
tmpl_args=()
[ "$template" = file ] || tmpl_args=(--chat-template "$template")
aloe=${ALOE:-build/aloe}
[ -x "$aloe" ] || make -s "$aloe" || die "cannot build $aloe"
make -s build/bench/serve_load || die "cannot build build/bench/serve_load"
bench_dir=${ALOE_BENCH_DIR:-/tmp/aloe-bench}
[ -n "$out" ] || out=$bench_dir/results/serve_vs_llamaserver-$(date -u +%Y%m%dT%H%M%SZ).md
raw=${out%.md}-raw
mkdir -p "$(dirname "$out")" "$raw"

pid=""
stop_server() {
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    pid=""
}
trap stop_server EXIT

# start_server WHICH C LOG: starts it with C slots; sets pid and url.
start_server() {
    local which=$1 c=$2 log=$3 port
    port=$(( 20000 + RANDOM % 20000 ))
    if [ "$which" = llama ]; then
        # one slot per client, each with room for its prompt and reply
        "$llama_server" -m "$model" --host 127.0.0.1 --port "$port" -np "$c" -c $(( c * (ntok + 256) )) \
            -t "$threads" "${tmpl_args[@]}" >"$log" 2>&1 &
        pid=$!
        url=http://127.0.0.1:$port/v1
        for _ in $(seq 600); do
            curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
            kill -0 "$pid" 2>/dev/null || die "llama-server exited (see $log)"
            sleep 0.1
        done
        die "llama-server did not become ready in 60 s (see $log)"
    fi
    "$aloe" serve --model "$model" --alias bench --port 0 --port-file "$log.port" -j "$c" -t "$threads" \
        --max-tokens "$ntok" "${tmpl_args[@]}" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do
        [ -s "$log.port" ] && break
        kill -0 "$pid" 2>/dev/null || die "aloe serve exited (see $log)"
        sleep 0.1
    done
    [ -s "$log.port" ] || die "aloe serve did not start in 60 s (see $log)"
    url=http://127.0.0.1:$(cat "$log.port")/v1
}

{
    echo "# aloe serve vs llama-server"
    echo
    echo "Model: $model (chat template: $template); $ntok tokens per reply, $reqs requests per client, $threads threads, $rounds round(s);"
    echo "$(uname -m), $(nproc) CPUs; llama.cpp build: $LLAMACPP_BUILD. $(date -u)"
    echo
    table_head
} >"$out"
for round in $(seq "$rounds"); do
    for c in ${clients//,/ }; do
        order="llama aloe"
        [ $((round % 2)) -eq 0 ] && order="aloe llama"
        for which in $order; do
            tag=$which-c$c-r$round
            start_server "$which" "$c" "$raw/$tag.server.log"
            build/bench/serve_load "$url" bench 1 1 8 >"$raw/$tag.warmup.txt" 2>&1 || true
            build/bench/serve_load "$url" bench "$c" "$reqs" "$ntok" >"$raw/$tag.load.txt" 2>&1 || true
            stop_server
            eval "sum_$which=\"\$(summarise_load \"\$raw/\$tag.load.txt\")\""
        done
        table_row "$c" "$sum_llama" "$sum_aloe" | tee -a "$out"
    done
done
echo "wrote $out (raw outputs in $raw/)"
