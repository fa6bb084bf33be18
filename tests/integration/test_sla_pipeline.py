"""SLA breaches in the running pipeline (SPEC §6, docs/sla.md), against the real broker.

Event clock, exact: one worker, one partition (so one stream time), every milestone of §6 in
its own era of business time (100 days apart), three orders per era: the deadline passes (one
breach, detected at the stream time that passed it), the milestone is met exactly at its due
time (no breach), and met after it (breach, then closed late). Events go in one topic group at
a time and the runner waits for the worker to take each group in (tests/harness.py `settle`),
so the order in which the worker applies them, hence every time, is fixed. Then a restart
between due time and check (SIGKILL, then a clean restart): still exactly one breach, and
the persisted stream time still dates a late-arriving order's breach.

Wall clock, with a policy of seconds: an order placed and never accepted breaches ACCEPTANCE
with no further event, visible exactly once to read_committed consumers with its status event;
a fresh worker that recovers the state from the changelog alone does not publish it again.
And the checks read only due index entries (`o2c_sla_index_reads` against `o2c_sla_checks`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.contracts.codec import Codec
from streams.contracts.flat import to_record
from tests.conftest import Env, make_env
from tests.harness import Worker, WorkerFactory, counters, epoch_times, read_topic, settle, taken_in

pytestmark = pytest.mark.kafka

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ERA = 100 * DAY
KEYS = {"orders": "order_id", "shipments": "order_id", "payments": "order_id", "inventory": "sku"}


# --------------------------------------------------------------------------- feeding events


class Feed:
    """Produces events one group (one topic) at a time and waits until the worker took each in."""

    def __init__(self, env: Env, worker: Worker) -> None:
        self.env = env
        self.codec = Codec(env.settings)
        self.producer = Producer(
            {"bootstrap.servers": env.settings.bootstrap_servers, "partitioner": "murmur2_random"}
        )
        self.n = 0
        self.attach(worker)

    def attach(self, worker: Worker) -> None:
        """Count inputs from now on (a restarted worker's counters start at 0)."""
        self.worker = worker
        settle(worker, 0)
        self.base = taken_in(worker)
        self.sent = 0

    def event(self, event_type: str, at: int, **fields: Any) -> dict[str, Any]:
        self.n += 1
        return {"event_id": f"sla-{self.n}", "event_type": event_type, "occurred_at": at, "source": "test",
                **fields}

    def send(self, role: str, *events: dict[str, Any]) -> None:
        topic = self.env.settings.topic(role)
        for ev in events:
            value = self.codec.encode(role, to_record(role, ev))
            self.producer.produce(topic, key=ev[KEYS[role]].encode(), value=value)
        assert self.producer.flush(10) == 0
        self.sent += len(events)
        settle(self.worker, self.base + self.sent)

    # -- events of one-line orders (EDI, EU), stock at DC1
    def place(self, *order_ids: str, at: int, sku: str = "SKU-NONE") -> None:
        self.send("orders", *(
            self.event("OrderPlaced", at, order_id=oid, customer_id="C-1", channel="EDI", region="EU",
                       currency="EUR", lines=[{"line_id": "1", "sku": sku, "quantity": 1,
                                               "unit_price_minor": 1000, "warehouse_id": "DC1"}])
            for oid in order_ids
        ))

    def accept(self, *order_ids: str, at: int) -> None:
        self.send("orders", *(self.event("OrderAccepted", at, order_id=oid) for oid in order_ids))

    def receive(self, sku: str, at: int, quantity: int = 10) -> None:
        self.send("inventory", self.event("InventoryReceived", at, sku=sku, warehouse_id="DC1",
                                          quantity=quantity, source_doc="ASN-1"))

    def dispatch(self, *order_ids: str, at: int) -> None:
        self.send("shipments", *(
            self.event("ShipmentDispatched", at, order_id=oid, shipment_id=f"SH-{oid}", warehouse_id="DC1",
                       carrier="DHL", tracking_number="T-1", lines=[{"line_id": "1", "quantity": 1}])
            for oid in order_ids
        ))

    def deliver(self, *order_ids: str, at: int) -> None:
        self.send("shipments", *(
            self.event("ShipmentDelivered", at, order_id=oid, shipment_id=f"SH-{oid}") for oid in order_ids
        ))

    def invoice(self, *order_ids: str, at: int, due_at: int | None = None) -> None:
        self.send("payments", *(
            self.event("InvoicePosted", at, order_id=oid, invoice_id=f"INV-{oid}", total_minor=1000,
                       due_at=due_at, lines=[{"line_id": "1", "quantity": 1, "amount_minor": 1000}])
            for oid in order_ids
        ))

    def pay(self, *order_ids: str, at: int) -> None:
        self.send("payments", *(
            self.event("PaymentReceived", at, order_id=oid, payment_id=f"PAY-{oid}", invoice_id=f"INV-{oid}",
                       amount_minor=1000)
            for oid in order_ids
        ))

    def hold(self, *order_ids: str, at: int) -> None:
        self.send("orders", *(
            self.event("OrderHoldApplied", at, order_id=oid, hold_type="MANUAL", reason="check")
            for oid in order_ids
        ))

    def tick(self, at: int) -> None:
        """Stream time reaches `at` through the ticker order (its own SLAs are not looked at)."""
        if not getattr(self, "_ticked", False):
            self._ticked = True
            self.place("TICK", at=at)
        else:
            self.send("orders", self.event("OrderHoldReleased", at, order_id="TICK", hold_type="MANUAL"))


# --------------------------------------------------------------------------- the event-clock world


@dataclass
class Case:
    """One milestone's era: the orders whose deadline passes (due), is met at its due time
    (on time) and is met after it (late); when the deadline was due, detected and met late."""

    milestone: str
    due_at: int
    detected_at: int
    met_late_at: int
    orders: dict[str, str] = field(default_factory=dict)  # due / on_time / late -> order_id


def play_eras(feed: Feed) -> dict[str, Case]:
    cases: dict[str, Case] = {}

    def era(n: int, milestone: str, prefix: str) -> tuple[int, Case]:
        a = T0 + n * ERA
        case = Case(milestone, 0, 0, 0, {k: f"{prefix}-{k.upper()}" for k in ("due", "on_time", "late")})
        cases[milestone] = case
        return a, case

    def ids(case: Case) -> list[str]:
        return list(case.orders.values())

    # ACCEPTANCE: 4 h after placed; the late acceptance itself passes the due time (inline check).
    a, c = era(0, "ACCEPTANCE", "ACC")
    c.due_at, c.detected_at = a + 4 * HOUR, a + 4 * HOUR + MIN
    c.met_late_at = c.detected_at
    feed.place(*ids(c), at=a)
    feed.accept(c.orders["on_time"], at=c.due_at)
    feed.accept(c.orders["late"], at=c.met_late_at)
    feed.tick(a + 5 * HOUR)

    # ALLOCATION: 2 h after accepted. Allocation answers do not move stream time, so a tick
    # passes the due time; the late order's stock then arrives.
    a, c = era(1, "ALLOCATION", "ALO")
    c.due_at, c.detected_at, c.met_late_at = a + 2 * HOUR, a + 2 * HOUR + MIN, a + 2 * HOUR + 2 * MIN
    for oid in ids(c):
        feed.place(oid, at=a - MIN, sku=f"SKU-{oid}")  # no stock: backordered
    feed.accept(*ids(c), at=a)
    feed.receive(f"SKU-{c.orders['on_time']}", at=c.due_at, quantity=1)
    feed.tick(c.detected_at)
    feed.receive(f"SKU-{c.orders['late']}", at=c.met_late_at, quantity=1)
    feed.tick(a + 3 * HOUR)

    # SHIPMENT: 48 h after accepted (no promised_ship_at).
    a, c = era(2, "SHIPMENT", "SHP")
    c.due_at, c.detected_at = a + 48 * HOUR, a + 48 * HOUR + MIN
    c.met_late_at = c.detected_at
    feed.receive("SKU-SHP", at=a - HOUR)
    feed.place(*ids(c), at=a - MIN, sku="SKU-SHP")
    feed.accept(*ids(c), at=a)
    feed.dispatch(c.orders["on_time"], at=c.due_at)
    feed.dispatch(c.orders["late"], at=c.met_late_at)
    feed.tick(a + 49 * HOUR)

    # DELIVERY: 5 days after dispatch.
    a, c = era(3, "DELIVERY", "DLV")
    c.due_at, c.detected_at = a + 5 * DAY, a + 5 * DAY + MIN
    c.met_late_at = c.detected_at
    feed.receive("SKU-DLV", at=a - 3 * HOUR)
    feed.place(*ids(c), at=a - 2 * HOUR, sku="SKU-DLV")
    feed.accept(*ids(c), at=a - HOUR)
    feed.dispatch(*ids(c), at=a)
    feed.deliver(c.orders["on_time"], at=c.due_at)
    feed.deliver(c.orders["late"], at=c.met_late_at)
    feed.tick(a + 5 * DAY + HOUR)

    # INVOICE: 24 h after full shipment.
    a, c = era(4, "INVOICE", "INV")
    c.due_at, c.detected_at = a + 24 * HOUR, a + 24 * HOUR + MIN
    c.met_late_at = c.detected_at
    feed.receive("SKU-INV", at=a - 3 * HOUR)
    feed.place(*ids(c), at=a - 2 * HOUR, sku="SKU-INV")
    feed.accept(*ids(c), at=a - HOUR)
    feed.dispatch(*ids(c), at=a)
    feed.invoice(c.orders["on_time"], at=c.due_at)
    feed.invoice(c.orders["late"], at=c.met_late_at)
    feed.tick(a + 25 * HOUR)

    # PAYMENT: by the invoice's due date.
    a, c = era(5, "PAYMENT", "PAY")
    c.due_at, c.detected_at = a + DAY, a + DAY + MIN
    c.met_late_at = c.detected_at
    feed.receive("SKU-PAY", at=a - 4 * HOUR)
    feed.place(*ids(c), at=a - 3 * HOUR, sku="SKU-PAY")
    feed.accept(*ids(c), at=a - 2 * HOUR)
    feed.dispatch(*ids(c), at=a - HOUR)
    feed.invoice(*ids(c), at=a, due_at=c.due_at)
    feed.pay(c.orders["on_time"], at=c.due_at)
    feed.pay(c.orders["late"], at=c.met_late_at)
    feed.tick(a + DAY + HOUR)

    # ORPHAN: 1 h after the first event buffered before OrderPlaced.
    a, c = era(6, "ORPHAN", "ORP")
    c.due_at, c.detected_at = a + HOUR, a + HOUR + MIN
    c.met_late_at = c.detected_at
    feed.hold(*ids(c), at=a)
    feed.place(c.orders["on_time"], at=c.due_at)
    feed.place(c.orders["late"], at=c.met_late_at)
    feed.tick(a + 2 * HOUR)
    return cases


RESTART_ERA = T0 + 7 * ERA


def play_restart(feed: Feed, factory: WorkerFactory) -> Worker:
    """SIGKILL at the due time (before the check that passes it), then a clean restart."""
    a = RESTART_ERA
    feed.place("RST-X", at=a)
    feed.tick(a + 4 * HOUR)  # exactly the due time: not passed yet
    time.sleep(2.5)  # committed (commit interval 1 s)
    feed.worker.kill()
    worker = factory("w1").start().wait_ready()
    feed.attach(worker)
    feed.tick(a + 4 * HOUR + MIN)  # passes it: one breach
    worker.stop()
    worker = factory("w1").start().wait_ready()
    feed.attach(worker)
    feed.place("RST-W", at=a)  # placed 4 h 1 min behind the stream time: overdue at once
    feed.tick(a + 5 * HOUR)
    return worker


@dataclass
class Outputs:
    breaches: list[dict[str, Any]]
    statuses: list[dict[str, Any]]
    exceptions: list[dict[str, Any]]
    cases: dict[str, Case]
    listing: Any = None
    worker: Worker | None = None

    def breaches_of(self, order_id: str, milestone: str | None = None) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in b.items() if not k.startswith("_")}
            for b in self.breaches
            if b["order_id"] == order_id and milestone in (None, b["milestone"])
        ]

    def statuses_of(self, order_id: str) -> list[dict[str, Any]]:
        return [s for s in self.statuses if s["order_id"] == order_id]


@pytest.fixture(scope="module")
def event_world(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outputs]:
    env = make_env(bootstrap_servers, tmp_path_factory.mktemp("sla-event"), partitions=1)
    factory = WorkerFactory(env.env | {"O2C_SLA_CLOCK": "event"}, env.tmp)
    try:
        worker = factory("w1").start().wait_ready()
        feed = Feed(env, worker)
        cases = play_eras(feed)
        worker = play_restart(feed, factory)
        outputs = Outputs(
            breaches=read_topic(env.settings, "sla-breaches", idle=2),
            statuses=read_topic(env.settings, "order-status", idle=2),
            exceptions=read_topic(env.settings, "exceptions", idle=2),
            cases=cases,
            worker=worker,
        )
        yield outputs
        for w in factory.workers:
            assert w.errors() == [], w.log_tail()
    finally:
        factory.stop_all()


MILESTONES = ("ACCEPTANCE", "ALLOCATION", "SHIPMENT", "DELIVERY", "INVOICE", "PAYMENT", "ORPHAN")


def expected_breach(case: Case, order_id: str) -> dict[str, Any]:
    placed = case.milestone != "ORPHAN"
    return {
        "order_id": order_id,
        "milestone": case.milestone,
        "due_at": case.due_at,
        "detected_at": case.detected_at,
        "clock": "EVENT",
        "channel": "EDI" if placed else None,
        "region": "EU" if placed else None,
    }


@pytest.mark.parametrize("milestone", MILESTONES)
def test_due_gives_exactly_one_breach(event_world: Outputs, milestone: str) -> None:
    case = event_world.cases[milestone]
    oid = case.orders["due"]
    assert event_world.breaches_of(oid, milestone) == [expected_breach(case, oid)]
    entry = {"milestone": milestone, "due_at": case.due_at, "detected_at": case.detected_at}
    if milestone == "ORPHAN":  # not placed: no status event, but the business exception
        assert event_world.statuses_of(oid) == []
        orphan = [x for x in event_world.exceptions if x["order_id"] == oid]
        assert [(x["code"], x["cause_event_id"]) for x in orphan] == [("ORPHAN_EVENT", orphan[0]["cause_event_id"])]
        assert orphan[0]["cause_event_id"].startswith("sla-")  # the first buffered event
        return
    breached = [s for s in event_world.statuses_of(oid) if s["cause_event_id"] == f"sla:{oid}:{milestone}"]
    assert len(breached) == 1 and breached[0]["cause_event_type"] == "SlaBreached"
    assert entry in breached[0]["open_breaches"]
    last = event_world.statuses_of(oid)[-1]
    assert entry in last["open_breaches"]  # still open at the end
    assert all(b["milestone"] != milestone for b in last["closed_breaches"])


@pytest.mark.parametrize("milestone", MILESTONES)
def test_met_on_time_gives_none(event_world: Outputs, milestone: str) -> None:
    oid = event_world.cases[milestone].orders["on_time"]
    assert event_world.breaches_of(oid, milestone) == []
    for status in event_world.statuses_of(oid):
        assert all(b["milestone"] != milestone for b in status["open_breaches"] + status["closed_breaches"])
    if milestone == "ORPHAN":
        assert [x for x in event_world.exceptions if x["order_id"] == oid and x["code"] == "ORPHAN_EVENT"] == []


@pytest.mark.parametrize("milestone", MILESTONES)
def test_met_late_breaches_then_closes_late(event_world: Outputs, milestone: str) -> None:
    case = event_world.cases[milestone]
    oid = case.orders["late"]
    assert event_world.breaches_of(oid, milestone) == [expected_breach(case, oid)]
    closed = {
        "milestone": milestone, "due_at": case.due_at, "detected_at": case.detected_at,
        "met_at": case.met_late_at, "late": True,
    }
    statuses = event_world.statuses_of(oid)
    closing = [i for i, s in enumerate(statuses) if closed in s["closed_breaches"]]
    assert closing, statuses
    first = closing[0]
    assert all(b["milestone"] != milestone for b in statuses[first]["open_breaches"])
    assert closed in statuses[-1]["closed_breaches"]
    if milestone != "ORPHAN":  # the breach was published (open) before it closed
        opened = [i for i, s in enumerate(statuses) if any(b["milestone"] == milestone for b in s["open_breaches"])]
        assert opened and opened[-1] < first
        assert statuses[opened[0]]["cause_event_id"] == f"sla:{oid}:{milestone}"
    else:
        orphan = [x for x in event_world.exceptions if x["order_id"] == oid and x["code"] == "ORPHAN_EVENT"]
        assert len(orphan) == 1


def test_restart_between_due_time_and_check_still_one_breach(event_world: Outputs) -> None:
    a = RESTART_ERA
    assert event_world.breaches_of("RST-X") == [{
        "order_id": "RST-X", "milestone": "ACCEPTANCE", "due_at": a + 4 * HOUR,
        "detected_at": a + 4 * HOUR + MIN, "clock": "EVENT", "channel": "EDI", "region": "EU",
    }]
    # The stream time survived the restart: an order placed behind it is overdue at once,
    # detected at the stream time before its event (not at the event's own time).
    assert [(b["milestone"], b["due_at"], b["detected_at"]) for b in event_world.breaches_of("RST-W")] == [
        ("ACCEPTANCE", a + 4 * HOUR, a + 4 * HOUR + MIN)
    ]
    seqs = [s["seq"] for s in event_world.statuses_of("RST-X")]
    assert seqs == list(range(1, len(seqs) + 1))


def test_no_order_breaches_a_milestone_twice(event_world: Outputs) -> None:
    keys = [(b["order_id"], b["milestone"]) for b in event_world.breaches]
    assert len(keys) == len(set(keys))
    by_order: dict[str, list[int]] = {}
    for s in event_world.statuses:
        by_order.setdefault(s["order_id"], []).append(s["seq"])
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in by_order.values())


def test_http_lists_open_breaches(event_world: Outputs) -> None:
    worker = event_world.worker
    assert worker is not None
    body = epoch_times(worker.get("/sla/breaches", params={"milestone": "orphan"}).json())
    orphan = event_world.cases["ORPHAN"]
    assert [(b["order_id"], b["milestone"], b["due_at"]) for b in body["breaches"]] == [
        (orphan.orders["due"], "ORPHAN", orphan.due_at)
    ]
    assert body["truncated"] is False and body["workers"] == 1

    everything = epoch_times(worker.get("/sla/breaches", params={"limit": 10000}).json())["breaches"]
    open_now = {(s["order_id"], b["milestone"]) for s in last_statuses(event_world) for b in s["open_breaches"]}
    listed = {(b["order_id"], b["milestone"]) for b in everything}
    assert listed - {(orphan.orders["due"], "ORPHAN")} == open_now
    assert [b["due_at"] for b in everything] == sorted(b["due_at"] for b in everything)

    two = epoch_times(worker.get("/sla/breaches", params={"limit": 2, "channel": "EDI", "region": "EU"}).json())
    assert two["breaches"] == [b for b in everything if b["channel"] == "EDI"][:2] and two["truncated"] is True
    assert worker.get("/sla/breaches", params={"region": "NOWHERE"}).json()["breaches"] == []
    for bad in ({"milestone": "LUNCH"}, {"channel": "FAX"}, {"region": "bad region"}, {"limit": "0"},
                {"limit": "10001"}, {"limit": "many"}, {"colour": "red"}):
        reply = worker.get("/sla/breaches", params=bad)
        assert reply.status_code == 400 and "error" in reply.json(), bad


def last_statuses(outputs: Outputs) -> list[dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for s in outputs.statuses:
        last[s["order_id"]] = s
    return list(last.values())


# --------------------------------------------------------------------------- the wall clock

WALL_POLICY = """
[default]
acceptance = "3s"

[channel.SALES]
acceptance = "1h"
"""


@pytest.fixture(scope="module")
def wall_world(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Env, WorkerFactory]]:
    env = make_env(bootstrap_servers, tmp_path_factory.mktemp("sla-wall"))
    policy = env.tmp / "policy.toml"
    policy.write_text(WALL_POLICY)
    factory = WorkerFactory(
        env.env | {"O2C_SLA_CLOCK": "wall", "O2C_SLA_POLICY_PATH": str(policy), "O2C_SLA_CHECK_INTERVAL": "0.5"},
        env.tmp,
    )
    try:
        yield env, factory
        for w in factory.workers:
            assert w.errors() == [], w.log_tail()
    finally:
        factory.stop_all()


def test_wall_clock_breach_without_further_events_is_committed_once(wall_world) -> None:
    env, factory = wall_world
    worker = factory("w1").start().wait_ready()
    feed = Feed(env, worker)
    placed_at = int(time.time() * 1000)
    feed.place("WALL-1", at=placed_at)

    breaches = read_topic(env.settings, "sla-breaches", expect=1, timeout=30, idle=3)
    assert [(b["order_id"], b["milestone"], b["due_at"], b["clock"]) for b in breaches] == [
        ("WALL-1", "ACCEPTANCE", placed_at + 3000, "WALL")
    ]
    detected = breaches[0]["detected_at"]
    assert detected > placed_at + 3000
    statuses = read_topic(env.settings, "order-status", expect=2, idle=1)
    assert [(s["seq"], s["cause_event_type"]) for s in statuses] == [(1, "OrderPlaced"), (2, "SlaBreached")]
    assert statuses[1]["open_breaches"] == [
        {"milestone": "ACCEPTANCE", "due_at": placed_at + 3000, "detected_at": detected}
    ]

    # SIGKILL, then a worker with an empty data dir: the state comes from the changelog alone,
    # and it holds the breach (committed with it): nothing is published again.
    worker.kill()
    fresh = factory("w2").start().wait_ready()
    time.sleep(3)  # several checks
    assert len(read_topic(env.settings, "sla-breaches", expect=1, idle=2)) == 1
    assert len(read_topic(env.settings, "order-status", expect=2, idle=1)) == 2
    view = epoch_times(fresh.get("/orders/WALL-1").json())
    assert view["open_breaches"] == statuses[1]["open_breaches"]
    listing = epoch_times(fresh.get("/sla/breaches").json())["breaches"]
    assert [(b["order_id"], b["milestone"], b["detected_at"]) for b in listing] == [
        ("WALL-1", "ACCEPTANCE", detected)
    ]
    fresh.stop()


def test_wall_clock_checks_read_only_due_entries(wall_world) -> None:
    """300 open orders not due for an hour, 20 due after 3 s: over many checks, the index
    reads are one per partition check plus the deadlines found, never the open orders."""
    env, factory = wall_world
    worker = factory("w3").start().wait_ready()
    feed = Feed(env, worker)
    now = int(time.time() * 1000)
    feed.send("orders", *(
        feed.event("OrderPlaced", now, order_id=f"OPEN-{i:03d}", customer_id="C-1",
                   channel="SALES" if i >= 20 else "EDI", region="EU", currency="EUR",
                   lines=[{"line_id": "1", "sku": "SKU-X", "quantity": 1, "unit_price_minor": 1}])
        for i in range(320)
    ))
    before = counters(worker, "o2c_sla_checks", "o2c_sla_index_reads")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = counters(worker, "o2c_sla_breaches")["o2c_sla_breaches"].get(("ACCEPTANCE",), 0)
        if found >= 20:
            break
        time.sleep(0.5)
    time.sleep(2)  # a few checks with nothing due
    after = counters(worker, "o2c_sla_checks", "o2c_sla_index_reads", "o2c_sla_breaches")
    checks = after["o2c_sla_checks"][()] - before["o2c_sla_checks"][()]
    reads = after["o2c_sla_index_reads"][()] - before["o2c_sla_index_reads"][()]
    assert after["o2c_sla_breaches"][("ACCEPTANCE",)] == 20
    assert checks >= 10
    assert reads <= checks + 20, (reads, checks)
    assert len([b for b in read_topic(env.settings, "sla-breaches", idle=2) if b["order_id"].startswith("OPEN-")]) == 20
