"""Invariants of the inventory side after a long simulated run (issue 4): Σ reserved equals Σ
open allocated quantities over all orders, SKU by SKU; no warehouse ATP below zero except after
NEGATIVE_ATP; the ledger each worker holds equals its committed AtpChanged records."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Env, make_env
from tests.harness import WorkerFactory, read_topic
from tests.ledger_checks import (
    app_lag,
    atp_views,
    fetch_all,
    lag_by_partition,
    ledger_vs_atp_topic,
    orders_vs_ledger,
    unexplained_negative_atp,
)

pytestmark = pytest.mark.kafka


def explain_unanswered(env: Env, orders: dict[str, dict]) -> str:
    """What the saga topics, exceptions and dead letters hold for orders with pending lines."""
    lines = [f"{len(orders)} orders with unanswered allocation messages"]
    saga = {r: read_topic(env.settings, r, idle=1.0) for r in ("allocation-requests", "allocation-results")}
    exceptions = read_topic(env.settings, "exceptions", idle=1.0)
    for order_id, view in list(orders.items())[:3]:
        lines.append(f"--- {order_id}: seq {view['seq']} status {view['status']}")
        lines += [f"  line {ln}" for ln in view["lines"] if ln["pending_allocation"]]
        for role, records in saga.items():
            lines += [f"  {role} p{r['_partition']}@{r['_offset']}: {r}" for r in records if r["order_id"] == order_id]
        lines += [f"  exception: {e}" for e in exceptions if e["order_id"] == order_id]
    lines.append(f"dead letters: {len(read_topic(env.settings, 'dlq', idle=1.0))}")
    return "\n".join(lines)

ORDERS = 3000  # about 30,000 events: replenishment, shortages, cancels, reroutes, counts


def test_long_run_keeps_orders_and_ledger_in_step(bootstrap_servers: str, tmp_path, workers: WorkerFactory) -> None:
    env: Env = make_env(bootstrap_servers, tmp_path / "w", partitions=4)
    factory = WorkerFactory(env.env, env.tmp)
    try:
        done = env.o2c("simulate", "--orders", str(ORDERS), "--seed", "21")
        assert done.returncode == 0, done.stderr
        w1 = factory("w1").start().wait_ready()
        w2 = factory("w2").start()  # two workers: requests and results cross between them
        deadline = time.monotonic() + 240
        while app_lag(env.settings) > 0:
            assert time.monotonic() < deadline, f"lag {lag_by_partition(env.settings)}\n{w1.log_tail(5)}"
            time.sleep(1)
        w2.wait_ready(timeout=60)

        orders = {e["order_id"] for e in read_topic(env.settings, "orders", idle=1.0) if e["event_type"] == "OrderPlaced"}
        assert len(orders) >= ORDERS * 0.95
        skus = {e["sku"] for e in read_topic(env.settings, "inventory", idle=1.0)}
        views = fetch_all(w1, [f"/orders/{o}" for o in sorted(orders)])
        ledger = atp_views(w2, skus)  # half of each set is routed to the other worker

        # every allocation request was answered, and the loop did allocate and backorder
        unanswered = {v["order_id"]: v for v in views.values() if any(ln["pending_allocation"] for ln in v["lines"])}
        assert unanswered == {}, explain_unanswered(env, unanswered)
        assert {"ALLOCATED", "DELIVERED", "CLOSED", "CANCELLED"} <= {v["status"] for v in views.values()}
        history = {s["status"] for s in read_topic(env.settings, "order-status", idle=1.0)}
        # Backordered quantity shows as PARTIALLY_ALLOCATED or, when a whole order waits, as
        # BACKORDERED; which of the two a run reaches depends on when receipts meet requests
        # (issue 13: the interleaving is not yet a function of the input alone). One run in
        # four had no order entirely backordered.
        assert "ALLOCATED" in history and history & {"BACKORDERED", "PARTIALLY_ALLOCATED"}
        assert sum(ln["allocated"] for v in views.values() for ln in v["lines"]) > 0

        assert orders_vs_ledger(views, ledger) == {}
        assert unexplained_negative_atp(env.settings) == []
        assert ledger_vs_atp_topic(env.settings, ledger) == {}
        assert w1.errors() == [] and w2.errors() == []
    finally:
        factory.stop_all()
