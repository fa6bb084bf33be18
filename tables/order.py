"""The order model's functional core: apply one event (or allocation answer) to an order.

`apply_event(state, event)` mutates `state` in place, performs no I/O, is deterministic and
returns an `Outcome` saying what happened: whether to persist (`changed`), whether the
`OrderStatusChanged` record changed (`publish`), the business exceptions raised and the
messages for the inventory side. Every rule is documented in docs/order-model.md.

Public API (re-exported here):
    OrderState, Line, apply_event, apply_allocation, Outcome, InvalidEvent,
    derive_status, OrderStatus, status_event, to_view, BusinessException, Code,
    AllocationRequest, AllocationRelease, StockIssue, AllocationResult, message_from_dict
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tables.allocation import (
    ISSUE,
    RELEASE,
    AllocationMessage,
    AllocationRelease,
    AllocationRequest,
    AllocationResult,
    StockIssue,
    message_from_dict,
    reconcile_line,
)
from tables.exceptions import BusinessException, Code
from tables.order_state import (
    MAX_BUFFERED_EVENTS,
    MAX_RECENT_EXCEPTIONS,
    MAX_SEEN_EVENT_IDS,
    Invoice,
    Line,
    OrderState,
    Payment,
    Shipment,
)
from tables.status import OrderStatus, derive_status, fully_invoiced, is_cancelled, update_milestones
from tables.views import status_event, to_view

__all__ = [
    "AllocationRelease",
    "AllocationRequest",
    "AllocationResult",
    "BusinessException",
    "Code",
    "InvalidEvent",
    "Line",
    "OrderState",
    "OrderStatus",
    "Outcome",
    "StockIssue",
    "apply_allocation",
    "apply_event",
    "derive_status",
    "message_from_dict",
    "status_event",
    "to_view",
]

DAY_MS = 86_400_000


class InvalidEvent(ValueError):
    """The event lacks a contract field or belongs to another order: a dead letter.

    Raised before the state is mutated, except for a malformed line item after a valid
    one; callers must discard the state object (re-read it from the table) on this error.
    """


@dataclass(slots=True)
class Outcome:
    changed: bool = False  # state mutated: write it back to the table
    publish: bool = False  # order exists and OrderStatusChanged content changed
    duplicate: bool = False  # event_id (result_id) already applied: nothing happened
    buffered: bool = False  # kept until OrderPlaced arrives
    exceptions: list[BusinessException] = field(default_factory=list)
    allocation: list[AllocationMessage] = field(default_factory=list)


_BAD_INPUT = (KeyError, TypeError, AttributeError)


def read_envelope(event: Mapping[str, Any]) -> tuple[str, str, int]:
    """`(event_id, event_type, occurred_at)`, or InvalidEvent when one is missing."""
    try:
        return event["event_id"], event["event_type"], event["occurred_at"]
    except _BAD_INPUT as e:
        raise InvalidEvent(f"missing envelope field: {e}") from None


# -- entry points ----------------------------------------------------------------------
def apply_event(state: OrderState, event: Mapping[str, Any], now: int | None = None) -> Outcome:
    """Apply one flat order/shipment/payment event (docs/contract-fields.md) to `state`.

    `now` (epoch ms, wall clock) is only recorded as the orphan start when the event is the
    first one buffered before OrderPlaced; the model never reads a clock itself.
    """
    eid, etype, ts = read_envelope(event)
    if eid in state.seen:
        return Outcome(duplicate=True)
    oid = event.get("order_id")
    if oid is not None and oid != state.order_id:
        raise InvalidEvent(f"event for order {oid!r} applied to order {state.order_id!r}")
    out = Outcome(changed=True)
    handler = _HANDLERS.get(etype)
    if handler is None:
        _raise(state, out, Code.UNKNOWN_EVENT_TYPE, f"{etype} is not an order event", eid, ts)
    elif state.placed_at is None and handler is not _on_placed:
        if len(state.buffer) >= MAX_BUFFERED_EVENTS:
            _raise(
                state, out, Code.BUFFER_FULL,
                f"{etype} dropped: {MAX_BUFFERED_EVENTS} events already wait for OrderPlaced",
                eid, ts,
            )
        else:
            if not state.buffer:
                state.orphan_since = ts
                state.orphan_since_wall = now
            state.buffer.append(dict(event))
            out.buffered = True
    else:
        try:
            _dispatch(state, handler, event, out)
        except _BAD_INPUT as e:
            raise InvalidEvent(f"{etype} {eid}: bad or missing field {e}") from None
    _remember(state, eid)
    return out


def apply_allocation(state: OrderState, result: AllocationResult) -> Outcome:
    """Apply the inventory side's answer for one line (see tables.allocation)."""
    rid = result.result_id
    if rid in state.seen:
        return Outcome(duplicate=True)
    if result.order_id != state.order_id:
        raise InvalidEvent(
            f"allocation for order {result.order_id!r} applied to {state.order_id!r}"
        )
    out = Outcome(changed=True)
    _remember(state, rid)
    at = result.occurred_at
    line = state.lines.get(result.line_id)
    if state.accepted_at is None or state.placed_at is None:
        _raise(state, out, Code.UNEXPECTED_ALLOCATION,
               f"allocation result for line {result.line_id} of an order not accepted",
               rid, at, result.sku)
        return out
    if line is None:
        _raise(state, out, Code.UNKNOWN_LINE,
               f"allocation result for unknown line {result.line_id}", rid, at, result.sku)
        return out
    if (
        result.allocated < 0
        or result.backordered < 0
        or result.sku != line.sku
        or result.ack_seq > line.alloc_seq
    ):
        _raise(state, out, Code.UNEXPECTED_ALLOCATION,
               f"line {line.line_id}: allocated={result.allocated} "
               f"backordered={result.backordered} sku={result.sku} ack_seq={result.ack_seq} "
               f"(last sent seq {line.alloc_seq})", rid, at, line.sku)
        return out
    if result.ack_seq < line.alloc_ack:
        _raise(state, out, Code.STALE_ALLOCATION,
               f"line {line.line_id}: ack_seq {result.ack_seq} older than {line.alloc_ack}",
               rid, at, line.sku)
        return out
    before = (line.allocated, line.backordered, line.warehouse_id, line.promised_at)
    ack = result.ack_seq
    line.base_allocated = result.allocated
    line.base_backordered = result.backordered
    line.alloc_ack = ack
    if result.warehouse_id is not None:
        line.warehouse_id = result.warehouse_id
    line.promised_at = result.promised_at
    if line.inflight:
        line.inflight = [op for op in line.inflight if op[0] > ack]
    reconcile_line(line)
    if ack == line.alloc_seq:
        need = line.ordered - line.cancelled - line.shipped
        if result.allocated + result.backordered != need:
            _raise(state, out, Code.ALLOCATION_MISMATCH,
                   f"line {line.line_id}: inventory holds {result.allocated} allocated + "
                   f"{result.backordered} backordered for {need} open unshipped",
                   rid, at, line.sku)
    if (line.allocated, line.backordered, line.warehouse_id, line.promised_at) != before:
        out.publish = True
    if out.publish:
        update_milestones(state, at)
    return out


# -- plumbing --------------------------------------------------------------------------
def _dispatch(state: OrderState, handler: Callable[..., None], ev: Mapping[str, Any],
              out: Outcome) -> None:
    outer = out.publish
    out.publish = False
    handler(state, ev, out)
    if out.publish:
        update_milestones(state, ev["occurred_at"])
    else:
        out.publish = outer


def _remember(state: OrderState, eid: str) -> None:
    seen = state.seen
    seen[eid] = None
    if len(seen) > MAX_SEEN_EVENT_IDS:
        del seen[next(iter(seen))]


def _raise(state: OrderState, out: Outcome, code: str, detail: str, cause: str, at: int,
           sku: str | None = None) -> None:
    exc = BusinessException(code, state.order_id, detail, cause, at, sku)
    out.exceptions.append(exc)
    recent = state.exceptions
    recent.append(exc)
    if len(recent) > MAX_RECENT_EXCEPTIONS:
        del recent[0]
    state.exceptions_total += 1
    if state.placed_at is not None:
        out.publish = True


def _request(s: OrderState, line: Line, qty: int, ev: Mapping[str, Any], out: Outcome) -> None:
    line.alloc_seq += 1
    out.allocation.append(
        AllocationRequest(
            s.order_id, line.line_id, line.sku, line.warehouse_id, qty, s.accepted_at,
            ev["occurred_at"], line.alloc_seq, ev["event_id"],
        )
    )
    reconcile_line(line)


def _cancel(s: OrderState, line: Line, qty: int, ev: Mapping[str, Any], out: Outcome) -> None:
    """Cancel `qty` unshipped units (caller checked qty <= unshipped)."""
    line.cancelled += qty
    out.publish = True
    if s.accepted_at is not None:
        line.alloc_seq += 1
        line.inflight.append([line.alloc_seq, RELEASE, qty])
        out.allocation.append(
            AllocationRelease(
                s.order_id, line.line_id, line.sku, line.warehouse_id, qty,
                ev["occurred_at"], line.alloc_seq, ev["event_id"],
            )
        )
        reconcile_line(line)


def _line_or_raise(s: OrderState, out: Outcome, line_id: str, what: str, eid: str,
                   ts: int) -> Line | None:
    line = s.lines.get(line_id)
    if line is None:
        _raise(s, out, Code.UNKNOWN_LINE, f"{what} for unknown line {line_id}", eid, ts)
    return line


def _is_line_cancelled(line: Line) -> bool:
    return line.cancelled > 0 and line.cancelled >= line.ordered


# -- orders ------------------------------------------------------------------------------
def _on_placed(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    eid = ev["event_id"]
    ts = ev["occurred_at"]
    if s.placed_at is not None:
        _raise(s, out, Code.DUPLICATE_ORDER,
               f"second OrderPlaced (order placed at {s.placed_at}) ignored", eid, ts)
        return
    items = [
        (i["line_id"], i["sku"], i["quantity"], i["unit_price_minor"], i.get("warehouse_id"))
        for i in ev["lines"]
    ]
    header = (ev["customer_id"], ev["channel"], ev["region"], ev["currency"])
    terms = ev.get("payment_terms_days")
    s.customer_id, s.channel, s.region, s.currency = header
    s.payment_terms_days = 30 if terms is None else terms
    s.promised_ship_at = ev.get("promised_ship_at")
    s.placed_at = ts
    out.publish = True
    lines = s.lines
    for line_id, sku, qty, price, wh in items:
        if line_id in lines:
            _raise(s, out, Code.DUPLICATE_LINE,
                   f"line {line_id} appears twice in OrderPlaced; first kept", eid, ts, sku)
            continue
        if qty < 0:
            _raise(s, out, Code.INVALID_QUANTITY,
                   f"line {line_id} ordered {qty}: recorded as 0", eid, ts, sku)
            qty = 0
        lines[line_id] = Line(line_id, sku, price, wh, qty)
    buffered = s.buffer
    if buffered:
        s.buffer = []
        s.orphan_since = s.orphan_since_wall = None
        replayed: set[str] = set()
        for bev in buffered:
            # an id evicted from `seen` while waiting may have been buffered twice
            bid = bev.get("event_id")
            if bid in replayed:
                continue
            replayed.add(bid)
            _remember(s, bid)
            try:
                _dispatch(s, _HANDLERS[bev["event_type"]], bev, out)
            except _BAD_INPUT as e:
                _raise(s, out, Code.INVALID_EVENT,
                       f"buffered {bev.get('event_type')} has a bad or missing field {e}",
                       bev.get("event_id", "?"), bev.get("occurred_at", ts))


def _on_accepted(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    eid = ev["event_id"]
    ts = ev["occurred_at"]
    if s.accepted_at is not None:
        _raise(s, out, Code.ALREADY_ACCEPTED,
               f"order already accepted at {s.accepted_at}", eid, ts)
        return
    if is_cancelled(s):
        _raise(s, out, Code.EVENT_AFTER_CANCEL, "OrderAccepted for a cancelled order", eid, ts)
        return
    s.accepted_at = ts
    out.publish = True
    for line in s.lines.values():
        need = line.ordered - line.cancelled - line.shipped
        if need > 0:
            _request(s, line, need, ev, out)


def _on_hold_applied(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    hold_type = ev["hold_type"]
    reason = ev["reason"]
    hold = s.holds.get(hold_type)
    if hold is None:
        s.holds[hold_type] = [reason, ev["occurred_at"]]
        out.publish = True
    else:  # already active: keep its start, take the latest reason
        hold[0] = reason


def _on_hold_released(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    hold_type = ev["hold_type"]
    if s.holds.pop(hold_type, None) is None:
        _raise(s, out, Code.HOLD_NOT_ACTIVE, f"release of {hold_type} hold, which is not active",
               ev["event_id"], ev["occurred_at"])
    else:
        out.publish = True


def _on_line_changed(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    eid = ev["event_id"]
    ts = ev["occurred_at"]
    line_id = ev["line_id"]
    qty = ev["quantity"]
    line = _line_or_raise(s, out, line_id, "OrderLineChanged", eid, ts)
    if line is None:
        return
    if qty < 0:
        _raise(s, out, Code.INVALID_QUANTITY, f"line {line_id} changed to {qty}", eid, ts,
               line.sku)
        return
    if _is_line_cancelled(line):
        _raise(s, out, Code.EVENT_AFTER_CANCEL,
               f"OrderLineChanged to {qty} on cancelled line {line_id}", eid, ts, line.sku)
        return
    current = line.ordered - line.cancelled
    if qty > current:
        inc = qty - current
        line.ordered += inc
        out.publish = True
        if s.accepted_at is not None:
            _request(s, line, inc, ev, out)
    elif qty < current:
        dec = current - qty
        unshipped = current - line.shipped
        if dec > unshipped:
            _raise(s, out, Code.CHANGE_BELOW_SHIPPED,
                   f"line {line_id} changed to {qty} but {line.shipped} already shipped: "
                   f"cancelled the {unshipped} unshipped", eid, ts, line.sku)
            dec = unshipped
        if dec:
            _cancel(s, line, dec, ev, out)


def _on_line_cancelled(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    eid = ev["event_id"]
    ts = ev["occurred_at"]
    line_id = ev["line_id"]
    qty = ev.get("quantity")
    line = _line_or_raise(s, out, line_id, "OrderLineCancelled", eid, ts)
    if line is None:
        return
    if _is_line_cancelled(line):
        _raise(s, out, Code.EVENT_AFTER_CANCEL, f"line {line_id} is already cancelled", eid,
               ts, line.sku)
        return
    if qty is not None and qty < 0:
        _raise(s, out, Code.INVALID_QUANTITY, f"cancel of {qty} on line {line_id}", eid, ts,
               line.sku)
        return
    unshipped = line.ordered - line.cancelled - line.shipped
    want = unshipped if qty is None else qty
    if want > unshipped or (qty is None and unshipped == 0):
        _raise(s, out, Code.CANCEL_EXCEEDS_OPEN,
               f"cancel of {'all' if qty is None else qty} on line {line_id}: only "
               f"{unshipped} unshipped, cancelled that", eid, ts, line.sku)
        want = unshipped
    if want:
        _cancel(s, line, want, ev, out)


def _on_order_cancelled(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    eid = ev["event_id"]
    ts = ev["occurred_at"]
    if is_cancelled(s):
        _raise(s, out, Code.EVENT_AFTER_CANCEL, "order is already cancelled", eid, ts)
        return
    total = 0
    for line in s.lines.values():
        unshipped = line.ordered - line.cancelled - line.shipped
        if unshipped > 0:
            _cancel(s, line, unshipped, ev, out)
            total += unshipped
    if total == 0:
        _raise(s, out, Code.CANCEL_EXCEEDS_OPEN, "OrderCancelled: nothing unshipped to cancel",
               eid, ts)


# -- shipments ---------------------------------------------------------------------------
def _shipment_items(ev: Mapping[str, Any]) -> list[tuple[str, int]]:
    return [(i["line_id"], i["quantity"]) for i in ev["lines"]]


def _on_picked(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    eid = ev["event_id"]
    ts = ev["occurred_at"]
    sid = ev["shipment_id"]
    wh = ev["warehouse_id"]
    items = _shipment_items(ev)
    shp = s.shipments.get(sid)
    if shp is None:
        s.shipments[sid] = Shipment(sid, wh, picked_at=ts)
    elif shp.picked_at is None:
        shp.picked_at = ts
    for line_id, _qty in items:
        _line_or_raise(s, out, line_id, f"ShipmentPicked {sid}", eid, ts)


def _on_dispatched(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    eid = ev["event_id"]
    ts = ev["occurred_at"]
    sid = ev["shipment_id"]
    wh = ev["warehouse_id"]
    carrier = ev["carrier"]
    tracking = ev["tracking_number"]
    items = _shipment_items(ev)
    shp = s.shipments.get(sid)
    if shp is not None and shp.dispatched_at is not None:
        _raise(s, out, Code.DUPLICATE_SHIPMENT,
               f"shipment {sid} already dispatched at {shp.dispatched_at}; ignored", eid, ts)
        return
    if shp is None:
        shp = s.shipments[sid] = Shipment(sid, wh)
    shp.warehouse_id = wh
    shp.carrier = carrier
    shp.tracking_number = tracking
    shp.dispatched_at = ts
    out.publish = True
    accepted = s.accepted_at is not None
    counted = shp.lines
    for line_id, qty in items:
        line = _line_or_raise(s, out, line_id, f"ShipmentDispatched {sid}", eid, ts)
        if line is None:
            continue
        if qty <= 0:
            if qty < 0:
                _raise(s, out, Code.INVALID_QUANTITY,
                       f"shipment {sid} line {line_id} quantity {qty}", eid, ts, line.sku)
            continue
        open_ = line.ordered - line.cancelled - line.shipped
        take = qty
        if qty > open_:
            take = open_
            if line.shipped + qty <= line.ordered:
                code = Code.EVENT_AFTER_CANCEL
                why = f"{line.cancelled} of {line.ordered} cancelled"
            else:
                code = Code.SHIP_EXCEEDS_ORDERED
                why = f"{line.ordered} ordered, {line.cancelled} cancelled"
            _raise(s, out, code,
                   f"shipment {sid} line {line_id}: dispatched {qty}, {line.shipped} already "
                   f"shipped, {why}: counted {take}", eid, ts, line.sku)
        line.alloc_seq += 1
        out.allocation.append(
            StockIssue(
                s.order_id, line_id, line.sku, wh, qty, line.warehouse_id if accepted else None,
                sid, ts, line.alloc_seq, eid,
            )
        )
        if take:
            line.shipped += take
            counted[line_id] = counted.get(line_id, 0) + take
            if line.invoice_parked:  # invoice lines that were waiting for this shipment
                t = min(line.invoice_parked, line.shipped - line.invoiced)
                line.invoiced += t
                line.invoice_parked -= t
        if accepted:
            line.inflight.append([line.alloc_seq, ISSUE, qty])
            reconcile_line(line)
    delivered = s.early_deliveries.pop(sid, None)
    if delivered is not None:
        _deliver(s, shp, delivered)


def _deliver(s: OrderState, shp: Shipment, at: int) -> None:
    shp.delivered_at = at
    lines = s.lines
    for line_id, qty in shp.lines.items():
        lines[line_id].delivered += qty


def _on_delivered(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    eid = ev["event_id"]
    ts = ev["occurred_at"]
    sid = ev["shipment_id"]
    shp = s.shipments.get(sid)
    if shp is None or shp.dispatched_at is None:
        _raise(s, out, Code.UNKNOWN_SHIPMENT,
               f"ShipmentDelivered for shipment {sid} not dispatched (yet): applied when its "
               f"ShipmentDispatched arrives", eid, ts)
        s.early_deliveries.setdefault(sid, ts)
        return
    if shp.delivered_at is not None:
        _raise(s, out, Code.DUPLICATE_DELIVERY,
               f"shipment {sid} already delivered at {shp.delivered_at}", eid, ts)
        return
    _deliver(s, shp, ts)
    out.publish = True


# -- payments ----------------------------------------------------------------------------
def _check_overpayment(s: OrderState, out: Outcome, eid: str, ts: int) -> None:
    net = s.paid_minor - s.refunded_minor
    if net > s.invoiced_minor and fully_invoiced(s):
        _raise(s, out, Code.OVERPAYMENT,
               f"fully invoiced order paid {net} net of refunds for {s.invoiced_minor} "
               f"invoiced: {net - s.invoiced_minor} in credit", eid, ts)


def _on_invoice(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    eid = ev["event_id"]
    ts = ev["occurred_at"]
    inv_id = ev["invoice_id"]
    total = ev["total_minor"]
    due = ev.get("due_at")
    items = [[i["line_id"], i["quantity"], i["amount_minor"]] for i in ev["lines"]]
    if inv_id in s.invoices:
        _raise(s, out, Code.DUPLICATE_INVOICE, f"invoice {inv_id} already posted; ignored",
               eid, ts)
        return
    if total < 0:
        _raise(s, out, Code.INVALID_AMOUNT, f"invoice {inv_id} total {total}; ignored", eid, ts)
        return
    was_fully_invoiced = fully_invoiced(s)
    for line_id, qty, _amount in items:
        line = _line_or_raise(s, out, line_id, f"invoice {inv_id}", eid, ts)
        if line is None:
            continue
        if qty < 0:
            _raise(s, out, Code.INVALID_QUANTITY, f"invoice {inv_id} line {line_id} qty {qty}",
                   eid, ts, line.sku)
            continue
        room = line.shipped - line.invoiced
        if qty > room:
            _raise(s, out, Code.INVOICE_EXCEEDS_SHIPPED,
                   f"invoice {inv_id} line {line_id}: {qty} invoiced, {room} shipped and not "
                   f"yet invoiced: counted {room}, {qty - room} waits for shipments",
                   eid, ts, line.sku)
            line.invoiced += room
            line.invoice_parked += qty - room
        else:
            line.invoiced += qty
    s.invoiced_minor += total
    applied = 0
    for p in s.payments.values():
        if p.invoice_id == inv_id and p.amount_minor is not None:
            applied += p.amount_minor
    s.invoices[inv_id] = Invoice(
        inv_id, total, items, ts, due if due is not None else ts + s.payment_terms_days * DAY_MS,
        applied,
    )
    out.publish = True
    if applied > total:
        _raise(s, out, Code.OVERPAYMENT,
               f"invoice {inv_id} of {total} already has {applied} applied", eid, ts)
    elif not was_fully_invoiced:
        _check_overpayment(s, out, eid, ts)


def _on_payment(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    eid = ev["event_id"]
    ts = ev["occurred_at"]
    pid = ev["payment_id"]
    inv_id = ev.get("invoice_id")
    amount = ev["amount_minor"]
    if amount < 0:
        _raise(s, out, Code.INVALID_AMOUNT, f"payment {pid} amount {amount}; ignored", eid, ts)
        return
    pay = s.payments.get(pid)
    if pay is not None and pay.amount_minor is not None:
        _raise(s, out, Code.DUPLICATE_PAYMENT,
               f"payment {pid} already received at {pay.received_at}; ignored", eid, ts)
        return
    if pay is None:
        s.payments[pid] = Payment(pid, inv_id, amount, 0, ts)
    else:  # a refund of it arrived first
        pay.invoice_id = inv_id
        pay.amount_minor = amount
        pay.received_at = ts
        if pay.refunded_minor > amount:
            _raise(s, out, Code.REFUND_EXCEEDS_PAID,
                   f"payment {pid} of {amount} was refunded {pay.refunded_minor}", eid, ts)
    s.paid_minor += amount
    out.publish = True
    if inv_id is not None:
        inv = s.invoices.get(inv_id)
        if inv is None:
            _raise(s, out, Code.UNKNOWN_INVOICE,
                   f"payment {pid} of {amount} for unknown invoice {inv_id}: counted as paid",
                   eid, ts)
        else:
            inv.applied_minor += amount
            if inv.applied_minor > inv.total_minor:
                _raise(s, out, Code.OVERPAYMENT,
                       f"invoice {inv_id} of {inv.total_minor} has {inv.applied_minor} applied",
                       eid, ts)
                return
    _check_overpayment(s, out, eid, ts)


def _on_refund(s: OrderState, ev: Mapping[str, Any], out: Outcome) -> None:
    eid = ev["event_id"]
    ts = ev["occurred_at"]
    pid = ev["payment_id"]
    amount = ev["amount_minor"]
    if amount < 0:
        _raise(s, out, Code.INVALID_AMOUNT, f"refund of payment {pid} amount {amount}; ignored",
               eid, ts)
        return
    pay = s.payments.get(pid)
    if pay is None:
        s.payments[pid] = Payment(pid, None, None, amount, None)
        _raise(s, out, Code.UNKNOWN_PAYMENT,
               f"refund of {amount} for unknown payment {pid}: counted as refunded", eid, ts)
    else:
        pay.refunded_minor += amount
        if pay.amount_minor is not None and pay.refunded_minor > pay.amount_minor:
            _raise(s, out, Code.REFUND_EXCEEDS_PAID,
                   f"payment {pid} of {pay.amount_minor} refunded {pay.refunded_minor} in total",
                   eid, ts)
    s.refunded_minor += amount
    out.publish = True


_HANDLERS: dict[str, Callable[[OrderState, Mapping[str, Any], Outcome], None]] = {
    "OrderPlaced": _on_placed,
    "OrderAccepted": _on_accepted,
    "OrderHoldApplied": _on_hold_applied,
    "OrderHoldReleased": _on_hold_released,
    "OrderLineChanged": _on_line_changed,
    "OrderLineCancelled": _on_line_cancelled,
    "OrderCancelled": _on_order_cancelled,
    "ShipmentPicked": _on_picked,
    "ShipmentDispatched": _on_dispatched,
    "ShipmentDelivered": _on_delivered,
    "InvoicePosted": _on_invoice,
    "PaymentReceived": _on_payment,
    "PaymentRefunded": _on_refund,
}
