#!/usr/bin/env bash
# diff and distance on full-size SD1 fp16 models (issue 6): `mixlab diff` of two models
# (target ≤ 3 s) and `mixlab distance` of 8 (target ≤ 20 s), each with wall time, CPU time
# and peak RSS, plus 1 vs 2 threads for distance. Models are synthesized once into
# $BENCH_DIR/many (16 models, 2.13 GB each) unless MODELS points to a folder that already
# holds sd1-00 … sd1-07. Each timed command runs once to warm the page cache, then 3 times;
# best and median are printed. 8 models are 17 GB: on a 24 GB machine they just fit the page
# cache, so close other memory-hungry programs first.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-$PWD/.bench}
swift build -c release --product mixlab >/dev/null
BIN=$PWD/.build/release/mixlab
M=${MODELS:-$BENCH_DIR/many}
if [ ! -f "$M/sd1-07.safetensors" ]; then
  echo "synthesizing 8 full-size SD1 models into $M …" >&2
  "$BIN" synth --arch sd1 --count 8 --seed 5 --out "$M" >/dev/null
fi
A=$M/sd1-00.safetensors
B=$M/sd1-01.safetensors
EIGHT=$(printf "$M/sd1-%02d.safetensors " 0 1 2 3 4 5 6 7)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# Runs "$@" three times after a warm-up; prints best/median wall, median CPU, peak RSS.
bench() {
  local label=$1
  shift
  "$@" >/dev/null 2>&1
  local rows=()
  for _ in 1 2 3; do
    # -o: the figures go to a file (the command's own stderr, progress lines, is discarded).
    /usr/bin/time -o "$OUT/time" -f "%e %U %S %M" "$@" >/dev/null 2>/dev/null || true
    rows+=("$(tail -1 "$OUT/time")")
  done
  printf "%s\n" "${rows[@]}" | sort -n | awk -v label="$label" '
    { wall[NR] = $1; cpu[NR] = $2 + $3; rss = ($4 > rss ? $4 : rss) }
    END { printf "%-44s %8.2f %8.2f %9.2f %9.0f MiB\n", label, wall[1], wall[2], cpu[2], rss / 1024 }'
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
printf "%-44s %8s %8s %9s %13s\n" command best_s median_s cpu_s peak_rss
bench "diff A B (two full-size SD1)" "$BIN" diff "$A" "$B" --json
bench "diff A B --svg" "$BIN" diff "$A" "$B" --svg "$OUT/diff.svg"
bench "diff A A (identical bytes)" "$BIN" diff "$A" "$A" --json
# shellcheck disable=SC2086
bench "distance of 8 full-size SD1 (--svg)" "$BIN" distance $EIGHT --json --svg "$OUT/map.svg"
# shellcheck disable=SC2086
bench "distance of 8, --threads 1" "$BIN" distance $EIGHT --json --threads 1
# shellcheck disable=SC2086
bench "distance of 4 full-size SD1" "$BIN" distance $(printf "$M/sd1-%02d.safetensors " 0 1 2 3) --json
