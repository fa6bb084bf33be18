"""What one input makes the order agent publish and remember: the emission rules.

The order agent (streams/processors/orders.py) decodes, calls `apply_under_sla`, then asks
`emission_of` what to do; it only sends what the answer lists, in its order, and stores the state
when told. The rules, in one place:

- a **duplicate** input changes nothing, except that deadlines already overdue when it arrived
  are breached (the breaches, their exceptions and a status event caused by the SLA timer);
- otherwise the **breaches** before and after the input, then the **exceptions** (those of the
  breaches before, the input's own, those of the breaches after), then **one status event**
  caused by the input when the order's published content changed, a breach happened or one
  closed (only for a placed order: before `OrderPlaced` there is no status to publish), then the
  **allocation messages** the input caused;
- the state is **stored** when it changed, a breach closed or one was recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tables.allocation import AllocationMessage, AllocationResult
from tables.exceptions import BusinessException
from tables.order import Outcome
from tables.order_state import OrderState
from tables.sla import SlaStep, timer_cause

Cause = Mapping[str, Any] | AllocationResult


@dataclass(frozen=True, slots=True)
class Emission:
    """The outputs of one input (or of one SLA check) for one order, in sending order."""

    breaches: list[dict[str, Any]] = field(default_factory=list)  # SlaBreached records
    exceptions: list[BusinessException] = field(default_factory=list)
    status_cause: Cause | None = None  # publish the order's next status event with this cause
    allocation: list[AllocationMessage] = field(default_factory=list)
    store: bool = False  # write the state back


NOTHING = Emission()


def emission_of(state: OrderState, outcome: Outcome, step: SlaStep, cause: Cause) -> Emission:
    """The outputs of input `cause`, once `apply_under_sla` applied it to `state`."""
    if outcome.duplicate:
        return breached(state, step.before, step.raised_before) if step.before else NOTHING
    breaches = step.breaches
    published = outcome.publish or bool(breaches) or bool(step.closed)
    return Emission(
        breaches=breaches,
        exceptions=step.raised_before + outcome.exceptions + step.raised_after,
        status_cause=cause if published and state.placed_at is not None else None,
        allocation=outcome.allocation,
        store=outcome.changed or bool(step.closed) or bool(breaches),
    )


def breached(state: OrderState, records: list[dict[str, Any]], raised: list[BusinessException]) -> Emission:
    """The outputs of breaches found without an input (an SLA check, or before a duplicate):
    the breach records, their exceptions, a status event caused by the SLA timer."""
    if not records:
        return NOTHING
    cause = timer_cause(state, records) if state.placed_at is not None else None
    return Emission(breaches=records, exceptions=raised, status_cause=cause, store=True)
