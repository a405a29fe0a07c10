# Sourced by demo.sh and baseline.sh: starts the example saga's processors in the background and stops them on exit.
#   start_processors BIN_DIR LOG_DIR    (then: stop_processors; an EXIT trap calls it too)
#   start_order_api BIN_DIR LOG_DIR DB PORT    (the example producer, stopped with them)
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

# The example order API (Processors/order-api) on 127.0.0.1:PORT (0: a free port it picks), its orders and outbox in
# DB; returns once it listens (up to 30 s), with its port in $order_api_port: start_order_api BIN_DIR LOG_DIR DB PORT
start_order_api() {
  local bin=$1 logs=$2 db=$3 port=$4 i
  "$bin/order-api" --db "$db" --port "$port" >"$logs/order-api.log" 2>&1 &
  processor_pids+=($!)
  trap stop_processors EXIT
  for ((i = 0; i < 150; i++)); do
    # Its own line, not a probe of the port: another program on a fixed port would answer a probe too.
    order_api_port=$(sed -n 's|^order-api: listening on http://[^:]*:\([0-9]*\),.*|\1|p' "$logs/order-api.log" | head -n 1)
    if [[ -n $order_api_port ]]; then
      echo "started order-api (pid ${processor_pids[-1]}, http://127.0.0.1:$order_api_port, database $db, log $logs/order-api.log)"
      return 0
    fi
    kill -0 "${processor_pids[-1]}" 2>/dev/null || break
    sleep 0.2
  done
  echo "order-api did not start on port $port; see $logs/order-api.log" >&2
  return 1
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
