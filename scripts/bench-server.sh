#!/usr/bin/env bash
# posture-server benchmarks (BENCHMARKS.md, "posture-server"): ingestion throughput as a
# ratio to raw ES256 verification, and decision latency at a fixed rate, with SQLite and
# (when PostgreSQL is installed) PostgreSQL. Release build; the server, the load
# generator (posture-server/examples/loadgen.rs, `loadgen bench`) and the database share
# the machine. RATE=decisions per second (default 1000); CONNECTIONS=the ingestion
# concurrencies, one full loadgen run each on the same server (default "16 64 128": 16 leaves
# the server waiting on commits, 64 and 128 saturate it). The results block at the end has
# one line per database and concurrency: raw verification/s, ingestion/s, the ratio, the
# decision p50/p99, and the load average before and after that run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p posture-server --bin posture-server --example loadgen
bin=${CARGO_TARGET_DIR:-target}/release
server=${SERVER_BIN:-$bin/posture-server} # SERVER_BIN: measure another build (e.g. before a change)
work=$(mktemp -d); chmod 755 "$work"; trap 'kill $(jobs -p) 2>/dev/null || true; if [ -f "$work/pg/data/postmaster.pid" ]; then pg_stop "$work/pg" || true; fi; rm -rf "$work"' EXIT
echo "$(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
run() { # $1 = name, $2 = extra config
  mkdir -p "$work/$1"
  printf 'listen = "127.0.0.1:0"\nstate_dir = "%s"\n%s\n[enrollment]\nallow_software_keys = true\n[limits]\ndevice_requests_per_minute = 1000000\n' "$work/$1" "$2" > "$work/$1/config.toml"
  "$server" --config "$work/$1/config.toml" > "$work/$1/out" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do grep -q "evidence audience" "$work/$1/out" 2>/dev/null && break; sleep 0.1; done
  local url token
  url=$(sed -n 's/^posture-server listening on \([^ ]*\).*/\1/p' "$work/$1/out")
  token=$(sed -n 's/^admin token (shown once, keep it): //p' "$work/$1/out")
  echo "== $1"
  for connections in ${CONNECTIONS:-16 64 128}; do
    DB_PID=${DB_PID:-} "$bin/examples/loadgen" bench "$url" "$token" "${RATE:-1000}" "$pid" "$connections" | tee "$work/$1.$connections.txt"
    sed -n "s/^summary: /$1, /p" "$work/$1.$connections.txt" >> "$work/summary"
  done
  ps -o rss=,time= -p "$pid" | awk '{print "server RSS " $1/1024 " MiB, CPU time " $2}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
# shellcheck source=scripts/bench-pg.sh
. scripts/bench-pg.sh
run sqlite ""
if pg_start "$work/pg"; then
  DB_PID=$(head -1 "$work/pg/data/postmaster.pid") run postgres "database_url = \"$(pg_url "$work/pg")\""
  pg_stop "$work/pg"
else
  echo "== postgres: not installed (scripts/setup.sh installs it), skipped" | tee -a "$work/summary"
fi
echo
echo "== results ($(nproc) cores, load average now $(cut -d' ' -f1-3 /proc/loadavg); ratio = ingestion / raw ES256 verification in the same run)"
cat "$work/summary"
