#!/bin/sh
# Mutation check: applies each deliberate bug of scripts/mutations.txt, one
# at a time, to a copy of this tree (never the working tree itself), rebuilds
# incrementally, runs the test programs the bug names and reports whether
# they caught it (killed) or not (survived).
#
#   scripts/mutate.sh            every mutation
#   scripts/mutate.sh --fast     those marked `fast = yes` (CI; ~2-3 min on 2 cores)
#   scripts/mutate.sh NAME...    the named ones
#   scripts/mutate.sh --check    only check that every `from` text occurs
#                                (seconds; before a commit that edits code)
#
# A `from` text that no longer occurs in its file exactly `count` times
# stops the script (exit 2) before anything is built, every such text of
# the list named (not only the selected mutations'): the list must follow
# the code. Exit status:
# 0 when every mutation was killed, 1 when one survived. Last line:
# "mutations: K killed of N". Needs python3 (for the literal substitution).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
list="$root/scripts/mutations.txt"
fast=0 check=0
if [ "${1:-}" = "--fast" ]; then fast=1; shift; fi
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
work=$(mktemp -d "${TMPDIR:-/tmp}/aloe-mutate.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
# a test that fails keeps its temporary directories for inspection
# (tests/test.c): under the work directory they go with it, rather than
# piling up in /tmp by the dozen on every run
mkdir "$work/tmp"
TMPDIR=$work/tmp
export TMPDIR
jobs=${JOBS:-2}
# the copy's tests must find the same shared fixtures as this tree's
# (a test that skips for want of them would let every bug survive)
if [ -z "${ALOE_SHARED:-}" ]; then
    if [ -d "$root/../shared" ]; then ALOE_SHARED=$(cd "$root/../shared" && pwd); else
        echo "mutate.sh: no ../shared beside the tree; set ALOE_SHARED" >&2; exit 2
    fi
fi
export ALOE_SHARED

# The plan: name<TAB>file<TAB>tests<TAB>fast<TAB>count, one line each.
plan="$work/.mutations.plan"
python3 - "$list" "$plan" "$fast" "$root" "$@" <<'PY'
import sys
src, out, fast, root, names = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], sys.argv[5:]
muts, cur = [], None
for ln, line in enumerate(open(src), 1):
    line = line.rstrip("\n")
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    if line.startswith("[") and line.endswith("]"):
        cur = {"name": line[1:-1], "pairs": [], "count": 1, "fast": False, "needs": "", "line": ln}
        muts.append(cur)
        continue
    key, sep, val = line.partition(" = ")
    if not sep or cur is None:
        sys.exit(f"mutations.txt:{ln}: expected 'key = value' inside a [name] block")
    val = val.replace("\\n", "\n")
    if key == "from": cur["pairs"].append([val, None])
    elif key == "to": cur["pairs"][-1][1] = val
    elif key == "count": cur["count"] = int(val)
    elif key == "fast": cur["fast"] = val == "yes"
    elif key in ("file", "tests", "needs"): cur[key] = val
    else: sys.exit(f"mutations.txt:{ln}: unknown key {key!r}")
stale = []
for m in muts:
    try:
        text = open(f"{root}/{m.get('file', '')}").read()
    except OSError:
        stale.append(f"[{m['name']}] (mutations.txt:{m['line']}): no file {m.get('file')!r}")
        continue
    for frm, _ in m["pairs"]:
        if text.count(frm) != m["count"]:
            stale.append(f"[{m['name']}] {m['file']}: {text.count(frm)} occurrence(s), expected {m['count']}, of:\n  {frm}")
if stale:
    print("mutate.sh: update scripts/mutations.txt:\n" + "\n".join(stale), file=sys.stderr)
    sys.exit(2)
sel = [m for m in muts if (not names or m["name"] in names) and (not fast or m["fast"])]
if names and len(sel) != len(names):
    sys.exit("unknown mutation among: " + " ".join(names))
import json
with open(out, "w") as f:
    for m in sel:
        if not all(p[1] is not None for p in m["pairs"]) or not m["pairs"]:
            sys.exit(f"mutations.txt:{m['line']}: [{m['name']}] needs from/to pairs")
        f.write(json.dumps(m) + "\n")
PY

if [ $check -eq 1 ]; then
    echo "mutate.sh: every from text of $(grep -c '^\[' "$list") mutations occurs as listed"
    exit 0
fi

# The copy: tracked and untracked-but-not-ignored files as they are now,
# mtimes kept, plus the warm build directory if there is one (so the first
# build is incremental too).
(cd "$root" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | (cd "$work" && tar -xf -)
if [ -d "$root/build" ]; then cp -a "$root/build" "$work/build"; fi

# Applies (or checks) one mutation on the copy: exit 2 if a `from` text
# does not occur exactly `count` times.
apply() {
    python3 - "$work" "$1" <<'PY'
import json, sys
work, m = sys.argv[1], json.loads(sys.argv[2])
path = f"{work}/{m['file']}"
text = open(path).read()
for frm, to in m["pairs"]:
    n = text.count(frm)
    if n != m["count"]:
        print(f"mutate.sh: [{m['name']}] {m['file']}: expected {m['count']} occurrence(s) of:\n  {frm}\nfound {n}: "
              "update scripts/mutations.txt", file=sys.stderr)
        sys.exit(2)
    text = text.replace(frm, to)
open(path, "w").write(text)
PY
}

field() { python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print(m[sys.argv[2]])' "$1" "$2"; }

cd "$work"
echo "mutate.sh: baseline build in $work"
make -s -j"$jobs" build/aloe build/libaloe.a >/dev/null
# the kernel levels and CPU features this machine runs (for `needs`)
have=" $(build/aloe speed --kernels | sed -n 's/^levels: //p; s/^cpu: //p' | tr '\n' ' ') "
killed=0 total=0 survived="" not_here=0
while IFS= read -r m; do
    name=$(field "$m" name) file=$(field "$m" file) tests=$(field "$m" tests) needs=$(field "$m" needs)
    cp -p "$file" "$work/.orig" # mtime kept: a mutation not run here leaves nothing to rebuild
    set +e
    apply "$m" </dev/null
    rc=$?
    set -e
    if [ $rc -ne 0 ]; then exit 2; fi
    if [ -n "$needs" ]; then
        case $have in *" $needs "*) ;; *)
            # the `from` text was still checked above: the list stays in step with the code
            cp -p "$work/.orig" "$file"
            not_here=$((not_here + 1))
            printf '%-36s %s\n' "$name" "not applicable: needs $needs, which this CPU lacks"
            continue ;;
        esac
    fi
    total=$((total + 1))
    bins="build/aloe"
    for t in $tests; do bins="$bins build/tests/$t"; done
    verdict=survived
    if ! make -s -j"$jobs" $bins >"$work/.build.log" 2>&1 </dev/null; then
        verdict="killed (build failed)"
    else
        for t in $tests; do
            if ! timeout 300 "build/tests/$t" >"$work/.test.log" 2>&1 </dev/null; then
                why=$(grep -m1 "^FAIL" "$work/.test.log" | cut -c1-150 || true)
                verdict="killed by $t${why:+: $why}"
                break
            fi
            # a skipped check catches nothing
            if grep -q " [1-9][0-9]* skipped$" "$work/.test.log"; then
                echo "mutate.sh: $t skipped checks (fixtures?): see its output" >&2
                cat "$work/.test.log" >&2
                exit 2
            fi
        done
    fi
    # restore the file (a fresh mtime, so the next build recompiles it)
    cp "$work/.orig" "$file"
    touch "$file"
    case $verdict in
    killed*) killed=$((killed + 1)) ;;
    *) survived="$survived $name" ;;
    esac
    printf '%-36s %s\n' "$name" "$verdict"
done <"$plan"
# the restored tree must build and pass again (nothing left behind)
make -s -j"$jobs" build/aloe >/dev/null
if [ -n "$survived" ]; then echo "survived:$survived"; fi
extra=""
[ "$not_here" -eq 0 ] || extra=" ($not_here more not applicable on this CPU)"
echo "mutations: $killed killed of $total$extra"
[ "$killed" -eq "$total" ]
