#!/usr/bin/env bash
# `make bench`: throughput and latency benchmarks against a private local broker (unless O2C_BOOTSTRAP_SERVERS
# points at one), each printed with its command and a same-run baseline ratio.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/private_broker.sh
# Port 39092: clear of the test brokers (19092, 29092) and the dev broker (9092).
BENCH_PORT=${O2C_BENCH_KAFKA_PORT:-39092}
start_private_broker "$BENCH_PORT" "$PWD/.cache/kafka-bench-$BENCH_PORT"
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
# naive agent over them; the inventory agent alone (on the runtime, without the order agent);
# OrderAccepted -> ALLOCATED over HTTP at the default (0.025 s) and the former default (0.1 s) commit interval.
$PY -m scripts.bench inventory --orders "${BENCH_INVENTORY_ORDERS:-10000}"
# One worker against two in one group on this machine, alternating runs over the same backlog
# (issue 14 point 3: the pipeline scales with processes).
$PY -m scripts.bench scale --orders "${BENCH_SCALE_ORDERS:-10000}" --runs 3
$PY -m scripts.bench inventory-agent --orders "${BENCH_INVENTORY_ORDERS_ALONE:-30000}"
$PY -m scripts.bench allocation-latency --orders "${BENCH_LATENCY_ORDERS:-1000}" --commit-interval 0.025 --commit-interval 0.1
# Live: one worker (defaults) under paced simulated traffic at 1,000 events/s and at half its backlog
# throughput measured first, 16 HTTP clients querying meanwhile: latency input -> status event visible
# (read_committed) p50/p95/p99/max, end lag, HTTP p50/p99, worker CPU.
$PY -m scripts.bench live --seconds "${BENCH_LIVE_SECONDS:-20}" --backlog-orders "${BENCH_LIVE_BACKLOG_ORDERS:-5000}"
# A catch-up of ~190k input events while 16 HTTP clients query the worker: rate, HTTP latency, and
# that no commit comes near the transaction timeout (none aborted).
$PY -m scripts.bench state --orders "${BENCH_STATE_ORDERS:-20000}" --hold "${BENCH_STATE_HOLD:-1000000}" --runs 3
$PY -m scripts.bench catchup --orders "${BENCH_CATCHUP_ORDERS:-20000}" --http-clients 16
# One SLA check with 200k open orders: nothing due, and 1,000 due, vs scanning every order (no broker).
$PY -m scripts.bench_sla --orders 200000 --due 1000
# A bare transactional producer: commit cost by the partitions a transaction writes (the floor of
# a commit cycle), against an idempotent producer over the same partitions.
$PY -m scripts.bench_txn --partitions 12 --partitions 28 --partitions 48
# The three agents in one process without Kafka: CPU per input event of the processors alone.
$PY -m scripts.bench_cpu --orders "${BENCH_CPU_ORDERS:-2000}"
