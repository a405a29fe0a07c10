#!/usr/bin/env bash
# A private RabbitMQ node on 127.0.0.1 for tests and the demo.
#   scripts/broker.sh start [--fresh] | stop | kill | restart | status | url
#   (kill: SIGKILL the node's processes, as a host losing power would; its data stays for the next start)
# Env: SLIPWAY_BROKER_PORT (5680), SLIPWAY_BROKER_DIR (/tmp/slipway-broker-$PORT),
#      SLIPWAY_BROKER_TIMEOUT (60 s).
#      TLS, optional: SLIPWAY_BROKER_TLS_PORT with SLIPWAY_BROKER_TLS_CA, _CERT and _KEY (PEM files) adds an amqps
#      listener on 127.0.0.1:$TLS_PORT beside the plain one. Clients are not asked for certificates, unless
#      SLIPWAY_BROKER_TLS_VERIFY_CLIENTS=1: then a client certificate, if sent, must come from that CA (none is fine).
# Only ever touches the node it starts: slipway$PORT@localhost, whose data, logs
# and config all live in $DIR. Nothing in /etc/rabbitmq is read.
set -euo pipefail
me=broker.sh
PORT=${SLIPWAY_BROKER_PORT:-5680}
DIR=${SLIPWAY_BROKER_DIR:-/tmp/slipway-broker-$PORT}
TIMEOUT=${SLIPWAY_BROKER_TIMEOUT:-60}
NODE=slipway$PORT@localhost
URL=amqp://guest:guest@127.0.0.1:$PORT/
TLS_PORT=${SLIPWAY_BROKER_TLS_PORT:-}

say() { echo "$me: $*"; }
die() { echo "$me: $*" >&2; exit 1; }
now() { date +%s%N; }
since() { local d=$(( ($(now) - $1) / 1000000 )); printf '%d.%02d' $((d / 1000)) $((d % 1000 / 10)); }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
# Our node answers and its rabbit app is running.
running() { port_open && timeout 15 rabbitmq-diagnostics -q -n "$NODE" -t 10 check_running >/dev/null 2>&1; }
# Processes of our node (launcher, su, sh, beam, ...) recognised by the env we
# gave them; epmd inherits that env too but is shared by all nodes, so spare it.
node_pids() {
  local f pid
  { grep -lzx "RABBITMQ_NODENAME=$NODE" /proc/[0-9]*/environ 2>/dev/null || true; } | while read -r f; do
    pid=${f#/proc/}; pid=${pid%/environ}
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == epmd ]] || echo "$pid"
  done
}
logs_tail() {
  local f any=0
  for f in "$DIR/out.log" "$DIR"/log/*.log; do
    [[ -s $f ]] && { any=1; echo "--- tail $f" >&2; tail -n 25 "$f" >&2; }
  done
  ((any)) || echo "$me: (no log output yet in $DIR)" >&2
}
fail() { echo "$me: $*" >&2; logs_tail; exit 1; }

# The TLS listener's settings, for rabbitmq.conf. The node runs as user rabbitmq, which may not read the given files
# where they are: they are copied into $DIR.
tls_config() {
  local v f
  for v in SLIPWAY_BROKER_TLS_CA SLIPWAY_BROKER_TLS_CERT SLIPWAY_BROKER_TLS_KEY; do
    f=${!v:-}
    [[ -n $f ]] || die "SLIPWAY_BROKER_TLS_PORT is set: $v must name a PEM file too"
    [[ -r $f ]] || die "$v: cannot read $f"
  done
  mkdir -p "$DIR/tls"
  cp "$SLIPWAY_BROKER_TLS_CA" "$DIR/tls/ca.pem"
  cp "$SLIPWAY_BROKER_TLS_CERT" "$DIR/tls/cert.pem"
  cp "$SLIPWAY_BROKER_TLS_KEY" "$DIR/tls/key.pem"
  chmod 600 "$DIR/tls/key.pem"
  printf '%s\n' "listeners.ssl.default = 127.0.0.1:$TLS_PORT" \
    "ssl_options.cacertfile = $DIR/tls/ca.pem" \
    "ssl_options.certfile = $DIR/tls/cert.pem" \
    "ssl_options.keyfile = $DIR/tls/key.pem" \
    "ssl_options.verify = $([[ ${SLIPWAY_BROKER_TLS_VERIFY_CLIENTS:-0} == 1 ]] && echo verify_peer || echo verify_none)" \
    'ssl_options.fail_if_no_peer_cert = false'
}
tls_port_open() { [[ -n $TLS_PORT ]] && (exec 3<>"/dev/tcp/127.0.0.1/$TLS_PORT") 2>/dev/null; }
# A start that failed must not leave a half-booted node behind.
fail_start() { echo "$me: $*" >&2; logs_tail; stop >&2 || true; exit 1; }

start() {
  local fresh=0 t0 deadline pid
  case ${1:-} in --fresh) fresh=1 ;; "") ;; *) die "unknown option: $1" ;; esac
  if running; then say "$NODE already running on 127.0.0.1:$PORT"; return 0; fi
  [[ -z $(node_pids) ]] || { say "$NODE is up but not answering; stopping it first"; stop; }
  port_open && die "port $PORT is in use by something that is not $NODE"
  tls_port_open && die "TLS port $TLS_PORT is in use by something that is not $NODE"
  command -v rabbitmq-server >/dev/null || die "rabbitmq-server not installed (run scripts/deps.sh)"

  mkdir -p "$DIR"
  ((fresh)) && rm -rf "$DIR/mnesia" "$DIR/log"
  mkdir -p "$DIR/mnesia" "$DIR/log"
  echo '[].' >"$DIR/enabled_plugins"
  : >"$DIR/rabbitmq-env.conf"
  printf '%s\n' 'log.console = false' 'log.file.level = info' >"$DIR/rabbitmq.conf"
  rm -rf "$DIR/tls"
  [[ -z $TLS_PORT ]] || tls_config >>"$DIR/rabbitmq.conf"
  chown -R rabbitmq:rabbitmq "$DIR"
  runuser -u rabbitmq -- test -w "$DIR/mnesia" || die "$DIR is not reachable by user rabbitmq"

  t0=$(now)
  # /usr/sbin/rabbitmq-server re-runs itself as user rabbitmq via su, which keeps this env.
  env RABBITMQ_NODENAME="$NODE" \
      RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$PORT" \
      RABBITMQ_DIST_PORT=$((PORT + 20000)) \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}' \
      RABBITMQ_MNESIA_BASE="$DIR/mnesia" RABBITMQ_LOG_BASE="$DIR/log" \
      RABBITMQ_PID_FILE="$DIR/node.pid" \
      RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf" RABBITMQ_CONFIG_FILES="$DIR/conf.d" \
      RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins" \
      RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf" \
    setsid rabbitmq-server >"$DIR/out.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$DIR/launcher.pid"

  deadline=$((SECONDS + TIMEOUT))
  until port_open; do
    kill -0 "$pid" 2>/dev/null || fail_start "$NODE exited during startup"
    ((SECONDS < deadline)) || fail_start "$NODE did not open port $PORT within ${TIMEOUT}s"
    sleep 0.2
  done
  rabbitmqctl -q -n "$NODE" await_startup --timeout $((deadline - SECONDS + 1)) >/dev/null \
    || fail_start "$NODE did not finish booting"
  if [[ -n $TLS_PORT ]]; then
    until tls_port_open; do
      ((SECONDS < deadline)) || fail_start "$NODE did not open its TLS port $TLS_PORT within ${TIMEOUT}s"
      sleep 0.2
    done
  fi
  say "started $NODE on 127.0.0.1:$PORT${TLS_PORT:+ (TLS on $TLS_PORT)} in $(since "$t0")s (data in $DIR)"
}

stop() {
  local t0 deadline pids lpid
  pids=$(node_pids)
  if [[ -z $pids ]]; then say "$NODE not running"; return 0; fi
  t0=$(now)
  if timeout "$TIMEOUT" rabbitmqctl -q -n "$NODE" -t "$TIMEOUT" shutdown >/dev/null 2>&1; then
    deadline=$((SECONDS + 10))
    while [[ -n $(node_pids) ]] && ((SECONDS < deadline)); do sleep 0.2; done
  else
    say "rabbitmqctl shutdown failed; killing $NODE"
  fi
  pids=$(node_pids)
  if [[ -n $pids ]]; then
    lpid=$(cat "$DIR/launcher.pid" 2>/dev/null || true)
    # The launcher leads its own process group (setsid); only signal it if it is still ours.
    if [[ -n $lpid ]] && grep -qx "$lpid" <<<"$pids"; then kill -TERM -- "-$lpid" 2>/dev/null || true; fi
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    sleep 3
    pids=$(node_pids)
    # shellcheck disable=SC2086
    [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
  fi
  deadline=$((SECONDS + TIMEOUT))
  while port_open || [[ -n $(node_pids) ]]; do
    ((SECONDS < deadline)) || fail "$NODE still running after ${TIMEOUT}s"
    sleep 0.2
  done
  rm -f "$DIR/launcher.pid"
  say "stopped $NODE in $(since "$t0")s"
}

# SIGKILL, no shutdown: what a crash or a lost host leaves behind.
kill_node() {
  local pids deadline
  pids=$(node_pids)
  if [[ -z $pids ]]; then say "$NODE not running"; return 0; fi
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  deadline=$((SECONDS + TIMEOUT))
  while port_open || [[ -n $(node_pids) ]]; do
    ((SECONDS < deadline)) || fail "$NODE still running ${TIMEOUT}s after SIGKILL"
    sleep 0.2
  done
  rm -f "$DIR/launcher.pid"
  say "killed $NODE"
}

[[ ${1:-} == url || $(id -u) -eq 0 ]] || die "must run as root (the node runs as user rabbitmq)"
case ${1:-} in
  start) shift; start "$@" ;;
  stop) stop ;;
  kill) kill_node ;;
  restart) stop; start ;;
  status)
    if running; then say "$NODE running on 127.0.0.1:$PORT"; else say "$NODE not running"; exit 1; fi ;;
  url) echo "$URL" ;;
  *) die "usage: $0 start [--fresh]|stop|kill|restart|status|url" ;;
esac
