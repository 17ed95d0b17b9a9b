#!/usr/bin/env bash
# Benchmark of `posture check --json` on this machine: median wall time, CPU time and
# peak RSS over repeated runs. Usage: scripts/bench-check.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}

cargo build --release --locked --bin posture >/dev/null
bin="${CARGO_TARGET_DIR:-target}/release/posture"

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
echo "CPU time (user+sys) median $(median "${cpu[@]}") ms"

echo "== per-check wall time (one run, --only ID)"
for id in os patch_level auto_updates disk_encryption edr firewall secure_boot tpm screen_lock; do
  hyperfine --warmup 2 --runs 10 -N -i --export-json /tmp/posture-bench-one.json "$bin check --json --only $id" >/dev/null 2>&1
  python3 -c "import json,statistics; r=json.load(open('/tmp/posture-bench-one.json'))['results'][0]; print(f'  $id: {statistics.median(r[\"times\"])*1000:.1f} ms')"
done
