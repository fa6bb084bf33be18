"""End to end: the order model (tables.order) and the inventory ledger (tables.inventory)
talking through an in-memory message loop.

Topics are FIFO per key and nothing else: order events per order, inventory events per SKU,
order -> inventory messages per SKU, AllocationResults per order. Which queue delivers next
is random. Once everything is delivered, for every order line: the order's `allocated` and
`backordered` are the ledger's `reserved` and `backordered` for that line (and its warehouse
and promise date), nothing is pending, and per SKU the warehouses' `reserved` sum to the open
allocations of the orders. The order side never sees an unexpected, stale or mismatched
answer. SKU states go through their byte form after every step (as the agent's store does).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables.allocation import AllocationResult
from tables.exceptions import Code
from tables.inventory import SkuState, apply_inventory_event, apply_order_message
from tables.order import apply_allocation, apply_event
from tables.order_state import OrderState
from tests.unit.test_inventory_support import DAY, T0, Inv, check_ledger
from tests.unit.test_order_properties import check_invariants
from tests.unit.test_order_support import Events

SKUS = ("A", "B")
WAREHOUSES = ("W1", "W2")
BAD_ANSWERS = {Code.UNEXPECTED_ALLOCATION, Code.STALE_ALLOCATION, Code.ALLOCATION_MISMATCH}

order_line = st.tuples(st.sampled_from(SKUS), st.integers(0, 6),
                       st.sampled_from((None, None, "W1", "W2")))
order_op = st.one_of(
    st.tuples(st.just("change"), st.integers(0, 1), st.integers(0, 8)),
    st.tuples(st.just("cancel_line"), st.integers(0, 1), st.sampled_from((None, 1, 2, 3))),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("ship"), st.integers(0, 1), st.integers(1, 4), st.sampled_from(WAREHOUSES)),
)
order_script = st.tuples(
    st.lists(order_line, min_size=1, max_size=2),
    st.sampled_from((-1, 0, 0, 0, 1, 2, 3)),  # OrderAccepted's index among the ops (-1: never)
    st.lists(order_op, max_size=4),
)
stock_op = st.one_of(
    st.tuples(st.just("recv"), st.sampled_from(WAREHOUSES), st.integers(0, 8)),
    st.tuples(st.just("recv"), st.sampled_from(WAREHOUSES), st.integers(1, 8)),
    st.tuples(st.just("adj"), st.sampled_from(WAREHOUSES), st.integers(-3, 3)),
    st.tuples(st.just("snap"), st.sampled_from(WAREHOUSES), st.integers(0, 10)),
    st.tuples(st.just("ss"), st.sampled_from(WAREHOUSES), st.integers(0, 3)),
    st.tuples(st.just("supply"), st.sampled_from(WAREHOUSES), st.sampled_from(("P1", "P2")),
              st.integers(0, 6), st.integers(1, 5)),
)


def order_events(oid: str, script: tuple) -> list[dict[str, Any]]:
    lines, accept_at, ops = script
    ev = Events(oid)
    line_ids = [f"L{i}" for i in range(len(lines))]
    out = [ev.placed([(lid, sku, q, 100, w) for lid, (sku, q, w) in zip(line_ids, lines)])]
    for i, o in enumerate(ops + [None]):
        if i == accept_at:
            out.append(ev.accepted())
        if o is None:
            break
        lid = line_ids[o[1] % len(line_ids)] if len(o) > 1 else None
        if o[0] == "change":
            out.append(ev.line_changed(lid, o[2]))
        elif o[0] == "cancel_line":
            out.append(ev.line_cancelled(lid, o[2]))
        elif o[0] == "cancel":
            out.append(ev.cancelled())
        else:
            out.append(ev.dispatched(f"SH-{oid}-{i}", {lid: o[2]}, wh=o[3]))
    return out


def stock_events(sku: str, ops: list[tuple]) -> list[dict[str, Any]]:
    inv = Inv(sku, prefix=f"{sku}-")
    out = []
    for o in ops:
        if o[0] == "recv":
            out.append(inv.received(o[1], o[2], source_doc="P1"))
        elif o[0] == "adj":
            out.append(inv.adjusted(o[1], o[2], "COUNT_CORRECTION"))
        elif o[0] == "snap":
            out.append(inv.snapshot(o[1], o[2]))
        elif o[0] == "ss":
            out.append(inv.safety(o[1], o[2]))
        else:
            out.append(inv.supply(o[1], o[2], o[3], T0 + o[4] * DAY))
    return out


class World:
    def __init__(self) -> None:
        self.orders: dict[str, OrderState] = {}
        self.skus: dict[str, SkuState] = {s: SkuState(s) for s in SKUS}
        self.queues: dict[tuple[str, str], deque] = {}
        self.order_exceptions: list[str] = []
        self.delivered = 0

    def push(self, kind: str, key: str, item: Any) -> None:
        self.queues.setdefault((kind, key), deque()).append(item)

    def step(self, choice: int) -> bool:
        ready = sorted(k for k, q in self.queues.items() if q)
        if not ready:
            return False
        kind, key = ready[choice % len(ready)]
        item = self.queues[(kind, key)].popleft()
        self.delivered += 1
        if kind == "order-event":
            out = apply_event(self.orders[key], item)
            self._order_out(out)
        elif kind == "answer":
            assert isinstance(item, AllocationResult)
            self._order_out(apply_allocation(self.orders[key], item))
        else:
            s = self.skus[key]
            out = (apply_inventory_event(s, item) if kind == "stock-event"
                   else apply_order_message(s, item))
            assert not out.duplicate
            for r in out.results:
                self.push("answer", r.order_id, r)
            self.skus[key] = SkuState.from_bytes(s.to_bytes())  # the agent's store
        return True

    def _order_out(self, out: Any) -> None:
        assert not out.duplicate
        self.order_exceptions.extend(e.code for e in out.exceptions)
        for m in out.allocation:
            self.push("to-inventory", m.sku, m)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    st.lists(order_script, min_size=2, max_size=6),
    st.fixed_dictionaries({s: st.lists(stock_op, min_size=1, max_size=10) for s in SKUS}),
    st.lists(st.integers(0, 10**6), min_size=10, max_size=200),
)
def test_orders_and_ledger_converge_whatever_the_delivery_order(scripts, stock, choices):
    w = World()
    for i, script in enumerate(scripts):
        oid = f"SO-{i}"
        w.orders[oid] = OrderState(oid)
        for ev in order_events(oid, script):
            w.push("order-event", oid, ev)
    for sku, ops in stock.items():
        for ev in stock_events(sku, ops):
            w.push("stock-event", sku, ev)
    for c in choices:
        if not w.step(c):
            break
    while w.step(0):
        pass

    assert not BAD_ANSWERS & set(w.order_exceptions), w.order_exceptions
    for s in w.skus.values():
        check_ledger(s)
    allocated = dict.fromkeys(SKUS, 0)
    for oid, o in w.orders.items():
        check_invariants(o)
        for lid, ln in o.lines.items():
            rec = w.skus[ln.sku].lines.get((oid, lid))
            if rec is None or not rec.requested:
                assert (ln.allocated, ln.backordered, ln.pending) == (0, 0, 0), (oid, ln)
                continue
            assert ln.pending == 0, (oid, ln)
            assert (ln.allocated, ln.backordered, ln.promised_at) == (
                rec.reserved, rec.backordered, rec.promised_at), (oid, ln, rec)
            if rec.warehouse_id is not None:
                assert ln.warehouse_id == rec.warehouse_id
            assert ln.alloc_ack == ln.alloc_seq and ln.inflight == []
            if o.accepted_at is not None:
                assert ln.allocated + ln.backordered + ln.shipped + ln.cancelled == ln.ordered
            allocated[ln.sku] += ln.allocated
    for sku, s in w.skus.items():
        assert sum(x.reserved for x in s.warehouses.values()) == allocated[sku]
        assert sum(r.reserved for r in s.lines.values()) == allocated[sku]


def test_one_story_end_to_end():
    """Receipt, two orders for too little stock, a cancel that frees stock for the other,
    a shipment, through the loop with exact numbers on both sides."""
    w = World()
    inv = Inv("A", prefix="A-")
    for oid, q in (("SO-1", 4), ("SO-2", 3)):
        w.orders[oid] = OrderState(oid)
        ev = Events(oid)
        w.push("order-event", oid, ev.placed([("L1", "A", q, 100, "W1")]))
        w.push("order-event", oid, ev.accepted())
    w.push("stock-event", "A", inv.received("W1", 5))
    # stock first, then SO-1, then SO-2
    order = [("stock-event", "A"), ("order-event", "SO-1"), ("order-event", "SO-1"),
             ("to-inventory", "A"), ("order-event", "SO-2"), ("order-event", "SO-2"),
             ("to-inventory", "A")]
    for k in order:
        ready = sorted(x for x, q in w.queues.items() if q)
        assert w.step(ready.index(k))
    while w.step(0):
        pass
    o1, o2 = w.orders["SO-1"].lines["L1"], w.orders["SO-2"].lines["L1"]
    assert (o1.allocated, o1.backordered) == (4, 0)
    assert (o2.allocated, o2.backordered) == (1, 2)
    a = w.skus["A"].warehouses["W1"]
    assert (a.on_hand, a.reserved, a.backordered, a.atp) == (5, 5, 2, 0)
    e1 = Events("SO-1")
    e1.n = 2
    w.push("order-event", "SO-1", e1.line_cancelled("L1", 2))
    w.push("order-event", "SO-1", e1.dispatched("SH-1", {"L1": 2}, wh="W1"))
    while w.step(0):
        pass
    assert (o1.allocated, o1.backordered, o1.cancelled, o1.shipped) == (0, 0, 2, 2)
    assert (o2.allocated, o2.backordered) == (3, 0)
    a = w.skus["A"].warehouses["W1"]
    assert (a.on_hand, a.reserved, a.backordered, a.atp) == (3, 3, 0, 0)
    assert w.orders["SO-2"].lines["L1"].pending == 0
