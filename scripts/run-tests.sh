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
BUILD=${BUILD:-build}
ALOE_SHARED=${ALOE_SHARED:-$(cd "$(dirname "$0")/.." && pwd)/../shared}
export BUILD ALOE_SHARED
TIMEOUT=${TEST_TIMEOUT:-900}
pass=0 fail=0 skip=0
failed_progs=""
log=$(mktemp)
skipped=$(mktemp)
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
    echo "== $t"
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
    grep -v '^ok ' "$log" | grep -v '^result:' | sed 's/^/  /'
    grep '^SKIPPED ' "$log" | sed "s|^SKIPPED |  $t: |" >> "$skipped"
    line=$(grep '^result:' "$log" | tail -1)
    if [ -z "$line" ]; then
        echo "  CRASHED or TIMED OUT (exit $rc, ${secs}s)"
        fail=$((fail + 1)); failed_progs="$failed_progs $t"; continue
    fi
    p=$(echo "$line" | sed 's/.* \([0-9]*\) passed.*/\1/')
    f=$(echo "$line" | sed 's/.* \([0-9]*\) failed.*/\1/')
    s=$(echo "$line" | sed 's/.* \([0-9]*\) skipped.*/\1/')
    echo "  $p passed, $f failed, $s skipped (${secs}s)"
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then fail=$((fail + 1)); echo "  exit status $rc"; fi
    [ "$rc" -ne 0 ] && failed_progs="$failed_progs $t"
done
rm -f "$log"
if [ -s "$skipped" ]; then
    echo "skipped tests (ALOE_SHARED=$ALOE_SHARED):"
    cat "$skipped"
fi
rm -f "$skipped"
status=0
[ "$fail" -eq 0 ] || status=1
if [ "$skip" -ne 0 ] && [ "${ALOE_REQUIRE_ALL:-0}" = 1 ]; then
    echo "ALOE_REQUIRE_ALL=1: $skip skipped tests count as failures"
    status=1
fi
[ -n "$failed_progs" ] && echo "failing programs:$failed_progs"
echo "TOTAL: $pass passed, $fail failed, $skip skipped"
exit $status
