"""`/metrics` after a simulated run agrees with what the topics hold (issue 6): one worker, no
crash, exactly-once, so every counter equals the committed records it counts."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Env
from tests.harness import WorkerFactory, read_topic
from tests.ledger_checks import app_lag

pytestmark = pytest.mark.kafka


def scrape(worker) -> dict[str, dict[tuple, float]]:
    """family -> {sorted label items: value} for counters (_total), gauges and histogram counts."""
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(worker.get("/metrics").text):
        if not family.name.startswith("o2c_"):
            continue
        for s in family.samples:
            if s.name.endswith(("_created", "_bucket", "_sum")):
                continue
            found.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return found


def by(values: dict[tuple, float], label: str) -> Counter:
    out: Counter = Counter()
    for labels, v in values.items():
        out[dict(labels)[label]] += v
    return +out


def test_metrics_agree_with_the_topics(kafka_env: Env, workers: WorkerFactory) -> None:
    worker = workers().start().wait_ready()
    # Scraped once before any traffic: the gauge's per-partition counts exist from here on, so
    # the run below is counted incrementally (not recounted from the store at the end).
    assert scrape(worker).get("o2c_orders_by_status", {}) == {}
    done = kafka_env.o2c("simulate", "--orders", "400", "--seed", "4")
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 120
    while app_lag(kafka_env.settings) > 0:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)
    m = scrape(worker)
    topic = {role: read_topic(kafka_env.settings, role, idle=1.0) for role in (
        "orders", "shipments", "payments", "inventory", "order-status", "exceptions", "atp", "dlq")}

    assert by(m["o2c_events_in_total"], "role") == Counter(
        {r: len(topic[r]) for r in ("orders", "shipments", "payments", "inventory")}
    )
    types = Counter(e["event_type"] for r in ("orders", "shipments", "payments", "inventory") for e in topic[r])
    assert by(m["o2c_events_in_total"], "event_type") == types

    statuses = topic["order-status"]
    assert by(m["o2c_status_changes_total"], "status") == Counter(s["status"] for s in statuses)
    transitions = Counter(
        (s["previous_status"] or "NONE", s["status"]) for s in statuses if s["status"] != s["previous_status"]
    )
    got = Counter({(dict(k)["previous_status"], dict(k)["status"]): v for k, v in m["o2c_status_transitions_total"].items()})
    assert +got == transitions
    last: dict[str, dict] = {}
    for s in statuses:
        if s["order_id"] not in last or s["seq"] > last[s["order_id"]]["seq"]:
            last[s["order_id"]] = s
    assert by(m["o2c_orders_by_status"], "status") == Counter(s["status"] for s in last.values())
    assert worker.get("/stats").json()["by_status"] == dict(Counter(s["status"] for s in last.values()))

    assert by(m["o2c_business_exceptions_total"], "code") == Counter(e["code"] for e in topic["exceptions"])
    assert sum(m["o2c_atp_changes_total"].values()) == len(topic["atp"]) > 0
    assert sum(m.get("o2c_dead_letters_total", {}).values()) == len(topic["dlq"])
    assert sum(m["o2c_event_to_status_seconds_count"].values()) == len(statuses)
    agents = {"o2c.orders", "o2c.inventory"} | ({"o2c.cases"} if topic["exceptions"] else set())
    assert set(by(m["o2c_consume_to_produce_seconds_count"], "agent")) == agents
    assert {dict(k)["table"] for k in m["o2c_table_recovery_seconds"]} == {"orders", "inventory", "kpis", "cases"}
    # What memory holds besides RocksDB: nothing left buffered once the lag is 0; every order
    # (400, well under O2C_STATE_CACHE_ENTRIES) still decoded in the orders store's cache.
    assert by(m["o2c_buffered_records"], "processor") == Counter()
    assert {dict(k)["processor"] for k in m["o2c_buffered_records"]} == {"o2c.orders", "o2c.inventory", "o2c.cases"}
    cached = {dict(k)["store"]: v for k, v in m["o2c_state_cache_entries"].items()}
    assert cached["orders"] >= len(last) > 0
    assert worker.errors() == []
