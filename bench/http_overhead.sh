#!/bin/sh
# The HTTP side's own overhead: N chat requests at -j J against the test-only
# fake_openai server answering after LATENCY ms, without and with the SQLite
# request cache. Prints one JSON line per run: wall time vs the ideal
# (N * latency / J) and aloe's CPU time per request (getrusage, client only).
#
#   bench/http_overhead.sh [N=3200] [J=64] [LATENCY_MS=100]
#
# Target (issue 2): wall within 2x of ideal, CPU under 1 ms per request.
set -e
cd "$(dirname "$0")/.."
N=${1:-3200}
J=${2:-64}
LAT=${3:-100}
BUILD=${BUILD:-build}
make -s -j2 BUILD="$BUILD" "$BUILD/tests/tools/fake_openai" "$BUILD/tests/tools/bench_http" >/dev/null
dir=$(mktemp -d /tmp/aloe-bench-http-XXXXXX)
"$BUILD/tests/tools/fake_openai" --port 0 --port-file "$dir/port" --latency-ms "$LAT" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
i=0
while [ ! -s "$dir/port" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
url="http://127.0.0.1:$(cat "$dir/port")/v1"
echo "# $N requests, -j $J, server latency $LAT ms, $(nproc) CPUs"
"$BUILD/tests/tools/bench_http" --url "$url" --requests "$N" -j "$J" --latency-ms "$LAT"
"$BUILD/tests/tools/bench_http" --url "$url" --requests "$N" -j "$J" --latency-ms "$LAT" --cache "$dir/cache.sqlite"
