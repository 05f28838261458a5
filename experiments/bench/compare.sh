#!/bin/sh
# compare.sh: the step times of two commits side by side on this machine (docs/performance.md).
# Builds BEFORE and AFTER (any git revisions of this repository) in their own trees under
# ${CAOPD_BENCH_DIR:-/tmp/caopd-bench}, then runs, alternating BEFORE and AFTER, RUNS times each:
#   recipe   the CaOPD step at the paper-effect recipe's size (width 64, 2 layers, 6 prompts x K 20
#            x 24 new tokens, mod): median of 3 steps of `caopd bench --opd-only`
#   base     the base stage's step at base-small's size (width 64, 2 layers, 32 pairs of its
#            mixture): median of 5 steps of experiments/bench/base_step.c, built against each commit
#   default  the CaOPD step at the bench's default size (width 128, 4 layers, 16 prompts x K 8
#            x 24 new tokens, add): median of 3 steps of `caopd bench --opd-only`
# all on one thread, and prints per size the median over runs of each commit and AFTER / BEFORE.
# Usage: experiments/bench/compare.sh BEFORE AFTER [RUNS (3); 0: only build]
# Environment: CAOPD_BENCH_DIR (build trees), CAOPD_BENCH_JOBS (build jobs, 1).
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 BEFORE AFTER [RUNS]" >&2
    exit 2
fi
BEFORE=$1 AFTER=$2 RUNS=${3:-3}
REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
HERE=$REPO/experiments/bench
WORK=${CAOPD_BENCH_DIR:-/tmp/caopd-bench}
JOBS=${CAOPD_BENCH_JOBS:-1}
mkdir -p "$WORK"

# build REV: exports REV into $WORK/<sha>, adds base_step.c, builds caopd and base_step there.
build() {
    sha=$(git -C "$REPO" rev-parse --short=10 "$1^{commit}")
    dir=$WORK/$sha
    if [ ! -x "$dir/build/caopd" ] || [ ! -x "$dir/build/caopd_base_step" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        git -C "$REPO" archive "$sha" | tar -x -C "$dir"
        cp "$HERE/base_step.c" "$dir/caopd_base_step.c"
        cat >> "$dir/harness/CMakeLists.txt" <<CMAKE
add_executable(caopd_base_step \${PROJECT_SOURCE_DIR}/caopd_base_step.c)
target_link_libraries(caopd_base_step PRIVATE caopd_trainer)
# base_step.c includes bare header names, found in the flat harness/ of older commits and in the
# layer folders of newer ones.
target_include_directories(caopd_base_step PRIVATE \${PROJECT_SOURCE_DIR}/harness \${PROJECT_SOURCE_DIR}/tasks
    \${PROJECT_SOURCE_DIR}/harness/model \${PROJECT_SOURCE_DIR}/harness/trainer \${PROJECT_SOURCE_DIR}/harness/torch)
set_target_properties(caopd_base_step PROPERTIES RUNTIME_OUTPUT_DIRECTORY \${PROJECT_BINARY_DIR})
CMAKE
        cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release >"$dir/configure.log" 2>&1
        cmake --build "$dir/build" -j "$JOBS" --target caopd caopd_base_step >"$dir/build.log" 2>&1 ||
            { echo "build of $1 failed: see $dir/build.log" >&2; exit 1; }
    fi
    echo "$dir"
}

step_s() { # FILE KEY: the value of KEY in the JSON line of FILE (opd_step.step_s or base_step_s)
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["opd_step"]["step_s"] if sys.argv[2]=="opd" else j["base_step_s"])' "$1" "$2"
}

run_size() { # DIR SIZE OUT
    case $2 in
    recipe) "$1/build/caopd" bench --json --opd-only --threads 1 --width 64 --layers 2 --heads 4 \
                --opd-prompts 6 --k 20 --opd-new 24 --opd-domain mod >"$3" 2>/dev/null
            step_s "$3" opd ;;
    base) "$1/build/caopd_base_step" 5 1 >"$3"
          step_s "$3" base ;;
    default) "$1/build/caopd" bench --json --opd-only --threads 1 >"$3" 2>/dev/null
             step_s "$3" opd ;;
    esac
}

echo "building $BEFORE and $AFTER under $WORK ..." >&2
DB=$(build "$BEFORE")
DA=$(build "$AFTER")
[ "$RUNS" -gt 0 ] || exit 0 # RUNS 0: build only
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')" 
echo "before $BEFORE ($(basename "$DB")), after $AFTER ($(basename "$DA")), $RUNS runs each, alternating"
OUT=$WORK/runs.$$
mkdir -p "$OUT"
for size in recipe base default; do
    : >"$OUT/$size.before"
    : >"$OUT/$size.after"
    r=1
    while [ "$r" -le "$RUNS" ]; do
        run_size "$DB" $size "$OUT/json" >>"$OUT/$size.before"
        run_size "$DA" $size "$OUT/json" >>"$OUT/$size.after"
        r=$((r + 1))
    done
    python3 - "$size" "$OUT/$size.before" "$OUT/$size.after" <<'PY'
import statistics, sys
size, b, a = sys.argv[1], [float(x) for x in open(sys.argv[2])], [float(x) for x in open(sys.argv[3])]
mb, ma = statistics.median(b), statistics.median(a)
print(f"{size:8s} before {mb:.4f} s  after {ma:.4f} s  after/before {ma / mb:.3f}   "
      f"(runs before {' '.join(f'{x:.4f}' for x in b)}; after {' '.join(f'{x:.4f}' for x in a)})")
PY
done
rm -rf "$OUT"
