"""SLA rules of SPEC §6: the policy, every open order's pending deadlines, breach bookkeeping.

Pure and deterministic like the rest of `tables/`: callers pass the time in. The shell keeps
deadlines in a due index (streams/processors/due_index.py) so that finding what is due costs in
proportion to what is due; this module only says, for one order, what is due when, and
records breaches in the order's state so that each (order, milestone) breaches at most once,
also across restarts and rebalances (the state travels with the changelog).

Decisions where SPEC §6 is silent are in docs/sla.md.
"""

from __future__ import annotations

import heapq
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tables.exceptions import BusinessException, Code
from tables.order import Outcome
from tables.order_state import MAX_RECENT_EXCEPTIONS, OrderState
from tables.status import is_cancelled


class Milestone:
    """The SLA milestones (the `SlaBreached.milestone` strings)."""

    ACCEPTANCE = "ACCEPTANCE"
    ALLOCATION = "ALLOCATION"
    SHIPMENT = "SHIPMENT"
    DELIVERY = "DELIVERY"
    INVOICE = "INVOICE"
    PAYMENT = "PAYMENT"
    ORPHAN = "ORPHAN"


MILESTONES: tuple[str, ...] = (
    Milestone.ACCEPTANCE,
    Milestone.ALLOCATION,
    Milestone.SHIPMENT,
    Milestone.DELIVERY,
    Milestone.INVOICE,
    Milestone.PAYMENT,
    Milestone.ORPHAN,
)
MILESTONE_RANK: Mapping[str, int] = {m: i for i, m in enumerate(MILESTONES)}
"""A milestone's place in the process: the tie-break of listings and the due index's key."""

CHANNELS: tuple[str, ...] = ("EDI", "ECOM", "SALES", "MARKETPLACE")
"""The `Channel` enum of orders.avsc: policy overrides for anything else are typos."""

ClockKind = Literal["wall", "event"]
WALL: ClockKind = "wall"
EVENT: ClockKind = "event"

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

DEFAULT_DURATIONS: Mapping[str, int] = {
    Milestone.ACCEPTANCE: 4 * HOUR_MS,  # after placed
    Milestone.ALLOCATION: 2 * HOUR_MS,  # after accepted
    Milestone.SHIPMENT: 48 * HOUR_MS,  # after accepted, when the order has no promised_ship_at
    Milestone.DELIVERY: 5 * DAY_MS,  # after dispatch
    Milestone.INVOICE: 24 * HOUR_MS,  # after full shipment
    Milestone.PAYMENT: 0,  # grace after the invoice's due date
    Milestone.ORPHAN: 1 * HOUR_MS,  # after the first buffered event
}


# -- policy -----------------------------------------------------------------------------
class PolicyError(ValueError):
    """The SLA policy file is unreadable or invalid; the message names the place."""


_UNIT_MS = {"d": DAY_MS, "h": HOUR_MS, "m": MINUTE_MS, "s": SECOND_MS}
_DURATION = re.compile(r"(?:\d+[dhms])+")
_PART = re.compile(r"(\d+)([dhms])")


def parse_duration(text: object, where: str = "duration") -> int:
    """`"4h"`, `"30m"`, `"2d"`, `"90s"`, or combined (`"1h30m"`) -> milliseconds."""
    if not isinstance(text, str) or not _DURATION.fullmatch(text.strip()):
        raise PolicyError(
            f"{where}: expected a duration such as \"4h\", \"30m\", \"2d\", \"90s\" or "
            f"\"1h30m\", got {text!r}"
        )
    return sum(int(n) * _UNIT_MS[u] for n, u in _PART.findall(text))


def format_duration(ms: int) -> str:
    """The inverse of `parse_duration` (largest units first), for messages and docs."""
    if ms == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s"):
        n, ms = divmod(ms, _UNIT_MS[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out) + (f"+{ms}ms" if ms else "")


def _durations(table: object, where: str) -> dict[str, int]:
    if not isinstance(table, Mapping):
        raise PolicyError(f"{where}: expected a table of milestone = duration")
    out: dict[str, int] = {}
    for key, value in table.items():
        milestone = key.upper()
        if milestone not in MILESTONE_RANK:
            raise PolicyError(
                f"{where}.{key}: unknown milestone; expected one of "
                f"{', '.join(m.lower() for m in MILESTONES)}"
            )
        out[milestone] = parse_duration(value, f"{where}.{key}")
    return out


class SlaPolicy:
    """Due-time durations per milestone: defaults, overridden per channel and per (channel,
    region); the most specific setting of each milestone wins."""

    __slots__ = ("default", "by_channel", "by_channel_region", "_merged")

    def __init__(
        self,
        default: Mapping[str, int] | None = None,
        by_channel: Mapping[str, Mapping[str, int]] | None = None,
        by_channel_region: Mapping[tuple[str, str], Mapping[str, int]] | None = None,
    ) -> None:
        self.default = {**DEFAULT_DURATIONS, **(default or {})}
        self.by_channel = {k: dict(v) for k, v in (by_channel or {}).items()}
        self.by_channel_region = {k: dict(v) for k, v in (by_channel_region or {}).items()}
        self._merged: dict[tuple[str | None, str | None], dict[str, int]] = {}

    def durations(self, channel: str | None, region: str | None) -> Mapping[str, int]:
        """Every milestone's duration for an order of this channel and region."""
        key = (channel, region)
        merged = self._merged.get(key)
        if merged is None:
            merged = {
                **self.default,
                **self.by_channel.get(channel or "", {}),
                **self.by_channel_region.get((channel or "", region or ""), {}),
            }
            self._merged[key] = merged
        return merged

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SlaPolicy) and (
            self.default, self.by_channel, self.by_channel_region
        ) == (other.default, other.by_channel, other.by_channel_region)

    def __repr__(self) -> str:
        return (
            f"SlaPolicy(default={self.default!r}, by_channel={self.by_channel!r}, "
            f"by_channel_region={self.by_channel_region!r})"
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "policy") -> SlaPolicy:
        """From the parsed TOML: `[default]`, `[channel.<CH>]`, `[channel.<CH>.region.<R>]`."""
        unknown = set(data) - {"default", "channel"}
        if unknown:
            raise PolicyError(
                f"{source}: unknown section(s) {', '.join(sorted(unknown))}; "
                f"expected [default] and [channel.<CHANNEL>]"
            )
        default = _durations(data.get("default", {}), f"{source}: default")
        by_channel: dict[str, dict[str, int]] = {}
        by_channel_region: dict[tuple[str, str], dict[str, int]] = {}
        channels = data.get("channel", {})
        if not isinstance(channels, Mapping):
            raise PolicyError(f"{source}: channel must be a table of [channel.<CHANNEL>]")
        for channel, table in channels.items():
            where = f"{source}: channel.{channel}"
            if channel not in CHANNELS:
                raise PolicyError(f"{where}: unknown channel; expected one of {', '.join(CHANNELS)}")
            if not isinstance(table, Mapping):
                raise PolicyError(f"{where}: expected a table")
            table = dict(table)
            regions = table.pop("region", {})
            by_channel[channel] = _durations(table, where)
            if not isinstance(regions, Mapping):
                raise PolicyError(f"{where}.region: expected [channel.{channel}.region.<REGION>]")
            for region, overrides in regions.items():
                by_channel_region[(channel, region)] = _durations(
                    overrides, f"{where}.region.{region}"
                )
        return cls(default, by_channel, by_channel_region)

    @classmethod
    def from_toml(cls, text: str, source: str = "policy") -> SlaPolicy:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise PolicyError(f"{source}: not valid TOML: {e}") from None
        return cls.from_mapping(data, source)

    @classmethod
    def load(cls, path: Path | None) -> SlaPolicy:
        """The policy in `path` (the `O2C_SLA_POLICY_PATH` setting); SPEC defaults if None."""
        if path is None:
            return cls()
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise PolicyError(f"{path}: cannot read SLA policy: {e.strerror}") from None
        return cls.from_toml(text, str(path))


# -- deadlines --------------------------------------------------------------------------
def breached_milestones(state: OrderState) -> set[str]:
    """Milestones this order has ever breached (open or closed): they never breach again."""
    return {b["milestone"] for b in state.open_breaches} | {
        b["milestone"] for b in state.closed_breaches
    }


def breach_order(breach: Mapping[str, Any]) -> tuple[int, int, str]:
    """The order of open-breach listings (`GET /sla/breaches`): due time, milestone, order id."""
    return breach["due_at"], MILESTONE_RANK[breach["milestone"]], breach["order_id"]


def merge_breach_listings(parts: Iterable[Iterable[Mapping[str, Any]]]) -> Iterator[Mapping[str, Any]]:
    """Merge several workers' listings, each already in `breach_order`, into one."""
    return heapq.merge(*parts, key=breach_order)


def _first_unpaid_due(state: OrderState) -> int | None:
    """Due date of the first invoice not covered by cash, or None when every invoice is.

    Cash naming an invoice settles that invoice; cash naming none (or an unknown one) and
    refunds are spread over the remaining invoices in due-date order.
    """
    if not state.invoices:
        return None
    invoices = sorted(state.invoices.values(), key=lambda i: (i.due_at, i.invoice_id))
    credit = state.paid_minor - state.refunded_minor - sum(
        min(i.applied_minor, i.total_minor) for i in invoices
    )
    if credit < 0:  # refunds took back cash applied to invoices: the oldest is owed again
        return invoices[0].due_at
    for inv in invoices:
        owed = inv.total_minor - min(inv.applied_minor, inv.total_minor)
        if owed > credit:
            return inv.due_at
        credit -= owed
    return None


def _anchors(state: OrderState, clock: ClockKind) -> Iterator[tuple[str, int, bool]]:
    """`(milestone, time, absolute)` for every milestone expected and not reached: the due
    time is `time` itself when absolute, else `time` + the policy's duration."""
    if state.placed_at is None:
        if state.orphan_since is not None:
            since = state.orphan_since
            if clock == WALL and state.orphan_since_wall is not None:
                since = state.orphan_since_wall
            yield Milestone.ORPHAN, since, False
        return
    if is_cancelled(state):
        return
    if state.closed_at is None:
        if state.accepted_at is None:
            yield Milestone.ACCEPTANCE, state.placed_at, False
        elif state.allocated_at is None:
            yield Milestone.ALLOCATION, state.accepted_at, False
        if state.shipped_at is None:
            if state.promised_ship_at is not None:
                yield Milestone.SHIPMENT, state.promised_ship_at, True
            elif state.accepted_at is not None:
                yield Milestone.SHIPMENT, state.accepted_at, False
        elif state.invoiced_at is None:
            yield Milestone.INVOICE, state.shipped_at, False
        unpaid = _first_unpaid_due(state)
        if unpaid is not None:
            yield Milestone.PAYMENT, unpaid, False
    undelivered = [
        s.dispatched_at
        for s in state.shipments.values()
        if s.dispatched_at is not None and s.delivered_at is None
    ]
    if undelivered:
        yield Milestone.DELIVERY, min(undelivered), False


def outstanding(state: OrderState, policy: SlaPolicy, clock: ClockKind) -> dict[str, int]:
    """Every milestone expected and not reached yet, with its due time (breached or not)."""
    durations = policy.durations(state.channel, state.region)
    return {
        m: at if absolute else at + durations[m] for m, at, absolute in _anchors(state, clock)
    }


def pending_deadlines(state: OrderState, policy: SlaPolicy, clock: ClockKind) -> dict[str, int]:
    """Milestone -> due time (epoch ms) of every deadline that can still breach.

    This is what the due index holds for the order: cancelled orders have none, closed ones
    only the delivery of undelivered shipments, and a milestone that breached once is gone.
    """
    deadlines = outstanding(state, policy, clock)
    if state.open_breaches or state.closed_breaches:
        for m in breached_milestones(state):
            deadlines.pop(m, None)
    return deadlines


# -- breaches ---------------------------------------------------------------------------
def sla_breached_record(state: OrderState, breach: Mapping[str, Any], clock: ClockKind) -> dict[str, Any]:
    """The `SlaBreached` output record (key: order_id) of one open-breach entry."""
    return {
        "order_id": state.order_id,
        "milestone": breach["milestone"],
        "due_at": breach["due_at"],
        "detected_at": breach["detected_at"],
        "clock": clock.upper(),
        "channel": state.channel,
        "region": state.region,
    }


def record_breach(
    state: OrderState, milestone: str, due_at: int, detected_at: int, clock: ClockKind
) -> dict[str, Any] | None:
    """Add the breach to `state.open_breaches` and return its `SlaBreached` record; None
    (and no change) when this milestone already breached for the order, ever."""
    if milestone not in MILESTONE_RANK:
        raise ValueError(f"unknown SLA milestone {milestone!r}")
    if milestone in breached_milestones(state):
        return None
    breach = {"milestone": milestone, "due_at": due_at, "detected_at": detected_at}
    state.open_breaches.append(breach)
    return sla_breached_record(state, breach, clock)


def orphan_exception(state: OrderState, detected_at: int) -> BusinessException:
    """ORPHAN_EVENT (SPEC §4), raised with the ORPHAN breach and kept in the state like the
    model's other exceptions; it names the first buffered event."""
    first = state.buffer[0] if state.buffer else {}
    exc = BusinessException(
        Code.ORPHAN_EVENT,
        state.order_id,
        f"{len(state.buffer)} event(s) wait for OrderPlaced since {state.orphan_since}; "
        f"first: {first.get('event_type')}",
        first.get("event_id", "?"),
        detected_at,
    )
    state.exceptions.append(exc)
    if len(state.exceptions) > MAX_RECENT_EXCEPTIONS:
        del state.exceptions[0]
    state.exceptions_total += 1
    return exc


def breach_due(
    state: OrderState, policy: SlaPolicy, clock: ClockKind, now: int
) -> tuple[list[dict[str, Any]], list[BusinessException]]:
    """Record every pending deadline that `now` has passed (due < now).

    Returns the `SlaBreached` records to publish (due-time order) and the exceptions raised
    (ORPHAN_EVENT). Deadlines are recomputed from the state, so a stale due-index entry
    breaches nothing. When the records list is not empty the state changed: persist it,
    and publish an `OrderStatusChanged` if the order is placed (cause: `timer_cause`).
    """
    records, raised, _ = breach_due_and_pending(state, policy, clock, now)
    return records, raised


def breach_due_and_pending(
    state: OrderState, policy: SlaPolicy, clock: ClockKind, now: int
) -> tuple[list[dict[str, Any]], list[BusinessException], dict[str, int]]:
    """`breach_due`, plus the deadlines left pending afterwards (all at or after `now`):
    what the due index must hold for the order, without computing them twice."""
    pending = pending_deadlines(state, policy, clock)
    due = sorted((at, MILESTONE_RANK[m], m) for m, at in pending.items() if at < now)
    records: list[dict[str, Any]] = []
    raised: list[BusinessException] = []
    for at, _, m in due:
        record = record_breach(state, m, at, now, clock)
        if record is not None:
            records.append(record)
            if m == Milestone.ORPHAN:
                raised.append(orphan_exception(state, now))
        del pending[m]
    return records, raised, pending


def close_met_breaches(state: OrderState, at: int) -> list[dict[str, Any]]:
    """Close the open breaches whose milestone is no longer outstanding; call after applying
    an event, with its `occurred_at`. Returns the entries closed (now in
    `state.closed_breaches`): non-empty means the status record changed.

    A closed entry is the breach plus `met_at` (business time of the event that reached the
    milestone; None when the order was cancelled instead) and `late` (reached after the due
    time; an ORPHAN is always late: OrderPlaced arrived after the orphan SLA).
    """
    if not state.open_breaches:
        return []
    cancelled = state.placed_at is not None and is_cancelled(state)
    still = {m for m, _, _ in _anchors(state, EVENT)}
    kept: list[dict[str, Any]] = []
    closed: list[dict[str, Any]] = []
    for b in state.open_breaches:
        m = b["milestone"]
        if m in still:
            kept.append(b)
            continue
        met_at = None if cancelled and m != Milestone.ORPHAN else at
        late = met_at is not None and (m == Milestone.ORPHAN or met_at > b["due_at"])
        closed.append({**b, "met_at": met_at, "late": late})
    if closed:
        state.open_breaches = kept
        state.closed_breaches.extend(closed)
    return closed


def timer_cause(state: OrderState, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The `cause` for `tables.views.status_event` when breaches (not an input event) changed
    the order: cause_event_id `sla:<order_id>:<milestone>`, event_type `SlaBreached`."""
    first = records[0]
    return {
        "event_id": f"sla:{state.order_id}:{first['milestone']}",
        "event_type": "SlaBreached",
        "occurred_at": first["detected_at"],
        "correlation_id": None,
    }


@dataclass
class SlaStep:
    """What one input did to an order's SLA record (`apply_under_sla`)."""

    before: list[dict[str, Any]] = field(default_factory=list)  # SlaBreached overdue before it
    raised_before: list[BusinessException] = field(default_factory=list)
    closed: list[dict[str, Any]] = field(default_factory=list)  # open breaches it met
    after: list[dict[str, Any]] = field(default_factory=list)  # deadlines it created already past due
    raised_after: list[BusinessException] = field(default_factory=list)
    pending: dict[str, int] | None = None  # deadlines left for the due index; None: recompute

    @property
    def breaches(self) -> list[dict[str, Any]]:
        return self.before + self.after


def apply_under_sla(
    state: OrderState,
    apply: Callable[[], Outcome],
    at: int,
    policy: SlaPolicy,
    clock: ClockKind,
    now: int | None,
    *,
    check_before: bool = True,
) -> tuple[Outcome, SlaStep]:
    """Apply one input (`apply`: an event or an allocation result, at business time `at`) to
    the order under its SLA clocks at `now` (None: the partition has no time yet):

    1. breach what was already overdue, so an input arriving between a due time and the next
       check does not hide the breach (`check_before=False` when the caller knows nothing can
       be: the event clock, or no indexed deadline has passed);
    2. apply the input; a duplicate changes nothing more;
    3. close the open breaches whose milestone it reached;
    4. breach the deadlines it created already past due (a backfill).
    """
    step = SlaStep()
    if check_before and now is not None:
        step.before, step.raised_before, _ = breach_due_and_pending(state, policy, clock, now)
    outcome = apply()
    if outcome.duplicate:
        return outcome, step
    step.closed = close_met_breaches(state, at)
    if now is not None:
        step.after, step.raised_after, step.pending = breach_due_and_pending(state, policy, clock, now)
    return outcome, step
