"""The exception work queue: cases, their rules and their listing (docs/operations-api.md).

A **case** is one problem an operator may have to act on: a business exception
(tables/exceptions.py, tables/ledger.py `InventoryCode`), an SLA breach, or an active order
hold. It is opened from an order transition (or from the inventory side's exceptions),
acknowledged, assigned and resolved by people, and resolved automatically when the order
later clears its cause. Everything here is pure: callers pass the states and the time in.

Why ids are derived from the cause and not numbered: replays, restarts and a second delivery
of the same transition must give the same case, so "open" is idempotent (the shell keeps
the stored case when the id already exists) and actions find their case on any worker.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from tables.exceptions import BusinessException, Code
from tables.jsontext import encoder
from tables.ledger import InventoryCode
from tables.order_state import OrderState
from tables.sla import Milestone, breached_milestones
from tables.status import is_cancelled


class CaseState:
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RESOLVED = "RESOLVED"


CASE_STATES: tuple[str, ...] = (CaseState.OPEN, CaseState.ACKNOWLEDGED, CaseState.RESOLVED)


class Severity:
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


SEVERITIES: tuple[str, ...] = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)


class Resolution:
    MANUAL = "MANUAL"  # someone resolved it (POST /cases/{id}/resolve)
    AUTO = "AUTO"  # the order cleared its cause


class Kind:
    """Whose partition a case lives on: the key of the topic its cause came from."""

    ORDER = "o"  # key order_id (orders, shipments, payments; SLA breaches; holds)
    SKU = "s"  # key sku (the inventory side's exceptions)


SLA_PREFIX = "SLA-"  # SLA-SHIPMENT, ...: the case of a breach of that milestone
HOLD_PREFIX = "HOLD-"  # HOLD-CREDIT, ...: the case of an active hold of that type
# (a hyphen, which no exception code has: HOLD_NOT_ACTIVE is an exception, not a hold)
AUTO_ACTOR = "system"  # `resolved_by` of an automatic resolution

# Why each severity (docs/operations-api.md "Severities"): CRITICAL = input was lost;
# HIGH = goods or money moved wrongly, a customer promise is broken, or the two sides of the
# allocation disagree; MEDIUM = a reference or value needs a look, or a process is late;
# LOW = a repeat or a harmless mistake that the model already ignored.
SEVERITY_BY_CODE: Mapping[str, str] = {
    Code.BUFFER_FULL: Severity.CRITICAL,
    Code.SHIP_EXCEEDS_ORDERED: Severity.HIGH,
    Code.INVOICE_EXCEEDS_SHIPPED: Severity.HIGH,
    Code.OVERPAYMENT: Severity.HIGH,
    Code.REFUND_EXCEEDS_PAID: Severity.HIGH,
    Code.EVENT_AFTER_CANCEL: Severity.HIGH,
    Code.INVALID_EVENT: Severity.HIGH,
    Code.ALLOCATION_MISMATCH: Severity.HIGH,
    Code.ORPHAN_EVENT: Severity.HIGH,  # not opened itself: the SLA-ORPHAN case covers it
    InventoryCode.NEGATIVE_ATP: Severity.HIGH,
    Code.UNKNOWN_LINE: Severity.MEDIUM,
    Code.UNKNOWN_INVOICE: Severity.MEDIUM,
    Code.UNKNOWN_PAYMENT: Severity.MEDIUM,
    Code.UNKNOWN_EVENT_TYPE: Severity.MEDIUM,
    Code.INVALID_AMOUNT: Severity.MEDIUM,
    Code.INVALID_QUANTITY: Severity.MEDIUM,
    Code.CHANGE_BELOW_SHIPPED: Severity.MEDIUM,
    Code.UNEXPECTED_ALLOCATION: Severity.MEDIUM,
    Code.DUPLICATE_ORDER: Severity.MEDIUM,
    Code.DUPLICATE_LINE: Severity.MEDIUM,
    InventoryCode.UNKNOWN_WAREHOUSE: Severity.MEDIUM,
    InventoryCode.RELEASE_EXCEEDS_ALLOCATION: Severity.MEDIUM,
    Code.UNKNOWN_SHIPMENT: Severity.LOW,
    Code.DUPLICATE_SHIPMENT: Severity.LOW,
    Code.DUPLICATE_DELIVERY: Severity.LOW,
    Code.DUPLICATE_INVOICE: Severity.LOW,
    Code.DUPLICATE_PAYMENT: Severity.LOW,
    Code.ALREADY_ACCEPTED: Severity.LOW,
    Code.HOLD_NOT_ACTIVE: Severity.LOW,
    Code.CANCEL_EXCEEDS_OPEN: Severity.LOW,
    Code.STALE_ALLOCATION: Severity.LOW,
    InventoryCode.STALE_SNAPSHOT: Severity.LOW,
    InventoryCode.UNKNOWN_ALLOCATION: Severity.LOW,
    # SLA breaches: a broken customer promise is HIGH, an internal process late is MEDIUM
    SLA_PREFIX + Milestone.ACCEPTANCE: Severity.MEDIUM,
    SLA_PREFIX + Milestone.ALLOCATION: Severity.MEDIUM,
    SLA_PREFIX + Milestone.SHIPMENT: Severity.HIGH,
    SLA_PREFIX + Milestone.DELIVERY: Severity.HIGH,
    SLA_PREFIX + Milestone.INVOICE: Severity.MEDIUM,
    SLA_PREFIX + Milestone.PAYMENT: Severity.MEDIUM,
    SLA_PREFIX + Milestone.ORPHAN: Severity.HIGH,
    # holds: fraud and compliance block the order for legal reasons, credit is routine
    HOLD_PREFIX + "FRAUD": Severity.HIGH,
    HOLD_PREFIX + "COMPLIANCE": Severity.HIGH,
    HOLD_PREFIX + "CREDIT": Severity.MEDIUM,
    HOLD_PREFIX + "MANUAL": Severity.LOW,
}
DEFAULT_SEVERITY = Severity.MEDIUM
"""A code missing from the table (a new one) is worth a look, not an alarm."""

NOT_OPENED: frozenset[str] = frozenset({Code.ORPHAN_EVENT})
"""Codes that open no case of their own: ORPHAN_EVENT is raised with the ORPHAN breach,
whose SLA-ORPHAN case is the one to work on (and auto-resolves when OrderPlaced arrives)."""

MAX_ACTION_IDS = 16
"""Action ids remembered per case, so a repeated action (a retried request) is a no-op."""
MAX_WHO = 128
MAX_NOTE = 2000


def severity_of(code: str) -> str:
    return SEVERITY_BY_CODE.get(code, DEFAULT_SEVERITY)


# -- errors ---------------------------------------------------------------------------
class CaseError(ValueError):
    """A refused case request: `code` is a stable machine-readable reason, `http_status` what
    the HTTP layer answers."""

    def __init__(self, code: str, message: str, http_status: int) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": str(self)}


class CaseTransitionError(CaseError):
    """An action the case's state does not allow (409), or a malformed action (400)."""

    def __init__(self, code: str, message: str, http_status: int = 409) -> None:
        super().__init__(code, message, http_status)


class CaseQueryError(CaseError):
    """A bad listing request (unknown parameter, bad value, foreign cursor: 400) or a case id
    that cannot exist (404)."""

    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        super().__init__(code, message, http_status)


# -- case ids -------------------------------------------------------------------------
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPE = re.compile(r"~([0-9A-F]{2})")
_ALL_SAFE = re.compile(r"[A-Za-z0-9_-]*")  # a component made of `_SAFE` only: nothing escaped


def escape_part(text: str) -> str:
    """One id component in URL-unreserved characters: letters, digits, `_` and `-` stay, every
    other UTF-8 byte becomes `~HH`; so `.` can separate components."""
    if _ALL_SAFE.fullmatch(text):  # most ids: one C call instead of a loop per character
        return text
    out: list[str] = []
    for ch in text:
        if ch in _SAFE:
            out.append(ch)
        else:
            out.extend(f"~{b:02X}" for b in ch.encode())
    return "".join(out)


def unescape_part(part: str) -> str:
    """The inverse of `escape_part`; CaseQueryError (404) when `part` is not its output."""
    if _ALL_SAFE.fullmatch(part):  # nothing escaped: its own escape, as most components are
        return part
    try:
        raw = bytearray()
        i = 0
        while i < len(part):
            m = _ESCAPE.match(part, i)
            if m:
                raw.append(int(m.group(1), 16))
                i = m.end()
            elif part[i] in _SAFE:
                raw.extend(part[i].encode())
                i += 1
            else:
                raise ValueError(part[i])
        text = raw.decode()
    except ValueError:
        raise CaseQueryError("NO_SUCH_CASE", f"not a case id component: {part!r}", 404) from None
    if escape_part(text) != part:  # e.g. an escaped letter: not the canonical form
        raise CaseQueryError("NO_SUCH_CASE", f"not a case id component: {part!r}", 404)
    return text


def make_case_id(kind: str, key: str, code: str, *rest: str) -> str:
    return ".".join(escape_part(p) for p in (kind, key, code, *rest))


@dataclass(frozen=True, slots=True)
class CaseRef:
    """A case id taken apart: where it lives (`kind`, `key`) and what it is."""

    kind: str
    key: str
    code: str
    rest: tuple[str, ...]  # exception: (cause_event_id, digest); hold: (since,); breach: ()


@lru_cache(maxsize=1 << 14)  # a case's id is parsed at each of its facts and actions (`Case.key`)
def parse_case_id(case_id: str) -> CaseRef:
    """Split an id (e.g. from a URL) to route an action to the partition of its key.

    CaseQueryError (404) when the id is not one `make_case_id` can produce."""
    parts = case_id.split(".")
    if len(parts) < 3 or parts[0] not in (Kind.ORDER, Kind.SKU):
        raise CaseQueryError("NO_SUCH_CASE", f"not a case id: {case_id!r}", 404)
    kind, key, code, *rest = (unescape_part(p) for p in parts)
    expected = 0 if code.startswith(SLA_PREFIX) else 1 if code.startswith(HOLD_PREFIX) else 2
    if len(rest) != expected:
        raise CaseQueryError("NO_SUCH_CASE", f"not a case id: {case_id!r}", 404)
    return CaseRef(kind, key, code, tuple(rest))


def exception_digest(exc: BusinessException) -> str:
    """8 hex digits of the exception's content: tells apart several exceptions of one code that
    one event raised (two unknown lines in one shipment) without depending on their order."""
    text = "\x1f".join((exc.code, exc.cause_event_id, exc.sku or "", exc.detail))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# -- the case -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Case:
    """One work item. Immutable: every change returns a new Case with `version` + 1."""

    case_id: str
    code: str
    severity: str
    opened_at: int  # business time the problem started (exception, detection, hold since)
    order_id: str | None
    sku: str | None
    warehouse_id: str | None
    region: str | None
    channel: str | None
    customer_id: str | None
    detail: str
    cause_event_id: str | None = None
    milestone: str | None = None  # breach cases
    due_at: int | None = None  # breach cases
    ref: str | None = None  # what clears it: shipment, invoice, payment or line id; hold since
    state: str = CaseState.OPEN
    assignee: str | None = None
    note: str | None = None  # the last note given
    updated_at: int = 0
    updated_by: str | None = None
    acknowledged_at: int | None = None
    acknowledged_by: str | None = None
    resolved_at: int | None = None
    resolved_by: str | None = None
    resolution: str | None = None  # Resolution.MANUAL | AUTO once resolved
    version: int = 1
    action_ids: tuple[str, ...] = ()  # the last MAX_ACTION_IDS actions applied

    @property
    def kind(self) -> str:
        return self.case_id.split(".", 1)[0]

    @property
    def key(self) -> str:
        """The partition key of the case (order_id or sku): actions are keyed by it."""
        return parse_case_id(self.case_id).key

    @property
    def is_resolved(self) -> bool:
        return self.state == CaseState.RESOLVED

    def age_ms(self, now: int) -> int:
        """How long it has been open: until `now`, or until it was resolved."""
        end = self.resolved_at if self.resolved_at is not None else now
        return max(0, end - self.opened_at)

    # -- forms ----------------------------------------------------------------------
    def to_list(self) -> list[Any]:
        """Compact positional form for storage and for worker-to-worker pages."""
        return [
            CASE_FORMAT, self.case_id, self.code, self.severity, self.opened_at, self.order_id,
            self.sku, self.warehouse_id, self.region, self.channel, self.customer_id,
            self.detail, self.cause_event_id, self.milestone, self.due_at, self.ref,
            self.state, self.assignee, self.note, self.updated_at, self.updated_by,
            self.acknowledged_at, self.acknowledged_by, self.resolved_at, self.resolved_by,
            self.resolution, self.version, list(self.action_ids),
        ]

    @classmethod
    def from_list(cls, v: Sequence[Any]) -> Case:
        if not v or v[0] != CASE_FORMAT:
            raise ValueError(f"unsupported case format {v[0] if v else None!r}")
        return cls(*v[1:-1], action_ids=tuple(v[-1]))

    def to_bytes(self) -> bytes:
        return _encode(self.to_list()).encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Case:
        return cls.from_list(json.loads(data))

    def to_record(self) -> dict[str, Any]:
        """The named form: the case-changes output record and the body of GET /cases/{id}."""
        return {
            "case_id": self.case_id,
            "version": self.version,
            "code": self.code,
            "severity": self.severity,
            "state": self.state,
            "opened_at": self.opened_at,
            "order_id": self.order_id,
            "sku": self.sku,
            "warehouse_id": self.warehouse_id,
            "region": self.region,
            "channel": self.channel,
            "customer_id": self.customer_id,
            "detail": self.detail,
            "cause_event_id": self.cause_event_id,
            "milestone": self.milestone,
            "due_at": self.due_at,
            "assignee": self.assignee,
            "note": self.note,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
            "acknowledged_at": self.acknowledged_at,
            "acknowledged_by": self.acknowledged_by,
            "resolved_at": self.resolved_at,
            "resolved_by": self.resolved_by,
            "resolution": self.resolution,
        }

    def view(self, now: int) -> dict[str, Any]:
        """`to_record()` plus `age_ms` at `now`, for the HTTP answers."""
        return {**self.to_record(), "age_ms": self.age_ms(now)}


CASE_FORMAT = 1

_encode = encoder(ensure_ascii=False, allow_nan=False)


# -- opening --------------------------------------------------------------------------
def _new_exceptions(before: OrderState | None, after: OrderState) -> list[BusinessException]:
    """The exceptions this transition raised, read from the state: the last
    `exceptions_total` difference of `after.exceptions` (at most MAX_RECENT_EXCEPTIONS)."""
    n = after.exceptions_total - (before.exceptions_total if before is not None else 0)
    return list(after.exceptions[-n:]) if n > 0 else []


def _order_warehouse(state: OrderState) -> str | None:
    """The order's warehouse when all its lines are at one, else None."""
    found = {ln.warehouse_id for ln in state.lines.values()}
    return found.pop() if len(found) == 1 else None


def _line_warehouse(state: OrderState, line_id: str | None, sku: str | None) -> str | None:
    if line_id is not None and line_id in state.lines:
        return state.lines[line_id].warehouse_id
    if sku is not None:
        found = {ln.warehouse_id for ln in state.lines.values() if ln.sku == sku}
        if len(found) == 1:
            return found.pop()
    return _order_warehouse(state)


def _one(candidates: Iterable[str]) -> str | None:
    found = set(candidates)
    return found.pop() if len(found) == 1 else None


def _exception_ref(exc: BusinessException, before: OrderState | None, after: OrderState) -> str | None:
    """What a later state must show for the exception to be cleared (see `clears`); None when
    the code never auto-resolves or the transition does not say unambiguously."""
    code = exc.code
    if code == Code.UNKNOWN_SHIPMENT:  # the delivery waits in early_deliveries for its dispatch
        old = before.early_deliveries if before is not None else {}
        return _one(s for s, at in after.early_deliveries.items() if at == exc.occurred_at and s not in old)
    if code == Code.UNKNOWN_INVOICE:  # the payment names an invoice not posted yet
        old_p = before.payments if before is not None else {}
        return _one(
            p.invoice_id
            for pid, p in after.payments.items()
            if p.invoice_id is not None
            and p.invoice_id not in after.invoices
            and p.received_at == exc.occurred_at
            and (pid not in old_p or old_p[pid].amount_minor is None)
        )
    if code == Code.UNKNOWN_PAYMENT:  # a refund of a payment not received yet
        old_p = before.payments if before is not None else {}
        return _one(pid for pid, p in after.payments.items() if p.amount_minor is None and pid not in old_p)
    if code == Code.INVOICE_EXCEEDS_SHIPPED:  # the excess waits in invoice_parked
        old_l = before.lines if before is not None else {}
        return _one(
            lid
            for lid, ln in after.lines.items()
            if ln.sku == exc.sku
            and ln.invoice_parked > (old_l[lid].invoice_parked if lid in old_l else 0)
        )
    return None


def _exception_case(kind: str, exc: BusinessException, state: OrderState | None, ref: str | None) -> Case:
    key = (exc.order_id or "") if kind == Kind.ORDER else (exc.sku or "")
    line_id = ref if exc.code == Code.INVOICE_EXCEEDS_SHIPPED else None
    return Case(
        case_id=make_case_id(kind, key, exc.code, exc.cause_event_id, exception_digest(exc)),
        code=exc.code,
        severity=severity_of(exc.code),
        opened_at=exc.occurred_at,
        order_id=exc.order_id,
        sku=exc.sku,
        warehouse_id=_line_warehouse(state, line_id, exc.sku) if state is not None else None,
        region=state.region if state is not None else None,
        channel=state.channel if state is not None else None,
        customer_id=state.customer_id if state is not None else None,
        detail=exc.detail,
        cause_event_id=exc.cause_event_id,
        ref=ref,
        updated_at=exc.occurred_at,
    )


def breach_case_id(order_id: str, milestone: str) -> str:
    return make_case_id(Kind.ORDER, order_id, SLA_PREFIX + milestone)


def hold_case_id(order_id: str, hold_type: str, since: int) -> str:
    return make_case_id(Kind.ORDER, order_id, HOLD_PREFIX + hold_type, str(since))


def _breach_warehouse(state: OrderState, milestone: str) -> str | None:
    if milestone == Milestone.DELIVERY:  # the oldest undelivered shipment is the late one
        waiting = [
            (s.dispatched_at, s.shipment_id, s.warehouse_id)
            for s in state.shipments.values()
            if s.dispatched_at is not None and s.delivered_at is None
        ]
        if waiting:
            return min(waiting)[2]
    return _order_warehouse(state)


def _breach_case(state: OrderState, breach: Mapping[str, Any]) -> Case:
    m = breach["milestone"]
    code = SLA_PREFIX + m
    return Case(
        case_id=breach_case_id(state.order_id, m),
        code=code,
        severity=severity_of(code),
        opened_at=breach["detected_at"],
        order_id=state.order_id,
        sku=None,
        warehouse_id=_breach_warehouse(state, m),
        region=state.region,
        channel=state.channel,
        customer_id=state.customer_id,
        detail=f"{m} due at {breach['due_at']} not reached (detected at {breach['detected_at']})",
        cause_event_id=None,
        milestone=m,
        due_at=breach["due_at"],
        updated_at=breach["detected_at"],
    )


def _hold_case(state: OrderState, hold_type: str, reason: str, since: int) -> Case:
    code = HOLD_PREFIX + hold_type
    return Case(
        case_id=hold_case_id(state.order_id, hold_type, since),
        code=code,
        severity=severity_of(code),
        opened_at=since,
        order_id=state.order_id,
        sku=None,
        warehouse_id=_order_warehouse(state),
        region=state.region,
        channel=state.channel,
        customer_id=state.customer_id,
        detail=f"{hold_type} hold: {reason}",
        ref=str(since),
        updated_at=since,
    )


def cases_opened(
    before: OrderState | None,
    after: OrderState,
    raised: Sequence[BusinessException] | None = None,
) -> list[Case]:
    """The cases one order transition opens, in this order: its exceptions, its new breaches
    (open, or already closed in the same transition), its new holds.

    `before` is the state before the input (None for a new order): `tables.order` mutates
    in place, so the caller keeps a copy. `raised` (the `Emission.exceptions` list) overrides
    reading the new exceptions from the state, which only keeps the last 20. Ids do not depend
    on which is used. An id that already exists must keep its stored case.
    """
    cases: list[Case] = []
    for exc in _new_exceptions(before, after) if raised is None else raised:
        if exc.code not in NOT_OPENED:
            cases.append(_exception_case(Kind.ORDER, exc, after, _exception_ref(exc, before, after)))
    had = breached_milestones(before) if before is not None else set()
    for b in (*after.open_breaches, *after.closed_breaches):
        if b["milestone"] not in had:
            cases.append(_breach_case(after, b))
    old_holds = before.holds if before is not None else {}
    for hold_type, (reason, since) in after.holds.items():
        old = old_holds.get(hold_type)
        if old is None or old[1] != since:
            cases.append(_hold_case(after, hold_type, reason, since))
    return cases


def cases_raised(
    after: OrderState,
    exceptions: Sequence[BusinessException],
    breaches: Sequence[Mapping[str, Any]],
    cause: Mapping[str, Any] | None,
) -> list[Case]:
    """`cases_opened` as the order agent sees a transition: from what it raised (the emission's
    exceptions and breach records) and its cause, without the state before it (a copy of the
    state per input would cost more than the rest of the case work). Same ids as
    `cases_opened`; an exception's `ref` is read from the cause (the shipment, invoice or
    payment it names) or, for INVOICE_EXCEEDS_SHIPPED, from the one line of its SKU holding
    parked invoiced quantity."""
    cases: list[Case] = []
    for exc in exceptions:
        if exc.code not in NOT_OPENED:
            cases.append(_exception_case(Kind.ORDER, exc, after, _ref_of_cause(exc, cause, after)))
    new = {record["milestone"] for record in breaches}
    for breach in (*after.open_breaches, *after.closed_breaches):
        if breach["milestone"] in new:
            cases.append(_breach_case(after, breach))
    if cause is not None and cause.get("event_type") == "OrderHoldApplied":
        hold = after.holds.get(cause.get("hold_type"))
        if hold is not None and hold[1] == cause.get("occurred_at"):
            cases.append(_hold_case(after, cause["hold_type"], hold[0], hold[1]))
    return cases


def _ref_of_cause(exc: BusinessException, cause: Mapping[str, Any] | None, after: OrderState) -> str | None:
    code = exc.code
    if cause is None:
        return None
    if code == Code.UNKNOWN_SHIPMENT:
        return cause.get("shipment_id") if cause.get("shipment_id") in after.early_deliveries else None
    if code == Code.UNKNOWN_INVOICE:
        invoice = cause.get("invoice_id")
        return invoice if invoice is not None and invoice not in after.invoices else None
    if code == Code.UNKNOWN_PAYMENT:
        payment = after.payments.get(cause.get("payment_id"))
        return cause.get("payment_id") if payment is not None and payment.amount_minor is None else None
    if code == Code.INVOICE_EXCEEDS_SHIPPED:
        return _one(lid for lid, ln in after.lines.items() if ln.sku == exc.sku and ln.invoice_parked > 0)
    return None


def sku_cases(exceptions: Iterable[BusinessException]) -> list[Case]:
    """The cases of the inventory side's exceptions (keyed by sku). They never auto-resolve:
    what would clear them (ATP back above zero at a warehouse) is not in an order's state."""
    return [_exception_case(Kind.SKU, e, None, None) for e in exceptions if e.code not in NOT_OPENED]


# -- automatic resolution ---------------------------------------------------------------
def _shipment_cleared(case: Case, s: OrderState) -> str | None:
    shp = s.shipments.get(case.ref or "")
    if shp is not None and shp.dispatched_at is not None and case.ref not in s.early_deliveries:
        return f"shipment {case.ref} dispatched at {shp.dispatched_at}: its delivery is applied"
    return None


def _invoice_cleared(case: Case, s: OrderState) -> str | None:
    inv = s.invoices.get(case.ref or "")
    if inv is not None:
        return f"invoice {case.ref} posted at {inv.posted_at}: the payment is applied to it"
    return None


def _payment_cleared(case: Case, s: OrderState) -> str | None:
    pay = s.payments.get(case.ref or "")
    if pay is not None and pay.amount_minor is not None:
        return f"payment {case.ref} received at {pay.received_at}: the refund is matched"
    return None


def _parked_cleared(case: Case, s: OrderState) -> str | None:
    line = s.lines.get(case.ref or "")
    if line is not None and line.invoice_parked == 0:
        return f"line {case.ref}: every invoiced unit is shipped"
    return None


def _credit_cleared(case: Case, s: OrderState) -> str | None:
    if s.open_balance_minor >= 0 and all(i.applied_minor <= i.total_minor for i in s.invoices.values()):
        return "no customer credit left on the order and no invoice paid beyond its total"
    return None


CLEARED_BY: Mapping[str, Callable[[Case, OrderState], str | None]] = {
    Code.UNKNOWN_SHIPMENT: _shipment_cleared,
    Code.UNKNOWN_INVOICE: _invoice_cleared,
    Code.UNKNOWN_PAYMENT: _payment_cleared,
    Code.INVOICE_EXCEEDS_SHIPPED: _parked_cleared,
    Code.OVERPAYMENT: _credit_cleared,
}
"""The exception codes that auto-resolve, with the rule; every other exception code never
does (docs/operations-api.md "Automatic resolution")."""


def clears(case: Case, state: OrderState) -> str | None:
    """Why `state` no longer has the case's cause (the note of the automatic resolution), or
    None while it still has it. Only cases of this order, not resolved yet."""
    if case.is_resolved or case.kind != Kind.ORDER or case.order_id != state.order_id:
        return None
    if case.milestone is not None:
        for b in state.closed_breaches:
            if b["milestone"] == case.milestone:
                if b["met_at"] is None:
                    return f"{case.milestone} withdrawn: the order was cancelled"
                how = "late" if b["late"] else "on time"
                return f"{case.milestone} reached {how} at {b['met_at']}"
        return None
    if case.code.startswith(HOLD_PREFIX):
        hold_type = case.code[len(HOLD_PREFIX):]
        if state.placed_at is not None and is_cancelled(state):
            return f"{hold_type} hold moot: the order was cancelled"
        hold = state.holds.get(hold_type)
        if hold is None or str(hold[1]) != case.ref:
            return f"{hold_type} hold released"
        return None
    if case.ref is None and case.code != Code.OVERPAYMENT:
        return None
    rule = CLEARED_BY.get(case.code)
    return rule(case, state) if rule is not None else None


def may_clear(case: Case) -> bool:
    """Whether a later state of the order can clear the case (`clears`): the order agent keeps
    only those in the order's state to look at after each transition."""
    if case.is_resolved or case.kind != Kind.ORDER:
        return False
    if case.milestone is not None or case.code.startswith(HOLD_PREFIX):
        return True
    return case.code in CLEARED_BY and (case.ref is not None or case.code == Code.OVERPAYMENT)


def cases_auto_resolved(cases: Iterable[Case], after: OrderState, at: int) -> list[Case]:
    """The order's cases that `after` clears, resolved automatically at `at` (the business time
    of the transition). Pass the order's cases not resolved yet, including those
    `cases_opened` just returned: a breach can open and close in one transition."""
    out: list[Case] = []
    for case in cases:
        reason = clears(case, after)
        if reason is not None:
            out.append(auto_resolve(case, reason, at))
    return out


# -- people's actions -----------------------------------------------------------------
class ActionKind:
    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    RESOLVE = "resolve"


ACTION_KINDS: tuple[str, ...] = (ActionKind.ACKNOWLEDGE, ActionKind.ASSIGN, ActionKind.RESOLVE)


def _bad(message: str) -> CaseTransitionError:
    return CaseTransitionError("INVALID_ACTION", message, 400)


def _required(value: Any, name: str, limit: int) -> str:
    if value is None:
        raise _bad(f"{name} is required")
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise _bad(f"{name} is longer than {limit} characters")
    return value


def _optional(value: Any, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"{name} must be a string")
    if len(value) > limit:
        raise _bad(f"{name} is longer than {limit} characters")
    return value


def _changed(case: Case, at: int, who: str, note: str | None, **fields: Any) -> Case:
    return replace(
        case,
        updated_at=at,
        updated_by=who,
        note=note if note is not None else case.note,
        version=case.version + 1,
        **fields,
    )


def _refuse_resolved(case: Case, verb: str) -> None:
    if case.is_resolved:
        raise CaseTransitionError(
            "CASE_RESOLVED" if verb != ActionKind.RESOLVE else "ALREADY_RESOLVED",
            f"cannot {verb} case {case.case_id}: resolved at {case.resolved_at} by {case.resolved_by}",
        )


def acknowledge(case: Case, who: str, note: str | None, at: int) -> Case:
    """OPEN -> ACKNOWLEDGED: someone has seen it. Twice, or on a resolved case: 409."""
    who = _required(who, "who", MAX_WHO)
    note = _optional(note, "note", MAX_NOTE)
    _refuse_resolved(case, ActionKind.ACKNOWLEDGE)
    if case.state == CaseState.ACKNOWLEDGED:
        raise CaseTransitionError(
            "ALREADY_ACKNOWLEDGED",
            f"case {case.case_id} was acknowledged at {case.acknowledged_at} by {case.acknowledged_by}",
        )
    return _changed(case, at, who, note, state=CaseState.ACKNOWLEDGED, acknowledged_at=at, acknowledged_by=who)


def assign(case: Case, who: str, note: str | None, at: int, assignee: str | None) -> Case:
    """Give the case to `assignee` (again: re-assign). Assigning an OPEN case acknowledges
    it: whoever assigns it has seen it. Same assignee again, or a resolved case: 409."""
    who = _required(who, "who", MAX_WHO)
    note = _optional(note, "note", MAX_NOTE)
    assignee = _required(assignee, "assignee", MAX_WHO)
    _refuse_resolved(case, ActionKind.ASSIGN)
    if case.assignee == assignee:
        raise CaseTransitionError("ALREADY_ASSIGNED", f"case {case.case_id} is already assigned to {assignee}")
    if case.state == CaseState.OPEN:
        return _changed(case, at, who, note, assignee=assignee, state=CaseState.ACKNOWLEDGED,
                        acknowledged_at=at, acknowledged_by=who)
    return _changed(case, at, who, note, assignee=assignee)


def resolve(case: Case, who: str, note: str | None, at: int) -> Case:
    """OPEN or ACKNOWLEDGED -> RESOLVED (manually). A resolved case never changes again."""
    who = _required(who, "who", MAX_WHO)
    note = _optional(note, "note", MAX_NOTE)
    _refuse_resolved(case, ActionKind.RESOLVE)
    return _changed(case, at, who, note, state=CaseState.RESOLVED, resolved_at=at, resolved_by=who,
                    resolution=Resolution.MANUAL)


def auto_resolve(case: Case, reason: str, at: int) -> Case:
    """Resolved by the system because the order cleared the cause; a resolved case is
    returned unchanged (the order clearing a cause is a fact, not a request that can fail)."""
    if case.is_resolved:
        return case
    return _changed(case, at, AUTO_ACTOR, reason, state=CaseState.RESOLVED, resolved_at=at,
                    resolved_by=AUTO_ACTOR, resolution=Resolution.AUTO)


@dataclass(frozen=True, slots=True)
class CaseAction:
    """One request of a person, as carried on the case-actions input topic (key: the case's
    key, see `parse_case_id`). `action_id` is the idempotency key, chosen by the HTTP layer
    (e.g. the client's Idempotency-Key header, else a fresh UUID)."""

    action_id: str
    case_id: str
    kind: str
    who: str
    at: int  # when the request was accepted (wall clock of the HTTP layer)
    note: str | None = None
    assignee: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id, "case_id": self.case_id, "kind": self.kind,
            "who": self.who, "at": self.at, "note": self.note, "assignee": self.assignee,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CaseAction:
        return cls(d["action_id"], d["case_id"], d["kind"], d["who"], d["at"], d.get("note"),
                   d.get("assignee"))


def action_from_request(case_id: str, kind: str, body: Any, action_id: str, at: int) -> CaseAction:
    """Validate `POST /cases/{case_id}/{kind}` with its JSON body `{who, note?, assignee?}`:
    CaseTransitionError (400) for an unknown verb or a malformed body, CaseQueryError (404)
    for an id no case can have."""
    parse_case_id(case_id)
    if kind not in ACTION_KINDS:
        raise CaseTransitionError("UNKNOWN_ACTION", f"unknown action {kind!r}; expected one of "
                                  f"{', '.join(ACTION_KINDS)}", 400)
    if not isinstance(body, Mapping):
        raise _bad("the body must be a JSON object")
    allowed = {"who", "note"} | ({"assignee"} if kind == ActionKind.ASSIGN else set())
    unknown = set(body) - allowed
    if unknown:
        raise _bad(f"unknown field(s) {', '.join(sorted(map(str, unknown)))} for {kind}")
    who = _required(body.get("who"), "who", MAX_WHO)
    note = _optional(body.get("note"), "note", MAX_NOTE)
    assignee = _required(body.get("assignee"), "assignee", MAX_WHO) if kind == ActionKind.ASSIGN else None
    return CaseAction(action_id, case_id, kind, who, at, note, assignee)


def apply_action(case: Case, action: CaseAction) -> Case:
    """Apply an action exactly once: an `action_id` the case remembers returns the case as it
    is (`result is case`), anything else changes it or raises CaseTransitionError. The HTTP
    layer calls it on the owner's current case to answer 409/400 before publishing the action;
    the consumer of the actions topic calls it again (another action may have won the race)."""
    if action.case_id != case.case_id:
        raise CaseTransitionError("WRONG_CASE", f"action for {action.case_id} applied to {case.case_id}", 400)
    if action.action_id in case.action_ids:
        return case
    if action.kind == ActionKind.ACKNOWLEDGE:
        new = acknowledge(case, action.who, action.note, action.at)
    elif action.kind == ActionKind.ASSIGN:
        new = assign(case, action.who, action.note, action.at, action.assignee)
    elif action.kind == ActionKind.RESOLVE:
        new = resolve(case, action.who, action.note, action.at)
    else:
        raise CaseTransitionError("UNKNOWN_ACTION", f"unknown action {action.kind!r}", 400)
    return replace(new, action_ids=(*case.action_ids, action.action_id)[-MAX_ACTION_IDS:])


# -- listing --------------------------------------------------------------------------
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_LIST_PARAMS = ("state", "code", "severity")
_EXACT_PARAMS = ("warehouse_id", "region", "channel", "customer_id", "order_id", "sku")
_CODE = re.compile(r"[A-Z][A-Z0-9_]*(?:-[A-Z0-9_]+)?")

Position = tuple[int, str]
"""Where a case sorts: `(opened_at, case_id)`, oldest first; unique because ids are."""


def sort_key(case: Case) -> Position:
    return case.opened_at, case.case_id


@dataclass(frozen=True, slots=True)
class CaseQuery:
    """`GET /cases` parameters. `state`, `code` and `severity` take comma-separated lists;
    the others match exactly; None matches anything."""

    states: frozenset[str] | None = None
    codes: frozenset[str] | None = None
    severities: frozenset[str] | None = None
    warehouse_id: str | None = None
    region: str | None = None
    channel: str | None = None
    customer_id: str | None = None
    order_id: str | None = None
    sku: str | None = None
    limit: int = DEFAULT_LIMIT
    after: Position | None = None  # from the cursor: list what sorts after it

    def filters(self) -> list[Any]:
        """The canonical filters (no limit, no position): what a cursor is bound to."""
        return [
            sorted(self.states) if self.states is not None else None,
            sorted(self.codes) if self.codes is not None else None,
            sorted(self.severities) if self.severities is not None else None,
            self.warehouse_id, self.region, self.channel, self.customer_id, self.order_id, self.sku,
        ]

    def to_params(self, cursor: str | None = None) -> dict[str, str]:
        """Back to query parameters (e.g. to forward the request to the other workers)."""
        out: dict[str, str] = {}
        for name, values in (("state", self.states), ("code", self.codes), ("severity", self.severities)):
            if values is not None:
                out[name] = ",".join(sorted(values))
        for name in _EXACT_PARAMS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out["limit"] = str(self.limit)
        if cursor is not None:
            out["cursor"] = cursor
        return out


def _filter_digest(query: CaseQuery) -> str:
    return hashlib.sha256(_encode(query.filters()).encode()).hexdigest()[:12]


def encode_cursor(position: Position, query: CaseQuery) -> str:
    """Opaque, URL-safe (base64url without padding): the last position returned and the
    filters it belongs to."""
    raw = _encode([1, position[0], position[1], _filter_digest(query)]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, query: CaseQuery) -> Position:
    """The position in `cursor`; CaseQueryError when it is malformed or was made for other
    filters (a client changing filters mid-way would skip or repeat cases)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, opened_at, case_id, digest = json.loads(raw)
        if version != 1 or not isinstance(opened_at, int) or not isinstance(case_id, str):
            raise ValueError
    except (ValueError, TypeError):
        raise CaseQueryError("BAD_CURSOR", "cursor is not one this API returned") from None
    if digest != _filter_digest(query):
        raise CaseQueryError("BAD_CURSOR", "cursor was returned for other filters; start again without it")
    return opened_at, case_id


def _param_list(name: str, value: str, allowed: Sequence[str] | None) -> frozenset[str]:
    items = frozenset(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise CaseQueryError("BAD_PARAMETER", f"{name} is empty")
    for item in items:
        if allowed is not None and item not in allowed:
            raise CaseQueryError("BAD_PARAMETER", f"{name}={item!r}: expected one of {', '.join(allowed)}")
        if allowed is None and not _CODE.fullmatch(item):
            raise CaseQueryError("BAD_PARAMETER", f"{name}={item!r} is not a code")
    return items


def parse_query(params: Mapping[str, str]) -> CaseQuery:
    """`GET /cases` query parameters -> CaseQuery; CaseQueryError (400) on anything unknown
    or malformed, including a cursor made for other filters."""
    unknown = set(params) - {*_LIST_PARAMS, *_EXACT_PARAMS, "limit", "cursor"}
    if unknown:
        raise CaseQueryError("BAD_PARAMETER", f"unknown parameter(s): {', '.join(sorted(unknown))}")
    kw: dict[str, Any] = {}
    if "state" in params:
        kw["states"] = _param_list("state", params["state"], CASE_STATES)
    if "code" in params:
        kw["codes"] = _param_list("code", params["code"], None)
    if "severity" in params:
        kw["severities"] = _param_list("severity", params["severity"], SEVERITIES)
    for name in _EXACT_PARAMS:
        if name in params:
            kw[name] = params[name]
    if "limit" in params:
        try:
            limit = int(params["limit"])
        except ValueError:
            raise CaseQueryError("BAD_PARAMETER", f"limit={params['limit']!r} is not a number") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise CaseQueryError("BAD_PARAMETER", f"limit must be between 1 and {MAX_LIMIT}")
        kw["limit"] = limit
    query = CaseQuery(**kw)
    if "cursor" in params:
        query = replace(query, after=decode_cursor(params["cursor"], query))
    return query


def matches(case: Case | Facets, query: CaseQuery) -> bool:
    """The filters only (not the cursor position)."""
    if query.states is not None and case.state not in query.states:
        return False
    if query.codes is not None and case.code not in query.codes:
        return False
    if query.severities is not None and case.severity not in query.severities:
        return False
    for name in _EXACT_PARAMS:
        wanted = getattr(query, name)
        if wanted is not None and getattr(case, name) != wanted:
            return False
    return True


@dataclass(frozen=True, slots=True)
class CasePage:
    """Cases in `sort_key` order; `more`: the source holds further matching cases after the
    last one; `next_cursor`: what the client sends to get them (None at the end)."""

    cases: tuple[Case, ...]
    more: bool
    next_cursor: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The worker-to-worker form (a worker's page, to merge on the asking worker)."""
        return {"cases": [c.to_list() for c in self.cases], "more": self.more, "next_cursor": self.next_cursor}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CasePage:
        return cls(tuple(Case.from_list(v) for v in d["cases"]), bool(d["more"]), d.get("next_cursor"))

    def view(self, now: int) -> dict[str, Any]:
        """The `GET /cases` answer."""
        return {
            "cases": [c.view(now) for c in self.cases],
            "count": len(self.cases),
            "next_cursor": self.next_cursor,
        }


def page_of(cases: Iterable[Case], query: CaseQuery) -> CasePage:
    """One worker's page: its matching cases after the cursor, the first `limit` of them."""
    after = query.after
    selected = (c for c in cases if matches(c, query) and (after is None or sort_key(c) > after))
    top = heapq.nsmallest(query.limit + 1, selected, key=sort_key)
    more = len(top) > query.limit
    page = tuple(top[: query.limit])
    return CasePage(page, more, encode_cursor(sort_key(page[-1]), query) if more else None)


@dataclass(frozen=True, slots=True)
class Facets:
    """What the listing filters read of a case (`matches` takes these like a Case)."""

    state: str
    code: str
    severity: str
    warehouse_id: str | None
    region: str | None
    channel: str | None
    customer_id: str | None
    order_id: str | None
    sku: str | None

    @classmethod
    def of(cls, case: Case) -> Facets:
        intern = sys.intern  # a few distinct values, hundreds of thousands of cases
        return cls(
            intern(case.state), intern(case.code), intern(case.severity),
            case.warehouse_id, case.region, case.channel, case.customer_id, case.order_id, case.sku,
        )

    @classmethod
    def of_stored(cls, v: Sequence[Any]) -> Facets:
        """`of` a case in its `Case.to_list` form, without building the Case."""
        intern = sys.intern
        return cls(intern(v[16]), intern(v[2]), intern(v[3]), *v[7:11], v[5], v[6])


def merge_pages(pages: Iterable[CasePage], query: CaseQuery) -> CasePage:
    """Merge the pages every worker returned for the same query into the client's page.

    Each worker returned its first `limit` matching cases after the cursor; the first `limit`
    of their merge are the first `limit` overall, and the next cursor is the last of them, so
    pages never skip or repeat a case whichever worker owns it now. A case two workers both
    returned (ownership moving during the request) is kept once, the higher version.
    """
    pages = list(pages)
    merged: list[Case] = []
    for case in heapq.merge(*(p.cases for p in pages), key=sort_key):
        if merged and merged[-1].case_id == case.case_id:
            if case.version > merged[-1].version:
                merged[-1] = case
            continue
        merged.append(case)
    page = tuple(merged[: query.limit])
    more = len(merged) > query.limit or any(p.more for p in pages)
    cursor = encode_cursor(sort_key(page[-1]), query) if more and page else None
    return CasePage(page, more and bool(page), cursor)
