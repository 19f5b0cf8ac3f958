#!/bin/sh
# Runs every test program under $BUILD/tests and prints one closing line:
#   TOTAL: N passed, N failed, N skipped
# Each program prints its own "result:" line; a program that crashes or
# times out counts as one failure. Each runs in its own session so that
# whatever it started (test servers) is killed with it, and its output goes
# to a file, so a leftover child can never hold the runner up.
#
# A test skips only when an input it needs is absent (the shared reference
# data: $ALOE_SHARED, default ../shared). Every skipped test is named at the
# end; with ALOE_REQUIRE_ALL=1 (CI) any skip fails the run, so a missing or
# misplaced shared/ cannot pass for a green run.
#
# TEST_ONLY="kernels/test_cpu model/test_decoder" runs only those programs
# (paths under $BUILD/tests): .ci/run's runs at each kernel level.
#
# TEST_JOBS=N runs N programs at a time (default: the CPUs this process may
# use, so `taskset -c 0 make test` runs them one by one). Most programs are
# single-threaded for most of their run; two at a time take ~55% of the
# sequential time on 2 cores. Programs may run side by side because each
# works in its own test_tmpdir() and its servers listen on ports the kernel
# picks; each program's report is printed whole when it ends, so the order
# of the reports is the order programs finished in.
BUILD=${BUILD:-build}
ALOE_SHARED=${ALOE_SHARED:-$(cd "$(dirname "$0")/.." && pwd)/../shared}
export BUILD ALOE_SHARED
TIMEOUT=${TEST_TIMEOUT:-900}
export TIMEOUT

# --one PROG DIR: runs one program, prints its report and leaves its counts
# in DIR/<name>.stat ("passed failed skipped exit-status"), its skips in
# DIR/<name>.skip (called by the loop below through xargs).
if [ "${1:-}" = "--one" ]; then
    t=$2 dir=$3
    name=$(echo "${t#"$BUILD"/tests/}" | tr / _)
    log="$dir/$name.log" report="$dir/$name.report"
    start=$(date +%s)
    setsid "$t" > "$log" 2>&1 &
    pid=$!
    ( sleep "$TIMEOUT"; kill -KILL -"$pid" ) >/dev/null 2>&1 </dev/null &
    watchdog=$!
    wait "$pid"
    rc=$?
    kill -KILL -"$pid" 2>/dev/null
    pkill -P "$watchdog" 2>/dev/null
    kill "$watchdog" 2>/dev/null
    wait "$watchdog" 2>/dev/null
    secs=$(( $(date +%s) - start ))
    {
        echo "== $t"
        grep -v '^ok ' "$log" | grep -v '^result:' | sed 's/^/  /'
    } > "$report"
    grep '^SKIPPED ' "$log" | sed "s|^SKIPPED |  $t: |" > "$dir/$name.skip"
    line=$(grep '^result:' "$log" | tail -1)
    if [ -z "$line" ]; then
        echo "  CRASHED or TIMED OUT (exit $rc, ${secs}s)" >> "$report"
        echo "0 1 0 $rc" > "$dir/$name.stat"
    else
        p=$(echo "$line" | sed 's/.* \([0-9]*\) passed.*/\1/')
        f=$(echo "$line" | sed 's/.* \([0-9]*\) failed.*/\1/')
        s=$(echo "$line" | sed 's/.* \([0-9]*\) skipped.*/\1/')
        echo "  $p passed, $f failed, $s skipped (${secs}s)" >> "$report"
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "  exit status $rc" >> "$report"; fi
        echo "$p $f $s $rc" > "$dir/$name.stat"
    fi
    cat "$report"
    exit 0
fi

jobs=${TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
list="$dir/programs"
: > "$list"
for t in $(find "$BUILD/tests" -type f -name 'test_*' -perm -u+x | sort); do
    # a binary left in the build folder by a test since moved or deleted
    # would pass for a test of today's tree: run only those with a source
    src="tests/${t#"$BUILD"/tests/}.c"
    if [ -n "$TEST_ONLY" ]; then
        case " $TEST_ONLY " in *" ${t#"$BUILD"/tests/} "*) ;; *) continue ;; esac
    fi
    if [ ! -f "$src" ]; then
        echo "== $t: no $src (a stale build), not run"
        continue
    fi
    echo "$t" >> "$list"
done
xargs -P "$jobs" -I{} "$0" --one {} "$dir" < "$list"

pass=0 fail=0 skip=0
failed_progs=""
while read -r t; do
    name=$(echo "${t#"$BUILD"/tests/}" | tr / _)
    if [ ! -f "$dir/$name.stat" ]; then # the runner itself was killed
        fail=$((fail + 1)); failed_progs="$failed_progs $t"; continue
    fi
    read -r p f s rc < "$dir/$name.stat"
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] && failed_progs="$failed_progs $t"
done < "$list"
if cat "$dir"/*.skip 2>/dev/null | grep -q .; then
    echo "skipped tests (ALOE_SHARED=$ALOE_SHARED):"
    cat "$dir"/*.skip
fi
status=0
[ "$fail" -eq 0 ] || status=1
if [ "$skip" -ne 0 ] && [ "${ALOE_REQUIRE_ALL:-0}" = 1 ]; then
    echo "ALOE_REQUIRE_ALL=1: $skip skipped tests count as failures"
    status=1
fi
[ -n "$failed_progs" ] && echo "failing programs:$failed_progs"
echo "TOTAL: $pass passed, $fail failed, $skip skipped"
exit $status
