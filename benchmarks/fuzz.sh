#!/usr/bin/env bash
# Fuzzes the safetensors reader and the recipe parser for a bounded time each and prints
# executions, executions per second, crashes, hangs and broken invariants per target.
#
#   benchmarks/fuzz.sh [SECONDS per target, default 60] [SEED, default 1]
#
# Each target runs `mixlab-fuzz` (release build, Sources/MixLabFuzz) from its seeds: the
# reader's are built in (Sources/MixLabFuzz/SeedFiles.swift), the recipes' are the committed
# Tests/Fuzz/corpus/recipes/. A session that crashes (exit 77) or hangs (78) has saved the
# input under .build/fuzz-findings/ and is restarted with the next seed for the time left;
# a broken invariant (79) is saved there too. The same SEED replays the same inputs.
# Exit status: 0 when nothing was found.
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${1:-60}
seed=${2:-1}
swift build -c release --product mixlab-fuzz >/dev/null || { echo "build failed" >&2; exit 2; }
bin=.build/release/mixlab-fuzz
findings=.build/fuzz-findings
mkdir -p "$findings"
stats=$(mktemp)
trap 'rm -f "$stats"' EXIT
found=0
printf '%-12s %8s %12s %10s %8s %6s %7s %8s\n' target seconds executions exec/s crashes hangs broken outcomes
for target in safetensors recipe; do
  # The reader's seeds are built into mixlab-fuzz (no model file is committed).
  corpus=()
  [ "$target" = recipe ] && corpus=(--corpus Tests/Fuzz/corpus/recipes)
  start=$(date +%s.%N)
  execs=0 crashes=0 hangs=0 broken=0 outcomes=0 session=0
  while :; do
    left=$(awk -v b="$budget" -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - (n - s) }')
    awk -v l="$left" 'BEGIN { exit !(l > 0.5) }' || break
    session=$((session + 1))
    echo '{}' >"$stats"
    "$bin" "$target" --seconds "$left" --seed $((seed * 1000 + session)) "${corpus[@]}" \
      --findings "$findings" --stats "$stats" >/dev/null
    rc=$?
    n=$(grep -o '"executions":[0-9]*' "$stats" | cut -d: -f2)
    b=$(grep -o '"broken":[0-9]*' "$stats" | cut -d: -f2)
    o=$(grep -o '"signatures":[0-9]*' "$stats" | cut -d: -f2)
    execs=$((execs + ${n:-0}))
    broken=$((broken + ${b:-0}))
    outcomes=$(( ${o:-0} > outcomes ? ${o:-0} : outcomes ))
    case $rc in
      0 | 79) ;;
      77) crashes=$((crashes + 1)) ;;
      78) hangs=$((hangs + 1)) ;;
      *) crashes=$((crashes + 1)); echo "mixlab-fuzz $target exited with $rc" >&2 ;;
    esac
  done
  elapsed=$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')
  rate=$(awk -v e="$execs" -v t="$elapsed" 'BEGIN { printf "%.0f", (t > 0 ? e / t : 0) }')
  printf '%-12s %8s %12d %10s %8d %6d %7d %8d\n' "$target" "$elapsed" "$execs" "$rate" "$crashes" "$hangs" "$broken" "$outcomes"
  found=$((found + crashes + hangs + broken))
done
if [ "$found" -gt 0 ]; then
  echo "findings saved in $findings/ (replay one: $bin replay <target> FILE)"
  exit 1
fi
