"""The inventory side end to end (SPEC §5, issue 4): real Avro events through `o2c produce`, one
real worker, exact numbers read back with `o2c consume o2c.atp` and over HTTP.

Each flow has its own SKUs and orders, so one worker serves the module. After each step the
test waits until the worker took in what was produced and the allocation loop is quiet
(`settle`), so every flow is deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.conftest import Env, make_env
from tests.harness import Worker, WorkerFactory, epoch_times, read_topic, settle, taken_in

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def world(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Env, Worker]]:
    tmp = tmp_path_factory.mktemp("inventory")
    env = make_env(bootstrap_servers, tmp)
    factory = WorkerFactory(env.env, tmp)
    try:
        worker = factory("w1", O2C_COMMIT_INTERVAL="0.2").start().wait_ready()
        yield env, worker
        assert worker.errors() == [], worker.log_tail()
    finally:
        factory.stop_all()


class Flow:
    """Produces events of one flow and reads back its outputs."""

    def __init__(self, world: tuple[Env, Worker], name: str) -> None:
        self.env, self.worker = world
        self.name = name
        self.n = 0

    def _envelope(self, event_type: str, at: str, **fields) -> dict:
        self.n += 1
        return {
            "event_id": f"{self.name}-{self.n}",
            "event_type": event_type,
            "occurred_at": at,
            "source": "test",
            **fields,
        }

    def produce(self, role: str, *events: dict) -> None:
        text = "".join(json.dumps(e) + "\n" for e in events)
        before = taken_in(self.worker)
        done = self.env.o2c("produce", role, "-", input=text)
        assert done.returncode == 0, done.stderr
        settle(self.worker, before + len(events))

    # -- inventory events
    def receive(self, sku: str, wh: str, qty: int, at: str = "2026-11-02T08:00:00Z") -> None:
        self.produce("inventory", self._envelope("InventoryReceived", at, sku=sku, warehouse_id=wh, quantity=qty,
                                          source_doc="ASN-1"))

    def adjust(self, sku: str, wh: str, delta: int, at: str = "2026-11-02T12:00:00Z") -> None:
        ev = self._envelope("InventoryAdjusted", at, sku=sku, warehouse_id=wh, delta=delta, reason="DAMAGE")
        self.produce("inventory", ev)

    def count(self, sku: str, wh: str, on_hand: int, as_of: str) -> None:
        ev = self._envelope("InventorySnapshot", as_of, sku=sku, warehouse_id=wh, on_hand=on_hand, as_of=as_of)
        self.produce("inventory", ev)

    def expect_supply(self, sku: str, wh: str, supply_id: str, qty: int, expected_at: str) -> None:
        ev = self._envelope(
            "SupplyExpected", "2026-11-02T07:00:00Z",
            sku=sku, warehouse_id=wh, supply_id=supply_id, quantity=qty, expected_at=expected_at,
        )
        self.produce("inventory", ev)

    # -- order events
    def order(self, order_id: str, *lines: tuple[str, int, str | None], at: str = "2026-11-02T09:00:00Z") -> None:
        """OrderPlaced + OrderAccepted; lines are (sku, quantity, warehouse_id or None)."""
        placed = self._envelope(
            "OrderPlaced", at, order_id=order_id, customer_id="C-1", channel="ECOM", region="EU",
            currency="EUR",
            lines=[
                {"line_id": str(i), "sku": sku, "quantity": q, "unit_price_minor": 100, "warehouse_id": wh}
                for i, (sku, q, wh) in enumerate(lines, 1)
            ],
        )
        accepted = self._envelope("OrderAccepted", at.replace(":00:00Z", ":05:00Z"), order_id=order_id)
        self.produce("orders", placed, accepted)

    def cancel(self, order_id: str, at: str = "2026-11-02T10:00:00Z") -> None:
        self.produce("orders", self._envelope("OrderCancelled", at, order_id=order_id, reason="customer"))

    def dispatch(self, order_id: str, wh: str, *lines: tuple[str, int], at: str = "2026-11-03T08:00:00Z") -> None:
        ev = self._envelope(
            "ShipmentDispatched", at, order_id=order_id, shipment_id=f"SH-{order_id}", warehouse_id=wh,
            carrier="DHL", tracking_number="T-1",
            lines=[{"line_id": line_id, "quantity": q} for line_id, q in lines],
        )
        self.produce("shipments", ev)

    # -- outputs
    def atp_records(self, sku: str) -> list[tuple]:
        """`o2c consume o2c.atp`: (warehouse, on_hand, reserved, backordered, safety, atp, network)."""
        done = self.env.o2c("consume", "atp", "--from-beginning", "--timeout", "2", "--meta")
        assert done.returncode == 0, done.stderr
        records = [json.loads(line) for line in done.stdout.splitlines()]
        return [
            (r["warehouse_id"], r["on_hand"], r["reserved"], r["backordered"], r["safety_stock"], r["atp"],
             r["network_atp"])
            for r in sorted(records, key=lambda r: r["_offset"])
            if r["_key"] == sku
        ]

    def http(self, path: str) -> dict:
        reply = self.worker.get(path)
        assert reply.status_code == 200, reply.text
        return epoch_times(reply.json())

    def buckets(self, order_id: str) -> tuple[str, list[tuple]]:
        """Status and per line (warehouse, allocated, backordered, shipped, promised_at)."""
        body = self.http(f"/orders/{order_id}")
        lines = [(ln["warehouse_id"], ln["allocated"], ln["backordered"], ln["shipped"], ln["promised_at"])
                 for ln in body["lines"]]
        return body["status"], lines

    def statuses(self, order_id: str) -> list[str]:
        records = read_topic(self.env.settings, "order-status", idle=1.0)
        return [r["status"] for r in sorted(records, key=lambda r: r["seq"]) if r["order_id"] == order_id]


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def position(body: dict) -> tuple:
    return (body["on_hand"], body["reserved"], body["backordered"], body["safety_stock"], body["atp"])


def test_receipt_then_order_then_shipment(world) -> None:
    f = Flow(world, "ros")
    f.receive("SKU-R", "DC1", 10)
    f.order("SO-R", ("SKU-R", 4, "DC1"))
    assert f.buckets("SO-R") == ("ALLOCATED", [("DC1", 4, 0, 0, None)])
    assert position(f.http("/atp/SKU-R/DC1")) == (10, 4, 0, 0, 6)
    f.dispatch("SO-R", "DC1", ("1", 4))
    assert f.buckets("SO-R") == ("SHIPPED", [("DC1", 0, 0, 4, None)])
    assert f.atp_records("SKU-R") == [
        ("DC1", 10, 0, 0, 0, 10, 10),  # receipt
        ("DC1", 10, 4, 0, 0, 6, 6),  # reservation
        ("DC1", 6, 0, 0, 0, 6, 6),  # issue: on-hand and reservation fall together
    ]
    assert f.statuses("SO-R") == ["SUBMITTED", "ACCEPTED", "ALLOCATED", "SHIPPED"]
    body = f.http("/atp/SKU-R")
    assert (body["network_atp"], body["on_hand"], body["reserved"]) == (6, 6, 0)
    assert [w["warehouse_id"] for w in body["warehouses"]] == ["DC1"]


def test_competing_orders_backorder_then_receipt_fills(world) -> None:
    f = Flow(world, "cmp")
    f.receive("SKU-C", "DC1", 4)
    f.order("SO-C1", ("SKU-C", 4, "DC1"), at="2026-11-02T09:00:00Z")
    f.order("SO-C2", ("SKU-C", 3, "DC1"), at="2026-11-02T10:00:00Z")
    assert f.buckets("SO-C1") == ("ALLOCATED", [("DC1", 4, 0, 0, None)])
    assert f.buckets("SO-C2") == ("BACKORDERED", [("DC1", 0, 3, 0, None)])
    backorders = f.http("/atp/SKU-C/DC1")["backorders"]
    assert [(b["order_id"], b["quantity"]) for b in backorders] == [("SO-C2", 3)]

    f.receive("SKU-C", "DC1", 5, at="2026-11-02T11:00:00Z")
    assert f.buckets("SO-C2") == ("ALLOCATED", [("DC1", 3, 0, 0, None)])
    assert f.atp_records("SKU-C") == [
        ("DC1", 4, 0, 0, 0, 4, 4),
        ("DC1", 4, 4, 0, 0, 0, 0),
        ("DC1", 4, 4, 3, 0, 0, 0),  # SO-C2 waits for stock
        ("DC1", 9, 7, 0, 0, 2, 2),  # the receipt fills it first
    ]
    assert f.statuses("SO-C2") == ["SUBMITTED", "ACCEPTED", "BACKORDERED", "ALLOCATED"]
    assert f.http("/atp/SKU-C/DC1")["backorders"] == []


def test_cancel_releases_the_reservation(world) -> None:
    f = Flow(world, "cxl")
    f.receive("SKU-X", "DC1", 10)
    f.order("SO-X", ("SKU-X", 6, "DC1"))
    assert position(f.http("/atp/SKU-X/DC1")) == (10, 6, 0, 0, 4)
    f.cancel("SO-X")
    assert f.buckets("SO-X") == ("CANCELLED", [("DC1", 0, 0, 0, None)])
    assert f.atp_records("SKU-X") == [
        ("DC1", 10, 0, 0, 0, 10, 10),
        ("DC1", 10, 6, 0, 0, 4, 4),
        ("DC1", 10, 0, 0, 0, 10, 10),
    ]


def test_ship_from_another_warehouse(world) -> None:
    f = Flow(world, "oth")
    f.receive("SKU-S", "DC1", 5)
    f.receive("SKU-S", "DC2", 5)
    f.order("SO-S", ("SKU-S", 3, "DC1"))
    f.dispatch("SO-S", "DC2", ("1", 3))
    assert f.buckets("SO-S")[0] == "SHIPPED"
    assert position(f.http("/atp/SKU-S/DC1")) == (5, 0, 0, 0, 5)  # reservation released
    assert position(f.http("/atp/SKU-S/DC2")) == (2, 0, 0, 0, 2)  # stock left from here
    assert f.atp_records("SKU-S") == [
        ("DC1", 5, 0, 0, 0, 5, 5),
        ("DC2", 5, 0, 0, 0, 5, 10),
        ("DC1", 5, 3, 0, 0, 2, 7),
        # one StockIssue, two warehouses: stock leaves DC2, the reservation at DC1 is released
        ("DC2", 2, 0, 0, 0, 2, 7),
        ("DC1", 5, 0, 0, 0, 5, 7),
    ]


def test_line_without_warehouse_goes_to_the_best_atp_warehouse(world) -> None:
    f = Flow(world, "best")
    f.receive("SKU-B", "DC1", 3)
    f.receive("SKU-B", "DC3", 8)
    f.receive("SKU-B", "DC2", 8)
    f.order("SO-B", ("SKU-B", 2, None))
    assert f.buckets("SO-B") == ("ALLOCATED", [("DC2", 2, 0, 0, None)])  # tie 8/8: lowest id
    body = f.http("/atp/SKU-B")
    assert [(w["warehouse_id"], w["atp"]) for w in body["warehouses"]] == [("DC1", 3), ("DC2", 6), ("DC3", 8)]
    assert body["network_atp"] == 17


def test_snapshot_rebases_on_hand(world) -> None:
    f = Flow(world, "snap")
    f.receive("SKU-N", "DC1", 10)
    f.order("SO-N", ("SKU-N", 4, "DC1"))
    f.count("SKU-N", "DC1", 7, as_of="2026-11-02T12:00:00Z")
    assert position(f.http("/atp/SKU-N/DC1")) == (7, 4, 0, 0, 3)
    assert f.http("/atp/SKU-N/DC1")["counted_at"] == ms("2026-11-02T12:00:00Z")
    assert f.atp_records("SKU-N")[-1] == ("DC1", 7, 4, 0, 0, 3, 3)
    assert f.buckets("SO-N") == ("ALLOCATED", [("DC1", 4, 0, 0, None)])  # reservations are kept


def test_negative_adjustment_raises_negative_atp(world) -> None:
    f = Flow(world, "neg")
    f.receive("SKU-M", "DC1", 5)
    f.order("SO-M", ("SKU-M", 4, "DC1"))
    f.adjust("SKU-M", "DC1", -3)
    assert position(f.http("/atp/SKU-M/DC1")) == (2, 4, 0, 0, -2)
    assert f.atp_records("SKU-M")[-1] == ("DC1", 2, 4, 0, 0, -2, -2)
    exceptions = [e for e in read_topic(f.env.settings, "exceptions", idle=1.0) if e["sku"] == "SKU-M"]
    assert [(e["_key"], e["code"], e["order_id"], e["cause_event_id"]) for e in exceptions] == [
        ("SKU-M", "NEGATIVE_ATP", None, "neg-4")
    ]
    assert f.buckets("SO-M") == ("ALLOCATED", [("DC1", 4, 0, 0, None)])


def test_expected_supply_gives_a_promise_date(world) -> None:
    f = Flow(world, "sup")
    f.expect_supply("SKU-P", "DC1", "PO-1", 3, expected_at="2026-11-10T00:00:00Z")
    f.expect_supply("SKU-P", "DC1", "PO-2", 10, expected_at="2026-11-20T00:00:00Z")
    f.order("SO-P1", ("SKU-P", 2, "DC1"), at="2026-11-02T09:00:00Z")
    f.order("SO-P2", ("SKU-P", 4, "DC1"), at="2026-11-02T10:00:00Z")
    # FCFS: SO-P1's 2 are covered by PO-1 (3); SO-P2's 4 need 1 of PO-1 and 3 of PO-2.
    assert f.buckets("SO-P1") == ("BACKORDERED", [("DC1", 0, 2, 0, ms("2026-11-10T00:00:00Z"))])
    assert f.buckets("SO-P2") == ("BACKORDERED", [("DC1", 0, 4, 0, ms("2026-11-20T00:00:00Z"))])
    last = [r for r in read_topic(f.env.settings, "order-status", idle=1.0) if r["order_id"] == "SO-P2"]
    assert max(last, key=lambda r: r["seq"])["lines"][0]["promised_at"] == ms("2026-11-20T00:00:00Z")
    supply = f.http("/atp/SKU-P/DC1")["expected_supply"]
    assert [(s["supply_id"], s["quantity"]) for s in supply] == [("PO-1", 3), ("PO-2", 10)]


def test_bad_requests(world) -> None:
    f = Flow(world, "bad")
    assert f.worker.get("/atp/SKU-NOPE").status_code == 404
    assert f.worker.get("/atp/bad%20sku").status_code == 400
    f.receive("SKU-Q", "DC1", 1)
    assert f.worker.get("/atp/SKU-Q/DC9").status_code == 404
    assert f.worker.get("/atp/SKU-Q/bad%20wh").status_code == 400
    assert f.worker.get("/atp/SKU-Q/DC1").status_code == 200

