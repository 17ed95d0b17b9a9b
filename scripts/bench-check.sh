#!/usr/bin/env bash
# Benchmark of `posture check --json` on this machine: median wall time, CPU time and
# peak RSS over repeated runs. Usage: scripts/bench-check.sh [RUNS [BASELINE_BINARY]]
# With BASELINE_BINARY (e.g. a copy of an older build's target/release/posture), both
# binaries are also timed interleaved (scripts/bench-ab.py), so a comparison on a loaded
# machine is fair. Run as root for the figures in BENCHMARKS.md; say the load average.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
baseline=${2:-}

cargo build --release --locked --bin posture >/dev/null
bin="${CARGO_TARGET_DIR:-target}/release/posture"
echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), as $(id -un)"
echo "== start-up alone: libraries loaded at start (the TSS and libcrypto load on first TPM use)"
LD_TRACE_LOADED_OBJECTS=1 "$bin" --version | awk '{print "  " $1}'
hyperfine --warmup 3 --runs "$runs" -N -i --export-json /tmp/posture-bench-version.json "$bin --version" >/dev/null 2>&1
python3 -c "import json,statistics; r=json.load(open('/tmp/posture-bench-version.json'))['results'][0]; print(f'  posture --version: wall median {statistics.median(r[\"times\"])*1000:.1f} ms (min {min(r[\"times\"])*1000:.1f})')"

echo "== hyperfine: $runs runs of '$bin check --json'"
hyperfine --warmup 3 --runs "$runs" -N -i --export-json /tmp/posture-bench-check.json "$bin check --json" >/dev/null 2>&1
python3 - <<'PY'
import json, statistics
r = json.load(open("/tmp/posture-bench-check.json"))["results"][0]
print(f"wall median {statistics.median(r['times'])*1000:.1f} ms  (min {min(r['times'])*1000:.1f}, max {max(r['times'])*1000:.1f})")
print(f"user mean {r['user']*1000:.1f} ms, system mean {r['system']*1000:.1f} ms")
PY

echo "== cold: no apt list cache (fresh POSTURE_STATE_DIR every run; the first run after apt update)"
cold=$(mktemp -d)
POSTURE_STATE_DIR="$cold/state" hyperfine --warmup 1 --runs 10 -N -i --prepare "rm -rf $cold/state" \
  --export-json /tmp/posture-bench-cold.json "$bin check --json" >/dev/null 2>&1
python3 - <<'PY'
import json, statistics
r = json.load(open("/tmp/posture-bench-cold.json"))["results"][0]
print(f"wall median {statistics.median(r['times'])*1000:.1f} ms, user mean {r['user']*1000:.1f} ms")
PY
rm -rf "$cold"

echo "== /usr/bin/time -v: $runs runs"
rss=(); cpu=()
for _ in $(seq "$runs"); do
  out=$( { /usr/bin/time -v "$bin" check --json >/dev/null; } 2>&1 || true)
  rss+=("$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' <<<"$out")")
  cpu+=("$(awk -F: '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.0f", (u+s)*1000}' <<<"$out")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "peak RSS median $(median "${rss[@]}") KiB (max $(printf '%s\n' "${rss[@]}" | sort -n | tail -1) KiB)"
# /usr/bin/time reports CPU in hundredths of a second: one run rounds to 0 or 10 ms, so
# only the mean over all runs means anything (hyperfine's user/system above are better).
echo "CPU time (user+sys) mean $(printf '%s\n' "${cpu[@]}" | awk '{t+=$1} END {printf "%.1f", t/NR}') ms (/usr/bin/time, 10 ms steps per run)"

echo "== per-check wall time (one run, --only ID)"
for id in os patch_level auto_updates disk_encryption edr firewall secure_boot tpm screen_lock; do
  hyperfine --warmup 2 --runs 10 -N -i --export-json /tmp/posture-bench-one.json "$bin check --json --only $id" >/dev/null 2>&1
  python3 -c "import json,statistics; r=json.load(open('/tmp/posture-bench-one.json'))['results'][0]; print(f'  $id: {statistics.median(r[\"times\"])*1000:.1f} ms')"
done

if [ -n "$baseline" ]; then
  echo "== interleaved: $baseline (A) against $bin (B)"
  python3 scripts/bench-ab.py "$runs" "$baseline check --json" "$bin check --json"
fi
echo "== load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
