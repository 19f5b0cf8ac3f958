#!/usr/bin/env bash
# check-layers.sh [SRC_DIR]: fails when a file under src/<layer>/ includes a
# header of a layer above it (GUIDE.md §3: "a layer includes only layers
# below it"). Every offending include is printed as FILE:LINE: the include,
# and why; exit status 1 if there is one, 0 if none, 2 on bad usage.
#
# The order, bottom to top (one level per entry; infer and train share a
# level: both sit on model, neither may include the other, since each is
# below neither):
#   base < formats < tok < kernels < model < {infer, train} < llm < {aloe, serve} < cli
# (serve, the OpenAI-compatible server, sits on llm's wire format beside
# aloe: the benchmark never needs the server, nor the server the benchmark)
# A file may include its own layer and any lower level. Includes are the
# project's quoted ones, "layer/file.h" (also with a leading ../); system
# headers <...> are not the project's and are not checked. A folder under
# src/ that is not in the list is itself an error: a new layer must be given
# its place here first.
set -u

src=${1:-src}
if [ ! -d "$src" ]; then
    echo "check-layers: no such directory: $src" >&2
    exit 2
fi

level() {
    case "$1" in
    base) echo 0 ;;
    formats) echo 1 ;;
    tok) echo 2 ;;
    kernels) echo 3 ;;
    model) echo 4 ;;
    infer | train) echo 5 ;;
    llm) echo 6 ;;
    aloe | serve) echo 7 ;;
    cli) echo 8 ;;
    *) echo -1 ;;
    esac
}

bad=0
for dir in "$src"/*/; do
    layer=$(basename "$dir")
    lv=$(level "$layer")
    if [ "$lv" -lt 0 ]; then
        echo "$dir: unknown layer '$layer' (known: base formats tok kernels model infer train llm aloe serve cli; add it to scripts/check-layers.sh)"
        bad=1
        continue
    fi
    # file:line:text of every quoted include naming a folder, in any file of the layer
    while IFS= read -r hit; do
        file=${hit%%:*}
        rest=${hit#*:}
        line=${rest%%:*}
        text=${rest#*:}
        target=$(printf '%s\n' "$text" | sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\(\.\.\/\)*\([A-Za-z0-9_]*\)\/.*/\2/p')
        [ -n "$target" ] || continue
        tl=$(level "$target")
        inc=$(printf '%s\n' "$text" | sed 's/^[[:space:]]*//')
        if [ "$tl" -lt 0 ]; then
            echo "$file:$line: $inc: '$target' is not a layer"
            bad=1
        elif [ "$tl" -gt "$lv" ]; then
            echo "$file:$line: $inc: $layer (level $lv) includes $target (level $tl), a layer above it"
            bad=1
        elif [ "$tl" -eq "$lv" ] && [ "$target" != "$layer" ]; then
            echo "$file:$line: $inc: $layer includes its sibling $target (layers of one level, infer and train or aloe and serve, may not include each other)"
            bad=1
        fi
    done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$dir" --include='*.c' --include='*.h' || true)
done

if [ "$bad" -ne 0 ]; then
    echo "check-layers: layering violated (GUIDE.md §3: a layer includes only layers below it)" >&2
    exit 1
fi
echo "check-layers: ok"
exit 0
