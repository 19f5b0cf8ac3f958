#!/usr/bin/env bash
# check-backend.sh [SRC_DIR]: fails when the backend seam (src/kernels/backend.h,
# docs/DESIGN.md §5) is bypassed:
#  - a BLAS call or include (cblas) anywhere under src/ outside src/kernels/:
#    the CPU backend owns the BLAS products;
#  - in the decoder's forward (src/model/decoder*.c) or in training
#    (src/train/): a direct call of a CPU kernel (matmul, attention, norms,
#    RoPE, activations, the training backwards, the pool-split row ops,
#    the LoRA GEMMs, the SIMD dot products) or an include of a kernels/
#    header other than backend.h, threads.h (the pool callers pass) and
#    matmul.h (the QMat weight view): those go through a Backend.
# Every offence is printed as FILE:LINE: text; exit 1 if there is one, 0 if
# none, 2 on bad usage.
set -u

src=${1:-src}
if [ ! -d "$src" ]; then
    echo "check-backend: no such directory: $src" >&2
    exit 2
fi

bad=0
# report WHY HITS: each line of HITS (FILE:LINE:text) printed with why
report() {
    [ -n "$2" ] || return 0
    while IFS= read -r hit; do echo "$hit: $1"; done <<<"$2"
    bad=1
}

report "BLAS outside src/kernels/ (the CPU backend's)" \
    "$(grep -rnE 'cblas' "$src" --include='*.c' --include='*.h' | grep -v "^$src/kernels/")"

seam_files=$(ls "$src"/model/decoder*.c "$src"/train/*.c "$src"/train/*.h 2>/dev/null)
if [ -n "$seam_files" ]; then
    # shellcheck disable=SC2086
    report "a kernels/ header other than backend.h, threads.h, matmul.h: call the Backend" \
        "$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"kernels/' $seam_files |
            grep -vE '"kernels/(backend|threads|matmul)\.h"')"
    # a name called as a function, not as a Backend member (be->x( or .x()
    calls='(^|[^>.A-Za-z0-9_])(matmul_forward[a-z_]*|attention_forward[a-z_]*|(rms|layer)norm[a-z_]*_(forward|backward)|norm_(forward|backward)|rope_(forward|backward|scaled_backward)[a-z_]*|(swiglu|geglu[a-z_]*)_(forward|backward)|(softcap|clamp|scale|add|add_bias|softmax)_(forward|backward)|linear_backward[a-z_]*|attn_train_[a-z_]+|par_[a-z_]+|lora_(forward|backward|merge_f32)|embedding[a-z_]*_(forward|backward)|vec_dot[a-z_]*|kernel_[a-z_]+|dot_f32|axpy_f32)[[:space:]]*\('
    # shellcheck disable=SC2086
    report "a CPU kernel called directly: call the Backend (kernels/backend.h)" \
        "$(grep -nE "$calls" $seam_files | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*)')"
fi

if [ "$bad" -ne 0 ]; then
    echo "check-backend: the backend seam is bypassed (docs/DESIGN.md §5)" >&2
    exit 1
fi
echo "check-backend: ok"
exit 0
