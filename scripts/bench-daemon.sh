#!/usr/bin/env bash
# Benchmarks `posture daemon` (release build) on this machine:
#   - resident memory (VmRSS) after start-up and right after and idle after 100 local
#     evidence requests;
#   - CPU time and wake-ups (context switches) over a quiet period with nothing scheduled;
#   - local evidence request latency p50/p99 (software key), measured by curl's time_total.
# The daemon collects this machine's real posture (root /), with the default 15 min interval.
#
# The figures depend on the machine's state: run it after `apt-get update` (complete
# Debian package lists, tens of MB, which patch_level parses), and say whether other work
# loaded the machine. The script prints both with the table.
#
# Usage: scripts/bench-daemon.sh            (quiet period: 60 s)
#        POSTURE_BIN=/path/to/posture scripts/bench-daemon.sh   (no build)
#        QUIET_SECONDS=10 scripts/bench-daemon.sh
# Prints a Markdown table for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

quiet=${QUIET_SECONDS:-60}
requests=${REQUESTS:-100}

command -v curl >/dev/null || { echo "bench-daemon: needs curl (scripts/setup.sh installs it)" >&2; exit 2; }
# POSTURE_BIN: an already built binary (e.g. to run this script as an ordinary user,
# who has no cargo: `runuser -u nobody -- env POSTURE_BIN=/tmp/posture scripts/bench-daemon.sh`).
if [ -n "${POSTURE_BIN:-}" ]; then
  bin=$POSTURE_BIN
else
  cargo build --release --locked -q -p posture-cli
  bin=target/release/posture
fi

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/config.toml" <<EOF
[daemon]
socket = "$work/posture.sock"
state_dir = "$work/state"
allow_uids = [$(id -u)]
EOF

"$bin" --config "$work/config.toml" daemon --log-level warn 2>"$work/daemon.log" &
pid=$!

for _ in $(seq 1 600); do
  curl -sf --unix-socket "$work/posture.sock" http://localhost/v1/health >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf --unix-socket "$work/posture.sock" http://localhost/v1/health >/dev/null \
  || { echo "bench-daemon: daemon did not come up" >&2; cat "$work/daemon.log" >&2; exit 2; }
# Wait for the first collection to finish (the daemon's activity record says so), then for
# the blocking pool's threads to retire (5 s idle).
for _ in $(seq 1 1200); do
  curl -sf --unix-socket "$work/posture.sock" http://localhost/v1/health \
    | grep -q '"collections":{"start":1' && break
  sleep 0.1
done
sleep 7

status_field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }   # utime + stime
switches() { echo $(( $(status_field voluntary_ctxt_switches) + $(status_field nonvoluntary_ctxt_switches) )); }

rss_start=$(status_field VmRSS)
anon_start=$(status_field RssAnon)
file_start=$(status_field RssFile)
threads_start=$(status_field Threads)

: >"$work/latency"
for i in $(seq 1 "$requests"); do
  curl -sf --unix-socket "$work/posture.sock" -o /dev/null -w '%{time_total}\n' \
    -H 'Content-Type: application/json' \
    -d "{\"nonce\":\"bench-nonce-$(printf %06d "$i")\",\"audience\":\"https://idp.example\"}" \
    http://localhost/v1/evidence >>"$work/latency"
done
rss_after=$(status_field VmRSS)
anon_after=$(status_field RssAnon)
file_after=$(status_field RssFile)

percentile() { sort -n "$work/latency" | awk -v p="$1" '{ v[NR] = $1 } END { i = int((NR * p + 99) / 100); if (i < 1) i = 1; printf "%.2f", v[i] * 1000 }'; }
p50=$(percentile 50)
p99=$(percentile 99)

# The daemon gives back what serving used once the API has been quiet for 5 s.
sleep 7
rss_settled=$(status_field VmRSS)
anon_settled=$(status_field RssAnon)
file_settled=$(status_field RssFile)

ticks_before=$(cpu_ticks)
switches_before=$(switches)
sleep "$quiet"
ticks_after=$(cpu_ticks)
switches_after=$(switches)
hz=$(getconf CLK_TCK)
cpu_ms=$(( (ticks_after - ticks_before) * 1000 / hz ))
wakeups=$(( switches_after - switches_before ))
threads_idle=$(status_field Threads)

lists_mb=$(du -sm /var/lib/apt/lists 2>/dev/null | cut -f1 || true)  # partial/ is root-only
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), apt lists ${lists_mb:-0} MB, uid $(id -u)"
cat <<EOF
| measure | result | target |
| --- | --- | --- |
| resident memory idle after the first full collection (VmRSS) | $(( rss_start / 1024 )).$(( (rss_start % 1024) * 10 / 1024 )) MiB ($rss_start KiB: $anon_start anonymous, $file_start file), $threads_start threads | ≤ 10 MB |
| resident memory right after $requests evidence requests | $(( rss_after / 1024 )).$(( (rss_after % 1024) * 10 / 1024 )) MiB ($rss_after KiB: $anon_after anonymous, $file_after file) | — |
| resident memory idle after $requests evidence requests (7 s later) | $(( rss_settled / 1024 )).$(( (rss_settled % 1024) * 10 / 1024 )) MiB ($rss_settled KiB: $anon_settled anonymous, $file_settled file) | ≤ 10 MB |
| CPU time over a quiet ${quiet} s (utime+stime) | ${cpu_ms} ms | none beyond scheduled work |
| context switches (wake-ups) over the quiet ${quiet} s | $wakeups, $threads_idle threads | none |
| evidence request latency p50 / p99 ($requests sequential, software key) | ${p50} ms / ${p99} ms | — |
EOF
