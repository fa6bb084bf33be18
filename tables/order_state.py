"""The order's state as kept in the RocksDB `orders` table, and its byte form.

Plain slotted dataclasses, mutated in place by `tables.order.apply_event`. The byte form
is compact JSON made of positional arrays (no field names), versioned by its first element;
`from_bytes(to_bytes(s)) == s` exactly. Header status is never stored: see
`tables.status.derive_status`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tables.exceptions import BusinessException
from tables.jsontext import encoder

FORMAT_VERSION = 1

MAX_SEEN_EVENT_IDS = 256
"""Event ids remembered per order for idempotency (most recent first out)."""
MAX_BUFFERED_EVENTS = 256
"""Events kept per order while its OrderPlaced has not arrived."""
MAX_RECENT_EXCEPTIONS = 20
"""Business exceptions kept in the state (and in OrderStatusChanged.exceptions)."""

MILESTONES: tuple[str, ...] = (
    "placed_at",
    "accepted_at",
    "allocated_at",
    "shipped_at",
    "delivered_at",
    "invoiced_at",
    "paid_at",
    "closed_at",
    "cancelled_at",
)


@dataclass(slots=True)
class Line:
    """One order line's quantity buckets (SPEC §4) plus allocation bookkeeping."""

    line_id: str
    sku: str
    unit_price_minor: int
    warehouse_id: str | None  # requested at placement, then where the inventory reserved it
    ordered: int  # gross ordered quantity (placement + increases)
    cancelled: int = 0
    allocated: int = 0
    backordered: int = 0
    pending: int = 0  # requested from the inventory side, not answered yet
    shipped: int = 0
    delivered: int = 0
    invoiced: int = 0
    invoice_parked: int = 0  # invoiced beyond shipped: not counted, matched by later shipments
    promised_at: int | None = None
    # allocation contract (tables.allocation)
    alloc_seq: int = 0  # seq of the last message sent to the inventory side for this line
    alloc_ack: int = 0  # ack_seq of the last AllocationResult applied
    base_allocated: int = 0  # ... and its absolute numbers
    base_backordered: int = 0
    inflight: list[list[int]] = field(default_factory=list)  # [seq, RELEASE|ISSUE, qty]

    def to_list(self) -> list[Any]:
        return [
            self.line_id, self.sku, self.unit_price_minor, self.warehouse_id, self.ordered,
            self.cancelled, self.allocated, self.backordered, self.pending, self.shipped,
            self.delivered, self.invoiced, self.invoice_parked, self.promised_at,
            self.alloc_seq, self.alloc_ack, self.base_allocated, self.base_backordered,
            self.inflight,
        ]


@dataclass(slots=True)
class Shipment:
    shipment_id: str
    warehouse_id: str | None
    carrier: str | None = None
    tracking_number: str | None = None
    lines: dict[str, int] = field(default_factory=dict)  # line_id -> quantity counted shipped
    picked_at: int | None = None
    dispatched_at: int | None = None
    delivered_at: int | None = None

    def to_list(self) -> list[Any]:
        return [
            self.shipment_id, self.warehouse_id, self.carrier, self.tracking_number,
            self.lines, self.picked_at, self.dispatched_at, self.delivered_at,
        ]


@dataclass(slots=True)
class Invoice:
    invoice_id: str
    total_minor: int
    lines: list[list[Any]]  # [line_id, quantity, amount_minor] as posted
    posted_at: int
    due_at: int
    applied_minor: int = 0  # cash of PaymentReceived naming this invoice

    def to_list(self) -> list[Any]:
        return [
            self.invoice_id, self.total_minor, self.lines, self.posted_at, self.due_at,
            self.applied_minor,
        ]


@dataclass(slots=True)
class Payment:
    payment_id: str
    invoice_id: str | None
    amount_minor: int | None  # None: only a refund of it has been seen so far
    refunded_minor: int = 0
    received_at: int | None = None

    def to_list(self) -> list[Any]:
        return [
            self.payment_id, self.invoice_id, self.amount_minor, self.refunded_minor,
            self.received_at,
        ]


@dataclass(slots=True)
class OrderState:
    order_id: str
    # header (OrderPlaced)
    customer_id: str | None = None
    channel: str | None = None
    region: str | None = None
    currency: str | None = None
    payment_terms_days: int = 30
    promised_ship_at: int | None = None
    # milestones (epoch ms, business time of the event that first reached them)
    placed_at: int | None = None
    accepted_at: int | None = None
    allocated_at: int | None = None
    shipped_at: int | None = None
    delivered_at: int | None = None
    invoiced_at: int | None = None
    paid_at: int | None = None
    closed_at: int | None = None
    cancelled_at: int | None = None
    lines: dict[str, Line] = field(default_factory=dict)
    holds: dict[str, list[Any]] = field(default_factory=dict)  # hold_type -> [reason, since]
    invoiced_minor: int = 0
    paid_minor: int = 0
    refunded_minor: int = 0
    invoices: dict[str, Invoice] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    shipments: dict[str, Shipment] = field(default_factory=dict)
    early_deliveries: dict[str, int] = field(default_factory=dict)  # shipment_id -> delivered
    exceptions: list[BusinessException] = field(default_factory=list)  # most recent last
    exceptions_total: int = 0
    seen: dict[str, None] = field(default_factory=dict)  # insertion-ordered set of event ids
    buffer: list[dict[str, Any]] = field(default_factory=list)  # events before OrderPlaced
    orphan_since: int | None = None  # occurred_at of the first buffered event
    orphan_since_wall: int | None = None  # wall time (ms) it was buffered, when known
    seq: int = 0  # last published OrderStatusChanged.seq
    last_status: str | None = None  # status of that publication
    # SLA (tables.sla): {milestone, due_at, detected_at}; closed ones add {met_at, late}
    open_breaches: list[dict[str, Any]] = field(default_factory=list)
    closed_breaches: list[dict[str, Any]] = field(default_factory=list)
    # What changed, change by change (tables.timeline), as its stored bytes: appended to without
    # decoding, decoded only to fold old entries or to answer GET /orders/{id}/timeline.
    timeline: bytes | None = None
    # Cases this order opened that a later state of it may clear (tables.cases `may_clear`), in
    # their stored form: the order agent tells the case agent when their cause is gone.
    open_cases: list[list[Any]] = field(default_factory=list)

    # -- derived helpers -------------------------------------------------------------
    @property
    def placed(self) -> bool:
        return self.placed_at is not None

    @property
    def accepted(self) -> bool:
        return self.accepted_at is not None

    @property
    def awaits_inventory(self) -> bool:
        """An answer of the inventory side may still change this order: a line has a message
        not answered yet, or a backorder that stock arriving (or released) would fill."""
        for line in self.lines.values():
            if line.alloc_ack < line.alloc_seq or line.backordered:
                return True
        return False

    @property
    def open_balance_minor(self) -> int:
        """Invoiced and not paid (net of refunds); negative when the customer is in credit."""
        return self.invoiced_minor - self.paid_minor + self.refunded_minor

    # -- bytes ------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        return _encode(
            [
                FORMAT_VERSION, self.order_id, self.customer_id, self.channel, self.region,
                self.currency, self.payment_terms_days, self.promised_ship_at,
                self.placed_at, self.accepted_at, self.allocated_at, self.shipped_at,
                self.delivered_at, self.invoiced_at, self.paid_at, self.closed_at,
                self.cancelled_at,
                [ln.to_list() for ln in self.lines.values()],
                self.holds,
                self.invoiced_minor, self.paid_minor, self.refunded_minor,
                [i.to_list() for i in self.invoices.values()],
                [p.to_list() for p in self.payments.values()],
                [s.to_list() for s in self.shipments.values()],
                self.early_deliveries,
                [
                    [e.code, e.order_id, e.detail, e.cause_event_id, e.occurred_at, e.sku]
                    for e in self.exceptions
                ],
                self.exceptions_total,
                list(self.seen),
                self.buffer,
                self.orphan_since, self.orphan_since_wall,
                self.seq, self.last_status,
                self.open_breaches,
                self.closed_breaches,
                self.open_cases,
            ]
        ).encode() + (_TIMELINE + self.timeline if self.timeline else b"")

    @classmethod
    def from_bytes(cls, data: bytes | str) -> OrderState:
        if isinstance(data, str):
            data = data.encode()
        main, _, timeline = data.partition(_TIMELINE)
        v = _decode(main)
        if v[0] != FORMAT_VERSION:
            raise ValueError(f"unsupported OrderState format version {v[0]!r}")
        s = cls(*v[1:17])
        s.lines = {x[0]: Line(*x) for x in v[17]}
        s.holds = v[18]
        s.invoiced_minor, s.paid_minor, s.refunded_minor = v[19], v[20], v[21]
        s.invoices = {x[0]: Invoice(*x) for x in v[22]}
        s.payments = {x[0]: Payment(*x) for x in v[23]}
        s.shipments = {x[0]: Shipment(*x) for x in v[24]}
        s.early_deliveries = v[25]
        s.exceptions = [BusinessException(*x) for x in v[26]]
        s.exceptions_total = v[27]
        s.seen = dict.fromkeys(v[28])
        s.buffer = v[29]
        s.orphan_since, s.orphan_since_wall = v[30], v[31]
        s.seq, s.last_status = v[32], v[33]
        s.open_breaches = v[34]
        s.closed_breaches = v[35] if len(v) > 35 else []  # absent in states written before
        s.open_cases = v[36] if len(v) > 36 else []
        s.timeline = timeline or None
        return s


_TIMELINE = b"\n"
"""Separates the state's JSON from its timeline's bytes (never in compact JSON: newlines in
strings are escaped), so that decoding a state leaves the timeline undecoded."""
_encode = encoder(ensure_ascii=False, allow_nan=False)
_decode = json.loads
