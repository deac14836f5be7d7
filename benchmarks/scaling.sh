#!/usr/bin/env bash
# Scaling with the number of models (issue 3): average of N full-size SD1 fp16 models for
# N = 4, 8, 16, printing wall time, time per model and peak RSS. Needs ~40 GB free for 16
# models (2.13 GB each), synthesized once into $BENCH_DIR/many. With 16 models the inputs no
# longer fit the page cache of a 24 GB machine, so that run also reads from disk.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-$PWD/.bench}
swift build -c release --product mixlab >/dev/null
BIN=$PWD/.build/release/mixlab
M=$BENCH_DIR/many
if [ ! -f "$M/sd1-15.safetensors" ]; then
  echo "synthesizing 16 full-size SD1 models into $M …" >&2
  "$BIN" synth --arch sd1 --count 16 --seed 3 --out "$M" >/dev/null
fi
WS=$BENCH_DIR/ws-scaling
rm -rf "$WS" && "$BIN" init "$WS" >/dev/null
E=$WS/experiments/scaling
mkdir -p "$E"
for n in 4 8 16; do
  {
    echo "mixlab: 1"
    echo "inputs:"
    for i in $(seq 0 $((n - 1))); do printf "  m%d: {path: %s/sd1-%02d.safetensors}\n" "$i" "$M" "$i"; done
    echo "steps:"
    printf "  soup: {method: average, models: [%s]}\n" "$(seq -s, 0 $((n - 1)) | sed 's/[0-9]\+/m&/g')"
    echo "output: {from: soup, dtype: f16}"
  } > "$E/avg$n.yaml"
done
cd "$WS"
# Hash every input once (cached afterwards), so the timed runs only merge.
"$BIN" run "$E/avg16.yaml" --dry-run >/dev/null
for n in 4 8 16; do "$BIN" run "$E/avg$n.yaml" --json >/dev/null; done
# wall_s/peak_rss: `run --force --no-compare` (the merge); with_report_s: a default run, which
# also places output and inputs on the report's distance map (a pass over all of them).
printf "%-8s %10s %14s %12s %14s %12s\n" models wall_s s_per_model peak_rss with_report_s report_rss
for n in 4 8 16; do
  for i in $(seq 0 $((n - 1))); do cat "$(printf "%s/sd1-%02d.safetensors" "$M" "$i")" >/dev/null; done
  out=$( { /usr/bin/time -f "%e %M" "$BIN" run "$E/avg$n.yaml" --force --no-compare --json >/dev/null; } 2>&1 | tail -1)
  t=${out% *}; k=${out#* }
  full=$( { /usr/bin/time -f "%e %M" "$BIN" run "$E/avg$n.yaml" --force --json >/dev/null; } 2>&1 | tail -1)
  printf "%-8s %10s %14.2f %9.2f GiB %14s %9.2f GiB\n" "$n" "$t" "$(echo "$t / $n" | bc -l)" "$(echo "$k / 1048576" | bc -l)" \
    "${full% *}" "$(echo "${full#* } / 1048576" | bc -l)"
done
