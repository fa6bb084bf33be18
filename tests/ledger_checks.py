"""Whole-pipeline checks of the inventory side (SPEC §5, §9), shared by the long-run and crash
tests: the orders and the ledger agree, ATP goes negative only as documented, and the ledger a
worker holds is what its committed AtpChanged records say."""

from __future__ import annotations

import time
from collections import defaultdict

import requests
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streams.contracts.roles import INPUT_ROLES, INTERNAL_TOPICS
from streams.runtime.topics import reader_config
from streams.settings import Settings
from tests.harness import Worker, read_topic


def source_topics(settings: Settings) -> list[str]:
    """Every topic the app consumes: the four inputs and the allocation saga's internal topics."""
    return [settings.topic(r) for r in INPUT_ROLES] + [settings.internal_topic(n) for n in INTERNAL_TOPICS]


def app_lag(settings: Settings) -> int:
    """Records of the app's source topics not yet covered by its committed offsets. 0 means the
    whole loop is quiet: each hop commits its offsets with the records it sent."""
    return sum(lag_by_partition(settings).values())


def lag_by_partition(settings: Settings) -> dict[tuple[str, int], int]:
    """Per partition with work left: records (read_committed) after the app's committed offset.

    The internal topics are written in transactions, so their ends hold commit markers that no
    consumer ever sees: the high watermark minus the committed offset over-counts. Partitions
    where they differ are read from the committed offset to the end to count real records."""
    consumer = Consumer(
        reader_config(settings, **{"group.id": settings.app_id, "enable.partition.eof": True})
    )  # never joins the group: partitions are assigned
    try:
        tps = [TopicPartition(t, p) for t in source_topics(settings) for p in range(settings.partitions)]
        ahead = {}
        for tp in committed(settings, tps):
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            start = tp.offset if tp.offset >= 0 else low
            if high > start:
                ahead[(tp.topic, tp.partition)] = (start, high)
        if not ahead:
            return {}
        consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in ahead.items()])
        records = dict.fromkeys(ahead, 0)
        open_ = set(ahead)
        deadline = time.monotonic() + 20
        while open_ and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            key = (msg.topic(), msg.partition())
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    open_.discard(key)
                continue
            records[key] += 1
            if msg.offset() + 1 >= ahead[key][1]:
                open_.discard(key)
        for key in open_:  # not read to the end in time: count it as unfinished
            records[key] = max(records[key], 1)
        return {k: n for k, n in records.items() if n}
    finally:
        consumer.close()


def committed(settings: Settings, tps: list[TopicPartition], attempts: int = 5) -> list[TopicPartition]:
    """The app group's committed offsets.

    Asked with read_uncommitted: a read_committed consumer asks for *stable* offsets only, and
    the broker keeps answering "unstable" while a killed worker's transaction is open (until a
    restarted worker fences it, or the transaction times out). The coordinator may also be
    slow to answer while the group rebalances, hence the retries."""
    config = reader_config(settings, **{"group.id": settings.app_id, "isolation.level": "read_uncommitted"})
    consumer = Consumer(config)  # never joins the group
    try:
        for attempt in range(attempts):
            try:
                return consumer.committed(tps, timeout=10)
            except KafkaException:
                if attempt == attempts - 1:
                    raise
                time.sleep(1)
        raise AssertionError("unreachable")
    finally:
        consumer.close()


def fetch_all(worker: Worker, paths: list[str]) -> dict[str, dict]:
    with requests.Session() as session:
        out = {}
        for path in paths:
            reply = session.get(f"{worker.url}{path}", timeout=30)
            assert reply.status_code == 200, (path, reply.text)
            out[path] = reply.json()
        return out


def atp_views(worker: Worker, skus: set[str]) -> dict[str, dict]:
    return {v["sku"]: v for v in fetch_all(worker, [f"/atp/{s}" for s in sorted(skus)]).values()}


def orders_vs_ledger(order_views: dict[str, dict], ledger: dict[str, dict]) -> dict[str, tuple]:
    """Per SKU where they differ: (Σ allocated over open order lines, Σ reserved over
    warehouses, Σ backordered over lines, Σ backordered in the ledger)."""
    allocated: dict[str, int] = defaultdict(int)
    backordered: dict[str, int] = defaultdict(int)
    for view in order_views.values():
        for line in view["lines"]:
            allocated[line["sku"]] += line["allocated"]
            backordered[line["sku"]] += line["backordered"]
    differ = {}
    for sku in set(allocated) | set(ledger):
        view = ledger.get(sku, {"reserved": 0, "backordered": 0})
        got = (allocated[sku], view["reserved"], backordered[sku], view["backordered"])
        if got[0] != got[1] or got[2] != got[3]:
            differ[sku] = got
    return differ


def unexplained_negative_atp(settings: Settings) -> list[dict]:
    """AtpChanged records whose ATP fell below zero (or further below) without a NEGATIVE_ATP
    exception for the same cause. A safety-stock raise is a planning decision and may leave ATP
    negative without one (docs/inventory-model.md)."""
    negative_causes = {
        (e["sku"], e["cause_event_id"])
        for e in read_topic(settings, "exceptions", idle=1.0)
        if e["code"] == "NEGATIVE_ATP"
    }
    safety_sets = {
        e["event_id"] for e in read_topic(settings, "inventory", idle=1.0) if e["event_type"] == "SafetyStockSet"
    }
    previous: dict[tuple[str, str], int] = {}
    bad = []
    for r in sorted(read_topic(settings, "atp", idle=1.0), key=lambda r: (r["_partition"], r["_offset"])):
        where = (r["sku"], r["warehouse_id"])
        before = previous.get(where, 0)
        previous[where] = r["atp"]
        if r["atp"] < 0 and r["atp"] < before:
            if (r["sku"], r["cause_event_id"]) not in negative_causes and r["cause_event_id"] not in safety_sets:
                bad.append(r)
    return bad


def ledger_vs_atp_topic(settings: Settings, ledger: dict[str, dict]) -> dict[tuple[str, str], tuple]:
    """Per (sku, warehouse) where they differ: the last committed AtpChanged numbers vs the
    worker's ledger over HTTP."""
    last: dict[tuple[str, str], tuple] = {}
    for r in sorted(read_topic(settings, "atp", idle=1.0), key=lambda r: (r["_partition"], r["_offset"])):
        last[(r["sku"], r["warehouse_id"])] = (r["on_hand"], r["reserved"], r["backordered"], r["safety_stock"])
    held = {
        (sku, w["warehouse_id"]): (w["on_hand"], w["reserved"], w["backordered"], w["safety_stock"])
        for sku, view in ledger.items()
        for w in view["warehouses"]
    }
    zero = (0, 0, 0, 0)  # a warehouse only ever touched without a change publishes nothing
    return {
        k: (last.get(k, zero), held.get(k, zero))
        for k in set(last) | set(held)
        if last.get(k, zero) != held.get(k, zero)
    }
