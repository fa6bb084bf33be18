"""Order scenarios end to end: JSON-lines files in tests/scenarios/, produced with `o2c produce`,
against one real `o2c worker` (order and inventory agents), with exact expectations on every output.

Scenario files are flat events (docs/contract-fields.md), one per line, plus fields starting with
`_` that the runner strips:

- `_topic`: the topic role the line goes to (`orders`, `shipments`, `payments`, `inventory`).
  Consecutive lines of one topic are produced by one `o2c produce <role> -` call (a group also
  ends after a line that talks to the inventory side, below).
- Malformed records cannot pass `o2c produce` (it validates), so they are written by a plain Kafka
  producer: `_id` names the line, `_key` is the Kafka key, and exactly one of
  `_text` (the value is that UTF-8 text), `_json` (the value is that object as JSON text),
  `_null: true` (a tombstone), or `_avro` (that flat event, Avro-encoded with the schema of
  `_schema`, default `_topic`; `_drop_tail_bytes: N` cuts the last N bytes).

Determinism: after each group of lines the runner waits until the worker has decoded or
dead-lettered every record of it (its `o2c_events_in` + `o2c_dead_letters` counters), and then
until the allocation loop is quiet: every AllocationRequest / AllocationRelease / StockIssue the
order agent sent has been received by the inventory agent, and every AllocationResult it sent
back has been received by the order agent (`o2c_allocation_messages`, unchanged over 0.2 s).
A line that can make the order agent send allocation messages (`TALKS_TO_INVENTORY`) ends its
group, so the answers to it are applied before the next line: events of different topics and
allocation results are applied exactly in file order. `Scenario.play(through=label)` stops
after that line (label = `event_id`, or `_id` for a malformed line) to look at the order midway.

The answers for several lines of one order come back in line order only when their SKUs share a
partition of the allocation requests topic (`answered_in_line_order` checks it where a trail
depends on it); answers from two partitions have no order between them.

One worker and one isolated topic prefix serve the whole module (startup dominates); each
scenario has its own order id and SKUs, so topic reads are filtered by key.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streams.contracts.codec import Codec
from streams.contracts.flat import to_record
from streams.contracts.roles import INPUT_ROLES
from tests.conftest import Env, make_env
from tests.harness import Worker, WorkerFactory, epoch_times, read_topic

pytestmark = pytest.mark.kafka

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
ALL_SCENARIOS = sorted(p.stem for p in SCENARIOS.glob("*.jsonl"))
RAW_FIELDS = ("_text", "_json", "_null", "_avro")
# Event types whose handling can send allocation messages (docs/order-model.md "Events";
# OrderPlaced when it replays a buffered dispatch).
TALKS_TO_INVENTORY = frozenset(
    "OrderPlaced OrderAccepted OrderLineChanged OrderLineCancelled OrderCancelled ShipmentDispatched".split()
)
REQUEST_TYPES = ("AllocationRequest", "AllocationRelease", "StockIssue")


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    env: Env
    worker: Worker
    raw: Producer
    codec: Codec
    completed: set[str] = field(default_factory=set)  # scenario files played to the end

    @property
    def settings(self):
        return self.env.settings


@pytest.fixture(scope="module")
def world(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Like `kafka_env` + `workers`, once per module: own prefix, app id, data dir, one worker."""
    tmp = tmp_path_factory.mktemp("scenarios")
    kafka_env = make_env(bootstrap_servers, tmp)
    factory = WorkerFactory(kafka_env.env, tmp)
    try:
        worker = factory("w1").start().wait_ready()
        raw = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "partitioner": "murmur2_random",  # same partition as `o2c produce` for a key
                "enable.idempotence": True,
            }
        )
        yield World(env=kafka_env, worker=worker, raw=raw, codec=Codec(kafka_env.settings))
    finally:
        factory.stop_all()


# --------------------------------------------------------------------------- worker probes


def processed_records(worker: Worker) -> float:
    """Records of the input topics the order and inventory agents have taken in: decoded
    (`o2c_events_in`) or dead-lettered."""
    text = worker.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name in ("o2c_events_in", "o2c_dead_letters")
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("role") in INPUT_ROLES
    )


def counter(worker: Worker, name: str) -> Counter:
    """Values of a counter (`o2c_dead_letters`...) by label tuple (sorted label values)."""
    text = worker.get("/metrics").text
    values: Counter = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == name:
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    values[tuple(v for _, v in sorted(sample.labels.items()))] += sample.value
    return values


def wait_until(what: str, probe: Callable[[], Any], worker: Worker, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n--- worker log ---\n{worker.log_tail()}")
        time.sleep(0.1)


def allocation_loop_quiet(worker: Worker) -> bool:
    """Every allocation message sent has been received, both ways, and the counts stayed put
    for 0.2 s (a received message's answer is sent in the same batch that received it)."""
    first = counter(worker, "o2c_allocation_messages")  # (stage, type) -> count
    time.sleep(0.2)
    counts = counter(worker, "o2c_allocation_messages")
    if counts != first:
        return False
    for types in (REQUEST_TYPES, ("AllocationResult",)):
        if sum(counts["sent", t] for t in types) != sum(counts["received", t] for t in types):
            return False
    return True


def answered_in_line_order(world: World, *skus: str) -> None:
    """Precondition of a trail: the SKUs share a partition of the allocation requests topic
    (and of o2c.inventory), so the inventory side handles, and answers, them in send order."""
    partitions = list(range(world.settings.partitions))
    chosen = {sku: DefaultPartitioner()(sku.encode(), partitions, partitions) for sku in skus}
    assert len(set(chosen.values())) == 1, f"SKUs on different partitions, answers unordered: {chosen}"


def order(world: World, order_id: str, *, seq: int) -> dict:
    """GET /orders/{id} once the worker shows `seq` (status events published so far)."""

    def probe():
        reply = world.worker.get(f"/orders/{order_id}")
        return epoch_times(reply.json()) if reply.status_code == 200 and reply.json()["seq"] == seq else None

    return wait_until(f"{order_id} at seq {seq} over HTTP", probe, world.worker)


def read_for(world: World, role: str, key: str, expect: int, timeout: float = 30) -> list[dict]:
    """Committed records of `role` keyed `key` (the topic is shared by the module's scenarios):
    re-read until at least `expect` are there; the caller asserts the exact list."""
    deadline = time.monotonic() + timeout
    while True:
        records = [r for r in read_topic(world.settings, role, idle=1.0, timeout=15) if r["_key"] == key]
        if len(records) >= expect or time.monotonic() > deadline:
            return sorted(records, key=lambda r: (r["_partition"], r["_offset"]))


def status_events(world: World, order_id: str, expect: int) -> list[dict]:
    events = read_for(world, "order-status", order_id, expect)
    assert len({e["_partition"] for e in events}) <= 1, "one order's status events on several partitions"
    return events


def trail(events: list[dict]) -> list[tuple]:
    return [(e["seq"], e["status"], e["previous_status"]) for e in events]


def exception_records(world: World, order_id: str, expect: int) -> list[tuple]:
    return [
        (r["code"], r["order_id"], r["sku"], r["cause_event_id"])
        for r in read_for(world, "exceptions", order_id, expect)
    ]


# --------------------------------------------------------------------------- scenario runner


def label(line: dict) -> str:
    return line.get("_id") or line["event_id"]


def is_raw(line: dict) -> bool:
    return any(f in line for f in RAW_FIELDS)


def group_length(lines: list[dict]) -> int:
    """Lines produced together: same topic, all raw or all valid, up to and including the first
    one that talks to the inventory side."""
    kind = (lines[0]["_topic"], is_raw(lines[0]))
    for i, ln in enumerate(lines):
        if (ln["_topic"], is_raw(ln)) != kind:
            return i
        if ln.get("event_type") in TALKS_TO_INVENTORY:
            return i + 1
    return len(lines)


class Scenario:
    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        text = (SCENARIOS / f"{name}.jsonl").read_text()
        self.lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        self.position = 0
        self.raw: dict[str, dict] = {}  # _id -> topic, partition, offset, key, value of malformed lines

    def play(self, through: str | None = None) -> Scenario:
        if through is None:
            end = len(self.lines)
        else:
            end = (
                next(i for i in range(self.position, len(self.lines)) if label(self.lines[i]) == through) + 1
            )
        pending = self.lines[self.position : end]
        while pending:
            n = group_length(pending)
            run, pending = pending[:n], pending[n:]
            target = processed_records(self.world.worker) + len(run)
            if is_raw(run[0]):
                self._produce_raw(run)
            else:
                self._produce_cli(run[0]["_topic"], run)
            labels = [label(ln) for ln in run]
            wait_until(
                f"{self.name}: the worker to take in {labels}",
                lambda target=target: processed_records(self.world.worker) >= target,
                self.world.worker,
            )
            wait_until(
                f"{self.name}: the allocation loop to settle after {labels}",
                lambda: allocation_loop_quiet(self.world.worker),
                self.world.worker,
            )
        self.position = end
        if end == len(self.lines):
            self.world.completed.add(self.name)
        return self

    def _produce_cli(self, role: str, run: list[dict]) -> None:
        events = [{k: v for k, v in line.items() if not k.startswith("_")} for line in run]
        done = self.world.env.o2c("produce", role, "-", input="".join(json.dumps(e) + "\n" for e in events))
        assert done.returncode == 0, done.stderr
        assert f"produced {len(events)} events" in done.stdout, done.stdout

    def _produce_raw(self, run: list[dict]) -> None:
        for line in run:
            topic = self.world.settings.topic(line["_topic"])
            if "_text" in line:
                value = line["_text"].encode()
            elif "_json" in line:
                value = json.dumps(line["_json"]).encode()
            elif "_null" in line:
                value = None
            else:
                schema = line.get("_schema", line["_topic"])
                value = self.world.codec.encode(schema, to_record(schema, line["_avro"]))
                value = value[: len(value) - line.get("_drop_tail_bytes", 0)]
            key = line["_key"].encode() if line.get("_key") is not None else None
            where: dict = {}

            def delivered(err, msg, where=where):  # noqa: ANN001 - confluent callback
                assert err is None, err
                where.update(partition=msg.partition(), offset=msg.offset())

            self.world.raw.produce(topic, key=key, value=value, on_delivery=delivered)
            assert self.world.raw.flush(10) == 0
            self.raw[line["_id"]] = {"topic": topic, "key": line["_key"], "value": value, **where}


# --------------------------------------------------------------------------- expected shapes


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def line(
    line_id: str,
    sku: str,
    ordered: int,
    *,
    warehouse_id: str | None = None,
    cancelled: int = 0,
    allocated: int = 0,
    backordered: int = 0,
    shipped: int = 0,
    delivered: int = 0,
    invoiced: int = 0,
    promised_at: str | None = None,
) -> dict:
    """A LineStatus of OrderStatusChanged."""
    return {
        "line_id": line_id,
        "sku": sku,
        "warehouse_id": warehouse_id,
        "ordered": ordered,
        "cancelled": cancelled,
        "allocated": allocated,
        "backordered": backordered,
        "shipped": shipped,
        "delivered": delivered,
        "invoiced": invoiced,
        "promised_at": ms(promised_at) if promised_at else None,
    }


def view_line(unit_price_minor: int, *args: Any, pending: int = 0, unmatched: int = 0, **kwargs: Any) -> dict:
    """A line of GET /orders/{id}: the LineStatus plus price, open, pending, unmatched invoice."""
    base = line(*args, **kwargs)
    return base | {
        "unit_price_minor": unit_price_minor,
        "open": base["ordered"] - base["cancelled"],
        "pending_allocation": pending,
        "invoiced_unmatched": unmatched,
    }


MILESTONES = (
    "placed_at accepted_at allocated_at shipped_at delivered_at invoiced_at paid_at closed_at cancelled_at"
).split()


def milestones(**iso: str) -> dict:
    assert set(iso) <= set(MILESTONES)
    return {m: ms(iso[m]) if m in iso else None for m in MILESTONES}


def money(record: dict) -> tuple:
    return (
        record["invoiced_minor"],
        record["paid_minor"],
        record["refunded_minor"],
        record["open_balance_minor"],
    )


def refs(record: dict) -> list[tuple]:
    return [(e["code"], e["cause_event_id"]) for e in record["exceptions"]]


def header(record: dict) -> tuple:
    return record["customer_id"], record["channel"], record["region"], record["currency"]


def positions(world: World, sku: str) -> list[tuple]:
    """(warehouse_id, on_hand, reserved, backordered, atp) of the SKU per warehouse (GET /atp)."""
    reply = world.worker.get(f"/atp/{sku}")
    assert reply.status_code == 200, reply.text
    return [
        (w["warehouse_id"], w["on_hand"], w["reserved"], w["backordered"], w["atp"])
        for w in epoch_times(reply.json())["warehouses"]
    ]


def assert_clean_log(world: World) -> None:
    assert world.worker.errors() == [], world.worker.log_tail()


# --------------------------------------------------------------------------- scenarios


def test_happy_path_to_closed(world: World) -> None:
    answered_in_line_order(world, "SKU-A", "SKU-B")
    sc = Scenario(world, "happy_path").play(through="hp-2")
    body = order(world, "SO-HAPPY", seq=4)
    assert body["status"] == "ALLOCATED" and body["placed"] is True
    # Line 1 names no warehouse: DC1 has the highest ATP of SKU-A (10 against 4 at DC2).
    assert body["lines"] == [
        view_line(1000, "1", "SKU-A", 2, warehouse_id="DC1", allocated=2),
        view_line(500, "2", "SKU-B", 1, warehouse_id="DC1", allocated=1),
    ]
    assert body["milestones"]["allocated_at"] == ms("2026-11-02T09:05:00Z")  # answers to the acceptance

    sc.play(through="hp-5")  # picked (not published), dispatched, delivered
    body = order(world, "SO-HAPPY", seq=6)
    assert body["status"] == "DELIVERED"
    assert body["lines"] == [
        view_line(1000, "1", "SKU-A", 2, warehouse_id="DC1", shipped=2, delivered=2),
        view_line(500, "2", "SKU-B", 1, warehouse_id="DC1", shipped=1, delivered=1),
    ]
    assert body["shipments"] == [
        {
            "shipment_id": "SH-1",
            "warehouse_id": "DC1",
            "carrier": "DHL",
            "tracking_number": "TRK-HP-1",
            "lines": [{"line_id": "1", "quantity": 2}, {"line_id": "2", "quantity": 1}],
            "picked_at": ms("2026-11-03T07:00:00Z"),
            "dispatched_at": ms("2026-11-03T08:00:00Z"),
            "delivered_at": ms("2026-11-04T15:00:00Z"),
        }
    ]

    # The long poll is already waiting when the invoice and the payment are produced.
    with ThreadPoolExecutor(1) as pool:
        poll = pool.submit(world.worker.get, "/orders/SO-HAPPY?wait_for=CLOSED&timeout=20")
        time.sleep(0.5)
        assert not poll.done(), "wait_for=CLOSED answered while the order was DELIVERED"
        sc.play()
        reply = poll.result(timeout=30)
    assert reply.status_code == 200, reply.text
    body = epoch_times(reply.json())
    assert (body["status"], body["seq"]) == ("CLOSED", 8)
    assert money(body) == (2500, 2500, 0, 0)
    assert body["invoices"] == [
        {
            "invoice_id": "INV-HP-1",
            "total_minor": 2500,
            "lines": [
                {"line_id": "1", "quantity": 2, "amount_minor": 2000},
                {"line_id": "2", "quantity": 1, "amount_minor": 500},
            ],
            "posted_at": ms("2026-11-04T18:00:00Z"),
            "due_at": ms("2026-12-04T18:00:00Z"),  # payment_terms_days defaults to 30
            "applied_minor": 2500,
        }
    ]
    assert body["payments"] == [
        {
            "payment_id": "PAY-HP-1",
            "invoice_id": "INV-HP-1",
            "amount_minor": 2500,
            "refunded_minor": 0,
            "received_at": ms("2026-11-20T10:00:00Z"),
        }
    ]

    events = status_events(world, "SO-HAPPY", 8)
    assert trail(events) == [
        (1, "SUBMITTED", None),
        (2, "ACCEPTED", "SUBMITTED"),
        (3, "PARTIALLY_ALLOCATED", "ACCEPTED"),  # line 1 answered, line 2 still pending
        (4, "ALLOCATED", "PARTIALLY_ALLOCATED"),
        (5, "SHIPPED", "ALLOCATED"),  # the answers to the stock issues confirm: not published
        (6, "DELIVERED", "SHIPPED"),
        (7, "INVOICED", "DELIVERED"),
        (8, "CLOSED", "INVOICED"),
    ]
    assert [e["cause_event_type"] for e in events[2:4]] == ["AllocationResult", "AllocationResult"]
    assert [e["cause_event_id"] for e in events] == "hp-1 hp-2 SKU-A:1 SKU-B:1 hp-4 hp-5 hp-6 hp-7".split()
    assert events[2]["lines"] == [
        line("1", "SKU-A", 2, warehouse_id="DC1", allocated=2),
        line("2", "SKU-B", 1, warehouse_id="DC1"),  # requested, not answered yet
    ]
    assert events[2]["occurred_at"] == ms("2026-11-02T09:05:00Z")  # the business time of the request
    last = events[-1]
    assert header(last) == ("C-100", "EDI", "EU", "EUR")
    assert last["lines"] == [
        line("1", "SKU-A", 2, warehouse_id="DC1", shipped=2, delivered=2, invoiced=2),
        line("2", "SKU-B", 1, warehouse_id="DC1", shipped=1, delivered=1, invoiced=1),
    ]
    assert money(last) == (2500, 2500, 0, 0)
    assert last["holds"] == [] and last["exceptions"] == [] and last["open_breaches"] == []
    assert last["milestones"] == milestones(
        placed_at="2026-11-02T09:00:00Z",
        accepted_at="2026-11-02T09:05:00Z",
        allocated_at="2026-11-02T09:05:00Z",  # the second answer to the acceptance
        shipped_at="2026-11-03T08:00:00Z",
        delivered_at="2026-11-04T15:00:00Z",
        invoiced_at="2026-11-04T18:00:00Z",
        paid_at="2026-11-20T10:00:00Z",
        closed_at="2026-11-20T10:00:00Z",
    )
    assert (last["cause_event_type"], last["occurred_at"]) == ("PaymentReceived", ms("2026-11-20T10:00:00Z"))
    assert body["milestones"] == last["milestones"]
    assert exception_records(world, "SO-HAPPY", 0) == []

    # SKU-A's ledger: receipts, the reservation at DC1, the dispatch from DC1 taking on-hand
    # and the reservation down together (ATP unchanged).
    atp = read_for(world, "atp", "SKU-A", 4)
    assert [
        (a["warehouse_id"], a["on_hand"], a["reserved"], a["atp"], a["network_atp"], a["cause_event_id"])
        for a in atp
    ] == [
        ("DC1", 10, 0, 10, 10, "hp-s1"),
        ("DC2", 4, 0, 4, 14, "hp-s2"),
        ("DC1", 10, 2, 8, 12, "hp-2"),
        ("DC1", 8, 0, 8, 12, "hp-4"),
    ]
    assert positions(world, "SKU-B") == [("DC1", 4, 0, 0, 4)]
    assert_clean_log(world)


def test_partial_shipment_then_invoice_of_shipped_quantity_only(world: World) -> None:
    answered_in_line_order(world, "SKU-C", "SKU-F")
    sc = Scenario(world, "partial_shipment").play(through="pt-2")
    body = order(world, "SO-PART", seq=4)
    # DC2 has 3 of the 4 SKU-C and no SKU-F; PO-PT-2 is expected to bring the rest on 11-11.
    assert body["status"] == "PARTIALLY_ALLOCATED"
    promised = "2026-11-11T08:00:00Z"
    assert body["lines"] == [
        view_line(
            1000, "1", "SKU-C", 4, warehouse_id="DC2", allocated=3, backordered=1, promised_at=promised
        ),
        view_line(2500, "2", "SKU-F", 2, warehouse_id="DC2", backordered=2, promised_at=promised),
    ]

    sc.play(through="pt-6")  # SH-1 ships the 3 in stock; delivered, invoiced, paid
    body = order(world, "SO-PART", seq=8)
    assert body["status"] == "PARTIALLY_SHIPPED"
    assert body["lines"] == [
        view_line(
            1000,
            "1",
            "SKU-C",
            4,
            warehouse_id="DC2",
            backordered=1,
            shipped=3,
            delivered=3,
            invoiced=3,
            promised_at=promised,
        ),
        view_line(2500, "2", "SKU-F", 2, warehouse_id="DC2", backordered=2, promised_at=promised),
    ]
    assert money(body) == (3000, 3000, 0, 0)
    assert body["milestones"] == milestones(
        placed_at="2026-11-02T10:00:00Z", accepted_at="2026-11-02T10:01:00Z"
    )
    assert [(i["invoice_id"], i["due_at"], i["applied_minor"]) for i in body["invoices"]] == [
        ("INV-PT-1", ms("2026-11-19T13:00:00Z"), 3000)  # payment_terms_days 14
    ]

    sc.play()  # PO-PT-2 arrives and fills both backorders; the rest ships (not delivered), is invoiced and paid
    events = status_events(world, "SO-PART", 13)
    assert trail(events) == [
        (1, "SUBMITTED", None),
        (2, "ACCEPTED", "SUBMITTED"),
        (3, "PARTIALLY_ALLOCATED", "ACCEPTED"),  # line 1: 3 allocated, 1 backordered
        (4, "PARTIALLY_ALLOCATED", "PARTIALLY_ALLOCATED"),  # line 2: 2 backordered
        (5, "PARTIALLY_SHIPPED", "PARTIALLY_ALLOCATED"),  # SH-1 ships the allocated 3
        (6, "PARTIALLY_SHIPPED", "PARTIALLY_SHIPPED"),  # delivery of SH-1
        (7, "PARTIALLY_SHIPPED", "PARTIALLY_SHIPPED"),  # invoice of the shipped 3
        (8, "PARTIALLY_SHIPPED", "PARTIALLY_SHIPPED"),  # its payment
        (9, "PARTIALLY_SHIPPED", "PARTIALLY_SHIPPED"),  # receipt of SKU-C fills line 1
        (10, "PARTIALLY_SHIPPED", "PARTIALLY_SHIPPED"),  # receipt of SKU-F fills line 2
        (11, "PARTIALLY_PAID", "PARTIALLY_SHIPPED"),  # all shipped, part invoiced, something paid
        (12, "PARTIALLY_PAID", "PARTIALLY_PAID"),  # fully invoiced, 3000 of 9000 paid
        (13, "CLOSED", "PARTIALLY_PAID"),
    ]
    # Result ids count per SKU: SKU-C:2 answered the stock issue of SH-1 and confirmed it.
    assert [e["cause_event_id"] for e in events] == (
        "pt-1 pt-2 SKU-C:1 SKU-F:1 pt-3 pt-4 pt-5 pt-6 SKU-C:3 SKU-F:2 pt-7 pt-8 pt-9".split()
    )
    eighth, tenth = events[7], events[9]
    assert eighth["lines"] == [
        line(
            "1",
            "SKU-C",
            4,
            warehouse_id="DC2",
            backordered=1,
            shipped=3,
            delivered=3,
            invoiced=3,
            promised_at=promised,
        ),
        line("2", "SKU-F", 2, warehouse_id="DC2", backordered=2, promised_at=promised),
    ]
    assert money(eighth) == (3000, 3000, 0, 0)
    assert tenth["lines"] == [
        line("1", "SKU-C", 4, warehouse_id="DC2", allocated=1, shipped=3, delivered=3, invoiced=3),
        line("2", "SKU-F", 2, warehouse_id="DC2", allocated=2),
    ]  # filled: no promise date any more
    assert (tenth["cause_event_type"], tenth["occurred_at"]) == (
        "AllocationResult",
        ms("2026-11-11T08:30:00Z"),
    )
    last = events[-1]
    assert header(last) == ("C-200", "ECOM", "US", "USD")
    assert last["lines"] == [
        line("1", "SKU-C", 4, warehouse_id="DC2", shipped=4, delivered=3, invoiced=4),
        line("2", "SKU-F", 2, warehouse_id="DC2", shipped=2, invoiced=2),
    ]
    assert money(last) == (9000, 9000, 0, 0)
    assert last["exceptions"] == []
    assert last["milestones"] == milestones(
        placed_at="2026-11-02T10:00:00Z",
        accepted_at="2026-11-02T10:01:00Z",
        allocated_at="2026-11-11T08:30:00Z",  # the fill of the last backorder (receipt pt-r2)
        shipped_at="2026-11-12T09:00:00Z",
        invoiced_at="2026-11-12T13:00:00Z",
        paid_at="2026-11-20T08:00:00Z",
        closed_at="2026-11-20T08:00:00Z",
    )  # SH-2 was never delivered: CLOSED does not need delivered_at
    assert exception_records(world, "SO-PART", 0) == []
    body = order(world, "SO-PART", seq=13)
    assert body["status"] == "CLOSED"
    assert body["lines"] == [
        view_line(1000, "1", "SKU-C", 4, warehouse_id="DC2", shipped=4, delivered=3, invoiced=4),
        view_line(2500, "2", "SKU-F", 2, warehouse_id="DC2", shipped=2, invoiced=2),
    ]
    # Everything received was shipped; the receipts closed PO-PT-2.
    for sku in ("SKU-C", "SKU-F"):
        assert positions(world, sku) == [("DC2", 0, 0, 0, 0)], sku
        assert epoch_times(world.worker.get(f"/atp/{sku}/DC2").json())["expected_supply"] == [], sku
    assert_clean_log(world)


def test_cancel_of_one_line(world: World) -> None:
    answered_in_line_order(world, "SKU-E", "SKU-D")
    sc = Scenario(world, "cancel_line").play(through="cx-2")
    body = order(world, "SO-CXL", seq=4)
    assert body["status"] == "PARTIALLY_ALLOCATED"  # DC1 has 5 SKU-E but only 1 SKU-D
    assert body["lines"] == [
        view_line(1500, "1", "SKU-E", 2, warehouse_id="DC1", allocated=2),
        view_line(700, "2", "SKU-D", 3, warehouse_id="DC1", allocated=1, backordered=2),
    ]

    sc.play(through="cx-4")
    body = order(world, "SO-CXL", seq=6)
    # The cancel took line 2's 2 backordered, then its 1 allocated: what is left is allocated.
    assert body["status"] == "ALLOCATED"
    assert body["lines"] == [
        view_line(1500, "1", "SKU-E", 2, warehouse_id="DC1", allocated=2),
        view_line(700, "2", "SKU-D", 3, warehouse_id="DC1", cancelled=3),
    ]
    assert [(e["code"], e["cause_event_id"]) for e in body["exceptions"]] == [("EVENT_AFTER_CANCEL", "cx-4")]
    assert positions(world, "SKU-D") == [("DC1", 1, 0, 0, 1)]  # the release gave the unit back

    sc.play()
    events = status_events(world, "SO-CXL", 9)
    assert trail(events) == [
        (1, "SUBMITTED", None),
        (2, "ACCEPTED", "SUBMITTED"),
        (3, "PARTIALLY_ALLOCATED", "ACCEPTED"),  # line 1 allocated
        (4, "PARTIALLY_ALLOCATED", "PARTIALLY_ALLOCATED"),  # line 2: 1 allocated, 2 backordered
        (5, "ALLOCATED", "PARTIALLY_ALLOCATED"),  # line 2 cancelled
        (6, "ALLOCATED", "ALLOCATED"),  # cancel of the cancelled line: EVENT_AFTER_CANCEL
        (7, "SHIPPED", "ALLOCATED"),  # line 1 shipped; the unit of line 2 is not counted
        (8, "INVOICED", "SHIPPED"),
        (9, "CLOSED", "INVOICED"),
    ]
    # The answer to the release (SKU-D:2) and to the stock issues confirm: not published.
    assert [
        e["cause_event_id"] for e in events
    ] == "cx-1 cx-2 SKU-E:1 SKU-D:1 cx-3 cx-4 cx-5 cx-6 cx-7".split()
    assert events[4]["lines"] == [
        line("1", "SKU-E", 2, warehouse_id="DC1", allocated=2),
        line("2", "SKU-D", 3, warehouse_id="DC1", cancelled=3),
    ]
    last = events[-1]
    assert header(last) == ("C-300", "SALES", "EU", "EUR")
    assert last["lines"] == [
        line("1", "SKU-E", 2, warehouse_id="DC1", shipped=2, invoiced=2),
        line("2", "SKU-D", 3, warehouse_id="DC1", cancelled=3),
    ]
    assert money(last) == (3000, 3000, 0, 0)
    assert refs(last) == [("EVENT_AFTER_CANCEL", "cx-4"), ("EVENT_AFTER_CANCEL", "cx-5")]
    assert last["milestones"] == milestones(
        placed_at="2026-11-02T11:00:00Z",
        accepted_at="2026-11-02T11:10:00Z",
        allocated_at="2026-11-02T12:00:00Z",  # the cancel left every open unit allocated
        shipped_at="2026-11-03T09:00:00Z",
        invoiced_at="2026-11-03T18:00:00Z",
        paid_at="2026-11-25T10:00:00Z",
        closed_at="2026-11-25T10:00:00Z",
    )  # not every line cancelled: no cancelled_at
    assert exception_records(world, "SO-CXL", 2) == [
        ("EVENT_AFTER_CANCEL", "SO-CXL", "SKU-D", "cx-4"),
        ("EVENT_AFTER_CANCEL", "SO-CXL", "SKU-D", "cx-5"),
    ]
    body = order(world, "SO-CXL", seq=9)
    assert body["status"] == "CLOSED" and body["exceptions_total"] == 2
    # The dispatched unit of the cancelled line did leave DC1: the ledger counts it.
    assert positions(world, "SKU-D") == [("DC1", 0, 0, 0, 0)]
    assert positions(world, "SKU-E") == [("DC1", 3, 0, 0, 3)]
    assert_clean_log(world)


def test_hold_and_release(world: World) -> None:
    sc = Scenario(world, "hold_release").play(through="ho-3")
    body = order(world, "SO-HOLD", seq=2)
    assert body["status"] == "ON_HOLD"
    # Re-applying an active hold refreshes its reason, keeps its start, publishes nothing.
    assert body["holds"] == [
        {"hold_type": "CREDIT", "reason": "limit re-checked, still over", "since": ms("2026-11-02T12:01:00Z")}
    ]

    sc.play(through="ho-5")
    body = order(world, "SO-HOLD", seq=5)
    assert body["status"] == "ON_HOLD"  # accepted while on hold: the hold wins
    assert [h["hold_type"] for h in body["holds"]] == ["CREDIT", "FRAUD"]
    assert body["milestones"]["accepted_at"] == ms("2026-11-02T13:00:00Z")
    # Holds do not stop allocation; no warehouse has SKU-G: backordered, at no warehouse yet.
    assert body["lines"] == [view_line(9900, "1", "SKU-G", 1, backordered=1)]

    sc.play(through="ho-8")
    reply = world.worker.get("/orders/SO-HOLD?wait_for=BACKORDERED&timeout=10")
    assert reply.status_code == 200, reply.text
    body = epoch_times(reply.json())
    assert (body["status"], body["seq"], body["holds"]) == ("BACKORDERED", 8, [])

    sc.play()  # SKU-G arrives at DC3, its first warehouse, which takes the waiting line
    body = order(world, "SO-HOLD", seq=9)
    assert body["status"] == "ALLOCATED"
    assert body["lines"] == [view_line(9900, "1", "SKU-G", 1, warehouse_id="DC3", allocated=1)]

    events = status_events(world, "SO-HOLD", 9)
    assert trail(events) == [
        (1, "SUBMITTED", None),
        (2, "ON_HOLD", "SUBMITTED"),
        (3, "ON_HOLD", "ON_HOLD"),  # accepted
        (4, "ON_HOLD", "ON_HOLD"),  # backordered
        (5, "ON_HOLD", "ON_HOLD"),  # FRAUD hold added
        (6, "ON_HOLD", "ON_HOLD"),  # CREDIT released, FRAUD still active
        (7, "ON_HOLD", "ON_HOLD"),  # CREDIT released again: HOLD_NOT_ACTIVE
        (8, "BACKORDERED", "ON_HOLD"),
        (9, "ALLOCATED", "BACKORDERED"),  # the receipt fills the backorder
    ]
    assert [
        e["cause_event_id"] for e in events
    ] == "ho-1 ho-2 ho-4 SKU-G:1 ho-5 ho-6 ho-7 ho-8 SKU-G:2".split()
    assert [e["holds"] for e in events] == [
        [],
        ["CREDIT"],
        ["CREDIT"],
        ["CREDIT"],
        ["CREDIT", "FRAUD"],
        ["FRAUD"],
        ["FRAUD"],
        [],
        [],
    ]
    assert events[3]["lines"] == [line("1", "SKU-G", 1, backordered=1)]
    last = events[-1]
    assert (last["cause_event_type"], last["occurred_at"]) == ("AllocationResult", ms("2026-11-03T09:00:00Z"))
    assert header(last) == ("C-400", "MARKETPLACE", "APAC", "JPY")
    assert last["lines"] == [line("1", "SKU-G", 1, warehouse_id="DC3", allocated=1)]
    assert money(last) == (0, 0, 0, 0)
    assert refs(last) == [("HOLD_NOT_ACTIVE", "ho-7")]
    assert last["milestones"] == milestones(
        placed_at="2026-11-02T12:00:00Z",
        accepted_at="2026-11-02T13:00:00Z",
        allocated_at="2026-11-03T09:00:00Z",  # the receipt's business time
    )
    assert exception_records(world, "SO-HOLD", 1) == [("HOLD_NOT_ACTIVE", "SO-HOLD", None, "ho-7")]
    assert positions(world, "SKU-G") == [("DC3", 2, 1, 0, 1)]
    assert_clean_log(world)


def test_duplicates(world: World) -> None:
    duplicates_before = counter(world.worker, "o2c_duplicate_events")[()]
    messages_before = counter(world.worker, "o2c_allocation_messages")
    Scenario(world, "duplicates").play()
    # du-s1 twice (the ledger's no-op), du-1 twice (plus once more at the very end), du-2, du-4,
    # du-6 and du-8 twice: seven no-ops.
    assert counter(world.worker, "o2c_duplicate_events")[()] - duplicates_before == 7
    # One request (the second OrderAccepted asks for nothing), one stock issue (SH-1 is not
    # shipped twice), each answered once. Labels sorted by name: (stage, type).
    assert counter(world.worker, "o2c_allocation_messages") - messages_before == Counter(
        {
            ("sent", "AllocationRequest"): 1,
            ("received", "AllocationRequest"): 1,
            ("sent", "StockIssue"): 1,
            ("received", "StockIssue"): 1,
            ("sent", "AllocationResult"): 2,
            ("received", "AllocationResult"): 2,
        }
    )

    events = status_events(world, "SO-DUP", 10)
    assert trail(events) == [
        (1, "SUBMITTED", None),
        (2, "ACCEPTED", "SUBMITTED"),
        (3, "ALLOCATED", "ACCEPTED"),
        (4, "ALLOCATED", "ALLOCATED"),  # another OrderAccepted: ALREADY_ACCEPTED
        (5, "SHIPPED", "ALLOCATED"),
        (6, "SHIPPED", "SHIPPED"),  # SH-1 again under a new event id: DUPLICATE_SHIPMENT
        (7, "INVOICED", "SHIPPED"),
        (8, "INVOICED", "INVOICED"),  # INV-DU-1 again: DUPLICATE_INVOICE
        (9, "CLOSED", "INVOICED"),
        (10, "CLOSED", "CLOSED"),  # PAY-DU-1 again: DUPLICATE_PAYMENT
    ]
    assert [e["cause_event_id"] for e in events] == [
        "du-1",
        "du-2",
        "SKU-H:1",
        *(f"du-{i}" for i in range(3, 10)),
    ]
    last = events[-1]
    assert header(last) == ("C-500", "EDI", "EU", "EUR")
    # nothing counted twice
    assert last["lines"] == [line("1", "SKU-H", 1, warehouse_id="DC1", shipped=1, invoiced=1)]
    assert money(last) == (4000, 4000, 0, 0)
    assert refs(last) == [
        ("ALREADY_ACCEPTED", "du-3"),
        ("DUPLICATE_SHIPMENT", "du-5"),
        ("DUPLICATE_INVOICE", "du-7"),
        ("DUPLICATE_PAYMENT", "du-9"),
    ]
    assert last["milestones"] == milestones(
        placed_at="2026-11-02T13:00:00Z",
        accepted_at="2026-11-02T13:10:00Z",  # the first acceptance
        allocated_at="2026-11-02T13:10:00Z",  # its answer
        shipped_at="2026-11-03T10:00:00Z",
        invoiced_at="2026-11-03T18:00:00Z",
        paid_at="2026-11-15T09:00:00Z",
        closed_at="2026-11-15T09:00:00Z",
    )
    assert exception_records(world, "SO-DUP", 4) == [
        ("ALREADY_ACCEPTED", "SO-DUP", None, "du-3"),
        ("DUPLICATE_SHIPMENT", "SO-DUP", None, "du-5"),
        ("DUPLICATE_INVOICE", "SO-DUP", None, "du-7"),
        ("DUPLICATE_PAYMENT", "SO-DUP", None, "du-9"),
    ]
    body = order(world, "SO-DUP", seq=10)
    assert body["status"] == "CLOSED"
    assert body["lines"] == [view_line(4000, "1", "SKU-H", 1, warehouse_id="DC1", shipped=1, invoiced=1)]
    assert [s["shipment_id"] for s in body["shipments"]] == ["SH-1"]
    assert [(i["invoice_id"], i["applied_minor"]) for i in body["invoices"]] == [("INV-DU-1", 4000)]
    assert [(p["payment_id"], p["amount_minor"]) for p in body["payments"]] == [("PAY-DU-1", 4000)]
    assert body["exceptions_total"] == 4
    assert positions(world, "SKU-H") == [("DC1", 2, 0, 0, 2)]  # 3 received once, 1 shipped once
    assert_clean_log(world)


def test_shipment_before_its_order(world: World) -> None:
    orders_before = world.worker.get("/stats").json()["orders"]
    sc = Scenario(world, "shipment_before_order").play(through="ea-2")
    # Dispatch and delivery are buffered in the order's state: nothing published yet.
    early = world.worker.get("/orders/SO-EARLY")
    assert world.worker.get("/stats").json()["orders"] == orders_before  # no status: not counted

    sc.play()
    body = order(world, "SO-EARLY", seq=2)
    assert body["status"] == "DELIVERED"
    assert (body["buffered_events"], body["orphan_since"]) == (0, None)
    assert body["lines"] == [
        view_line(1200, "1", "SKU-I", 2, shipped=2, delivered=2),
        view_line(800, "2", "SKU-J", 1, shipped=1, delivered=1),
    ]
    assert [(s["shipment_id"], s["dispatched_at"], s["delivered_at"]) for s in body["shipments"]] == [
        ("SH-1", ms("2026-11-02T07:00:00Z"), ms("2026-11-02T07:30:00Z"))
    ]

    events = status_events(world, "SO-EARLY", 2)
    assert trail(events) == [
        (1, "SUBMITTED", None),  # OrderPlaced replays the buffered dispatch and delivery
        (2, "DELIVERED", "SUBMITTED"),  # accepted, everything already shipped: nothing to allocate
    ]
    assert [e["cause_event_id"] for e in events] == ["ea-3", "ea-4"]
    first, last = events
    assert first["lines"] == [
        line("1", "SKU-I", 2, shipped=2, delivered=2),
        line("2", "SKU-J", 1, shipped=1, delivered=1),
    ]
    assert first["milestones"] == milestones(
        placed_at="2026-11-02T08:00:00Z",
        shipped_at="2026-11-02T07:00:00Z",  # business time of the buffered dispatch
        delivered_at="2026-11-02T07:30:00Z",
    )
    assert header(last) == ("C-600", "ECOM", "US", "USD")
    assert last["lines"] == first["lines"]
    assert money(last) == (0, 0, 0, 0)
    assert last["exceptions"] == []
    assert last["milestones"] == milestones(
        placed_at="2026-11-02T08:00:00Z",
        accepted_at="2026-11-02T08:05:00Z",
        allocated_at="2026-11-02T08:05:00Z",  # nothing left to allocate at acceptance
        shipped_at="2026-11-02T07:00:00Z",
        delivered_at="2026-11-02T07:30:00Z",
    )
    assert exception_records(world, "SO-EARLY", 0) == []
    # The stock left DC3 all the same: OrderPlaced replayed the dispatch, whose stock issues
    # (lines never requested) move on-hand and are not answered.
    assert positions(world, "SKU-I") == [("DC3", 8, 0, 0, 8)]
    assert positions(world, "SKU-J") == [("DC3", 4, 0, 0, 4)]
    assert_clean_log(world)

    # Checked last so that a failure here does not hide the rest of the scenario.
    # docs/order-model.md: "The HTTP layer should answer 404 only when there is no state at all";
    # to_view() of a buffered-only order has `placed: False` and `status: null`.
    assert early.status_code == 200, (
        f"GET /orders/SO-EARLY with 2 buffered events answered {early.status_code} {early.text}"
    )
    assert {k: epoch_times(early.json())[k] for k in ("placed", "status", "seq", "buffered_events", "orphan_since")} == {
        "placed": False,
        "status": None,
        "seq": 0,
        "buffered_events": 2,
        "orphan_since": ms("2026-11-02T07:00:00Z"),
    }


def test_invoice_exceeding_shipped_quantity(world: World) -> None:
    sc = Scenario(world, "invoice_exceeds_shipped").play(through="ov-4")
    body = order(world, "SO-OVER", seq=5)
    assert body["status"] == "PARTIALLY_SHIPPED"
    # 5 invoiced, 3 shipped: 3 counted, 2 parked until a shipment makes room; the amount counts.
    # The 2 not shipped stay allocated at DC1.
    assert body["lines"] == [
        view_line(1000, "1", "SKU-K", 5, warehouse_id="DC1", allocated=2, shipped=3, invoiced=3, unmatched=2)
    ]
    assert money(body) == (5000, 0, 0, 5000)
    assert [e["code"] for e in body["exceptions"]] == ["INVOICE_EXCEEDS_SHIPPED"]

    sc.play()
    events = status_events(world, "SO-OVER", 7)
    assert trail(events) == [
        (1, "SUBMITTED", None),
        (2, "ACCEPTED", "SUBMITTED"),
        (3, "ALLOCATED", "ACCEPTED"),  # all 5 in stock at DC1
        (4, "PARTIALLY_SHIPPED", "ALLOCATED"),
        (5, "PARTIALLY_SHIPPED", "PARTIALLY_SHIPPED"),  # INVOICE_EXCEEDS_SHIPPED
        (6, "INVOICED", "PARTIALLY_SHIPPED"),  # SH-2 ships the rest: the parked 2 are matched
        (7, "CLOSED", "INVOICED"),
    ]
    assert [e["cause_event_id"] for e in events] == [
        "ov-1",
        "ov-2",
        "SKU-K:1",
        "ov-3",
        "ov-4",
        "ov-5",
        "ov-6",
    ]
    fifth, last = events[4], events[-1]
    assert fifth["lines"] == [line("1", "SKU-K", 5, warehouse_id="DC1", allocated=2, shipped=3, invoiced=3)]
    assert money(fifth) == (5000, 0, 0, 5000)
    assert refs(fifth) == [("INVOICE_EXCEEDS_SHIPPED", "ov-4")]
    assert header(last) == ("C-700", "SALES", "EU", "EUR")
    assert last["lines"] == [line("1", "SKU-K", 5, warehouse_id="DC1", shipped=5, invoiced=5)]
    assert money(last) == (5000, 5000, 0, 0)
    assert refs(last) == [("INVOICE_EXCEEDS_SHIPPED", "ov-4")]
    assert last["milestones"] == milestones(
        placed_at="2026-11-02T14:00:00Z",
        accepted_at="2026-11-02T14:05:00Z",
        allocated_at="2026-11-02T14:05:00Z",  # the answer to the acceptance
        shipped_at="2026-11-06T09:00:00Z",
        invoiced_at="2026-11-06T09:00:00Z",  # reached when SH-2 matched the parked quantity
        paid_at="2026-11-28T09:00:00Z",
        closed_at="2026-11-28T09:00:00Z",
    )
    records = read_for(world, "exceptions", "SO-OVER", 1)
    assert exception_records(world, "SO-OVER", 1) == [("INVOICE_EXCEEDS_SHIPPED", "SO-OVER", "SKU-K", "ov-4")]
    assert records[0]["occurred_at"] == ms("2026-11-03T18:00:00Z") and records[0]["detail"]
    body = order(world, "SO-OVER", seq=7)
    assert body["status"] == "CLOSED"
    assert body["lines"] == [view_line(1000, "1", "SKU-K", 5, warehouse_id="DC1", shipped=5, invoiced=5)]
    assert positions(world, "SKU-K") == [("DC1", 0, 0, 0, 0)]
    assert_clean_log(world)


DEAD = {  # _id -> error class, a fragment of the message
    "bad-inventory-junk": ("DecodeError", "unknown framing"),
    "bad-junk": ("DecodeError", "unknown framing"),
    "bad-json": ("DecodeError", "it looks like JSON, not Avro"),
    "bad-schema": ("DecodeError", "is the payments schema"),
    "bad-truncated": ("DecodeError", "truncated Avro body"),
    "bad-key": ("KeyMismatch", "does not match order_id 'SO-OTHER'"),
    "bad-null": ("DecodeError", "no value (null)"),
    "bad-shipment-junk": ("DecodeError", "it looks like JSON, not Avro"),
}


def test_malformed_records_are_dead_lettered_and_the_next_good_one_processed(world: World) -> None:
    dead_before = counter(world.worker, "o2c_dead_letters")
    sc = Scenario(world, "malformed_records").play()
    dead_after = counter(world.worker, "o2c_dead_letters")
    # labels sorted by name: (error, role)
    assert dead_after - dead_before == Counter(
        {
            ("DecodeError", "inventory"): 1,
            ("DecodeError", "orders"): 5,
            ("KeyMismatch", "orders"): 1,
            ("DecodeError", "shipments"): 1,
        }
    )

    events = status_events(world, "SO-BAD", 4)
    assert trail(events) == [
        (1, "SUBMITTED", None),
        (2, "ACCEPTED", "SUBMITTED"),  # right after the junk record
        (3, "ALLOCATED", "ACCEPTED"),  # the receipt after the junk inventory record counted
        (4, "ON_HOLD", "ALLOCATED"),  # after five more bad records on orders and one on shipments
    ]
    assert [e["cause_event_id"] for e in events] == ["bd-1", "bd-2", "SKU-L:1", "bd-3"]
    last = events[-1]
    assert header(last) == ("C-800", "EDI", "LATAM", "BRL")
    assert last["lines"] == [line("1", "SKU-L", 1, warehouse_id="DC2", allocated=1)]
    assert last["holds"] == ["MANUAL"] and last["exceptions"] == []
    assert exception_records(world, "SO-BAD", 0) == []
    assert positions(world, "SKU-L") == [("DC2", 4, 1, 0, 3)]

    for key in ("SKU-L", "SO-BAD"):
        expected = [raw_id for raw_id in DEAD if sc.raw[raw_id]["key"] == key]
        dead = read_for(world, "dlq", key, len(expected))
        by_source = {
            (r["_headers"]["o2c.source_topic"].decode(), int(r["_headers"]["o2c.source_offset"].decode())): r
            for r in dead
        }
        assert len(dead) == len(by_source) == len(expected), key
        for raw_id in expected:
            error_class, message = DEAD[raw_id]
            sent = sc.raw[raw_id]
            record = by_source[(sent["topic"], sent["offset"])]
            headers = record["_headers"]
            assert headers["o2c.error_class"] == error_class.encode(), (raw_id, headers)
            assert message in headers["o2c.error_message"].decode(), (raw_id, headers)
            assert headers["o2c.source_partition"] == str(sent["partition"]).encode(), raw_id
            assert (record["_key"], record["_value"]) == (sent["key"], sent["value"]), raw_id
        # One key, one dead-letter partition: the dead letters keep the order of the file.
        source_of = {(sent["topic"], sent["offset"]): raw_id for raw_id, sent in sc.raw.items()}
        assert [
            source_of[(r["_headers"]["o2c.source_topic"].decode(), int(r["_headers"]["o2c.source_offset"]))]
            for r in dead
        ] == expected

    body = order(world, "SO-BAD", seq=4)
    assert (body["status"], body["exceptions_total"]) == ("ON_HOLD", 0)
    assert world.worker.get("/orders/SO-OTHER").status_code == 404  # the mis-keyed event left no state
    assert_clean_log(world)


def test_stats_after_the_scenarios(world: World) -> None:
    for name in ALL_SCENARIOS:  # self-contained when run alone: play what has not been played
        if name not in world.completed:
            Scenario(world, name).play()
    finals = {
        "SO-HAPPY": ("CLOSED", "EU", "EDI"),
        "SO-PART": ("CLOSED", "US", "ECOM"),
        "SO-CXL": ("CLOSED", "EU", "SALES"),
        "SO-HOLD": ("ALLOCATED", "APAC", "MARKETPLACE"),
        "SO-DUP": ("CLOSED", "EU", "EDI"),
        "SO-EARLY": ("DELIVERED", "US", "ECOM"),
        "SO-OVER": ("CLOSED", "EU", "SALES"),
        "SO-BAD": ("ON_HOLD", "LATAM", "EDI"),
    }
    for order_id, (status, _, _) in finals.items():
        reply = world.worker.get(f"/orders/{order_id}")
        assert (reply.status_code, reply.json()["status"]) == (200, status), order_id

    def settled():
        stats = world.worker.get("/stats").json()
        return stats if stats["orders"] == len(finals) else None

    stats = wait_until("/stats to count every order", settled, world.worker, timeout=10)
    assert {k: stats[k] for k in ("by_status", "by_region", "by_channel", "orders", "workers")} == {
        "by_status": dict(Counter(s for s, _, _ in finals.values())),
        "by_region": dict(Counter(r for _, r, _ in finals.values())),
        "by_channel": dict(Counter(c for _, _, c in finals.values())),
        "orders": 8,
        "workers": 1,
    }
    assert stats["by_status"] == {"CLOSED": 5, "ALLOCATED": 1, "DELIVERED": 1, "ON_HOLD": 1}
    assert_clean_log(world)
