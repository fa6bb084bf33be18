#!/usr/bin/env bash
# `make run`: local broker + one worker + simulated traffic; Ctrl-C stops the worker and the
# simulator (by PID). The broker keeps running until `make kafka-down`.
# Traffic is replayed live (`o2c simulate --live`: a business day per minute by default) with
# some orders that never reach a milestone, and the worker uses the SPEC SLAs scaled by the
# same factor (scripts/demo-sla-policy.toml) on the wall clock: SLA breaches show up within
# a minute (docs/sla.md "Demo").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export O2C_BOOTSTRAP_SERVERS=${O2C_BOOTSTRAP_SERVERS:-127.0.0.1:9092}
export O2C_WEB_PORT=${O2C_WEB_PORT:-6066}
export O2C_SLA_POLICY_PATH=${O2C_SLA_POLICY_PATH:-scripts/demo-sla-policy.toml}
# A local demo: the HTTP API answers without a token (the worker warns at startup). Anything
# reachable by others keeps the default, auth on with O2C_API_TOKENS (docs/security.md).
export O2C_AUTH_ENABLED=${O2C_AUTH_ENABLED:-false}
ORDERS=${ORDERS:-5000}
SPEEDUP=${SPEEDUP:-1440}  # business time per wall time; the demo policy assumes 1440
LAPSE=${LAPSE:-0.05}      # share of orders that stop short of a milestone
RUN=.cache/run
mkdir -p "$RUN"
host=${O2C_WEB_HOST:-127.0.0.1}
[ "$host" = "0.0.0.0" ] && host=127.0.0.1
# The operations console (docs/console.md) first, before any other line: what people open.
echo "console: http://$host:$O2C_WEB_PORT/"
make --no-print-directory -s setup  # the venv, if pyproject.toml changed (quiet)

if [ "$O2C_BOOTSTRAP_SERVERS" = "127.0.0.1:9092" ]; then
  scripts/kafka.sh up
fi
.venv/bin/o2c topics create >/dev/null

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped worker and simulator; the broker keeps running (make kafka-down stops it)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # cleanup runs once, on exit

.venv/bin/o2c worker >"$RUN/worker.log" 2>&1 &
pids+=($!)
echo "worker PID $! (log: $RUN/worker.log)"
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$O2C_WEB_PORT/ready" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fs "http://127.0.0.1:$O2C_WEB_PORT/ready" >/dev/null || { echo "worker did not become ready; see $RUN/worker.log"; exit 1; }

.venv/bin/o2c simulate --orders "$ORDERS" --live "$SPEEDUP" --lapse-share "$LAPSE" >"$RUN/simulate.log" 2>&1 &
pids+=($!)
cat <<MSG

o2c-streams is running: broker $O2C_BOOTSTRAP_SERVERS, worker http://127.0.0.1:$O2C_WEB_PORT
operations console (browser): http://$host:$O2C_WEB_PORT/
simulating $ORDERS orders live, business time $SPEEDUP x as fast as the clock, $LAPSE of them
lapsing (log: $RUN/simulate.log); SLA policy $O2C_SLA_POLICY_PATH. Look at:
  curl -s http://127.0.0.1:$O2C_WEB_PORT/stats
  curl -s http://127.0.0.1:$O2C_WEB_PORT/orders/SO-1-000001
  curl -s http://127.0.0.1:$O2C_WEB_PORT/atp/SKU-0001                # ATP: every warehouse + network
  .venv/bin/o2c consume o2c.atp --max 5
  curl -s http://127.0.0.1:$O2C_WEB_PORT/sla/breaches            # open SLA breaches (within a minute)
  curl -s 'http://127.0.0.1:$O2C_WEB_PORT/sla/breaches?milestone=ACCEPTANCE&limit=5'
  .venv/bin/o2c consume o2c.sla-breaches --from-beginning --max 5
  .venv/bin/o2c consume o2c.order-status --max 5
  .venv/bin/o2c consume o2c.exceptions --from-beginning --max 5
  curl -s http://127.0.0.1:$O2C_WEB_PORT/metrics | grep ^o2c_
Ctrl-C stops the worker and the simulator.
MSG
wait "${pids[1]}" || true
echo "simulation finished: $(tail -n 1 "$RUN/simulate.log")"
echo "worker still running; Ctrl-C to stop"
wait "${pids[0]}"
