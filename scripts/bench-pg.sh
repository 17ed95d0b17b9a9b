# Sourced by the benchmark scripts: a throwaway PostgreSQL cluster in a directory, run by
# the `postgres` user when we are root (PostgreSQL refuses to run as root).
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; else "$@"; fi; }
pg_start() { # $1 = directory; false when PostgreSQL is not installed
  local bin; bin=$(pg_bin); [ -n "$bin" ] || return 1
  mkdir -p "$1"; chown postgres: "$1" 2>/dev/null || true
  as_pg "$bin/initdb" -A trust -U postgres -N -D "$1/data" >/dev/null
  as_pg "$bin/pg_ctl" -D "$1/data" -o "-k $1 -c listen_addresses='' -p 5432" -l "$1/log" -w start >/dev/null
}
pg_stop() { as_pg "$(pg_bin)/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null; }
pg_url() { echo "postgres:///postgres?host=$1&port=5432&user=postgres"; }
