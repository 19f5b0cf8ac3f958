#!/bin/sh
# bench_pipeline.sh: how fast `aloe bench` drives an endpoint, and what it
# costs in CPU. Runs the ALOE benchmark on the 100 published eval personas
# (20 profiles x 5 personalities) x 10 turns against the test-only fake
# OpenAI-compatible server answering every request after LATENCY ms, and
# compares the wall time with the ideal.
#
#   bench/bench_pipeline.sh [-j 64] [--latency-ms 100] [--turns 10]
#
# Needs `make tests` (build/aloe and build/tests/tools/fake_openai) and the
# eval data in $ALOE_SHARED/aloe-data (default ../shared).
set -eu
cd "$(dirname "$0")/.."
J=64 LAT=100 TURNS=10
while [ $# -gt 0 ]; do
    case $1 in
    -j) J=$2; shift 2 ;;
    --latency-ms) LAT=$2; shift 2 ;;
    --turns) TURNS=$2; shift 2 ;;
    *) echo "usage: $0 [-j N] [--latency-ms MS] [--turns N]" >&2; exit 2 ;;
    esac
done
SHARED=${ALOE_SHARED:-../shared}
BUILD=${BUILD:-build}
for f in "$BUILD/aloe" "$BUILD/tests/tools/fake_openai" "$SHARED/aloe-data/profile_eval.jsonl"; do
    [ -e "$f" ] || { echo "missing $f (run 'make tests'; set ALOE_SHARED)" >&2; exit 1; }
done
TMP=$(mktemp -d)
trap 'kill $FAKE 2>/dev/null || true; rm -rf "$TMP"' EXIT
# Every judge reply carries a valid score, so each turn is exactly 3 requests.
cat >"$TMP/script.json" <<'JSON'
{"models": {"user-sim": {"reply": "Turn {turns}: something about my day ({hash})."},
            "judge": {"reply": "Well tailored in parts.\nScore: {score}"}},
 "*": {"reply": "That sounds great, tell me more. ({hash})"}}
JSON
"$BUILD/tests/tools/fake_openai" --port 0 --port-file "$TMP/port" --latency-ms "$LAT" --script "$TMP/script.json" &
FAKE=$!
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
PORT=$(cat "$TMP/port")

CMD="$BUILD/aloe bench --model evaluated --user-model user-sim --judge-model judge \
 --profiles $SHARED/aloe-data/profile_eval.jsonl --personalities $SHARED/aloe-data/personality_eval.jsonl \
 --turns $TURNS -j $J --base-url http://127.0.0.1:$PORT/v1 --out $TMP/run --quiet"
/usr/bin/time -f "%e %U %S %M" -o "$TMP/time" sh -c "exec $CMD" >/dev/null 2>"$TMP/err" || {
    cat "$TMP/err" >&2; exit 1; }
read -r WALL USER SYS MAXRSS <"$TMP/time"
REQ=$(curl -s "http://127.0.0.1:$PORT/stats" | sed 's/.*"requests": *\([0-9]*\).*/\1/')
PEAK=$(curl -s "http://127.0.0.1:$PORT/stats" | sed 's/.*"peak": *\([0-9]*\).*/\1/')
CONV=$(wc -l <"$TMP/run/dialogues.jsonl")
# The fake server's own CPU (it shares the machine): utime + stime in ticks.
TICKS=$(getconf CLK_TCK)
FAKE_CPU=$(awk -v t="$TICKS" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$FAKE/stat")
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
awk -v wall="$WALL" -v user="$USER" -v sys="$SYS" -v req="$REQ" -v j="$J" -v lat="$LAT" -v conv="$CONV" \
    -v turns="$TURNS" -v peak="$PEAK" -v rss="$MAXRSS" -v fake="$FAKE_CPU" -v load="$LOAD" \
    -v cpus="$(nproc)" 'BEGIN {
    l = lat / 1000
    ideal = req * l / j                         # the issue formula: requests x latency / j
    chain = req / conv * l                      # one conversation: its requests one after another
    waves = int((conv + j - 1) / j)             # whole conversations per slot, if a slot held one
    bound = (ideal > chain ? ideal : chain)     # no schedule beats either
    printf "conversations %d x %d turns, %d requests, -j %d, latency %d ms, peak in flight %d\n", conv, turns, req, j, lat, peak
    printf "wall %.2f s; ideal requests*latency/j = %.2f s (x%.2f); longest chain %.2f s; %d waves of whole conversations = %.2f s\n", wall, ideal, wall / ideal, chain, waves, waves * chain
    printf "aloe CPU: user %.2f s + sys %.2f s = %.3f ms per request; max RSS %.0f MB\n", user, sys, (user + sys) * 1000 / req, rss / 1024
    printf "fake server CPU %.2f s; machine: %d CPUs, load average %s\n", fake, cpus, load
}'
