"""The inventory side's functional core: apply one ledger event or order message to a SKU.

`apply_inventory_event(state, event)` (o2c.inventory) and `apply_order_message(state, msg)`
(the allocation contract's AllocationRequest / AllocationRelease / StockIssue) mutate the
`SkuState` in place, perform no I/O, are deterministic, and return an `Outcome`: the
`AllocationResult`s to send to orders (absolute numbers + ack_seq, one per affected line),
the `AtpChanged` records (one per changed warehouse), the business exceptions, and whether
the state changed. Rules and decisions: docs/inventory-model.md.

Public API (re-exported here):
    SkuState, Warehouse, LineAlloc, apply_inventory_event, apply_order_message, Outcome,
    AtpChanged, InvalidEvent, InventoryCode, INVENTORY_EVENT_TYPES, atp_view, warehouse_view,
    and the primitives receive, adjust, rebase, set_safety_stock, expect_supply, reserve,
    release, issue, fill_backorders, choose_warehouse, promise_dates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tables.allocation import (
    AllocationMessage,
    AllocationRelease,
    AllocationRequest,
    AllocationResult,
    StockIssue,
    message_from_dict,
)
from tables.exceptions import BusinessException, Code
from tables.ledger import (
    MAX_DONE_LINES,
    MAX_SEEN_EVENT_IDS,
    Change,
    InventoryCode,
    LineAlloc,
    SkuState,
    Warehouse,
)
from tables.order import InvalidEvent, read_envelope
from tables.promise import promise_dates
from tables.reservations import choose_warehouse, fill_backorders, issue, release, reserve
from tables.stock import adjust, expect_supply, rebase, receive, set_safety_stock

__all__ = [
    "INVENTORY_EVENT_TYPES",
    "AtpChanged",
    "InvalidEvent",
    "InventoryCode",
    "LineAlloc",
    "Outcome",
    "SkuState",
    "Warehouse",
    "adjust",
    "apply_inventory_event",
    "apply_order_message",
    "atp_view",
    "choose_warehouse",
    "expect_supply",
    "fill_backorders",
    "issue",
    "promise_dates",
    "rebase",
    "receive",
    "release",
    "reserve",
    "set_safety_stock",
    "warehouse_view",
]


@dataclass(slots=True)
class AtpChanged:
    """The `AtpChanged` output record (docs/contract-fields.md), keyed by `sku`. (Not frozen:
    a frozen dataclass costs twice as much to build, and one is built per input.)"""

    TYPE: ClassVar[str] = "AtpChanged"
    sku: str
    warehouse_id: str
    on_hand: int
    reserved: int
    backordered: int
    safety_stock: int
    atp: int
    network_atp: int
    cause_event_id: str
    as_of: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "warehouse_id": self.warehouse_id,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "backordered": self.backordered,
            "safety_stock": self.safety_stock,
            "atp": self.atp,
            "network_atp": self.network_atp,
            "cause_event_id": self.cause_event_id,
            "as_of": self.as_of,
        }


@dataclass(slots=True)
class Outcome:
    changed: bool = False  # state mutated: write it back (False only for a duplicate)
    duplicate: bool = False  # event_id / (order_id, line_id, seq) already applied
    results: list[AllocationResult] = field(default_factory=list)  # to orders, key order_id
    atp: list[AtpChanged] = field(default_factory=list)  # to o2c.atp, key sku
    exceptions: list[BusinessException] = field(default_factory=list)  # key sku


_BAD_INPUT = (KeyError, TypeError, AttributeError)


# -- ledger events -----------------------------------------------------------------------
def apply_inventory_event(state: SkuState, event: Mapping[str, Any]) -> Outcome:
    """Apply one flat o2c.inventory event (docs/contract-fields.md) to the SKU's state.

    Raises InvalidEvent (dead letter) before touching the state when a contract field is
    missing or the event is for another SKU.
    """
    eid, etype, at = read_envelope(event)
    if eid in state.seen:
        return Outcome(duplicate=True)
    sku = event.get("sku")
    if sku is not None and sku != state.sku:
        raise InvalidEvent(f"event for sku {sku!r} applied to sku {state.sku!r}")
    ch = Change(state, eid, at)
    handler = _HANDLERS.get(etype)
    if handler is None:
        ch.raise_(Code.UNKNOWN_EVENT_TYPE, f"{etype} is not an inventory event")
    else:
        try:
            args = _FIELDS[etype](event)
        except _BAD_INPUT as e:
            raise InvalidEvent(f"{etype} {eid}: bad or missing field {e}") from None
        handler(ch, *args)
    seen = state.seen
    seen[eid] = None
    if len(seen) > MAX_SEEN_EVENT_IDS:
        del seen[next(iter(seen))]
    return settle(ch)


def _invalid_quantity(ch: Change, what: str) -> None:
    ch.raise_(Code.INVALID_QUANTITY, f"{what}: ignored")


def _on_received(ch: Change, wid: str, qty: int, source_doc: str | None) -> None:
    if qty < 0:
        _invalid_quantity(ch, f"receipt of {qty} at {wid}")
    else:
        receive(ch, wid, qty, source_doc)


def _on_adjusted(ch: Change, wid: str, delta: int, reason: str) -> None:
    adjust(ch, wid, delta, reason)


def _on_snapshot(ch: Change, wid: str, on_hand: int, as_of: int) -> None:
    if on_hand < 0:
        _invalid_quantity(ch, f"count of {on_hand} at {wid}")
    else:
        rebase(ch, wid, on_hand, as_of)


def _on_safety_stock(ch: Change, wid: str, qty: int) -> None:
    if qty < 0:
        _invalid_quantity(ch, f"safety stock {qty} at {wid}")
    else:
        set_safety_stock(ch, wid, qty)


def _on_supply(ch: Change, wid: str, supply_id: str, qty: int, expected_at: int) -> None:
    if qty < 0:
        _invalid_quantity(ch, f"expected supply {supply_id} of {qty} at {wid}")
    else:
        expect_supply(ch, wid, supply_id, qty, expected_at)


_HANDLERS: dict[str, Callable[..., None]] = {
    "InventoryReceived": _on_received,
    "InventoryAdjusted": _on_adjusted,
    "InventorySnapshot": _on_snapshot,
    "SafetyStockSet": _on_safety_stock,
    "SupplyExpected": _on_supply,
}

# every field is read (and type-checked where it is compared) before anything changes
_FIELDS: dict[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]] = {
    "InventoryReceived": lambda e: (_s(e["warehouse_id"]), _i(e["quantity"]), e.get("source_doc")),
    "InventoryAdjusted": lambda e: (_s(e["warehouse_id"]), _i(e["delta"]), e["reason"]),
    "InventorySnapshot": lambda e: (_s(e["warehouse_id"]), _i(e["on_hand"]), _i(e["as_of"])),
    "SafetyStockSet": lambda e: (_s(e["warehouse_id"]), _i(e["quantity"])),
    "SupplyExpected": lambda e: (_s(e["warehouse_id"]), _s(e["supply_id"]), _i(e["quantity"]),
                                 _i(e["expected_at"])),
}

INVENTORY_EVENT_TYPES: frozenset[str] = frozenset(_HANDLERS)


def _s(v: Any) -> str:
    if type(v) is not str:
        raise TypeError(f"expected a string, got {v!r}")
    return v


def _i(v: Any) -> int:
    if type(v) is not int:
        raise TypeError(f"expected an integer, got {v!r}")
    return v


# -- order messages -------------------------------------------------------------------------
def apply_order_message(state: SkuState,
                        msg: AllocationMessage | Mapping[str, Any]) -> Outcome:
    """Apply one allocation-contract message from the order side (tables.allocation).

    A message whose `seq` is not above the last one handled for its line is a duplicate.
    Raises InvalidEvent (dead letter) for an undecodable message or one for another SKU.
    """
    kind = type(msg)
    if kind not in _MESSAGE_TYPES:
        if isinstance(msg, Mapping):
            try:
                msg = message_from_dict(msg)
            except (ValueError, *_BAD_INPUT) as e:
                raise InvalidEvent(f"not an allocation message: {e}") from None
            kind = type(msg)
        if kind not in _MESSAGE_TYPES:
            raise InvalidEvent(f"{kind.__name__} is not an order -> inventory message")
    if msg.sku != state.sku:
        raise InvalidEvent(f"message for sku {msg.sku!r} applied to sku {state.sku!r}")
    if type(msg.seq) is not int:
        raise InvalidEvent(f"{kind.TYPE} seq {msg.seq!r}: integer expected")
    key = (msg.order_id, msg.line_id)
    rec = state.lines.get(key)
    if rec is not None and msg.seq <= rec.seq:
        return Outcome(duplicate=True)
    q = msg.quantity
    if type(q) is not int:
        raise InvalidEvent(f"{kind.TYPE} quantity {q!r}: integer expected")
    wid = msg.warehouse_id
    if type(wid) is not str and (wid is not None or kind is StockIssue):
        raise InvalidEvent(f"{kind.TYPE} warehouse_id {wid!r}")
    if rec is None:
        rec = state.lines[key] = LineAlloc(msg.order_id, msg.line_id)
    rec.seq = msg.seq
    if kind is AllocationRequest:
        ch = Change(state, msg.cause_event_id, msg.requested_at, msg.order_id)
        if not rec.requested:
            acc = msg.accepted_at
            _mark_requested(state, rec, msg.requested_at if acc is None else acc)
        if rec.warehouse_id is None:  # first request (later ones go to the record's warehouse)
            _place(ch, rec, msg.warehouse_id)
        if q < 0:
            _invalid_quantity(ch, f"request of {q} for line {msg.line_id}")
        else:
            reserve(ch, rec, q)
    elif kind is AllocationRelease:
        ch = Change(state, msg.cause_event_id, msg.released_at, msg.order_id)
        if not rec.requested:  # nothing to release; answered (0/0) so the order settles
            ch.raise_(InventoryCode.UNKNOWN_ALLOCATION,
                      f"release of {q} for line {msg.line_id}, which holds no allocation here")
            _mark_requested(state, rec, None)
        elif q < 0:
            _invalid_quantity(ch, f"release of {q} for line {msg.line_id}")
        else:
            missing = release(ch, rec, q)
            if missing:
                ch.raise_(InventoryCode.RELEASE_EXCEEDS_ALLOCATION,
                          f"release of {q} for line {msg.line_id}: {missing} more than it held")
    else:
        ch = Change(state, msg.cause_event_id, msg.issued_at, msg.order_id)
        if q < 0:
            _invalid_quantity(ch, f"shipment of {q} for line {msg.line_id}")
        elif q:
            issue(ch, rec, msg.warehouse_id, q)
    ch.touch(rec)  # every message of a requested line is answered
    return settle(ch)


_MESSAGE_TYPES = (AllocationRequest, AllocationRelease, StockIssue)


def _mark_requested(state: SkuState, rec: LineAlloc, accepted_at: int | None) -> None:
    rec.requested = True
    if accepted_at is not None:
        rec.accepted_at = accepted_at
    state.arrivals += 1
    rec.arrival = state.arrivals


def _place(ch: Change, rec: LineAlloc, wid: str | None) -> None:
    """Give a line without a warehouse the requested one, or the best one (highest ATP, ties
    lowest id); none while the SKU has no warehouse at all (it is then backordered
    unassigned, and the SKU's first warehouse takes it)."""
    state = ch.state
    if wid is None:
        wid = choose_warehouse(state)
        if wid is None:
            return
    elif wid not in state.warehouses:
        ch.warehouse(wid, expected=False)
    if rec.warehouse_id is None:
        rec.warehouse_id = wid


# -- settling one change --------------------------------------------------------------------
def settle(ch: Change) -> Outcome:
    """Fill backorders where ATP rose, refresh promise dates, and build the outputs."""
    state = ch.state
    whs = state.warehouses
    lines = ch.lines
    for wid in ch.before:
        fill_backorders(ch, wid)
    for wid in ch.before:
        w = whs[wid]
        if w.queue and (w.supply or wid in ch.supply_changed):
            for rec, at in zip(w.queue, promise_dates(w)):
                if rec.promised_at != at:
                    rec.promised_at = at
                    lines[(rec.order_id, rec.line_id)] = rec
    out = Outcome(changed=True, exceptions=ch.exceptions)
    if lines:
        results = out.results
        done = state.done
        sku = state.sku
        cause_at = ch.at
        for key, rec in lines.items():
            if rec.backordered:
                done.pop(key, None)
            else:
                rec.promised_at = None
                done.pop(key, None)
                if not rec.reserved:  # nothing held: (re)enters the window of finished lines
                    done[key] = None
            if rec.requested:
                state.results += 1
                results.append(AllocationResult(
                    rec.order_id, rec.line_id, sku, rec.warehouse_id, rec.reserved,
                    rec.backordered, rec.promised_at, rec.seq, f"{sku}:{state.results}",
                    cause_at,
                ))
        state.note_changed(lines)
        if len(done) > MAX_DONE_LINES:
            by_key = state.lines
            left = []
            for _ in range(len(done) - MAX_DONE_LINES):
                old = next(iter(done))
                del done[old]
                del by_key[old]
                left.append(old)
            state.note_changed(left)
    if ch.before:
        net = 0
        for w in whs.values():
            net += w.on_hand - w.reserved - w.safety_stock
        atp = out.atp
        for wid, before in ch.before.items():
            w = whs[wid]
            now = (w.on_hand, w.reserved, w.backordered, w.safety_stock)
            if now != before:
                atp.append(AtpChanged(state.sku, wid, now[0], now[1], now[2], now[3],
                                      now[0] - now[1] - now[3], net, ch.cause, ch.at))
    return out


# -- views ----------------------------------------------------------------------------------
def warehouse_view(state: SkuState, warehouse_id: str) -> dict[str, Any] | None:
    """JSON-able position of the SKU at one warehouse (GET /atp/{sku}/{warehouse_id})."""
    w = state.warehouses.get(warehouse_id)
    if w is None:
        return None
    return {
        "sku": state.sku,
        "warehouse_id": warehouse_id,
        "on_hand": w.on_hand,
        "reserved": w.reserved,
        "backordered": w.backordered,
        "safety_stock": w.safety_stock,
        "atp": w.atp,
        "network_atp": state.network_atp(),
        "counted_at": w.counted_at,
        "expected_supply": [
            {"supply_id": sid, "quantity": q, "expected_at": at}
            for at, sid, q in sorted((at, sid, q) for sid, (q, at) in w.supply.items())
        ],
        "backorders": [
            {"order_id": r.order_id, "line_id": r.line_id, "quantity": r.backordered,
             "accepted_at": r.accepted_at, "promised_at": r.promised_at}
            for r in w.queue
        ],
    }


def atp_view(state: SkuState) -> dict[str, Any]:
    """JSON-able position of the SKU at every warehouse plus the network (GET /atp/{sku})."""
    return {
        "sku": state.sku,
        "network_atp": state.network_atp(),
        "on_hand": sum(w.on_hand for w in state.warehouses.values()),
        "reserved": sum(w.reserved for w in state.warehouses.values()),
        "backordered": sum(w.backordered for w in state.warehouses.values())
        + sum(r.backordered for r in state.unassigned),
        "unassigned_backorders": [
            {"order_id": r.order_id, "line_id": r.line_id, "quantity": r.backordered,
             "accepted_at": r.accepted_at}
            for r in state.unassigned
        ],
        "warehouses": [warehouse_view(state, wid) for wid in sorted(state.warehouses)],
    }
