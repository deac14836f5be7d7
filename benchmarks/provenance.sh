#!/usr/bin/env bash
# Provenance figures (issue 5) on full-size synthesized SD1 fp16 models, warm page cache:
#  - what recording a run (git commit + SQLite rows) adds to a full-size weighted_sum;
#  - that a second run over unchanged inputs hashes nothing (hash cache, reuse);
#  - input hashing speed (whole-file, tensor-data and per-tensor SHA-256 in one read).
# Uses the models and workspace of benchmarks/merge.sh (run that first, or this runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-$PWD/.bench}
[ -d "$BENCH_DIR/ws/experiments/bench" ] || RUNS=1 ONLY=weighted_sum benchmarks/merge.sh >/dev/null
BIN=$PWD/.build/release/mixlab
cd "$BENCH_DIR/ws"
R=experiments/bench/weighted_sum.yaml
for f in "$BENCH_DIR"/models/*.safetensors; do cat "$f" >/dev/null; done
field() { python3 -c "import json,sys; r=json.load(sys.stdin)['runs'][0]; print($1)"; }

echo "recording overhead (weighted_sum of two full-size SD1 models, --force):"
for i in 1 2 3; do
  "$BIN" run "$R" --force --json | field "'  run %d: total %.2f s, merge %.2f s, record %.3f s (%.2f %% of the run)' % ($i, r['seconds'], r['timings']['merge_seconds'], r['timings']['record_seconds'], 100*r['timings']['record_seconds']/r['seconds'])"
done
echo "second run over unchanged inputs:"
"$BIN" run "$R" --json | field "'  reused=%s, bytes hashed=%d, %.3f s' % (r['reused'], r['timings']['hashed_bytes'], r['seconds'])"
echo "input hashing (--verify forces re-hashing both 2.13 GB inputs; three digests per read):"
for i in 1 2 3; do
  "$BIN" run "$R" --verify --json | field "'  run %d: %.2f GB in %.2f s = %.2f GB/s of input (%.2f GB/s of SHA-256 per core: 3 digests over 2 cores)' % ($i, r['timings']['hashed_bytes']/1e9, r['timings']['hash_seconds'], r['timings']['hashed_bytes']/1e9/r['timings']['hash_seconds'], 3*r['timings']['hashed_bytes']/1e9/r['timings']['hash_seconds']/2)"
done
