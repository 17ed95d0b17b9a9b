#!/usr/bin/env bash
# The simulated fleet of BENCHMARKS.md: DEVICES (default 50,000) software-key devices
# enrolled through the real API, then deliveries held at fixed rates (default 56/s, one
# piece of evidence per device every 15 minutes) for SECONDS (default 120) each, while
# the servers' CPU and memory are read from /proc. First one server with SQLite, then
# two replicas sharing one PostgreSQL cluster, each at RATES (default 56 and 556/s, the
# rate of 500,000 devices). The load generator is posture-server/examples/loadgen.rs
# (`loadgen fleet`); everything shares this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p posture-server --bin posture-server --example loadgen
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d); chmod 755 "$work"; trap 'kill $(jobs -p) 2>/dev/null || true; if [ -f "$work/pg/data/postmaster.pid" ]; then pg_stop "$work/pg" || true; fi; rm -rf "$work"' EXIT
devices=${DEVICES:-50000} seconds=${SECONDS_EACH:-120}
echo "$(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
start_server() { # $1 = name, $2 = extra config; sets pid, url, token
  mkdir -p "$work/$1"
  printf 'listen = "127.0.0.1:0"\nstate_dir = "%s"\n%s\n[enrollment]\nallow_software_keys = true\n[limits]\ndevice_requests_per_minute = 1000000\n' "$work/$1" "$2" > "$work/$1/config.toml"
  "$bin/posture-server" --config "$work/$1/config.toml" > "$work/$1/out" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do grep -q "evidence audience" "$work/$1/out" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/^posture-server listening on \([^ ]*\).*/\1/p' "$work/$1/out")
  token=$(sed -n 's/^admin token (shown once, keep it): //p' "$work/$1/out")
}
# shellcheck source=scripts/bench-pg.sh
. scripts/bench-pg.sh
if [ "${SKIP_SQLITE:-}" != 1 ]; then
  echo "== SQLite, one server"
  start_server sqlite ""
  "$bin/examples/loadgen" fleet --devices "$devices" --rate "${SQLITE_RATES:-56}" --seconds "$seconds" --server-pids "$pid" "$url" "$token"
  du -sh "$work/sqlite" | awk '{print "  database on disk: " $1}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
fi
if [ "${SKIP_PG:-}" != 1 ] && pg_start "$work/pg"; then
  echo "== PostgreSQL, two replicas"
  db="database_url = \"$(pg_url "$work/pg")\""
  start_server replica1 "$db"; pid1=$pid url1=$url admin=$token
  start_server replica2 "$db"; pid2=$pid url2=$url
  "$bin/examples/loadgen" fleet --devices "$devices" --rate "${PG_RATES:-56,556}" --seconds "$seconds" --server-pids "$pid1,$pid2" --db-comm postgres "$url1,$url2" "$admin"
  du -sh "$work/pg/data" | awk '{print "  database on disk: " $1}'
  kill "$pid1" "$pid2"; wait "$pid1" "$pid2" 2>/dev/null || true
  pg_stop "$work/pg"
fi
