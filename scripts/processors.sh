# Sourced by demo.sh and baseline.sh: starts the example saga's processors in the background and stops them on exit.
#   start_processors BIN_DIR LOG_DIR    (then: stop_processors; an EXIT trap calls it too)
processor_pids=()

start_processors() {
  local bin=$1 logs=$2 step
  for step in reserve-stock charge-card ship-order notify-customer; do
    "$bin/$step" >"$logs/$step.log" 2>&1 &
    processor_pids+=($!)
    echo "started $step (pid $!, log $logs/$step.log)"
  done
  trap stop_processors EXIT
}

# The audit sink, recording every event into DB: start_sink BIN_DIR LOG_DIR DB
start_sink() {
  local bin=$1 logs=$2 db=$3
  "$bin/slip" audit-sink --db "$db" >"$logs/audit-sink.log" 2>&1 &
  processor_pids+=($!)
  echo "started the audit sink (pid $!, database $db, log $logs/audit-sink.log)"
  trap stop_processors EXIT
}

# Waits until the audit database has recorded the end of slip ID (up to 60 s): wait_recorded BIN_DIR DB ID
wait_recorded() {
  local bin=$1 db=$2 id=$3 i
  for ((i = 0; i < 300; i++)); do
    "$bin/slip" audit show "$id" --db "$db" --json 2>/dev/null | grep -q '"terminal":true' && return 0
    sleep 0.2
  done
  echo "the audit trail did not record the end of $id" >&2
  return 1
}

# SIGTERM, then wait: each processor finishes the hops it started.
stop_processors() {
  ((${#processor_pids[@]})) || return 0
  kill -TERM "${processor_pids[@]}" 2>/dev/null || true
  wait "${processor_pids[@]}" 2>/dev/null || true
  processor_pids=()
}
