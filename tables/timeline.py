"""The order timeline: one entry per published change of the order, with what changed.

Support staff ask "what happened to this order, in which order, and because of what?". The
`OrderStatusChanged` stream answers it but lives downstream; the timeline keeps the answer
in the order's own state, bounded: the last `MAX_TIMELINE_ENTRIES` entries in full, the
older ones folded into a summary (how many, of which cause types, first/last seq and times).

An entry is made for each `OrderStatusChanged` the order publishes (`seq` is that record's
`seq`: 1, 2, 3... without gaps until entries are folded). Changes that publish nothing (a
duplicate, an event buffered before OrderPlaced, ShipmentPicked) make no entry: they do not
change the order as the outside sees it. Rules and sizes: docs/operations-api.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tables.allocation import AllocationResult
from tables.jsontext import encoder
from tables.order_state import MILESTONES, OrderState
from tables.sla import breached_milestones

MAX_TIMELINE_ENTRIES = 16
"""Entries kept in full per order. A typical order publishes 8-12 changes (placed, accepted,
one allocation answer per line, dispatch, delivery, invoice, payment), so most orders keep
their whole story; an entry costs about 150-250 bytes of state."""

LINE_BUCKETS: tuple[str, ...] = (
    "ordered", "cancelled", "allocated", "backordered", "shipped", "delivered", "invoiced",
)
"""The line quantities an entry reports (those of the status record; `pending` is the
allocation contract's bookkeeping, not a business quantity)."""
AMOUNTS: tuple[str, ...] = ("invoiced_minor", "paid_minor", "refunded_minor")

INVENTORY_SOURCE = "inventory"
"""`source` of an entry caused by an allocation answer (the inventory side of this app)."""
SLA_SOURCE = "sla"
"""`source` of an entry caused by the SLA timer (`tables.sla.timer_cause`)."""


class BreachOutcome:
    LATE = "LATE"  # reached after its due time
    ON_TIME = "ON_TIME"  # reached in time, the breach was detected before the event arrived
    WITHDRAWN = "WITHDRAWN"  # the order was cancelled


@dataclass(frozen=True, slots=True)
class LineChange:
    """What changed on one line: non-zero bucket deltas, the warehouse and promise moves."""

    line_id: str
    deltas: tuple[tuple[str, int], ...] = ()  # (bucket, delta), in LINE_BUCKETS order
    warehouse: tuple[str | None, str | None] | None = None  # (before, after) when it moved
    promised_at: tuple[int | None, int | None] | None = None  # (before, after) when it moved

    def to_list(self) -> list[Any]:
        return [self.line_id, [list(d) for d in self.deltas],
                list(self.warehouse) if self.warehouse else None,
                list(self.promised_at) if self.promised_at else None]

    @classmethod
    def from_list(cls, v: Sequence[Any]) -> LineChange:
        return cls(v[0], tuple((b, d) for b, d in v[1]), tuple(v[2]) if v[2] else None,
                   tuple(v[3]) if v[3] else None)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One published change: its cause, its times, and what changed."""

    seq: int  # OrderStatusChanged.seq of the change
    status_before: str | None
    status_after: str | None
    cause_type: str  # event_type, "AllocationResult" or "SlaBreached"
    cause_id: str  # event_id, result_id, or sla:<order_id>:<milestone>
    source: str | None  # source system of the event; "inventory"; "sla"
    correlation_id: str | None
    occurred_at: int | None  # business time of the cause
    processed_at: int  # when the app applied it (wall clock, from the caller)
    lines: tuple[LineChange, ...] = ()
    holds_added: tuple[str, ...] = ()
    holds_removed: tuple[str, ...] = ()
    amounts: tuple[tuple[str, int], ...] = ()  # (name, delta), in AMOUNTS order
    milestones: tuple[str, ...] = ()  # milestone timestamps first set (placed_at, ...)
    breaches_opened: tuple[str, ...] = ()  # SLA milestones breached
    breaches_closed: tuple[tuple[str, str], ...] = ()  # (milestone, BreachOutcome)
    exceptions: tuple[str, ...] = ()  # codes raised, oldest first (at most 20 known)
    exceptions_count: int = 0  # how many were raised (may exceed len(exceptions))

    def to_list(self) -> list[Any]:
        """Compact positional form; the change parts are a dict of the non-empty ones."""
        changes: dict[str, Any] = {}
        if self.lines:
            changes["l"] = [c.to_list() for c in self.lines]
        if self.holds_added:
            changes["ha"] = list(self.holds_added)
        if self.holds_removed:
            changes["hr"] = list(self.holds_removed)
        if self.amounts:
            changes["a"] = [list(a) for a in self.amounts]
        if self.milestones:
            changes["m"] = list(self.milestones)
        if self.breaches_opened:
            changes["bo"] = list(self.breaches_opened)
        if self.breaches_closed:
            changes["bc"] = [list(b) for b in self.breaches_closed]
        if self.exceptions_count:
            changes["x"] = list(self.exceptions)
            changes["xn"] = self.exceptions_count
        return [
            self.seq, self.status_before, self.status_after, self.cause_type, self.cause_id,
            self.source, self.correlation_id, self.occurred_at, self.processed_at, changes,
        ]

    @classmethod
    def from_list(cls, v: Sequence[Any]) -> TimelineEntry:
        c = v[9]
        return cls(
            *v[:9],
            lines=tuple(LineChange.from_list(x) for x in c.get("l", ())),
            holds_added=tuple(c.get("ha", ())),
            holds_removed=tuple(c.get("hr", ())),
            amounts=tuple((n, d) for n, d in c.get("a", ())),
            milestones=tuple(c.get("m", ())),
            breaches_opened=tuple(c.get("bo", ())),
            breaches_closed=tuple((m, o) for m, o in c.get("bc", ())),
            exceptions=tuple(c.get("x", ())),
            exceptions_count=c.get("xn", 0),
        )

    def view(self) -> dict[str, Any]:
        """The named JSON form (GET /orders/{id}/timeline)."""
        return {
            "seq": self.seq,
            "status_before": self.status_before,
            "status_after": self.status_after,
            "cause_event_type": self.cause_type,
            "cause_event_id": self.cause_id,
            "source": self.source,
            "correlation_id": self.correlation_id,
            "occurred_at": self.occurred_at,
            "processed_at": self.processed_at,
            "changes": {
                "lines": [
                    {
                        "line_id": c.line_id,
                        **{b: d for b, d in c.deltas},
                        **({"warehouse_id": {"from": c.warehouse[0], "to": c.warehouse[1]}} if c.warehouse else {}),
                        **({"promised_at": {"from": c.promised_at[0], "to": c.promised_at[1]}}
                           if c.promised_at else {}),
                    }
                    for c in self.lines
                ],
                "holds_added": list(self.holds_added),
                "holds_removed": list(self.holds_removed),
                "amounts": dict(self.amounts),
                "milestones_reached": list(self.milestones),
                "breaches_opened": list(self.breaches_opened),
                "breaches_closed": [{"milestone": m, "outcome": o} for m, o in self.breaches_closed],
                "exceptions": list(self.exceptions),
                "exceptions_count": self.exceptions_count,
            },
        }


@dataclass(frozen=True, slots=True)
class TimelineSummary:
    """The entries folded out of the timeline: how many, their seq and time range, and how
    many of each cause type (and exceptions) they had."""

    entries: int
    first_seq: int
    last_seq: int
    first_occurred_at: int | None
    last_occurred_at: int | None
    first_processed_at: int
    last_processed_at: int
    by_cause_type: tuple[tuple[str, int], ...]  # sorted by type
    exceptions: int

    @classmethod
    def of(cls, entry: TimelineEntry) -> TimelineSummary:
        return cls(1, entry.seq, entry.seq, entry.occurred_at, entry.occurred_at, entry.processed_at,
                   entry.processed_at, ((entry.cause_type, 1),), entry.exceptions_count)

    def fold(self, entry: TimelineEntry) -> TimelineSummary:
        """This summary with `entry` (the next older-than-kept entry, in seq order) added."""
        counts = dict(self.by_cause_type)
        counts[entry.cause_type] = counts.get(entry.cause_type, 0) + 1
        return TimelineSummary(
            self.entries + 1,
            self.first_seq,
            entry.seq,
            _first(self.first_occurred_at, entry.occurred_at, min),
            _first(self.last_occurred_at, entry.occurred_at, max),
            self.first_processed_at,
            entry.processed_at,
            tuple(sorted(counts.items())),
            self.exceptions + entry.exceptions_count,
        )

    def to_list(self) -> list[Any]:
        return [self.entries, self.first_seq, self.last_seq, self.first_occurred_at,
                self.last_occurred_at, self.first_processed_at, self.last_processed_at,
                [list(x) for x in self.by_cause_type], self.exceptions]

    @classmethod
    def from_list(cls, v: Sequence[Any]) -> TimelineSummary:
        return cls(*v[:7], tuple((t, n) for t, n in v[7]), v[8])

    def view(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "first_occurred_at": self.first_occurred_at,
            "last_occurred_at": self.last_occurred_at,
            "first_processed_at": self.first_processed_at,
            "last_processed_at": self.last_processed_at,
            "by_cause_type": dict(self.by_cause_type),
            "exceptions": self.exceptions,
        }


def _first(a: int | None, b: int | None, pick: Any) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)


@dataclass(frozen=True, slots=True)
class Timeline:
    """Kept entries (seq ascending) and the summary of those folded before them."""

    entries: tuple[TimelineEntry, ...] = ()
    summary: TimelineSummary | None = None

    @property
    def last_seq(self) -> int:
        if self.entries:
            return self.entries[-1].seq
        return self.summary.last_seq if self.summary is not None else 0

    def to_list(self) -> list[Any]:
        """Compact form, to append to the order state's positional array."""
        return [[e.to_list() for e in self.entries],
                self.summary.to_list() if self.summary is not None else None]

    @classmethod
    def from_list(cls, v: Sequence[Any] | None) -> Timeline:
        """None (a state written before timelines existed) reads as an empty timeline."""
        if not v:
            return cls()
        return cls(tuple(TimelineEntry.from_list(e) for e in v[0]),
                   TimelineSummary.from_list(v[1]) if v[1] is not None else None)

    def view(self) -> dict[str, Any]:
        return {
            "entries": [e.view() for e in self.entries],
            "earlier": self.summary.view() if self.summary is not None else None,
        }


EMPTY = Timeline()


def append(history: Timeline, entry: TimelineEntry, max_entries: int = MAX_TIMELINE_ENTRIES) -> Timeline:
    """`history` with `entry` added last; beyond `max_entries` the oldest are folded into the
    summary. ValueError for an entry not after the last one (a change recorded twice is a bug
    of the caller, not something to hide)."""
    if max_entries < 1:
        raise ValueError(f"max_entries must be at least 1, got {max_entries}")
    if entry.seq <= history.last_seq:
        raise ValueError(f"timeline entry seq {entry.seq} is not after {history.last_seq}")
    entries = (*history.entries, entry)
    summary = history.summary
    extra = len(entries) - max_entries
    for old in entries[:max(extra, 0)]:
        summary = TimelineSummary.of(old) if summary is None else summary.fold(old)
    return Timeline(entries[max(extra, 0):], summary)


# -- what changed ---------------------------------------------------------------------
def _cause_fields(cause: Mapping[str, Any] | AllocationResult) -> tuple[str, str, str | None, str | None, int | None]:
    """(type, id, source, correlation_id, occurred_at) of a status event's cause."""
    if isinstance(cause, AllocationResult):
        return cause.TYPE, cause.result_id, INVENTORY_SOURCE, None, cause.occurred_at
    etype = cause["event_type"]
    source = cause.get("source") or (SLA_SOURCE if etype == "SlaBreached" else None)
    return etype, cause["event_id"], source, cause.get("correlation_id"), cause.get("occurred_at")


@dataclass(frozen=True, slots=True)
class Before:
    """What an entry compares against, taken from the state before an input is applied: a few
    microseconds, where a copy of the whole state (the model mutates it in place) costs tens."""

    seq: int
    last_status: str | None
    lines: Mapping[str, tuple[Any, ...]]  # line_id -> (LINE_BUCKETS values), warehouse, promised_at
    holds: frozenset[str]
    amounts: tuple[int, ...]  # in AMOUNTS order
    reached: frozenset[str]  # MILESTONES already set
    breached: frozenset[str]  # milestones breached (open or closed)
    closed: frozenset[str]  # milestones whose breach is closed
    exceptions_total: int


def before_of(state: OrderState) -> Before:
    return Before(
        state.seq,
        state.last_status,
        {
            lid: ((ln.ordered, ln.cancelled, ln.allocated, ln.backordered, ln.shipped, ln.delivered, ln.invoiced),
                  ln.warehouse_id, ln.promised_at)
            for lid, ln in state.lines.items()
        },
        frozenset(state.holds),
        (state.invoiced_minor, state.paid_minor, state.refunded_minor),
        frozenset(m for m in MILESTONES if getattr(state, m) is not None),
        frozenset(breached_milestones(state)),
        frozenset(b["milestone"] for b in state.closed_breaches),
        state.exceptions_total,
    )


_NO_LINE = ((0,) * len(LINE_BUCKETS), None, None)


def _line_changes(before: Before | None, after: OrderState) -> list[list[Any]]:
    """`LineChange.to_list()` of every line that changed (most changes touch one line)."""
    old_lines = before.lines if before is not None else {}
    out = []
    for lid, ln in after.lines.items():
        old = old_lines.get(lid)
        was, was_wh, was_promised = old if old is not None else _NO_LINE
        now = (ln.ordered, ln.cancelled, ln.allocated, ln.backordered, ln.shipped, ln.delivered, ln.invoiced)
        if now == was and ln.warehouse_id == was_wh and ln.promised_at == was_promised:
            continue
        deltas = [[b, now[i] - was[i]] for i, b in enumerate(LINE_BUCKETS) if now[i] != was[i]]
        moved = [was_wh, ln.warehouse_id] if old is not None and was_wh != ln.warehouse_id else None
        promised = [was_promised, ln.promised_at] if was_promised != ln.promised_at else None
        if deltas or moved or promised:
            out.append([lid, deltas, moved, promised])
    return out


def _closed_outcome(b: Mapping[str, Any]) -> str:
    if b.get("met_at") is None:
        return BreachOutcome.WITHDRAWN
    return BreachOutcome.LATE if b.get("late") else BreachOutcome.ON_TIME


def entry_list(
    before: Before | None,
    after: OrderState,
    cause: Mapping[str, Any] | AllocationResult,
    processed_at: int,
) -> list[Any] | None:
    """`entry_for(...).to_list()`, built directly: the order agent makes one per published
    change, and the dataclasses would double its cost."""
    seq_before = before.seq if before is not None else 0
    if after.seq == seq_before:
        return None
    ctype, cid, source, corr, occurred = _cause_fields(cause)
    changes: dict[str, Any] = {}
    lines = _line_changes(before, after)
    if lines:
        changes["l"] = lines
    old_holds = before.holds if before is not None else frozenset()
    if after.holds or old_holds:
        holds = set(after.holds)
        if holds - old_holds:
            changes["ha"] = sorted(holds - old_holds)
        if old_holds - holds:
            changes["hr"] = sorted(old_holds - holds)
    now_amounts = (after.invoiced_minor, after.paid_minor, after.refunded_minor)
    old_amounts = before.amounts if before is not None else (0, 0, 0)
    if now_amounts != old_amounts:
        changes["a"] = [[a, now_amounts[i] - old_amounts[i]] for i, a in enumerate(AMOUNTS)
                        if now_amounts[i] != old_amounts[i]]
    reached = before.reached if before is not None else frozenset()
    milestones = [m for m in MILESTONES if m not in reached and getattr(after, m) is not None]
    if milestones:
        changes["m"] = milestones
    if after.open_breaches or after.closed_breaches:
        had = before.breached if before is not None else frozenset()
        opened = [b["milestone"] for b in (*after.open_breaches, *after.closed_breaches) if b["milestone"] not in had]
        if opened:
            changes["bo"] = opened
        was_closed = before.closed if before is not None else frozenset()
        closed = [[b["milestone"], _closed_outcome(b)] for b in after.closed_breaches
                  if b["milestone"] not in was_closed]
        if closed:
            changes["bc"] = closed
    n_exc = after.exceptions_total - (before.exceptions_total if before is not None else 0)
    if n_exc > 0:
        changes["x"] = [e.code for e in after.exceptions[-n_exc:]]
        changes["xn"] = n_exc
    status_before = before.last_status if before is not None else None
    return [after.seq, status_before, after.last_status, ctype, cid, source, corr, occurred, processed_at, changes]


def entry_for(
    before: Before | OrderState | None,
    after: OrderState,
    cause: Mapping[str, Any] | AllocationResult,
    processed_at: int,
) -> TimelineEntry | None:
    """The entry of the status change `cause` made, or None when it published nothing.

    Call it after `tables.views.status_event` (which moved `seq` and `last_status`), with
    `before` taken (`before_of`) before the input was applied (None for a new order) and
    `cause` the cause given to `status_event`.
    """
    if isinstance(before, OrderState):
        before = before_of(before)
    made = entry_list(before, after, cause, processed_at)
    return TimelineEntry.from_list(made) if made is not None else None


def record(
    history: Timeline,
    before: Before | OrderState | None,
    after: OrderState,
    cause: Mapping[str, Any] | AllocationResult,
    processed_at: int,
    max_entries: int = MAX_TIMELINE_ENTRIES,
) -> Timeline:
    """`append(history, entry_for(...))`, or `history` itself when nothing was published."""
    entry = entry_for(before, after, cause, processed_at)
    return history if entry is None else append(history, entry, max_entries)



_SEP = b"\x1e"
"""Separates the stored timeline's parts (never in compact JSON: control characters in strings
are escaped): the summary (or null), then each kept entry, oldest first."""
_json = encoder(ensure_ascii=False, allow_nan=True)


def append_stored(
    stored: bytes | None, entry: TimelineEntry | list[Any], max_entries: int = MAX_TIMELINE_ENTRIES
) -> bytes:
    """`append` on the stored form (`to_stored`), for an entry or its `to_list()` form (what
    `entry_list` makes): only the new entry is encoded, and only the entries folded into the
    summary are decoded."""
    if max_entries < 1:
        raise ValueError(f"max_entries must be at least 1, got {max_entries}")
    row = entry.to_list() if isinstance(entry, TimelineEntry) else entry
    stored = stored or b"null"
    last = stored.rfind(_SEP)
    last_seq = _seq_of(stored[last + 1:]) if last >= 0 else _last_seq_of_summary(stored)
    if row[0] <= last_seq:
        raise ValueError(f"timeline entry seq {row[0]} is not after {last_seq}")
    encoded = _json(row).encode()
    if stored.count(_SEP) < max_entries:  # room for it: nothing to fold, nothing to split
        return stored + _SEP + encoded
    parts = stored.split(_SEP)
    parts.append(encoded)
    extra = len(parts) - 1 - max_entries
    if extra > 0:
        raw = json.loads(parts[0])
        summary = TimelineSummary.from_list(raw) if raw is not None else None
        for old in parts[1:1 + extra]:
            entry_old = TimelineEntry.from_list(json.loads(old))
            summary = TimelineSummary.of(entry_old) if summary is None else summary.fold(entry_old)
        assert summary is not None
        parts = [_json(summary.to_list()).encode(), *parts[1 + extra:]]
    return _SEP.join(parts)


def _seq_of(encoded_entry: bytes) -> int:
    """The seq of a stored entry: the first element of its JSON array (`[12,...`)."""
    return int(encoded_entry[1:encoded_entry.index(b",")])


def _last_seq_of_summary(encoded_summary: bytes) -> int:
    raw = json.loads(encoded_summary)
    return raw[2] if raw is not None else 0


def to_stored(history: Timeline) -> bytes | None:
    """The stored form of a timeline (None when empty)."""
    if not history.entries and history.summary is None:
        return None
    summary = _json(history.summary.to_list()).encode() if history.summary is not None else b"null"
    return _SEP.join([summary, *(_json(e.to_list()).encode() for e in history.entries)])


def from_stored(stored: bytes | None) -> Timeline:
    """The timeline of its stored form (None: empty)."""
    if not stored:
        return EMPTY
    summary, *entries = (json.loads(part) for part in stored.split(_SEP))
    return Timeline.from_list([entries, summary])
