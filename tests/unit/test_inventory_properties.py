"""Property-based tests of the inventory ledger over random sequences of ledger events and
order messages (any sequence: unknown lines, over-releases, unknown warehouses, stale counts,
duplicates, shipments from anywhere).

After every step:
- the structural invariants of tests.unit.test_inventory_support.check_ledger hold (per warehouse
  `reserved` / `backordered` equal the sums over its line records, the FIFO queue is exactly
  the backordered lines by (accepted_at, arrival), backorders wait only while ATP <= 0,
  promise dates are those of the expected supply, exact byte round trip);
- no oversell: a step in which a line's reservation grew leaves its warehouse with ATP >= 0;
- FIFO: a line whose reservation grew has no strictly older backordered line at its warehouse
  left after the step (fills take the oldest first, and never more than ATP);
- on-hand equals an independent model that only receipts, adjustments, (non-stale) counts and
  stock issues move;
- every answer carries the record's absolute numbers and ack_seq; every requested line whose
  warehouse / reserved / backordered / promise changed is answered; each message of a
  requested line is answered with ack_seq = its seq;
- AtpChanged is emitted exactly for the warehouses whose numbers changed, with the right numbers
  and network ATP;
- a duplicate (same event_id, or same line seq) is a no-op.
At the end, replaying the same inputs into a fresh state gives the same bytes and outputs.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables.allocation import AllocationRequest, StockIssue
from tables.inventory import SkuState, apply_inventory_event, apply_order_message
from tables.ledger import MAX_DONE_LINES, priority
from tests.unit.test_inventory_support import DAY, Inv, Msgs, check_ledger

WAREHOUSES = ("W1", "W2", "W3")
ORDERS = tuple(f"SO-{i}" for i in range(5))
PROPS = settings(max_examples=300, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

wh = st.sampled_from(WAREHOUSES)
line = st.tuples(st.sampled_from(ORDERS), st.sampled_from(("L1", "L2")))
op = st.one_of(
    st.tuples(st.just("recv"), wh, st.integers(0, 10), st.sampled_from((None, "PO-1", "PO-2"))),
    st.tuples(st.just("adj"), wh, st.integers(-6, 6)),
    st.tuples(st.just("snap"), wh, st.integers(0, 15), st.integers(0, 20)),
    st.tuples(st.just("ss"), wh, st.integers(0, 5)),
    st.tuples(st.just("supply"), wh, st.sampled_from(("PO-1", "PO-2", "PO-3")),
              st.integers(0, 8), st.integers(0, 5)),
    st.tuples(st.just("req"), line, st.integers(0, 8),
              st.sampled_from((None, None, "W1", "W2", "W3", "W9")), st.integers(0, 3)),
    st.tuples(st.just("req"), line, st.integers(1, 8), st.none(), st.integers(0, 3)),
    st.tuples(st.just("rel"), line, st.integers(0, 6)),
    st.tuples(st.just("iss"), line, st.integers(0, 6), wh),
    st.tuples(st.just("dup"), st.integers(0, 10**6)),
)


def build_inputs(ops: list[tuple]) -> list[tuple[str, Any]]:
    """Turn ops into concrete inputs: ("event", flat dict) or ("msg", message)."""
    inv = Inv()
    msgs = Msgs()
    t0 = inv.t0
    inputs: list[tuple[str, Any]] = []
    for o in ops:
        kind = o[0]
        if kind == "recv":
            ev = inv.received(o[1], o[2], source_doc=o[3] or "GR")
        elif kind == "adj":
            ev = inv.adjusted(o[1], o[2], "COUNT_CORRECTION")
        elif kind == "snap":
            ev = inv.snapshot(o[1], o[2], as_of=t0 + o[3] * 1000)
        elif kind == "ss":
            ev = inv.safety(o[1], o[2])
        elif kind == "supply":
            ev = inv.supply(o[1], o[2], o[3], t0 + (1 + o[4]) * DAY)
        elif kind == "req":
            (oid, lid), q, w, acc = o[1], o[2], o[3], o[4]
            inputs.append(("msg", msgs.request(oid, lid, q, w, accepted_at=t0 + acc)))
            continue
        elif kind == "rel":
            (oid, lid), q = o[1], o[2]
            inputs.append(("msg", msgs.release(oid, lid, q)))
            continue
        elif kind == "iss":
            (oid, lid), q, w = o[1], o[2], o[3]
            inputs.append(("msg", msgs.issue(oid, lid, q, w, "W1")))
            continue
        else:  # duplicate of an earlier input
            if inputs:
                inputs.append(inputs[o[1] % len(inputs)])
            continue
        inputs.append(("event", ev))
    return inputs


def apply(s: SkuState, item: tuple[str, Any]):
    kind, x = item
    return apply_inventory_event(s, x) if kind == "event" else apply_order_message(s, x)


def line_view(s: SkuState) -> dict[tuple[str, str], tuple]:
    return {k: (r.warehouse_id, r.reserved, r.backordered, r.promised_at, r.requested)
            for k, r in s.lines.items()}


def check_line_rule(msg: Any, before: tuple | None, after: tuple) -> None:
    """The contract's per-record rule for the message's own line (docs/order-model.md):
    request adds q (reserved from ATP, rest backordered); release removes q backordered
    first, then reserved; issue removes min(q, total) reserved first, then backordered.
    A fill (ATP risen by this very message) can then only move the line's own backorder to
    reserved where the message freed stock at the line's warehouse."""
    res_b, bo_b = (before[1], before[2]) if before is not None else (0, 0)
    res, bo = after[1], after[2]
    q = msg.quantity
    if q < 0:
        assert (res, bo) == (res_b, bo_b)
        return
    total_b = res_b + bo_b
    if isinstance(msg, AllocationRequest):
        assert res + bo == total_b + q and res >= res_b
    elif isinstance(msg, StockIssue):
        assert res + bo == total_b - min(q, total_b)
        t = min(q, res_b)
        if before is None or before[0] == msg.warehouse_id:  # consumed where it ships
            assert (res, bo) == (res_b - t, bo_b - min(q - t, bo_b))
        else:  # released elsewhere: only a fill of its own backorder can follow
            assert res >= res_b - t
    else:
        assert (res, bo) == (res_b - min(max(q - bo_b, 0), res_b), max(bo_b - q, 0))


def run(inputs: list[tuple[str, Any]], check: bool) -> tuple[SkuState, list]:
    s = SkuState(Inv().sku)
    outputs = []
    on_hand: dict[str, int] = {}
    counted: dict[str, int] = {}
    applied_ids: set = set()
    for item in inputs:
        kind, x = item
        ident = x["event_id"] if kind == "event" else (x.order_id, x.line_id, x.seq)
        dup = ident in applied_ids
        before_bytes = s.to_bytes() if check else b""
        before_lines = line_view(s) if check else {}
        before_wh = {w: (x_.on_hand, x_.reserved, x_.backordered, x_.safety_stock)
                     for w, x_ in s.warehouses.items()}
        out = apply(s, item)
        outputs.append((out.results, out.atp, [e.code for e in out.exceptions]))
        if dup:
            assert out.duplicate and not out.changed, item
            assert out.results == [] and out.atp == [] and out.exceptions == []
            if check:
                assert s.to_bytes() == before_bytes
            continue
        assert not out.duplicate and out.changed
        applied_ids.add(ident)
        # on-hand model: only physical events move it
        if kind == "event":
            et, w = x["event_type"], x["warehouse_id"]
            if et == "InventoryReceived" and x["quantity"] >= 0:
                on_hand[w] = on_hand.get(w, 0) + x["quantity"]
            elif et == "InventoryAdjusted":
                on_hand[w] = on_hand.get(w, 0) + x["delta"]
            elif et == "InventorySnapshot" and x["on_hand"] >= 0:
                if counted.get(w, x["as_of"]) <= x["as_of"]:
                    on_hand[w] = x["on_hand"]
                    counted[w] = x["as_of"]
        elif isinstance(x, StockIssue) and x.quantity > 0:
            on_hand[x.warehouse_id] = on_hand.get(x.warehouse_id, 0) - x.quantity
        assert {w: v.on_hand for w, v in s.warehouses.items() if w in on_hand} == on_hand
        assert all(v.on_hand == 0 for w, v in s.warehouses.items() if w not in on_hand)
        if not check:
            continue
        check_ledger(s)
        after_lines = line_view(s)
        # no oversell, FIFO
        for key, now in after_lines.items():
            was = before_lines.get(key)
            if was is not None and now[1] > was[1] or was is None and now[1] > 0:
                w = s.warehouses[now[0]]
                assert w.atp >= 0, (key, w)
                rec = s.lines[key]
                older = [r.key for r in w.queue if priority(r) < priority(rec)]
                assert older == [], (key, older)
        # answers: absolute, complete
        answered = {}
        for r in out.results:
            rec = s.lines[(r.order_id, r.line_id)]
            assert (r.warehouse_id, r.allocated, r.backordered, r.promised_at, r.ack_seq) == (
                rec.warehouse_id, rec.reserved, rec.backordered, rec.promised_at, rec.seq)
            assert rec.requested and r.sku == s.sku
            answered[(r.order_id, r.line_id)] = r
        assert len(answered) == len(out.results)  # one per line
        for key, now in after_lines.items():
            if now[4] and before_lines.get(key, (None, 0, 0, None))[:4] != now[:4]:
                assert key in answered, key
        if kind == "msg":
            key = (x.order_id, x.line_id)
            if key in s.lines and s.lines[key].requested:
                assert answered[key].ack_seq == x.seq
            elif key in s.lines:
                assert key not in answered
            check_line_rule(x, before_lines.get(key), after_lines[key])
        # AtpChanged: exactly the changed warehouses
        net = s.network_atp()
        changed = {w for w, v in s.warehouses.items()
                   if before_wh.get(w) != (v.on_hand, v.reserved, v.backordered, v.safety_stock)}
        assert {a.warehouse_id for a in out.atp} == changed
        assert len(out.atp) == len(changed)
        for a in out.atp:
            v = s.warehouses[a.warehouse_id]
            assert (a.on_hand, a.reserved, a.backordered, a.safety_stock, a.atp) == (
                v.on_hand, v.reserved, v.backordered, v.safety_stock, v.atp)
            assert a.network_atp == net and a.sku == s.sku
        # a reservation is never made below zero ATP: the only way ATP < 0 is a loss
        for w, v in s.warehouses.items():
            if v.atp < 0 and before_wh.get(w) is not None:
                was_atp = before_wh[w][0] - before_wh[w][1] - before_wh[w][3]
                if v.atp < was_atp:
                    assert (v.on_hand < before_wh[w][0] or v.safety_stock > before_wh[w][3]), w
    return s, outputs


@PROPS
@given(st.lists(op, min_size=15, max_size=60))
def test_ledger_invariants_hold_after_every_step(ops):
    run(build_inputs(ops), check=True)


@PROPS
@given(st.lists(op, min_size=15, max_size=60))
def test_replay_gives_the_same_state_and_outputs(ops):
    inputs = build_inputs(ops)
    s1, out1 = run(inputs, check=False)
    s2, out2 = run(inputs, check=False)
    assert s1.to_bytes() == s2.to_bytes()
    assert out1 == out2
    # and through bytes at every step (the agent's store) as well
    s3 = SkuState(s1.sku)
    out3 = []
    for item in inputs:
        s3 = SkuState.from_bytes(s3.to_bytes())
        out = apply(s3, item)
        out3.append((out.results, out.atp, [e.code for e in out.exceptions]))
    assert s3.to_bytes() == s1.to_bytes() and out3 == out1


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5)), min_size=1, max_size=12),
       st.lists(st.integers(1, 6), max_size=8))
def test_fifo_fills_serve_the_oldest_acceptance_first(lines, receipts):
    """Only backorders and receipts: each receipt is handed out strictly by (accepted_at,
    arrival), which an independent greedy over the sorted backorders reproduces."""
    s = SkuState("SKU-1")
    inv = Inv()
    apply_inventory_event(s, inv.received("W1", 0))
    msgs = Msgs()
    wanted = []
    for i, (acc, q) in enumerate(lines):
        m = msgs.request(f"SO-{i}", "L1", q, "W1", accepted_at=inv.t0 + acc)
        apply_order_message(s, m)
        wanted.append([acc, i, q])
    wanted.sort()
    for r in receipts:
        apply_inventory_event(s, inv.received("W1", r))
        left = r
        for w in wanted:
            t = min(w[2], left)
            w[2] -= t
            left -= t
        check_ledger(s)
        for _acc, i, q in wanted:
            assert s.lines[(f"SO-{i}", "L1")].backordered == q


def test_a_request_never_reserves_below_zero_atp():
    s = SkuState("SKU-1")
    inv = Inv()
    apply_inventory_event(s, inv.received("W1", 3))
    apply_inventory_event(s, inv.safety("W1", 1))
    m = AllocationRequest("SO-1", "L1", "SKU-1", "W1", 5, inv.t0, inv.t0, 1, "c")
    apply_order_message(s, m)
    w = s.warehouses["W1"]
    assert (w.reserved, w.backordered, w.atp) == (2, 3, 0)


def test_the_changed_parts_delete_the_finished_lines_the_ledger_forgets():
    """Past MAX_DONE_LINES finished lines the oldest leave the state: their parts go too."""
    s = SkuState(Inv().sku)
    inv, msgs = Inv(), Msgs()
    apply_inventory_event(s, inv.received("W1", 1000))
    head, parts = s.to_parts()
    gone = set()
    for i in range(MAX_DONE_LINES + 6):  # a commit after each order
        apply_order_message(s, msgs.request(f"SO-{i}", "L1", 1, "W1"))
        apply_order_message(s, msgs.release(f"SO-{i}", "L1", 1))
        head, changed = s.changed_parts()
        for suffix, raw in changed.items():
            if raw is None:
                gone.add(suffix)
                del parts[suffix]
            else:
                parts[suffix] = raw
    assert gone == {f"SO-{i}\x1fL1".encode() for i in range(6)}
    assert (head, parts) == SkuState.from_bytes(s.to_bytes()).to_parts()


@PROPS
@given(st.lists(op, min_size=15, max_size=60), st.lists(st.booleans(), min_size=60, max_size=60),
       st.booleans())
def test_the_changed_parts_bring_the_last_parts_to_the_parts_encoded_afresh(ops, flushed, read_back):
    """`SkuState.changed_parts` names only the lines the ledger changed since the parts were
    last taken (the agent's store writes those, once per commit, after any number of steps):
    applied to the parts taken last, they give the parts of a state that never encoded any.
    `read_back`: the state was read from its parts (`from_parts`), as the store does."""
    s = SkuState(Inv().sku)
    assert s.changed_parts() is None  # a new state: the parts are not known yet
    head, parts = s.to_parts()
    if read_back:
        s = SkuState.from_parts(head, parts.values())
    for item, flush in zip(build_inputs(ops), flushed):
        apply(s, item)
        if flush:
            delta = s.changed_parts()
            assert delta is not None
            head = delta[0]
            for suffix, raw in delta[1].items():
                if raw is None:
                    parts.pop(suffix, None)
                else:
                    parts[suffix] = raw
            fresh = SkuState.from_bytes(s.to_bytes())
            assert (head, parts) == fresh.to_parts()
