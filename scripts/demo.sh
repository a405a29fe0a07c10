#!/usr/bin/env bash
# The five-minute tour: builds, starts the example saga's four processors as separate processes against the broker at
# $SLIPWAY_AMQP_URL, sends orders of which some fail and walk back, prints how each ended and what the "external
# systems" did, then stops the processors. Run it through `make demo`, which starts that broker and stops it after.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${SLIPWAY_AMQP_URL:?needs a broker: run 'make demo' (it starts one)}"

echo "demo: building"
swift build
bin=$(swift build --show-bin-path)
work=.slipway/demo
rm -rf "$work" && mkdir -p "$work"
export SLIPWAY_STATE_DIR=$work/state SLIPWAY_EXAMPLE_LEDGER=$work/ledger.sqlite

source scripts/processors.sh
start_processors "$bin" "$work"
export SLIPWAY_AUDIT_DB=$work/audit.sqlite
start_sink "$bin" "$work" "$SLIPWAY_AUDIT_DB"
orders_db=$work/orders.sqlite
start_order_api "$bin" "$work" "$orders_db" "${ORDER_API_PORT:-0}"

template=Slips/order-fulfillment.yaml
failures=0
# send LABEL EXPECTED-STATE --var ...: sends one order, waits for its end, and checks it ended as expected.
send() {
  local label=$1 expected=$2 line state
  shift 2
  line=$("$bin/slip" send "$template" --wait --timeout 60 "$@" || true)
  state=$(awk '{print $2}' <<<"$line")
  printf '  %-34s %s\n' "$label" "${line:-no answer}"
  [[ $state == "$expected" ]] || { echo "demo: expected $expected"; failures=$((failures + 1)); }
  last_id=$(awk '{print $1}' <<<"$line")
}

echo
echo "demo: sending orders (slip send $template --var ... --wait)"
send "order A-1001 (2 widgets)" completed --var orderId=A-1001 --var quantity=2
send "order A-1002 (gadget, to France)" completed --var orderId=A-1002 --var sku=gadget --var country=FR
send "order A-1003, card declined" compensated --var orderId=A-1003 --var card=4000-0000-0000-0002
declined=$last_id
send "order A-1004, ship to Antarctica" compensated --var orderId=A-1004 --var country=AQ
antarctica=$last_id
send "order A-1005, bad email address" compensated --var orderId=A-1005 --var email=nobody
bad_email=$last_id
send "order A-1006, sold out" faulted --var orderId=A-1006 --var sku=sold-out

echo
echo "demo: what the steps did: reserve-stock in its own tables (an inbox step), the others in the external systems' ledger"
for id in "$declined" "$antarctica" "$bad_email"; do
  printf '  %s: %s; ledger: %s\n' "$id" \
    "$(sqlite3 "$SLIPWAY_STATE_DIR/reserve-stock.hops.sqlite" \
      "SELECT 'reserved ' || COUNT(*) || ', released ' || COALESCE(SUM(released), 0) FROM reservation WHERE slip_id = '$id'")" \
    "$(sqlite3 "$SLIPWAY_EXAMPLE_LEDGER" \
      "SELECT COALESCE(group_concat(action, ' -> '), '-') FROM (SELECT action FROM journal WHERE slip_id = '$id' ORDER BY id)")"
done

echo
echo "demo: a burst of 200 orders"
start=$(date +%s%N)
"$bin/slip" send "$template" --var orderId=B --count 200 --wait --timeout 120 >"$work/burst.txt" || true
awk '{print $2}' "$work/burst.txt" | sort | uniq -c | sed 's/^/  /'
last_burst=$(tail -n 1 "$work/burst.txt" | awk '{print $1}')
echo "  took $(( ($(date +%s%N) - start) / 1000000 )) ms (debug build, all on this machine)"
charged=$(sqlite3 "$SLIPWAY_EXAMPLE_LEDGER" "SELECT COUNT(*) FROM charge WHERE refunded = 0")
echo "  charges in force: $charged (2 first orders + 200 burst)"
[[ $charged == 202 ]] || failures=$((failures + 1))

wait_recorded "$bin" "$SLIPWAY_AUDIT_DB" "$last_burst" || failures=$((failures + 1))
echo
echo "demo: the audit trail (slip audit ...; the sink recorded every hop in $SLIPWAY_AUDIT_DB)"
echo "\$ slip audit show $antarctica"
"$bin/slip" audit show "$antarctica" | sed 's/^/  /'
echo "\$ slip audit failures --since 1h"
"$bin/slip" audit failures --since 1h | sed 's/^/  /'
echo "\$ slip audit stats"
"$bin/slip" audit stats | sed 's/^/  /'

echo
echo "demo: orders through the example order API (order-api: each order's row and its slip in one SQLite transaction;"
echo "      its outbox relay publishes the slip once the transaction has committed)"
api=http://127.0.0.1:$order_api_port
# post JSON EXPECTED-HTTP-STATUS: POSTs an order, prints the answer, and checks its status.
post() {
  local status
  echo "\$ curl -X POST $api/orders -d '$1'"
  status=$(curl -s -o "$work/answer.json" -w '%{http_code}' -X POST "$api/orders" -H 'content-type: application/json' -d "$1")
  echo "  HTTP $status $(cat "$work/answer.json")"
  [[ $status == "$2" ]] || { echo "demo: expected HTTP $2"; failures=$((failures + 1)); }
}
order='"sku":"widget","quantity":1,"card":"4242-4242-4242-4242","country":"DE","email":"ada@example.com"'
post "{\"orderId\":\"W-2001\",$order}" 201
post "{\"orderId\":\"W-2002\",${order/4242-4242-4242-4242/4000-0000-0000-0002}}" 201
post "{\"orderId\":\"W-2001\",$order}" 200
post '{"orderId":"W-2003","sku":"widget"' 400
post "{\"orderId\":\"W-2004\",${order/\"DE\"/\"Germany\"}}" 422
for id in W-2001 W-2002; do
  wait_recorded "$bin" "$SLIPWAY_AUDIT_DB" "order-$id" || failures=$((failures + 1))
done
echo "\$ curl $api/orders/W-2002"
echo "  $(curl -s "$api/orders/W-2002")"
echo "\$ sqlite3 $orders_db 'SELECT id, sku, quantity, country, slip_id FROM orders'"
sqlite3 "$orders_db" 'SELECT id, sku, quantity, country, slip_id FROM orders' | sed 's/^/  /'
echo "how the two slips ended (slip audit show ..., the state line):"
for id in W-2001:completed W-2002:compensated; do
  ended=$("$bin/slip" audit show "order-${id%%:*}" | awk '$1 == "state" {print $2}')
  echo "  order-${id%%:*}: $ended"
  [[ $ended == "${id#*:}" ]] || { echo "demo: expected ${id#*:}"; failures=$((failures + 1)); }
done
echo "\$ slip outbox list --db $orders_db --all"
"$bin/slip" outbox list --db "$orders_db" --all | sed 's/^/  /'

stop_processors
echo
if ((failures)); then
  echo "demo: $failures outcome(s) were not as expected; logs in $work/"
  exit 1
fi
echo "demo: done. Processor logs and the ledger are in $work/"
