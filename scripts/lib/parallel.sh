# Sourced by scripts/test.sh (the guests) and scripts/fuzz.sh (the fuzz targets): runs
# commands in the background, each with its output in its own log, and prints each
# output whole, in the order the commands started, as they end. Sets an EXIT trap that
# removes the logs.

parallel_logs=$(mktemp -d "${TMPDIR:-/tmp}/posture-parallel.XXXXXX")
trap 'rm -rf "$parallel_logs"' EXIT
parallel_names=() parallel_pids=() parallel_running=() parallel_failed=()

# parallel_start NAME COMMAND...: starts COMMAND; its log ends with its time and status.
parallel_start() {
  local name=$1 i=${#parallel_names[@]}
  shift
  parallel_names+=("$name")
  (
    t=$SECONDS
    # Not `"$@" && ...`: errexit would be off inside a shell function given as COMMAND.
    set +e
    (set -e; "$@")
    r=$?
    echo "== $name: $((SECONDS - t)) s, exit $r"
    exit "$r"
  ) >"$parallel_logs/$i.log" 2>&1 &
  parallel_pids+=($!)
  parallel_running+=("$i")
}

# parallel_finish_oldest: waits for the oldest running command and prints its output.
parallel_finish_oldest() {
  local i=${parallel_running[0]}
  parallel_running=("${parallel_running[@]:1}")
  wait "${parallel_pids[$i]}" || parallel_failed+=("${parallel_names[$i]}")
  echo "== ${parallel_names[$i]}"
  cat "$parallel_logs/$i.log"
}

# parallel_wait_all: finishes every command; fails when any failed (names in
# parallel_failed).
parallel_wait_all() {
  while [ "${#parallel_running[@]}" -gt 0 ]; do parallel_finish_oldest; done
  [ "${#parallel_failed[@]}" -eq 0 ]
}
