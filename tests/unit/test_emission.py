"""The emission rules (tables/emission.py): what one input makes the order agent send and store,
without Kafka."""

from __future__ import annotations

from tables.allocation import AllocationRequest
from tables.emission import NOTHING, breached, emission_of
from tables.exceptions import BusinessException
from tables.order import Outcome
from tables.order_state import OrderState
from tables.sla import SlaStep

EVENT = {"event_id": "ev-1", "event_type": "OrderAccepted", "occurred_at": 1_000}
BREACH = {"milestone": "ACCEPTANCE", "due_at": 500, "detected_at": 900}


def exc(code: str) -> BusinessException:
    return BusinessException(code, "SO-1", code.lower(), "ev-1", 1_000)


def placed() -> OrderState:
    state = OrderState("SO-1")
    state.placed_at = 100
    return state


REQUEST = AllocationRequest("SO-1", "1", "SKU-1", None, 2, 1_000, 1_000, 1, "ev-1")


def test_a_duplicate_sends_nothing_and_stores_nothing() -> None:
    assert emission_of(placed(), Outcome(duplicate=True), SlaStep(), EVENT) == NOTHING


def test_a_duplicate_still_breaches_what_was_overdue_with_the_timer_as_cause() -> None:
    step = SlaStep(before=[BREACH], raised_before=[exc("ORPHAN_EVENT")])
    out = emission_of(placed(), Outcome(duplicate=True, allocation=[REQUEST]), step, EVENT)
    assert out.breaches == [BREACH] and out.exceptions == [exc("ORPHAN_EVENT")]
    assert out.status_cause["event_type"] == "SlaBreached" and out.status_cause["event_id"] == "sla:SO-1:ACCEPTANCE"
    assert out.allocation == [] and out.store


def test_a_change_that_publishes_sends_one_status_caused_by_the_input_and_its_messages() -> None:
    out = emission_of(placed(), Outcome(changed=True, publish=True, allocation=[REQUEST]), SlaStep(), EVENT)
    assert out.status_cause is EVENT and out.allocation == [REQUEST] and out.store
    assert out.breaches == [] and out.exceptions == []


def test_a_change_that_does_not_show_is_stored_without_a_status_event() -> None:
    out = emission_of(placed(), Outcome(changed=True), SlaStep(), EVENT)
    assert out.status_cause is None and out.store


def test_no_status_before_the_order_is_placed() -> None:
    out = emission_of(OrderState("SO-1"), Outcome(changed=True, publish=True, buffered=True), SlaStep(), EVENT)
    assert out.status_cause is None and out.store


def test_breaches_and_exceptions_come_in_order_and_force_a_status_and_a_store() -> None:
    after = dict(BREACH, milestone="ALLOCATION")
    step = SlaStep(before=[BREACH], raised_before=[exc("A")], after=[after], raised_after=[exc("C")])
    out = emission_of(placed(), Outcome(exceptions=[exc("B")]), step, EVENT)
    assert out.breaches == [BREACH, after]
    assert [e.code for e in out.exceptions] == ["A", "B", "C"]
    assert out.status_cause is EVENT and out.store


def test_a_closed_breach_publishes_and_stores() -> None:
    out = emission_of(placed(), Outcome(), SlaStep(closed=[BREACH]), EVENT)
    assert out.status_cause is EVENT and out.store and out.breaches == []


def test_nothing_changed_nothing_sent() -> None:
    assert emission_of(placed(), Outcome(), SlaStep(), EVENT) == NOTHING


def test_breaches_found_by_a_check() -> None:
    assert breached(placed(), [], []) == NOTHING
    out = breached(placed(), [BREACH], [])
    assert out.breaches == [BREACH] and out.status_cause["event_type"] == "SlaBreached" and out.store
    assert breached(OrderState("SO-1"), [BREACH], []).status_cause is None
