#!/usr/bin/env bash
# Foundation figures (issue 2): synth and inspect on full-size synthesized SD1 fp16 models.
#
#   benchmarks/foundation.sh [WORK_DIR]
#
# Builds release, synthesizes three full-size SD1 models (about 6.4 GB) into WORK_DIR (a
# fresh temporary folder by default, removed afterwards), then times each step RUNS times
# (default 3) with a warm page cache and prints the best and median wall time and peak RSS
# against the issue's targets. Not a test: nothing fails on a missed target, the table says.
#
# Environment: RUNS (default 3); KEEP=1 keeps the models; SCALE (default 1) shrinks the models
# for a quick check of the script itself (the targets only mean something at full size).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SCALE=${SCALE:-1}
NEED_GB=$(awk -v s="$SCALE" 'BEGIN { print (s == 1 ? 8 : 1) }')

OWN_WORK=0
if [[ $# -ge 1 ]]; then
  WORK=$1
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/mixlab-bench.XXXXXX")
  OWN_WORK=1
fi
MODELS="$WORK/sd1"
cleanup() {
  [[ "${KEEP:-0}" == 1 ]] && return
  rm -rf "$MODELS" "$WORK/.measure"
  if ((OWN_WORK)); then rmdir "$WORK" 2>/dev/null || true; fi
}
trap cleanup EXIT

avail_gb=$(df -Pk "$WORK" | awk 'NR == 2 { print int($4 / 1024 / 1024) }')
if ((avail_gb < NEED_GB)); then
  echo "foundation.sh: $WORK has ${avail_gb} GB free; three full-size SD1 models need about ${NEED_GB} GB." >&2
  exit 1
fi

echo "== build (release)"
swift build -c release --product mixlab 2>&1 | tail -1
BIN=$(swift build -c release --show-bin-path)/mixlab

# busy_jiffies — CPU time (1/100 s) the whole machine has spent busy since boot.
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# measure CMD… — runs CMD with stdout discarded; prints
# "<wall s> <peak RSS KiB> <CPU s of CMD> <cores busy with other work during the run>".
# This machine may be shared: the last field says how much of it the command did not get.
mkdir -p "$WORK/.measure"
measure() {
  local out="$WORK/.measure/time" err="$WORK/.measure/stderr" start end b0 b1
  b0=$(busy_jiffies)
  start=$(date +%s.%N)
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f '%M %U %S' -o "$out" "$@" >/dev/null 2>"$err" || { cat "$err" >&2; return 1; }
  else
    # No GNU time: the child's peak RSS and CPU time from getrusage.
    python3 -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=open(sys.argv[1] + ".err", "w"))
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%d %f %f" % (u.ru_maxrss, u.ru_utime, u.ru_stime))
sys.exit(r.returncode)' "$out" "$@" || { cat "$out.err" >&2; return 1; }
  fi
  end=$(date +%s.%N)
  b1=$(busy_jiffies)
  read -r rss user sys <"$out"
  awk -v a="$start" -v b="$end" -v r="$rss" -v u="$user" -v s="$sys" -v j="$((b1 - b0))" 'BEGIN {
    wall = b - a; cpu = u + s; other = (j / 100 - cpu) / wall; if (other < 0) other = 0
    printf "%.3f %d %.2f %.2f\n", wall, r, cpu, other }'
}

# stats "<wall> <kib> <cpu> <other>"… — prints "best median max_rss_mib median_cpu median_other".
stats() {
  printf '%s\n' "$@" | sort -n -k1,1 | awk '
    { t[NR] = $1; c[NR] = $3; o[NR] = $4; if ($2 > rss) rss = $2 }
    END { m = int((NR + 1) / 2); printf "%.3f %.3f %.0f %.2f %.2f\n", t[1], t[m], rss / 1024, c[m], o[m] }'
}

declare -a synth_s inspect_s nohash_s

b0=$(busy_jiffies)
sleep 3
echo "== machine load before starting: $(awk -v j="$(($(busy_jiffies) - b0))" -v n="$(nproc)" 'BEGIN { printf "%.1f of %d cores busy", j / 300, n }')"
echo "== synth: 3 SD1 fp16 models (scale $SCALE) into $MODELS, $RUNS runs"
for ((i = 1; i <= RUNS; i++)); do
  rm -rf "$MODELS"
  sync
  synth_s+=("$(measure "$BIN" synth --arch sd1 --count 3 --seed 1 --out "$MODELS" --dtype f16 --scale "$SCALE")")
  echo "   run $i: ${synth_s[-1]}"
done
FILE="$MODELS/sd1-01.safetensors"
ls -l "$MODELS"

echo "== warm the page cache"
cat "$FILE" >/dev/null
"$BIN" inspect --json "$FILE" >"$WORK/.measure/inspect.json"
grep -E '"(architecture|tensor_count|parameter_count|autov2)"' "$WORK/.measure/inspect.json" | tr -d ' ,'

echo "== inspect (file + tensor-data SHA-256, NaN/Inf scan), $RUNS runs"
for ((i = 1; i <= RUNS; i++)); do
  inspect_s+=("$(measure "$BIN" inspect --json "$FILE")")
  echo "   run $i: ${inspect_s[-1]}"
done

echo "== inspect --no-hash, $RUNS runs"
for ((i = 1; i <= RUNS; i++)); do
  nohash_s+=("$(measure "$BIN" inspect --json --no-hash "$FILE")")
  echo "   run $i: ${nohash_s[-1]}"
done

read -r sb sm sr sc so <<<"$(stats "${synth_s[@]}")"
read -r ib im ir ic io <<<"$(stats "${inspect_s[@]}")"
read -r nb nm nr nc no <<<"$(stats "${nohash_s[@]}")"
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t ? "ok" : "MISSED") }'; }
rss_verdict() { (($1 > 256)) && echo "/RSS MISSED"; true; }

echo
echo "mixlab $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "file: $FILE ($(stat -c %s "$FILE") bytes)"
fmt='%-42s %8s %8s %7s %9s %9s %11s  %s\n'
printf "$fmt" "step" "best s" "median s" "target" "RSS MiB" "CPU s" "others' load" "verdict"
printf "$fmt" "synth --arch sd1 --count 3 (fp16, scale $SCALE)" "$sb" "$sm" "30" "$sr" "$sc" "$so" "$(verdict "$sm" 30)"
printf "$fmt" "inspect (both hashes + NaN/Inf scan)" "$ib" "$im" "2.0" "$ir" "$ic" "$io" "$(verdict "$im" 2.0)$(rss_verdict "$ir")"
printf "$fmt" "inspect --no-hash" "$nb" "$nm" "0.1" "$nr" "$nc" "$no" "$(verdict "$nm" 0.1)$(rss_verdict "$nr")"
echo "Verdicts use the median wall time; peak RSS target 256 MiB. CPU s is the command's user + system"
echo "time (median run); others' load is the average number of cores busy with other processes during"
echo "the run: on a shared machine, wall time above CPU time / cores comes from there."
