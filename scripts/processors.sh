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

# SIGTERM, then wait: each processor finishes the hops it started.
stop_processors() {
  ((${#processor_pids[@]})) || return 0
  kill -TERM "${processor_pids[@]}" 2>/dev/null || true
  wait "${processor_pids[@]}" 2>/dev/null || true
  processor_pids=()
}
