"""What the outside sees of an order: the OrderStatusChanged record and the HTTP view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tables.allocation import AllocationResult
from tables.order_state import OrderState
from tables.status import derive_status


def _milestones(s: OrderState) -> dict[str, int | None]:
    return {
        "placed_at": s.placed_at,
        "accepted_at": s.accepted_at,
        "allocated_at": s.allocated_at,
        "shipped_at": s.shipped_at,
        "delivered_at": s.delivered_at,
        "invoiced_at": s.invoiced_at,
        "paid_at": s.paid_at,
        "closed_at": s.closed_at,
        "cancelled_at": s.cancelled_at,
    }


def status_event(
    state: OrderState, cause: Mapping[str, Any] | AllocationResult, emitted_at: int
) -> dict[str, Any]:
    """Build the next `OrderStatusChanged` (flat dict, contract output section).

    Increments `state.seq` and remembers the published status as the next
    `previous_status`: call it once per publication and persist the state afterwards.
    `cause` is the applied event, or the AllocationResult.
    """
    if state.placed_at is None:
        raise ValueError(f"order {state.order_id} has no OrderPlaced yet: nothing to publish")
    status = derive_status(state)
    if isinstance(cause, AllocationResult):
        cause_id, cause_type = cause.result_id, AllocationResult.TYPE
        occurred_at, correlation_id = cause.occurred_at, None
    else:
        cause_id, cause_type = cause["event_id"], cause["event_type"]
        occurred_at, correlation_id = cause["occurred_at"], cause.get("correlation_id")
    state.seq += 1
    previous = state.last_status
    state.last_status = status
    return {
        "order_id": state.order_id,
        "seq": state.seq,
        "status": status,
        "previous_status": previous,
        "customer_id": state.customer_id,
        "channel": state.channel,
        "region": state.region,
        "currency": state.currency,
        "lines": [
            {
                "line_id": ln.line_id,
                "sku": ln.sku,
                "warehouse_id": ln.warehouse_id,
                "ordered": ln.ordered,
                "cancelled": ln.cancelled,
                "allocated": ln.allocated,
                "backordered": ln.backordered,
                "shipped": ln.shipped,
                "delivered": ln.delivered,
                "invoiced": ln.invoiced,
                "promised_at": ln.promised_at,
            }
            for ln in state.lines.values()
        ],
        "holds": sorted(state.holds),
        "invoiced_minor": state.invoiced_minor,
        "paid_minor": state.paid_minor,
        "refunded_minor": state.refunded_minor,
        "open_balance_minor": state.invoiced_minor - state.paid_minor + state.refunded_minor,
        "milestones": _milestones(state),
        "open_breaches": [dict(b) for b in state.open_breaches],
        "closed_breaches": [dict(b) for b in state.closed_breaches],
        "exceptions": [e.to_ref() for e in state.exceptions],
        "cause_event_id": cause_id,
        "cause_event_type": cause_type,
        "occurred_at": occurred_at,
        "emitted_at": emitted_at,
        "correlation_id": correlation_id,
    }


def to_view(state: OrderState) -> dict[str, Any]:
    """The full JSON-able order state for `GET /orders/{order_id}`."""
    return {
        "order_id": state.order_id,
        "placed": state.placed_at is not None,
        "status": derive_status(state),
        "seq": state.seq,
        "customer_id": state.customer_id,
        "channel": state.channel,
        "region": state.region,
        "currency": state.currency,
        "payment_terms_days": state.payment_terms_days,
        "promised_ship_at": state.promised_ship_at,
        "lines": [
            {
                "line_id": ln.line_id,
                "sku": ln.sku,
                "warehouse_id": ln.warehouse_id,
                "unit_price_minor": ln.unit_price_minor,
                "ordered": ln.ordered,
                "cancelled": ln.cancelled,
                "open": ln.ordered - ln.cancelled,
                "allocated": ln.allocated,
                "backordered": ln.backordered,
                "pending_allocation": ln.pending,
                "shipped": ln.shipped,
                "delivered": ln.delivered,
                "invoiced": ln.invoiced,
                "invoiced_unmatched": ln.invoice_parked,
                "promised_at": ln.promised_at,
            }
            for ln in state.lines.values()
        ],
        "holds": [
            {"hold_type": t, "reason": h[0], "since": h[1]} for t, h in sorted(state.holds.items())
        ],
        "invoiced_minor": state.invoiced_minor,
        "paid_minor": state.paid_minor,
        "refunded_minor": state.refunded_minor,
        "open_balance_minor": state.invoiced_minor - state.paid_minor + state.refunded_minor,
        "milestones": _milestones(state),
        "shipments": [
            {
                "shipment_id": sh.shipment_id,
                "warehouse_id": sh.warehouse_id,
                "carrier": sh.carrier,
                "tracking_number": sh.tracking_number,
                "lines": [{"line_id": k, "quantity": v} for k, v in sh.lines.items()],
                "picked_at": sh.picked_at,
                "dispatched_at": sh.dispatched_at,
                "delivered_at": sh.delivered_at,
            }
            for sh in state.shipments.values()
        ],
        "invoices": [
            {
                "invoice_id": inv.invoice_id,
                "total_minor": inv.total_minor,
                "lines": [
                    {"line_id": x[0], "quantity": x[1], "amount_minor": x[2]} for x in inv.lines
                ],
                "posted_at": inv.posted_at,
                "due_at": inv.due_at,
                "applied_minor": inv.applied_minor,
            }
            for inv in state.invoices.values()
        ],
        "payments": [
            {
                "payment_id": p.payment_id,
                "invoice_id": p.invoice_id,
                "amount_minor": p.amount_minor,
                "refunded_minor": p.refunded_minor,
                "received_at": p.received_at,
            }
            for p in state.payments.values()
        ],
        "open_breaches": [dict(b) for b in state.open_breaches],
        "closed_breaches": [dict(b) for b in state.closed_breaches],
        "exceptions": [e.to_dict() for e in state.exceptions],
        "exceptions_total": state.exceptions_total,
        "buffered_events": len(state.buffer),
        "orphan_since": state.orphan_since,
    }
