#!/usr/bin/env bash
# posture-server benchmarks (BENCHMARKS.md, "posture-server"): ingestion throughput as a
# ratio to raw ES256 verification, and decision latency at a fixed rate, with SQLite and
# (when PostgreSQL is installed) PostgreSQL. Release build; the server and the load
# generator share the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p posture-server --bin posture-server --example loadgen
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d); chmod 755 "$work"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
run() { # $1 = name, $2 = extra config
  mkdir -p "$work/$1"
  printf 'listen = "127.0.0.1:0"\nstate_dir = "%s"\n%s\n[enrollment]\nallow_software_keys = true\n[limits]\ndevice_requests_per_minute = 1000000\n' "$work/$1" "$2" > "$work/$1/config.toml"
  "$bin/posture-server" --config "$work/$1/config.toml" > "$work/$1/out" 2>/dev/null &
  local pid=$!
  for _ in $(seq 50); do grep -q "evidence audience" "$work/$1/out" 2>/dev/null && break; sleep 0.1; done
  local url token
  url=$(sed -n 's/^posture-server listening on \([^ ]*\).*/\1/p' "$work/$1/out")
  token=$(sed -n 's/^admin token (shown once, keep it): //p' "$work/$1/out")
  echo "== $1"
  "$bin/examples/loadgen" "$url" "$token" "${RATE:-1000}"
  ps -o rss=,time= -p "$pid" | awk '{print "server RSS " $1/1024 " MiB, CPU time " $2}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run sqlite ""
if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
  pg="$work/pg"; mkdir -p "$pg"; chown postgres: "$pg" 2>/dev/null || true
  as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; else "$@"; fi; }
  as_pg /usr/lib/postgresql/15/bin/initdb -A trust -U postgres -N -D "$pg/data" >/dev/null
  as_pg /usr/lib/postgresql/15/bin/pg_ctl -D "$pg/data" -o "-k $pg -c listen_addresses='' -p 5432" -l "$pg/log" -w start >/dev/null
  run postgres "database_url = \"postgres:///postgres?host=$pg&port=5432&user=postgres\""
  as_pg /usr/lib/postgresql/15/bin/pg_ctl -D "$pg/data" -m fast -w stop >/dev/null
fi
