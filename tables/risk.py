"""SLA at risk: how much of its allowed time each open milestone has consumed, as a level.

A milestone's clock starts when it becomes expected (`started_at`) and ends at its due time
(`due_at`, from tables/sla.py). The share of that time consumed at `now` gives a level:
LOW below the MEDIUM threshold, MEDIUM from 50 %, HIGH from 75 %, CRITICAL from 90 % (the
defaults; configurable). The shell serves the at-risk listing from an index keyed by the
time each level is crossed (`crossings`), so listing costs in proportion to what it returns.

Shares are integers in basis points (1/100 of a percent) so that `crossings` and
`level_at` agree exactly: no float rounding can put a crossing one millisecond off the level.
Decisions are in docs/operations-api.md "SLA at risk".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tables import sla
from tables.order_state import OrderState
from tables.sla import ClockKind, Milestone, SlaPolicy, pending_deadlines


class RiskLevel:
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


LEVELS: tuple[str, ...] = (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL)
LEVEL_RANK: Mapping[str, int] = {lv: i for i, lv in enumerate(LEVELS)}
FULL = 10_000
"""The whole allowed time, in basis points."""


class ThresholdError(ValueError):
    """Thresholds that are not strictly increasing shares in (0 %, 100 %]."""


@dataclass(frozen=True, slots=True)
class RiskThresholds:
    """Where MEDIUM, HIGH and CRITICAL start, in basis points of the allowed time."""

    medium: int = 5_000
    high: int = 7_500
    critical: int = 9_000

    def __post_init__(self) -> None:
        if not (0 < self.medium < self.high < self.critical <= FULL):
            raise ThresholdError(
                f"risk thresholds must satisfy 0 < medium < high < critical <= 100 %, got "
                f"{self.medium / 100}/{self.high / 100}/{self.critical / 100} %"
            )

    @classmethod
    def from_percent(cls, medium: float, high: float, critical: float) -> RiskThresholds:
        return cls(round(medium * 100), round(high * 100), round(critical * 100))

    @classmethod
    def parse(cls, text: str) -> RiskThresholds:
        """`"50,75,90"` (percent; decimals allowed), e.g. from a setting."""
        parts = [p.strip().rstrip("%") for p in text.split(",")]
        if len(parts) != 3:
            raise ThresholdError(f"expected three percentages such as \"50,75,90\", got {text!r}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ThresholdError(f"expected three percentages such as \"50,75,90\", got {text!r}") from None
        return cls.from_percent(*values)

    def starts(self) -> tuple[int, ...]:
        """Basis points from which each of `LEVELS` holds (LOW: 0), in their order."""
        return (0, self.medium, self.high, self.critical)

    def start(self, level: str) -> int:
        """Basis points from which `level` holds (LOW: 0)."""
        return self.starts()[LEVEL_RANK[level]]


DEFAULT_THRESHOLDS = RiskThresholds()


def consumed_bp(started_at: int, due_at: int, now: int) -> int:
    """Share of the allowed time consumed at `now`, in basis points, rounded down; 0 before
    the clock starts, above 10,000 past the due time. With no time allowed at all
    (`due_at <= started_at`) everything is consumed as soon as the clock starts."""
    if now < started_at:
        return 0
    allowed = due_at - started_at
    if allowed <= 0:
        return FULL
    return (now - started_at) * FULL // allowed


def crossings(started_at: int, due_at: int, thresholds: RiskThresholds = DEFAULT_THRESHOLDS) -> dict[str, int]:
    """Level -> the first millisecond at which it holds (LOW: `started_at`).

    A level holds from `started_at + ceil(share * allowed)`; times never decrease with the
    level, and with no time allowed every level starts at `started_at`.
    """
    allowed = max(0, due_at - started_at)
    return {lv: started_at + -(-bp * allowed // FULL) for lv, bp in zip(LEVELS, thresholds.starts())}


def level_at(started_at: int, due_at: int, now: int, thresholds: RiskThresholds = DEFAULT_THRESHOLDS) -> str:
    """The level at `now`: the highest whose share is consumed (LOW before the clock starts;
    CRITICAL also past the due time, until the breach is detected)."""
    consumed = consumed_bp(started_at, due_at, now)
    if now < started_at:
        return RiskLevel.LOW
    for lv in reversed(LEVELS):
        if consumed >= thresholds.start(lv):
            return lv
    return RiskLevel.LOW


def next_crossing(
    started_at: int, due_at: int, now: int, thresholds: RiskThresholds = DEFAULT_THRESHOLDS
) -> tuple[str, int] | None:
    """The next level change strictly after `now`, or None when CRITICAL already holds."""
    for lv, at in crossings(started_at, due_at, thresholds).items():
        if at > now and lv != RiskLevel.LOW:
            return lv, at
    return None


# -- milestones of one order -------------------------------------------------------------
def _anchors(state: OrderState, clock: ClockKind) -> Iterator[tuple[str, int, bool]]:
    """Thin wrapper of `tables.sla._anchors` (private there; should be public): every milestone
    expected and not reached, with its anchor time and whether the anchor is the due time."""
    return sla._anchors(state, clock)


def _payment_start(state: OrderState, anchor: int) -> int:
    """When the PAYMENT clock of the first unpaid invoice started: its posting time. The
    anchor is that invoice's due date; of several invoices due then, the earliest posted."""
    posted = [i.posted_at for i in state.invoices.values() if i.due_at == anchor]
    return min(posted) if posted else anchor


def open_milestones(
    state: OrderState, policy: SlaPolicy, clock: ClockKind, due: Mapping[str, int] | None = None
) -> dict[str, tuple[int, int]]:
    """Milestone -> `(started_at, due_at)` of every deadline of the order that can still
    breach (`tables.sla.pending_deadlines`: breached milestones are not at risk, they are
    breached). The start is the time the milestone became expected, as docs/sla.md lists:

    ACCEPTANCE placed_at; ALLOCATION accepted_at; SHIPMENT placed_at with a promised ship
    date (the promise holds from placement), else accepted_at; DELIVERY the oldest dispatch
    among undelivered shipments; INVOICE shipped_at; PAYMENT the posting of the first unpaid
    invoice; ORPHAN the first buffered event (its arrival on the wall clock).
    """
    if due is None:  # the caller may have them already (the SLA index sync)
        due = pending_deadlines(state, policy, clock)
    out: dict[str, tuple[int, int]] = {}
    for milestone, anchor, absolute in _anchors(state, clock):
        if milestone not in due:
            continue
        if milestone == Milestone.SHIPMENT and absolute:
            start = state.placed_at if state.placed_at is not None else anchor
        elif milestone == Milestone.PAYMENT:
            start = _payment_start(state, anchor)
        else:
            start = anchor
        out[milestone] = (start, due[milestone])
    return out


@dataclass(frozen=True, slots=True)
class MilestoneRisk:
    """One open milestone of one order at `now`: the row of the at-risk listing."""

    order_id: str
    milestone: str
    started_at: int
    due_at: int
    consumed_bp: int
    level: str
    next_level: str | None
    next_level_at: int | None
    channel: str | None
    region: str | None

    def view(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "milestone": self.milestone,
            "started_at": self.started_at,
            "due_at": self.due_at,
            "consumed_pct": self.consumed_bp / 100,
            "level": self.level,
            "next_level": self.next_level,
            "next_level_at": self.next_level_at,
            "channel": self.channel,
            "region": self.region,
        }


def risks(
    state: OrderState,
    policy: SlaPolicy,
    clock: ClockKind,
    now: int,
    thresholds: RiskThresholds = DEFAULT_THRESHOLDS,
) -> list[MilestoneRisk]:
    """Every open milestone of the order with its level at `now`, most urgent first (level,
    then due time)."""
    rows = []
    for m, (start, due) in open_milestones(state, policy, clock).items():
        nxt = next_crossing(start, due, now, thresholds)
        rows.append(
            MilestoneRisk(
                state.order_id, m, start, due, consumed_bp(start, due, now),
                level_at(start, due, now, thresholds),
                nxt[0] if nxt else None, nxt[1] if nxt else None, state.channel, state.region,
            )
        )
    rows.sort(key=lambda r: (-LEVEL_RANK[r.level], r.due_at, sla.MILESTONE_RANK[r.milestone]))
    return rows


def index_entries(
    state: OrderState,
    policy: SlaPolicy,
    clock: ClockKind,
    thresholds: RiskThresholds = DEFAULT_THRESHOLDS,
) -> list[tuple[int, str, str]]:
    """`(crossing_ms, milestone, level)` for every level above LOW of every open milestone:
    what the shell's at-risk index holds for the order (replace them on every change of the
    order, like the due index). An order is at level L for milestone M from the entry's
    time until the next level's entry, or until the milestone leaves `open_milestones`."""
    out = []
    for m, (start, due) in open_milestones(state, policy, clock).items():
        for lv, at in crossings(start, due, thresholds).items():
            if lv != RiskLevel.LOW:
                out.append((at, m, lv))
    out.sort(key=lambda e: (e[0], sla.MILESTONE_RANK[e[1]], LEVEL_RANK[e[2]]))
    return out


def risk_order(row: Mapping[str, Any]) -> tuple[int, int, str]:
    """The order of at-risk listings (`GET /sla/at-risk`), also when merging workers' lists:
    due time, milestone, order id."""
    return (row["due_at"], sla.MILESTONE_RANK[row["milestone"]], row["order_id"])
