#!/bin/sh
# Runs every test program under $BUILD/tests and prints one closing line:
#   TOTAL: N passed, N failed, N skipped
# Each program prints its own "result:" line; a program that crashes or
# times out counts as one failure.
BUILD=${BUILD:-build}
ALOE_SHARED=${ALOE_SHARED:-$(cd "$(dirname "$0")/.." && pwd)/../shared}
export BUILD ALOE_SHARED
TIMEOUT=${TEST_TIMEOUT:-600}
pass=0 fail=0 skip=0
failed_progs=""
for t in $(find "$BUILD/tests" -type f -name 'test_*' -perm -u+x | sort); do
    echo "== $t"
    out=$(timeout "$TIMEOUT" "$t" 2>&1)
    rc=$?
    echo "$out" | grep -v '^ok ' | grep -v '^result:' | sed 's/^/  /'
    line=$(echo "$out" | grep '^result:' | tail -1)
    if [ -z "$line" ]; then
        echo "  CRASHED or TIMED OUT (exit $rc)"
        fail=$((fail + 1)); failed_progs="$failed_progs $t"; continue
    fi
    p=$(echo "$line" | sed 's/.* \([0-9]*\) passed.*/\1/')
    f=$(echo "$line" | sed 's/.* \([0-9]*\) failed.*/\1/')
    s=$(echo "$line" | sed 's/.* \([0-9]*\) skipped.*/\1/')
    echo "  $p passed, $f failed, $s skipped"
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then fail=$((fail + 1)); echo "  exit status $rc"; fi
    [ "$rc" -ne 0 ] && failed_progs="$failed_progs $t"
done
[ -n "$failed_progs" ] && echo "failing programs:$failed_progs"
echo "TOTAL: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
