#!/usr/bin/env bash
# Merge benchmarks on full-size synthesized SD1 fp16 models (2.13 GB each), warm page cache.
# Prints one row per merge: wall time (best and median of RUNS) and peak RSS of `mixlab run`.
#
#   benchmarks/merge.sh                 # all merges, 3 runs each
#   RUNS=1 ONLY="weighted_sum ties" benchmarks/merge.sh
#   BENCH_DIR=/big/disk benchmarks/merge.sh
#
# Needs ~15 GB free (4 inputs + outputs); the models are kept in $BENCH_DIR for later runs.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-$PWD/.bench}
ONLY=${ONLY:-"weighted_sum add_difference average ties geometric_median weighted_sum_f64"}
swift build -c release --product mixlab >/dev/null
BIN=$PWD/.build/release/mixlab

mkdir -p "$BENCH_DIR"
if [ ! -f "$BENCH_DIR/models/sd1-03.safetensors" ]; then
  echo "synthesizing 4 full-size SD1 fp16 models into $BENCH_DIR/models …" >&2
  /usr/bin/time -f "synth of 4: %e s, peak RSS %M KiB" "$BIN" synth --arch sd1 --count 4 --seed 1 --out "$BENCH_DIR/models" >/dev/null
fi
WS=$BENCH_DIR/ws
rm -rf "$WS" && "$BIN" init "$WS" >/dev/null
E=$WS/experiments/bench
mkdir -p "$E"
M=$BENCH_DIR/models
recipe() { # name, method body
  cat > "$E/$1.yaml"
}
recipe weighted_sum <<Y
mixlab: 1
inputs: {a: {path: $M/sd1-01.safetensors}, b: {path: $M/sd1-02.safetensors}}
steps: {m: {method: weighted_sum, models: [a, b], alpha: 0.3}}
output: {from: m, dtype: f16}
Y
recipe weighted_sum_f64 <<Y
mixlab: 1
inputs: {a: {path: $M/sd1-01.safetensors}, b: {path: $M/sd1-02.safetensors}}
steps: {m: {method: weighted_sum, models: [a, b], alpha: 0.3}}
output: {from: m, dtype: f16, compute: f64}
Y
recipe add_difference <<Y
mixlab: 1
inputs: {a: {path: $M/sd1-01.safetensors}, b: {path: $M/sd1-02.safetensors}, c: {path: $M/sd1-00.safetensors}}
steps: {m: {method: add_difference, models: [a, b, c], alpha: 0.5}}
output: {from: m, dtype: f16}
Y
recipe average <<Y
mixlab: 1
inputs: {a: {path: $M/sd1-01.safetensors}, b: {path: $M/sd1-02.safetensors}, c: {path: $M/sd1-03.safetensors}}
steps: {m: {method: average, models: [a, b, c]}}
output: {from: m, dtype: f16}
Y
recipe ties <<Y
mixlab: 1
inputs: {base: {path: $M/sd1-00.safetensors}, a: {path: $M/sd1-01.safetensors}, b: {path: $M/sd1-02.safetensors}, c: {path: $M/sd1-03.safetensors}}
steps: {m: {method: ties, base: base, models: [a, b, c], density: 0.5}}
output: {from: m, dtype: f16}
Y
recipe geometric_median <<Y
mixlab: 1
inputs: {a: {path: $M/sd1-01.safetensors}, b: {path: $M/sd1-02.safetensors}, c: {path: $M/sd1-03.safetensors}}
steps: {m: {method: geometric_median, models: [a, b, c], max_iter: 100}}
output: {from: m, dtype: f16}
Y
cd "$WS"
# Hash the inputs once (the hash cache makes later runs skip it) and warm the page cache.
for f in "$M"/*.safetensors; do cat "$f" >/dev/null; done
"$BIN" run "$E/weighted_sum.yaml" --json >/dev/null

# best_s/median_s/peak_rss: `mixlab run --force --no-compare` (merge, hashes, fsync, record).
# with_report_s: one default `mixlab run --force`, which also compares the new output with its
# inputs for REPORT.md (one more streaming pass over output and inputs).
printf "%-20s %10s %10s %12s %14s\n" merge best_s median_s peak_rss with_report_s
for name in $ONLY; do
  times=(); rss=0
  for i in $(seq "$RUNS"); do
    out=$( { /usr/bin/time -f "%e %M" "$BIN" run "$E/$name.yaml" --force --no-compare --json >/dev/null; } 2>&1 | tail -1)
    times+=("${out% *}"); k=${out#* }; [ "$k" -gt "$rss" ] && rss=$k
  done
  sorted=$(printf "%s\n" "${times[@]}" | sort -n)
  best=$(echo "$sorted" | head -1); median=$(echo "$sorted" | sed -n "$(( (RUNS + 1) / 2 ))p")
  full=$( { /usr/bin/time -f "%e" "$BIN" run "$E/$name.yaml" --force --json >/dev/null; } 2>&1 | tail -1)
  printf "%-20s %10s %10s %9.2f GiB %14s\n" "$name" "$best" "$median" "$(echo "$rss / 1048576" | bc -l)" "$full"
done
