#!/bin/sh
# layers.sh: every project #include names a folder its own layer may use (docs/code.md): lower
# layers never include higher ones. Run from anywhere; prints each offending line, exit 1.
set -eu
cd "$(dirname "$0")/.."
allowed() { # FOLDER -> the folders its files may include from (besides its own)
    case $1 in
    common) echo "" ;;
    tasks | checkpoints | analysis/metrics | harness/torch) echo "common" ;;
    analysis/figures) echo "common analysis/metrics" ;;
    analysis/report) echo "common checkpoints analysis/metrics analysis/figures" ;;
    harness/model) echo "common tasks harness/torch" ;;
    harness/trainer) echo "common tasks harness/torch harness/model" ;;
    harness/bench) echo "common tasks harness/torch harness/model harness/trainer" ;;
    harness/run) echo "common tasks checkpoints analysis/metrics harness/torch harness/model harness/trainer" ;;
    harness/cli) echo "common tasks checkpoints analysis/metrics analysis/figures analysis/report harness/torch harness/model harness/trainer harness/bench harness/run" ;;
    *) echo "?" ;;
    esac
}
DIRS="common tasks checkpoints analysis/metrics analysis/figures analysis/report harness/torch
harness/model harness/trainer harness/bench harness/run harness/cli"
# A source file in a folder this list does not know is an error too.
find common tasks checkpoints analysis harness \( -name '*.c' -o -name '*.h' -o -name '*.cpp' \) |
    while IFS= read -r f; do
        case " $(echo $DIRS) " in
        *" ${f%/*} "*) ;;
        *) echo "$f: in no layer of tests/layers.sh (add its folder there and to docs/code.md)" ;;
        esac
    done >/tmp/layers.$$
for dir in $DIRS; do
    ok="$dir $(allowed "$dir")"
    for f in "$dir"/*.c "$dir"/*.h "$dir"/*.cpp; do
        [ -e "$f" ] || continue
        grep -n '^#include "' "$f" | while IFS= read -r line; do
            inc=$(printf '%s\n' "$line" | sed 's/.*#include "\([^"]*\)".*/\1/')
            folder=${inc%/*}
            case " $ok " in
            *" $folder "*) ;;
            *) echo "$f:${line%%:*}: includes $inc, above its layer ($dir may use: $ok)" ;;
            esac
        done
    done
done >>/tmp/layers.$$
if [ -s /tmp/layers.$$ ]; then
    cat /tmp/layers.$$
    rm -f /tmp/layers.$$
    exit 1
fi
rm -f /tmp/layers.$$
echo "layers: every include is within its layer"
