#!/bin/sh
# same_results.sh A.h5 B.h5: are two results files of the same experiment the same bits, except
# for wall-clock timings (each stage's timing/ group and its eval_s attribute)? For refactors
# that must not change behaviour (docs/code.md). Needs h5diff (hdf5-tools). Exit 0: same.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 A.h5 B.h5" >&2; exit 2; }
excl=""
for s in $(h5ls "$1/stages" 2>/dev/null | awk '{print $1}'); do excl="$excl --exclude-path /stages/$s/timing"; done
out=$(h5diff -v $excl "$1" "$2" 2>&1) && rc=0 || rc=$?
[ "$rc" -le 1 ] || { printf '%s\n' "$out" >&2; exit 2; }
# what differs: "attribute: <NAME of <OBJ>> ..." or "dataset: <...>" lines followed by a count
diffs=$(printf '%s\n' "$out" | awk '/^(attribute|dataset|group):/ {what=$0} /^[1-9][0-9]* differences? found/ {print what}')
others=$(printf '%s\n' "$diffs" | grep -v '^attribute: <eval_s of ' | grep -v '^$' || true)
if [ -n "$others" ]; then
    printf 'differ beyond timings:\n%s\n' "$others"
    exit 1
fi
echo "same bits (timings aside): $1 $2"
