#!/usr/bin/env bash
# `make bench`: throughput benchmarks against a private local broker (unless O2C_BOOTSTRAP_SERVERS
# points at one), each printed with its command and a same-run baseline ratio.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/private_broker.sh
start_private_broker "${O2C_BENCH_KAFKA_PORT:-19192}" "$PWD/.cache/kafka-bench"
PY=.venv/bin/python
export PYTHONFAULTHANDLER=1  # a crash of a benchmark prints its stack
$PY -m scripts.bench produce --events "${BENCH_EVENTS:-100000}"
$PY -m scripts.bench simulate --orders "${BENCH_ORDERS:-10000}"
# The order agent (`o2c worker`) vs a naive one-table-write-per-event Faust agent, with exactly-once
# and at-least-once (workers run one after the other; O2C_BENCH_PROFILE=pyinstrument|cprofile
# profiles the order worker if the profiler is installed in the venv).
$PY -m scripts.bench orders --events "${BENCH_ORDER_EVENTS:-100000}" --guarantee both
# Webhook (local always-200 receiver) and PostgreSQL sinks vs the same runner delivering nothing.
$PY -m scripts.bench sinks
# The inventory side: the whole allocation loop on simulated traffic of all four topics vs the
# naive agent over them; OrderAccepted -> ALLOCATED over HTTP at the default and a short commit interval.
$PY -m scripts.bench inventory --orders "${BENCH_INVENTORY_ORDERS:-10000}"
$PY -m scripts.bench inventory-agent --orders "${BENCH_INVENTORY_ORDERS_ALONE:-30000}"
$PY -m scripts.bench allocation-latency --orders "${BENCH_LATENCY_ORDERS:-1000}" --commit-interval 1 --commit-interval 0.1
# One SLA check with 200k open orders: nothing due, and 1,000 due, vs scanning every order (no broker).
$PY -m scripts.bench_sla --orders 200000 --due 1000
