"""Shared helpers of the order-model tests: event builders and a fake inventory side.

(Named test_order_* so it lives with the tests it serves; it defines no tests itself.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from tables.allocation import (
    AllocationRelease,
    AllocationRequest,
    AllocationResult,
    StockIssue,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ORDER = "SO-1"


class Events:
    """Builds flat contract events (docs/contract-fields.md) with unique ids and times."""

    def __init__(self, order_id: str = ORDER, t0: int = T0) -> None:
        self.order_id = order_id
        self.n = 0
        self.t0 = t0

    def make(self, event_type: str, _at: int | None = None, **fields: Any) -> dict[str, Any]:
        self.n += 1
        return {
            "event_id": f"{self.order_id}-e{self.n}",
            "event_type": event_type,
            "occurred_at": self.t0 + self.n * 60_000 if _at is None else _at,
            "source": "test",
            "correlation_id": None,
            "order_id": self.order_id,
            **fields,
        }

    def placed(self, lines: Iterable[tuple], **kw: Any) -> dict[str, Any]:
        """lines: (line_id, sku, quantity, unit_price_minor[, warehouse_id])."""
        return self.make(
            "OrderPlaced",
            customer_id=kw.pop("customer_id", "C-1"),
            channel=kw.pop("channel", "EDI"),
            region=kw.pop("region", "EU"),
            currency=kw.pop("currency", "EUR"),
            payment_terms_days=kw.pop("payment_terms_days", 30),
            promised_ship_at=kw.pop("promised_ship_at", None),
            lines=[
                {
                    "line_id": ln[0],
                    "sku": ln[1],
                    "quantity": ln[2],
                    "unit_price_minor": ln[3],
                    "warehouse_id": ln[4] if len(ln) > 4 else None,
                }
                for ln in lines
            ],
            **kw,
        )

    def accepted(self) -> dict[str, Any]:
        return self.make("OrderAccepted")

    def hold(self, hold_type: str, reason: str = "r") -> dict[str, Any]:
        return self.make("OrderHoldApplied", hold_type=hold_type, reason=reason)

    def release(self, hold_type: str) -> dict[str, Any]:
        return self.make("OrderHoldReleased", hold_type=hold_type)

    def line_changed(self, line_id: str, quantity: int) -> dict[str, Any]:
        return self.make("OrderLineChanged", line_id=line_id, quantity=quantity)

    def line_cancelled(self, line_id: str, quantity: int | None = None) -> dict[str, Any]:
        return self.make("OrderLineCancelled", line_id=line_id, quantity=quantity, reason="r")

    def cancelled(self) -> dict[str, Any]:
        return self.make("OrderCancelled", reason="customer")

    def picked(self, sid: str, lines: dict[str, int], wh: str = "W1") -> dict[str, Any]:
        return self.make(
            "ShipmentPicked", shipment_id=sid, warehouse_id=wh,
            lines=[{"line_id": k, "quantity": v} for k, v in lines.items()],
        )

    def dispatched(self, sid: str, lines: dict[str, int], wh: str = "W1") -> dict[str, Any]:
        return self.make(
            "ShipmentDispatched", shipment_id=sid, warehouse_id=wh, carrier="UPS",
            tracking_number=f"1Z{sid}",
            lines=[{"line_id": k, "quantity": v} for k, v in lines.items()],
        )

    def delivered(self, sid: str) -> dict[str, Any]:
        return self.make("ShipmentDelivered", shipment_id=sid)

    def invoice(self, iid: str, lines: dict[str, tuple[int, int]], total: int | None = None,
                due_at: int | None = None) -> dict[str, Any]:
        """lines: line_id -> (quantity, amount_minor); total defaults to the sum."""
        return self.make(
            "InvoicePosted", invoice_id=iid,
            lines=[{"line_id": k, "quantity": q, "amount_minor": a} for k, (q, a) in lines.items()],
            total_minor=sum(a for _, a in lines.values()) if total is None else total,
            due_at=due_at,
        )

    def payment(self, pid: str, amount: int, invoice_id: str | None = None) -> dict[str, Any]:
        return self.make("PaymentReceived", payment_id=pid, invoice_id=invoice_id,
                         amount_minor=amount)

    def refund(self, pid: str, amount: int) -> dict[str, Any]:
        return self.make("PaymentRefunded", payment_id=pid, amount_minor=amount, reason="r")


class FakeInventory:
    """A test double of the inventory side honouring the allocation contract.

    It processes the order's messages in the order they were emitted (one SKU partition)
    and answers each with the line's absolute allocation. Policy: each line may reserve up
    to `cap[line_id]` units (default `default_cap`); physical issues consume that stock;
    `restock()` adds stock (filling backorders). After every change the line holds
    `allocated = min(open, stock)`, the rest backordered (with a promise date).
    """

    def __init__(self, caps: dict[str, int] | None = None, default_cap: int = 10**9,
                 warehouse: str = "W1", promise_at: int = T0 + 7 * 86_400_000) -> None:
        self.caps = dict(caps or {})
        self.default_cap = default_cap
        self.warehouse = warehouse
        self.promise_at = promise_at
        self.inbox: deque = deque()
        self.outbox: deque[AllocationResult] = deque()
        # (order_id, line_id) -> [total, stock, last_seq, warehouse, requested, sku]
        self.recs: dict[tuple[str, str], list[Any]] = {}
        self.n = 0

    def send(self, messages: Iterable[Any]) -> None:
        self.inbox.extend(messages)

    def _rec(self, msg: Any) -> list[Any]:
        key = (msg.order_id, msg.line_id)
        rec = self.recs.get(key)
        if rec is None:
            rec = self.recs[key] = [
                0, self.caps.get(msg.line_id, self.default_cap), 0, None, False, msg.sku,
            ]
        return rec

    def _answer(self, order_id: str, line_id: str, rec: list[Any], at: int) -> None:
        if not rec[4]:  # never asked for a reservation: nothing to answer
            return
        total, stock = rec[0], rec[1]
        a = min(total, stock)
        b = total - a
        self.n += 1
        self.outbox.append(
            AllocationResult(
                order_id, line_id, rec[5], rec[3], a, b, self.promise_at if b else None,
                rec[2], f"R{self.n}", at,
            )
        )

    def process_one(self) -> None:
        msg = self.inbox.popleft()
        rec = self._rec(msg)
        rec[2] = msg.seq
        if isinstance(msg, AllocationRequest):
            rec[0] += msg.quantity
            rec[4] = True
            if rec[3] is None:
                rec[3] = msg.warehouse_id or self.warehouse
            at = msg.requested_at
        elif isinstance(msg, AllocationRelease):
            rec[0] -= min(msg.quantity, rec[0])
            at = msg.released_at
        else:
            assert isinstance(msg, StockIssue)
            rec[0] -= min(msg.quantity, rec[0])
            rec[1] = max(0, rec[1] - msg.quantity)
            at = msg.issued_at
        self._answer(msg.order_id, msg.line_id, rec, at)

    def restock(self, order_id: str, line_id: str, qty: int, at: int) -> None:
        rec = self.recs.get((order_id, line_id))
        if rec is not None:
            rec[1] += qty
            self._answer(order_id, line_id, rec, at)

    def deliver_one(self) -> AllocationResult:
        return self.outbox.popleft()

    def process_all(self) -> None:
        while self.inbox:
            self.process_one()


class Harness:
    """One order, its events, a FakeInventory and every OrderStatusChanged published."""

    def __init__(self, order_id: str = ORDER, inventory: FakeInventory | None = None) -> None:
        from tables.order_state import OrderState

        self.state = OrderState(order_id)
        self.ev = Events(order_id)
        self.inv = inventory if inventory is not None else FakeInventory()
        self.published: list[dict[str, Any]] = []
        self.raised: list[Any] = []
        self.sent: list[Any] = []

    def apply(self, event: dict[str, Any], now: int | None = None):
        from tables.order import apply_event

        out = apply_event(self.state, event, now)
        self._after(out, event)
        return out

    def apply_result(self, result: AllocationResult):
        from tables.order import apply_allocation

        out = apply_allocation(self.state, result)
        self._after(out, result)
        return out

    def _after(self, out: Any, cause: Any) -> None:
        from tables.views import status_event

        self.inv.send(out.allocation)
        self.sent.extend(out.allocation)
        self.raised.extend(out.exceptions)
        if out.publish:
            at = cause.occurred_at if isinstance(cause, AllocationResult) else cause["occurred_at"]
            self.published.append(status_event(self.state, cause, at + 1))

    def settle(self) -> None:
        """Let the inventory side process everything and deliver every answer."""
        self.inv.process_all()
        while self.inv.outbox:
            self.apply_result(self.inv.deliver_one())

    def codes(self) -> list[str]:
        return [e.code for e in self.raised]

    def line(self, line_id: str):
        return self.state.lines[line_id]

    def buckets(self, line_id: str) -> dict[str, int]:
        ln = self.state.lines[line_id]
        return {
            "ordered": ln.ordered, "cancelled": ln.cancelled, "allocated": ln.allocated,
            "backordered": ln.backordered, "pending": ln.pending, "shipped": ln.shipped,
            "delivered": ln.delivered, "invoiced": ln.invoiced,
        }
