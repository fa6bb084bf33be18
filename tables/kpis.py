"""Business KPIs as additive numbers: per-order contributions, deltas, mergeable totals.

Every KPI is kept as integer sums keyed by a metric name and its dimensions (region,
channel, warehouse, currency, ...). An order's **contribution** is a pure function of its
state: the histogram bucket of its cycle time once shipped, +1 backordered line while a
line is backordered, its unpaid amount by due day while it owes, ... The change of one
transition is `contribution(after) - contribution(before)`, so gauges go up and down by
themselves (a line leaving backorder takes its +1 back) and the totals of a partition are a
pure fold over its orders' transitions: rebuilt from the stored states by summing their
contributions, merged across workers by addition. Two KPIs are observations of a
transition, not of a state (first-allocation fill, sync latency): see docs/operations-api.md
"Business KPIs" for every definition and what the shell must do about those two.

Time-dependent figures (overdue, ages, DSO) are not stored: the totals keep amounts by due
day and counts by start day, and `report(now)` turns them into ages at `now`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tables.allocation import AllocationResult
from tables.order_state import OrderState
from tables.sla import MILESTONES, Milestone
from tables.status import is_cancelled

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

UNKNOWN = "unknown"  # a dimension the order does not have (yet), e.g. region before OrderPlaced
UNASSIGNED = "unassigned"  # a line not allocated to any warehouse

CYCLE_BOUNDS_MS: tuple[int, ...] = tuple(
    h * HOUR_MS for h in (1, 4, 8, 24, 48, 72, 120, 168, 336, 720, 1080, 1440, 2160)
)
"""Upper bounds (inclusive) of the cycle-time buckets: 1 h ... 90 days, then +inf."""
LATENCY_BOUNDS_MS: tuple[int, ...] = (100, 250, 500, 1_000, 2_500, 5_000, 15_000, 60_000, 300_000,
                                       900_000, 3_600_000, 86_400_000)
"""Upper bounds (inclusive) of the sync-latency buckets: 100 ms ... 1 day, then +inf."""
BACKORDER_AGE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("<1d", 0, 1), ("1-3d", 1, 3), ("3-7d", 3, 7), ("7-14d", 7, 14), (">=14d", 14, None),
)
"""Backorder age bands in whole days (from, to exclusive)."""
AGING_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("1-30d", 1, 31), ("31-60d", 31, 61), ("61-90d", 61, 91), (">90d", 91, None),
)
"""Receivable aging bands, in days past the due day."""
DSO_WINDOW_DAYS = 90


class Metric:
    """Metric names: the first element of every key. Dimensions follow, as commented."""

    CYCLE_SHIPPED = "cycle_shipped"  # region, channel, bucket -> orders
    CYCLE_SHIPPED_MS = "cycle_shipped_ms"  # region, channel -> sum of ms
    CYCLE_CLOSED = "cycle_closed"  # region, channel, bucket -> orders
    CYCLE_CLOSED_MS = "cycle_closed_ms"  # region, channel -> sum of ms
    OTIF_ELIGIBLE = "otif_eligible"  # region, channel -> orders
    OTIF_HIT = "otif_hit"  # region, channel -> orders
    FILL_LINES = "fill_lines"  # region, channel, warehouse -> lines answered a first time
    FILL_COMPLETE = "fill_complete"  # region, channel, warehouse -> ... fully allocated then
    FILL_REQUESTED = "fill_requested"  # region, channel, warehouse -> quantity
    FILL_ALLOCATED = "fill_allocated"  # region, channel, warehouse -> quantity
    BACKORDER_LINES = "backorder_lines"  # region, channel, warehouse -> lines
    BACKORDER_QTY = "backorder_qty"  # region, channel, warehouse -> quantity
    BACKORDER_SINCE = "backorder_since"  # region, channel, warehouse, day -> lines
    READY_QTY = "ready_qty"  # region, channel, warehouse -> shipped, not invoiced quantity
    READY_VALUE = "ready_value"  # region, channel, warehouse, currency -> minor units
    RECEIVABLE = "receivable"  # region, channel, currency, due day -> minor units owed
    SALES = "sales"  # currency, posting day -> minor units invoiced
    COLLECTED = "collected"  # region, channel, currency -> cash applied to an invoice
    COLLECTED_MS = "collected_ms"  # region, channel, currency -> sum of cash x ms to pay
    SLA = "sla"  # milestone, outcome, region, channel -> orders
    LATENCY = "latency"  # source, bucket -> events
    LATENCY_MS = "latency_ms"  # source -> sum of ms
    LATENCY_EARLY = "latency_early"  # source -> events processed before their occurred_at


class SlaOutcome:
    ON_TIME = "ON_TIME"  # reached without a breach (or closed with late = false)
    LATE = "LATE"  # breach closed, reached late
    OPEN = "OPEN"  # breached and not reached yet
    WITHDRAWN = "WITHDRAWN"  # breached, then the order was cancelled


SLA_OUTCOMES: tuple[str, ...] = (SlaOutcome.ON_TIME, SlaOutcome.LATE, SlaOutcome.OPEN, SlaOutcome.WITHDRAWN)

REACHED_BY: Mapping[str, str] = {
    Milestone.ACCEPTANCE: "accepted_at",
    Milestone.ALLOCATION: "allocated_at",
    Milestone.SHIPMENT: "shipped_at",
    Milestone.DELIVERY: "delivered_at",
    Milestone.INVOICE: "invoiced_at",
    Milestone.PAYMENT: "paid_at",
}
"""The order milestone that shows an SLA milestone reached (ORPHAN has none: an order
that was orphaned without breaching leaves no trace, so ORPHAN only counts breaches)."""

Key = tuple[str | int, ...]


# -- deltas and totals ------------------------------------------------------------------
def _add_into(target: dict[Key, int], source: Mapping[Key, int], sign: int = 1) -> None:
    for key, value in source.items():
        total = target.get(key, 0) + sign * value
        if total:
            target[key] = total
        else:
            target.pop(key, None)


@dataclass(frozen=True, slots=True, eq=True)
class KpiDelta:
    """Additive changes of the KPI sums (zero entries are never stored)."""

    values: Mapping[Key, int] = field(default_factory=dict)

    @classmethod
    def of(cls, values: Mapping[Key, int]) -> KpiDelta:
        return cls({k: v for k, v in values.items() if v})

    def __add__(self, other: KpiDelta) -> KpiDelta:
        out = dict(self.values)
        _add_into(out, other.values)
        return KpiDelta(out)

    def __sub__(self, other: KpiDelta) -> KpiDelta:
        out = dict(self.values)
        _add_into(out, other.values, -1)
        return KpiDelta(out)

    def __neg__(self) -> KpiDelta:
        return KpiDelta({k: -v for k, v in self.values.items()})

    def __bool__(self) -> bool:
        return bool(self.values)

    def get(self, *key: str | int) -> int:
        return self.values.get(key, 0)


ZERO = KpiDelta()


class KpiTotals:
    """The KPI sums of a set of orders (one partition, or several merged). Mutable; `apply`
    and `merge` add in place and return self. Equal totals have equal forms."""

    __slots__ = ("values",)

    def __init__(self, values: Mapping[Key, int] | None = None) -> None:
        self.values: dict[Key, int] = {}
        if values:
            _add_into(self.values, values)

    def apply(self, delta: KpiDelta) -> KpiTotals:
        _add_into(self.values, delta.values)
        return self

    def merge(self, other: KpiTotals) -> KpiTotals:
        _add_into(self.values, other.values)
        return self

    @classmethod
    def merged(cls, parts: Iterable[KpiTotals]) -> KpiTotals:
        out = cls()
        for part in parts:
            out.merge(part)
        return out

    def copy(self) -> KpiTotals:
        return KpiTotals(self.values)

    def get(self, *key: str | int) -> int:
        return self.values.get(key, 0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KpiTotals) and self.values == other.values

    def __repr__(self) -> str:
        return f"KpiTotals({len(self.values)} sums)"

    # -- forms --------------------------------------------------------------------
    def to_json(self) -> list[list[Any]]:
        """`[[*key, value], ...]` sorted by key: JSON-able, canonical."""
        return [[*k, v] for k, v in sorted(self.values.items(), key=lambda kv: [str(x) for x in kv[0]])]

    @classmethod
    def from_json(cls, rows: Iterable[Sequence[Any]]) -> KpiTotals:
        out = cls()
        for row in rows:
            _add_into(out.values, {tuple(row[:-1]): row[-1]})
        return out

    def to_bytes(self) -> bytes:
        return json.dumps([1, self.to_json()], separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> KpiTotals:
        version, rows = json.loads(data)
        if version != 1:
            raise ValueError(f"unsupported KPI totals format {version!r}")
        return cls.from_json(rows)

    def report(self, now_ms: int, dso_window_days: int = DSO_WINDOW_DAYS) -> dict[str, Any]:
        """The `GET /kpis` answer at `now_ms` (docs/operations-api.md "Business KPIs")."""
        return _report(self.values, now_ms, dso_window_days)


# -- contributions ----------------------------------------------------------------------
def _bucket(value: int, bounds: Sequence[int]) -> int:
    for i, bound in enumerate(bounds):
        if value <= bound:
            return i
    return len(bounds)


def _region_channel(state: OrderState) -> tuple[str, str]:
    return state.region or UNKNOWN, state.channel or UNKNOWN


def invoice_balances(state: OrderState) -> list[tuple[str, int, int]]:
    """`(invoice_id, due_at, owed)` of every invoice, in due order, allocating cash exactly
    as `tables.sla._first_unpaid_due` does (docs/sla.md PAYMENT): cash naming an invoice
    settles it, other cash and refunds are spread over the rest in due-date order, and when
    refunds exceed the unapplied cash the oldest invoice owes the difference again. The
    first invoice with `owed > 0` is the one whose due date the PAYMENT SLA watches; the
    owed amounts sum to `max(open_balance_minor, 0)` when no invoice is overpaid.

    (This duplicates the rule of a private function of tables/sla.py, which only returns
    the first due date; tables/sla.py should own `invoice_balances` and derive that from it.)
    """
    invoices = sorted(state.invoices.values(), key=lambda i: (i.due_at, i.invoice_id))
    if not invoices:
        return []
    owed = [i.total_minor - min(i.applied_minor, i.total_minor) for i in invoices]
    credit = state.paid_minor - state.refunded_minor - sum(min(i.applied_minor, i.total_minor) for i in invoices)
    if credit < 0:
        owed[0] -= credit
    else:
        for k, o in enumerate(owed):
            take = min(o, credit)
            owed[k] = o - take
            credit -= take
    return [(i.invoice_id, i.due_at, o) for i, o in zip(invoices, owed)]


def _sla_outcomes(state: OrderState) -> dict[str, str]:
    out: dict[str, str] = {}
    for b in state.closed_breaches:
        if b["met_at"] is None:
            out[b["milestone"]] = SlaOutcome.WITHDRAWN
        else:
            out[b["milestone"]] = SlaOutcome.LATE if b["late"] else SlaOutcome.ON_TIME
    for b in state.open_breaches:
        out[b["milestone"]] = SlaOutcome.OPEN
    for m, attr in REACHED_BY.items():
        if m not in out and getattr(state, attr) is not None:
            out[m] = SlaOutcome.ON_TIME
    return out


def contribution(state: OrderState | None) -> KpiDelta:
    """Everything this order adds to the state-based KPI sums right now (zero for None).

    Taken twice per transition (before and after), so written for speed: keys are added in a
    fixed order (the sums' stored form follows it) and zero amounts are left out."""
    if state is None:
        return ZERO
    v: dict[Key, int] = {}
    get = v.get
    region, channel = _region_channel(state)
    outcomes = _sla_outcomes(state)
    for m in MILESTONES:
        if m in outcomes:
            v[(Metric.SLA, m, outcomes[m], region, channel)] = 1
    shipment = outcomes.get(Milestone.SHIPMENT)
    placed = state.placed_at
    if placed is None:
        return KpiDelta(v)
    shipped_at = state.shipped_at
    if shipped_at is not None:
        ms = max(0, shipped_at - placed)
        v[(Metric.CYCLE_SHIPPED, region, channel, _bucket(ms, CYCLE_BOUNDS_MS))] = 1
        if ms:
            v[(Metric.CYCLE_SHIPPED_MS, region, channel)] = ms
    if state.closed_at is not None:
        ms = max(0, state.closed_at - placed)
        v[(Metric.CYCLE_CLOSED, region, channel, _bucket(ms, CYCLE_BOUNDS_MS))] = 1
        if ms:
            v[(Metric.CYCLE_CLOSED_MS, region, channel)] = ms
    if (shipped_at is not None or shipment in (SlaOutcome.OPEN, SlaOutcome.LATE)) and not is_cancelled(state):
        v[(Metric.OTIF_ELIGIBLE, region, channel)] = 1
        if shipped_at is not None and shipment == SlaOutcome.ON_TIME:
            v[(Metric.OTIF_HIT, region, channel)] = 1
    since = None
    currency = state.currency or UNKNOWN
    for ln in state.lines.values():
        backordered = ln.backordered
        ready = ln.shipped - ln.invoiced
        if backordered <= 0 and ready <= 0:
            continue
        wh = ln.warehouse_id or UNASSIGNED
        if backordered > 0:
            if since is None:
                since = (state.accepted_at if state.accepted_at is not None else placed) // DAY_MS
            key = (Metric.BACKORDER_LINES, region, channel, wh)
            v[key] = get(key, 0) + 1
            key = (Metric.BACKORDER_QTY, region, channel, wh)
            v[key] = get(key, 0) + backordered
            key = (Metric.BACKORDER_SINCE, region, channel, wh, since)
            v[key] = get(key, 0) + 1
        if ready > 0:
            key = (Metric.READY_QTY, region, channel, wh)
            v[key] = get(key, 0) + ready
            value = ready * ln.unit_price_minor
            if value:
                key = (Metric.READY_VALUE, region, channel, wh, currency)
                v[key] = get(key, 0) + value
    if not state.invoices:  # no invoice: nothing owed, sold or collected
        return KpiDelta(v)
    for _, due_at, owed in invoice_balances(state):
        if owed:
            key = (Metric.RECEIVABLE, region, channel, currency, due_at // DAY_MS)
            v[key] = get(key, 0) + owed
    for inv in state.invoices.values():
        if inv.total_minor:
            key = (Metric.SALES, currency, inv.posted_at // DAY_MS)
            v[key] = get(key, 0) + inv.total_minor
    for pay in state.payments.values():
        inv = state.invoices.get(pay.invoice_id or "")
        if inv is not None and pay.amount_minor is not None and pay.received_at is not None:
            if pay.amount_minor:
                key = (Metric.COLLECTED, region, channel, currency)
                v[key] = get(key, 0) + pay.amount_minor
                weighted = pay.amount_minor * max(0, pay.received_at - inv.posted_at)
                if weighted:
                    key = (Metric.COLLECTED_MS, region, channel, currency)
                    v[key] = get(key, 0) + weighted
    return KpiDelta(v)


def first_allocation(before: OrderState | None, after: OrderState) -> KpiDelta:
    """Lines answered by the inventory side for the first time in this transition: how much
    of what they asked was allocated at once (the line fill rate at first allocation)."""
    answered = {lid for lid, ln in before.lines.items() if ln.alloc_ack > 0} if before is not None else set()
    return first_fills(answered, after)


def first_fills(answered_before: Collection[str], after: OrderState) -> KpiDelta:
    """`first_allocation` given the lines answered before (what the order agent notes before
    applying an allocation answer, instead of copying the state)."""
    region, channel = _region_channel(after)
    v: dict[Key, int] = {}
    for lid, ln in after.lines.items():
        if ln.alloc_ack == 0 or lid in answered_before:
            continue
        requested = ln.base_allocated + ln.base_backordered
        if requested <= 0:
            continue
        dims = (region, channel, ln.warehouse_id or UNASSIGNED)
        for metric, n in (
            (Metric.FILL_LINES, 1),
            (Metric.FILL_COMPLETE, 1 if ln.base_backordered == 0 else 0),
            (Metric.FILL_REQUESTED, requested),
            (Metric.FILL_ALLOCATED, ln.base_allocated),
        ):
            if n:
                key = (metric, *dims)
                v[key] = v.get(key, 0) + n
    return KpiDelta(v)


def latency(source: str | None, occurred_at: int, processed_at: int) -> KpiDelta:
    """One input event's sync latency (occurred_at -> processed_at) for its source system.
    An event processed before it occurred (clock skew) counts in bucket 0 and as early."""
    src = source or UNKNOWN
    ms = processed_at - occurred_at
    v: dict[Key, int] = {(Metric.LATENCY, src, _bucket(max(ms, 0), LATENCY_BOUNDS_MS)): 1}
    if ms > 0:
        v[(Metric.LATENCY_MS, src)] = ms
    elif ms < 0:
        v[(Metric.LATENCY_EARLY, src)] = 1
    return KpiDelta(v)


def kpi_changes(
    before: OrderState | None,
    after: OrderState,
    now_ms: int,
    cause: Mapping[str, Any] | AllocationResult | None = None,
) -> KpiDelta:
    """The KPI change of one order transition, `before` (a copy taken before the input;
    None for a new order) -> `after`, processed at `now_ms`: the contribution difference,
    the first-allocation observations, and the cause's sync latency when it is an input
    event (a mapping with a `source`; not an allocation answer or an SLA timer)."""
    delta = contribution(after) - contribution(before) + first_allocation(before, after)
    if isinstance(cause, Mapping) and cause.get("source") is not None and cause.get("occurred_at") is not None:
        delta = delta + latency(cause["source"], cause["occurred_at"], now_ms)
    return delta


def totals_of(states: Iterable[OrderState]) -> KpiTotals:
    """The state-based totals of a partition, rebuilt from its stored states (on assignment).
    First-allocation fill and latency are not in a state and start again from zero."""
    totals = KpiTotals()
    for s in states:
        totals.apply(contribution(s))
    return totals


# -- the report -----------------------------------------------------------------------
def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _grouped(values: Mapping[Key, int], metric: str, width: int) -> dict[Key, dict[Key, int]]:
    """metric's sums grouped by the first `width` dimensions: {dims: {rest: value}}."""
    out: dict[Key, dict[Key, int]] = {}
    for key, value in values.items():
        if key[0] == metric:
            out.setdefault(key[1:1 + width], {})[key[1 + width:]] = value
    return out


def _sums(values: Mapping[Key, int], metric: str, width: int) -> dict[Key, int]:
    out: dict[Key, int] = {}
    for key, value in values.items():
        if key[0] == metric:
            out[key[1:1 + width]] = out.get(key[1:1 + width], 0) + value
    return out


def _histogram(counts: Mapping[int, int], total_ms: int, bounds: Sequence[int]) -> dict[str, Any]:
    n = sum(counts.values())
    cumulative = 0
    buckets = []
    for i in range(len(bounds) + 1):
        cumulative += counts.get(i, 0)
        buckets.append({"le_ms": bounds[i] if i < len(bounds) else None, "count": cumulative})
    return {"count": n, "sum_ms": total_ms, "mean_ms": round(total_ms / n) if n else None, "buckets": buckets}


def _histograms(values: Mapping[Key, int], metric: str, sum_metric: str, width: int,
                names: Sequence[str], bounds: Sequence[int]) -> dict[str, Any]:
    groups = _grouped(values, metric, width)
    sums = _sums(values, sum_metric, width)
    all_counts: dict[int, int] = {}
    rows = []
    for dims in sorted(groups, key=str):
        counts = {rest[0]: n for rest, n in groups[dims].items()}
        for b, n in counts.items():
            all_counts[b] = all_counts.get(b, 0) + n
        rows.append({**dict(zip(names, dims)), **_histogram(counts, sums.get(dims, 0), bounds)})
    return {"all": _histogram(all_counts, sum(sums.values()), bounds), "by": rows}


def _band(days: int, bands: Sequence[tuple[str, int, int | None]]) -> str | None:
    for label, lo, hi in bands:
        if days >= lo and (hi is None or days < hi):
            return label
    return None


def _report(values: Mapping[Key, int], now_ms: int, dso_window_days: int) -> dict[str, Any]:
    today = now_ms // DAY_MS
    rc = ("region", "channel")
    rcw = ("region", "channel", "warehouse_id")

    otif_rows = []
    eligible = _sums(values, Metric.OTIF_ELIGIBLE, 2)
    hit = _sums(values, Metric.OTIF_HIT, 2)
    for dims in sorted(eligible, key=str):
        otif_rows.append({**dict(zip(rc, dims)), "eligible": eligible[dims], "on_time_in_full": hit.get(dims, 0),
                          "rate": _rate(hit.get(dims, 0), eligible[dims])})
    otif_all = (sum(hit.values()), sum(eligible.values()))

    fill = {m: _sums(values, m, 3) for m in (Metric.FILL_LINES, Metric.FILL_COMPLETE, Metric.FILL_REQUESTED,
                                              Metric.FILL_ALLOCATED)}

    def fill_row(get: Any) -> dict[str, Any]:
        lines, complete = get(Metric.FILL_LINES), get(Metric.FILL_COMPLETE)
        req, alloc = get(Metric.FILL_REQUESTED), get(Metric.FILL_ALLOCATED)
        return {"lines": lines, "complete_lines": complete, "requested": req, "allocated": alloc,
                "line_fill_rate": _rate(complete, lines), "quantity_fill_rate": _rate(alloc, req)}

    fill_rows = [{**dict(zip(rcw, d)), **fill_row(lambda m, d=d: fill[m].get(d, 0))}
                 for d in sorted(fill[Metric.FILL_LINES], key=str)]

    back_lines = _sums(values, Metric.BACKORDER_LINES, 3)
    back_qty = _sums(values, Metric.BACKORDER_QTY, 3)
    since = _grouped(values, Metric.BACKORDER_SINCE, 3)

    def backorder_row(groups: Iterable[Mapping[Key, int]], lines: int, qty: int) -> dict[str, Any]:
        bands = {label: 0 for label, _, _ in BACKORDER_AGE_BANDS}
        age_sum = 0
        for group in groups:
            for (day,), n in group.items():
                age = max(0, today - int(day))
                bands[_band(age, BACKORDER_AGE_BANDS) or ">=14d"] += n
                age_sum += age * n
        return {"lines": lines, "quantity": qty, "mean_age_days": round(age_sum / lines, 2) if lines else None,
                "age": bands}

    back_rows = [{**dict(zip(rcw, d)), **backorder_row([since.get(d, {})], back_lines[d], back_qty.get(d, 0))}
                 for d in sorted(back_lines, key=str)]

    ready_qty = _sums(values, Metric.READY_QTY, 3)
    ready_val = _grouped(values, Metric.READY_VALUE, 3)
    ready_rows = [{**dict(zip(rcw, d)), "quantity": ready_qty.get(d, 0),
                   "value_minor": {str(c): n for (c,), n in ready_val.get(d, {}).items()}}
                  for d in sorted(set(ready_qty) | set(ready_val), key=str)]
    ready_value_all: dict[str, int] = {}
    for group in ready_val.values():
        for (c,), n in group.items():
            ready_value_all[str(c)] = ready_value_all.get(str(c), 0) + n

    # receivables and DSO, per currency (amounts of different currencies never add up)
    receivables: dict[str, dict[str, Any]] = {}
    for key, owed in values.items():
        if key[0] != Metric.RECEIVABLE:
            continue
        _, _region, _channel, cur, due_day = key
        r = receivables.setdefault(str(cur), {"open_minor": 0, "overdue_minor": 0,
                                              "aging": {label: 0 for label, _, _ in AGING_BANDS}})
        r["open_minor"] += owed
        late = today - int(due_day)
        if late >= 1:
            r["overdue_minor"] += owed
            r["aging"][_band(late, AGING_BANDS) or ">90d"] += owed
    sales: dict[str, int] = {}
    for key, amount in values.items():
        if key[0] == Metric.SALES and today - dso_window_days < int(key[2]) <= today:
            sales[str(key[1])] = sales.get(str(key[1]), 0) + amount
    collected = _sums(values, Metric.COLLECTED, 3)
    collected_ms = _sums(values, Metric.COLLECTED_MS, 3)
    by_currency: dict[str, dict[str, int]] = {}
    for (_r, _c, cur), amount in collected.items():
        acc = by_currency.setdefault(str(cur), {"collected_minor": 0, "weighted_ms": 0})
        acc["collected_minor"] += amount
        acc["weighted_ms"] += collected_ms.get((_r, _c, cur), 0)
    currencies = sorted(set(receivables) | set(sales) | set(by_currency))
    money = {}
    for cur in currencies:
        r = receivables.get(cur, {"open_minor": 0, "overdue_minor": 0,
                                  "aging": {label: 0 for label, _, _ in AGING_BANDS}})
        s = sales.get(cur, 0)
        c = by_currency.get(cur, {"collected_minor": 0, "weighted_ms": 0})
        money[cur] = {
            **r,
            "sales_in_window_minor": s,
            "dso_days": round(r["open_minor"] * dso_window_days / s, 2) if s else None,
            "collected_minor": c["collected_minor"],
            "mean_days_to_pay": round(c["weighted_ms"] / c["collected_minor"] / DAY_MS, 2)
            if c["collected_minor"] else None,
        }

    sla_rows: dict[str, dict[str, Any]] = {}
    for key, n in values.items():
        if key[0] == Metric.SLA:
            row = sla_rows.setdefault(str(key[1]), {o.lower(): 0 for o in SLA_OUTCOMES})
            row[str(key[2]).lower()] += n
    for row in sla_rows.values():
        row["adherence"] = _rate(row["on_time"], row["on_time"] + row["late"] + row["open"])

    latency_report = _histograms(values, Metric.LATENCY, Metric.LATENCY_MS, 1, ("source",), LATENCY_BOUNDS_MS)
    early = _sums(values, Metric.LATENCY_EARLY, 1)
    for row in latency_report["by"]:
        row["early"] = early.get((row["source"],), 0)
    latency_report["all"]["early"] = sum(early.values())

    return {
        "as_of": now_ms,
        "cycle_time": {
            "placed_to_shipped": _histograms(values, Metric.CYCLE_SHIPPED, Metric.CYCLE_SHIPPED_MS, 2, rc,
                                             CYCLE_BOUNDS_MS),
            "placed_to_closed": _histograms(values, Metric.CYCLE_CLOSED, Metric.CYCLE_CLOSED_MS, 2, rc,
                                            CYCLE_BOUNDS_MS),
        },
        "otif": {"all": {"eligible": otif_all[1], "on_time_in_full": otif_all[0],
                         "rate": _rate(otif_all[0], otif_all[1])}, "by": otif_rows},
        "fill_rate_first_allocation": {
            "all": fill_row(lambda m: sum(fill[m].values())),
            "by": fill_rows,
        },
        "backorders": {
            "all": backorder_row(since.values(), sum(back_lines.values()), sum(back_qty.values())),
            "by": back_rows,
        },
        "invoice_readiness": {
            "all": {"quantity": sum(ready_qty.values()), "value_minor": ready_value_all},
            "by": ready_rows,
        },
        "receivables": {"window_days": dso_window_days, "by_currency": money},
        "sla_adherence": {"by_milestone": {m: sla_rows[m] for m in MILESTONES if m in sla_rows}},
        "sync_latency": latency_report,
    }
