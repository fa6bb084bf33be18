"""Shared helpers of the inventory-ledger tests: event/message builders and invariant checks.

(Named test_inventory_* so it lives with the tests it serves; it defines no tests itself.)
"""

from __future__ import annotations

from typing import Any

from tables.allocation import AllocationRelease, AllocationRequest, AllocationResult, StockIssue
from tables.inventory import Outcome, SkuState, apply_inventory_event, apply_order_message
from tables.ledger import MAX_DONE_LINES, MAX_SEEN_EVENT_IDS, priority

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000
DAY = 24 * HOUR
SKU = "SKU-1"


class Inv:
    """Builds flat o2c.inventory events (docs/contract-fields.md) with unique ids and times."""

    def __init__(self, sku: str = SKU, t0: int = T0, prefix: str = "i") -> None:
        self.sku = sku
        self.t0 = t0
        self.prefix = prefix
        self.n = 0

    def make(self, event_type: str, **fields: Any) -> dict[str, Any]:
        self.n += 1
        return {
            "event_id": f"{self.prefix}{self.n}",
            "event_type": event_type,
            "occurred_at": self.t0 + self.n * 1000,
            "source": "wms-test",
            "correlation_id": None,
            "sku": self.sku,
            **fields,
        }

    def received(self, wh: str, qty: int, source_doc: str = "GR-1") -> dict[str, Any]:
        return self.make("InventoryReceived", warehouse_id=wh, quantity=qty, source_doc=source_doc)

    def adjusted(self, wh: str, delta: int, reason: str = "DAMAGE") -> dict[str, Any]:
        return self.make("InventoryAdjusted", warehouse_id=wh, delta=delta, reason=reason)

    def snapshot(self, wh: str, on_hand: int, as_of: int | None = None) -> dict[str, Any]:
        ev = self.make("InventorySnapshot", warehouse_id=wh, on_hand=on_hand, as_of=0)
        ev["as_of"] = ev["occurred_at"] if as_of is None else as_of
        return ev

    def safety(self, wh: str, qty: int) -> dict[str, Any]:
        return self.make("SafetyStockSet", warehouse_id=wh, quantity=qty)

    def supply(self, wh: str, supply_id: str, qty: int, expected_at: int) -> dict[str, Any]:
        return self.make("SupplyExpected", warehouse_id=wh, supply_id=supply_id, quantity=qty,
                         expected_at=expected_at)


class Msgs:
    """Builds order -> inventory messages with per-line seq, as the order side numbers them."""

    def __init__(self, sku: str = SKU, t0: int = T0) -> None:
        self.sku = sku
        self.t0 = t0
        self.seq: dict[tuple[str, str], int] = {}
        self.n = 0

    def _next(self, order_id: str, line_id: str) -> tuple[int, int, str]:
        key = (order_id, line_id)
        self.seq[key] = self.seq.get(key, 0) + 1
        self.n += 1
        return self.seq[key], self.t0 + self.n * 1000, f"o{self.n}"

    def request(self, order_id: str, line_id: str, qty: int, wh: str | None = None,
                accepted_at: int | None = None) -> AllocationRequest:
        seq, at, cause = self._next(order_id, line_id)
        return AllocationRequest(order_id, line_id, self.sku, wh, qty,
                                 at if accepted_at is None else accepted_at, at, seq, cause)

    def release(self, order_id: str, line_id: str, qty: int,
                wh: str | None = None) -> AllocationRelease:
        seq, at, cause = self._next(order_id, line_id)
        return AllocationRelease(order_id, line_id, self.sku, wh, qty, at, seq, cause)

    def issue(self, order_id: str, line_id: str, qty: int, wh: str,
              reserved_wh: str | None = None, shipment_id: str = "SH-1") -> StockIssue:
        seq, at, cause = self._next(order_id, line_id)
        return StockIssue(order_id, line_id, self.sku, wh, qty, reserved_wh, shipment_id, at,
                          seq, cause)


class Ledger:
    """One SKU's state, every output it produced, and the invariants checked after each step."""

    def __init__(self, sku: str = SKU, check: bool = True) -> None:
        self.state = SkuState(sku)
        self.inv = Inv(sku)
        self.msgs = Msgs(sku)
        self.results: list[AllocationResult] = []
        self.atp: list[Any] = []
        self.raised: list[Any] = []
        self.check = check

    def _after(self, out: Outcome) -> Outcome:
        self.results.extend(out.results)
        self.atp.extend(out.atp)
        self.raised.extend(out.exceptions)
        if self.check:
            check_ledger(self.state)
        return out

    def event(self, ev: dict[str, Any]) -> Outcome:
        return self._after(apply_inventory_event(self.state, ev))

    def message(self, msg: Any) -> Outcome:
        return self._after(apply_order_message(self.state, msg))

    # shortcuts
    def receive(self, wh: str, qty: int, **kw: Any) -> Outcome:
        return self.event(self.inv.received(wh, qty, **kw))

    def request(self, order_id: str, line_id: str, qty: int, wh: str | None = None,
                **kw: Any) -> Outcome:
        return self.message(self.msgs.request(order_id, line_id, qty, wh, **kw))

    def release(self, order_id: str, line_id: str, qty: int) -> Outcome:
        return self.message(self.msgs.release(order_id, line_id, qty))

    def issue(self, order_id: str, line_id: str, qty: int, wh: str,
              reserved_wh: str | None = None) -> Outcome:
        return self.message(self.msgs.issue(order_id, line_id, qty, wh, reserved_wh))

    def codes(self) -> list[str]:
        return [e.code for e in self.raised]

    def wh(self, wid: str) -> tuple[int, int, int, int, int]:
        """(on_hand, reserved, backordered, safety_stock, atp) at a warehouse."""
        w = self.state.warehouses[wid]
        return (w.on_hand, w.reserved, w.backordered, w.safety_stock, w.atp)

    def line(self, order_id: str, line_id: str = "L1") -> tuple[str | None, int, int, int | None]:
        """(warehouse, reserved, backordered, promised_at) of a line record."""
        r = self.state.lines[(order_id, line_id)]
        return (r.warehouse_id, r.reserved, r.backordered, r.promised_at)


def result_tuple(r: AllocationResult) -> tuple[Any, ...]:
    return (r.order_id, r.line_id, r.warehouse_id, r.allocated, r.backordered, r.promised_at,
            r.ack_seq)


def oracle_promises(w: Any) -> list[int | None]:
    """SPEC §5 promise dates read literally, one unit at a time: expected units arrive in
    (expected_at, supply_id) order; the first ones make good a negative ATP; then the
    backorders take them first come first served; a line is promised the date of the unit
    that completes it."""
    units = [at for at, _sid, q in sorted((at, sid, q) for sid, (q, at) in w.supply.items())
             for _ in range(q)]
    taken = max(0, -w.atp)
    out = []
    for r in w.queue:
        taken += r.backordered
        out.append(units[taken - 1] if taken <= len(units) else None)
    return out


def check_ledger(s: SkuState) -> None:
    """Every structural invariant of a SkuState (docs/inventory-model.md, Invariants)."""
    recs = list(s.lines.values())
    for r in recs:
        assert r.reserved >= 0 and r.backordered >= 0, r
        if r.reserved:
            assert r.warehouse_id is not None, r
        if r.reserved or r.backordered:
            assert r.requested, r
        if not r.backordered:
            assert r.promised_at is None, r
    for wid, w in s.warehouses.items():
        at = [r for r in recs if r.warehouse_id == wid]
        assert w.reserved == sum(r.reserved for r in at), (wid, w)
        assert w.backordered == sum(r.backordered for r in at), (wid, w)
        queued = sorted((r for r in at if r.backordered), key=priority)
        assert [r.key for r in w.queue] == [r.key for r in queued], (wid, w)
        assert all(a is b for a, b in zip(w.queue, queued))
        if w.backordered:  # backorders wait only while there is nothing to promise
            assert w.atp <= 0, (wid, w)
        assert [r.promised_at for r in w.queue] == oracle_promises(w), (wid, w)
        for q, _at in w.supply.values():
            assert q > 0
    unassigned = sorted((r for r in recs if r.warehouse_id is None and r.backordered),
                        key=priority)
    assert [r.key for r in s.unassigned] == [r.key for r in unassigned]
    if s.unassigned:
        assert not s.warehouses
    zero = {r.key for r in recs if not r.reserved and not r.backordered}
    assert set(s.done) == zero
    assert len(s.done) <= MAX_DONE_LINES
    assert len(s.seen) <= MAX_SEEN_EVENT_IDS
    # exact round trip through bytes, queues (derived on load) included
    b = s.to_bytes()
    back = SkuState.from_bytes(b)
    assert back.to_bytes() == b
    for wid, w in s.warehouses.items():
        assert [r.key for r in back.warehouses[wid].queue] == [r.key for r in w.queue]
    assert [r.key for r in back.unassigned] == [r.key for r in s.unassigned]
    assert list(back.done) == list(s.done)
