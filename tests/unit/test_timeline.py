"""The order timeline (tables/timeline.py): what one published change records, the bounded
history and its summary, the stored form."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables import timeline as tl
from tables.timeline import BreachOutcome, LineChange, Timeline, TimelineEntry, TimelineSummary
from tests.unit.test_ops_support import CAPS, HOUR, PROCESSING_DELAY, Shell, new_shell, run_story, story_ops
from tests.unit.test_order_support import T0

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MIN = 60_000


def test_each_published_change_is_an_entry_with_what_changed():
    shell = new_shell({"20": 1}, False, max_entries=50)
    shell.event(shell.ev.hold("CREDIT"))
    shell.event(shell.ev.accepted())
    shell.settle()
    shell.event(shell.ev.release("CREDIT"))
    shell.event(shell.ev.picked("S1", {"10": 4}))  # publishes nothing: no entry
    shell.event(shell.ev.dispatched("S1", {"10": 4, "99": 1}))
    shell.event(shell.ev.invoice("I1", {"10": (4, 400)}))
    shell.event(shell.ev.payment("P1", 400, "I1"))
    entries = shell.timeline.entries
    assert [e.seq for e in entries] == list(range(1, 11))
    assert [(e.cause_type, e.status_before, e.status_after) for e in entries] == [
        ("OrderPlaced", None, "SUBMITTED"),
        ("OrderHoldApplied", "SUBMITTED", "ON_HOLD"),
        ("OrderAccepted", "ON_HOLD", "ON_HOLD"),
        ("AllocationResult", "ON_HOLD", "ON_HOLD"),
        ("AllocationResult", "ON_HOLD", "ON_HOLD"),
        ("AllocationResult", "ON_HOLD", "ON_HOLD"),
        ("OrderHoldReleased", "ON_HOLD", "PARTIALLY_ALLOCATED"),
        ("ShipmentDispatched", "PARTIALLY_ALLOCATED", "PARTIALLY_SHIPPED"),
        ("InvoicePosted", "PARTIALLY_SHIPPED", "PARTIALLY_SHIPPED"),
        ("PaymentReceived", "PARTIALLY_SHIPPED", "PARTIALLY_SHIPPED"),
    ]
    placed, hold, accepted, r10, r20, r30, release, dispatch, invoice, payment = entries
    assert placed.lines == (
        LineChange("10", (("ordered", 4),)), LineChange("20", (("ordered", 3),)), LineChange("30", (("ordered", 5),)))
    assert placed.milestones == ("placed_at",)
    assert (placed.cause_id, placed.source, placed.occurred_at, placed.processed_at) == (
        "SO-1-e1", "test", T0 + MIN, T0 + MIN + PROCESSING_DELAY)
    assert (hold.holds_added, release.holds_removed) == (("CREDIT",), ("CREDIT",))
    assert accepted.milestones == ("accepted_at",) and accepted.lines == ()
    assert (r10.source, r10.cause_id, r10.lines) == ("inventory", "R1", (LineChange("10", (("allocated", 4),)),))
    assert r20.lines == (LineChange("20", (("allocated", 1), ("backordered", 2)), None, (None, T0 + 7 * 24 * HOUR)),)
    assert r30.lines == (LineChange("30", (("allocated", 5),), (None, "W1")),)  # allocated where ATP was best
    assert dispatch.lines == (LineChange("10", (("allocated", -4), ("shipped", 4))),)
    assert (dispatch.exceptions, dispatch.exceptions_count) == (("UNKNOWN_LINE",), 1)
    assert invoice.amounts == (("invoiced_minor", 400),)
    assert invoice.lines == (LineChange("10", (("invoiced", 4),)),)
    assert payment.amounts == (("paid_minor", 400),) and payment.lines == ()
    # every entry matches the OrderStatusChanged it stands for
    for entry, record in zip(shell.timeline.entries, shell.h.published):
        assert (entry.seq, entry.status_before, entry.status_after, entry.cause_id) == (
            record["seq"], record["previous_status"], record["status"], record["cause_event_id"])


def test_breaches_opened_and_closed_are_recorded_with_their_outcome():
    shell = new_shell({"10": 0}, False)
    shell.event(shell.ev.accepted())
    shell.settle()
    shell.check(T0 + 4 * HOUR)
    breach = shell.timeline.entries[-1]
    assert (breach.cause_type, breach.source, breach.cause_id) == ("SlaBreached", "sla", "sla:SO-1:ALLOCATION")
    assert breach.breaches_opened == ("ALLOCATION",) and breach.occurred_at == T0 + 4 * HOUR
    shell.h.inv.restock("SO-1", "10", 4, T0 + 5 * HOUR)
    shell.settle()
    assert shell.timeline.entries[-1].breaches_closed == (("ALLOCATION", BreachOutcome.LATE),)
    shell.advance(5 * HOUR)
    shell.event(shell.ev.cancelled())
    assert shell.timeline.entries[-1].breaches_closed == ()  # nothing else was breached
    assert shell.timeline.entries[-1].milestones == ("cancelled_at",)


def test_an_acceptance_breach_withdrawn_by_a_cancel():
    shell = new_shell({}, False)
    shell.check(T0 + 5 * HOUR)
    shell.event(shell.ev.cancelled())
    assert shell.timeline.entries[-1].breaches_closed == (("ACCEPTANCE", BreachOutcome.WITHDRAWN),)


def test_nothing_published_is_no_entry():
    shell = new_shell({}, False)
    before = shell.state.seq
    em = shell.event(shell.ev.picked("S1", {"10": 1}))
    assert em.status_cause is None and shell.state.seq == before
    assert len(shell.timeline.entries) == 1
    copy = Shell()  # an orphan's buffered event: not placed, nothing published
    copy.event(copy.ev.payment("P1", 5))
    assert copy.timeline == tl.EMPTY


def entry(seq: int, cause_type: str = "OrderAccepted", occurred: int | None = 0, exceptions: int = 0) -> TimelineEntry:
    return TimelineEntry(seq, "A", "B", cause_type, f"e{seq}", "erp", None, occurred, 1_000 + seq,
                         exceptions=("X",) * exceptions, exceptions_count=exceptions)


def test_older_entries_fold_into_the_summary():
    history = tl.EMPTY
    for seq, kind in enumerate(["OrderPlaced", "OrderAccepted", "AllocationResult", "AllocationResult", "X"], 1):
        history = tl.append(history, entry(seq, kind, occurred=100 * seq, exceptions=seq % 2), max_entries=2)
    assert [e.seq for e in history.entries] == [4, 5]
    assert history.summary == TimelineSummary(
        entries=3, first_seq=1, last_seq=3, first_occurred_at=100, last_occurred_at=300,
        first_processed_at=1_001, last_processed_at=1_003,
        by_cause_type=(("AllocationResult", 1), ("OrderAccepted", 1), ("OrderPlaced", 1)), exceptions=2,
    )
    assert history.last_seq == 5
    assert history.view()["earlier"]["by_cause_type"] == {"AllocationResult": 1, "OrderAccepted": 1, "OrderPlaced": 1}


def test_append_refuses_a_change_recorded_twice_or_no_room():
    history = tl.append(tl.EMPTY, entry(1))
    with pytest.raises(ValueError, match="seq 1 is not after 1"):
        tl.append(history, entry(1))
    with pytest.raises(ValueError, match="at least 1"):
        tl.append(history, entry(2), max_entries=0)


def test_the_stored_form_is_compact_and_exact():
    shell = new_shell({"20": 1}, False)
    shell.event(shell.ev.hold("CREDIT"))
    shell.event(shell.ev.accepted())
    shell.settle()
    shell.check(T0 + 4 * HOUR)
    stored = json.dumps(shell.timeline.to_list(), separators=(",", ":"))
    assert Timeline.from_list(json.loads(stored)) == shell.timeline
    assert Timeline.from_list(None) == tl.EMPTY  # a state written before timelines
    per_entry = len(stored) / len(shell.timeline.entries)
    assert per_entry < 220, per_entry
    view = shell.timeline.view()
    assert view["entries"][0]["changes"]["lines"][0] == {"line_id": "10", "ordered": 4}


ENTRIES = st.lists(
    st.tuples(st.integers(1, 3), st.sampled_from(["OrderPlaced", "ShipmentDispatched", "SlaBreached"]),
              st.one_of(st.none(), st.integers(0, 10**6)), st.integers(0, 3)),
    max_size=40,
)


@given(ENTRIES, st.integers(1, 8))
@settings(max_examples=150, deadline=None)
def test_the_history_keeps_the_last_entries_and_a_summary_of_the_rest(rows, max_entries):
    history = tl.EMPTY
    stored = None  # the order agent's form: appended without decoding the kept entries
    made = []
    seq = 0
    for gap, kind, occurred, exc in rows:
        seq += gap
        e = entry(seq, kind, occurred, exc)
        made.append(e)
        history = tl.append(history, e, max_entries)
        stored = tl.append_stored(stored, e, max_entries)
        assert tl.from_stored(stored) == history
    assert tl.to_stored(history) == stored
    kept = made[-max_entries:]
    folded = made[: len(made) - len(kept)]
    assert history.entries == tuple(kept)
    if folded:
        s = history.summary
        assert (s.entries, s.first_seq, s.last_seq) == (len(folded), folded[0].seq, folded[-1].seq)
        counts: dict[str, int] = {}
        for e in folded:
            counts[e.cause_type] = counts.get(e.cause_type, 0) + 1
        assert dict(s.by_cause_type) == counts
        assert s.exceptions == sum(e.exceptions_count for e in folded)
        times = [e.occurred_at for e in folded if e.occurred_at is not None]
        assert (s.first_occurred_at, s.last_occurred_at) == ((min(times), max(times)) if times else (None, None))
    else:
        assert history.summary is None
    assert Timeline.from_list(json.loads(json.dumps(history.to_list()))) == history


@given(CAPS, st.booleans(), story_ops(), st.integers(1, 12))
@PROPS
def test_every_publication_of_any_story_is_one_entry(caps, promised, ops, max_entries):
    shell = new_shell(caps, promised, max_entries=max_entries)
    run_story(shell, ops)
    published = shell.h.published
    history = shell.timeline
    assert history.last_seq == len(published) == shell.state.seq
    assert len(history.entries) == min(max_entries, len(published))
    for e, record in zip(history.entries, published[-len(history.entries):]):
        assert (e.seq, e.status_before, e.status_after, e.cause_type) == (
            record["seq"], record["previous_status"], record["status"], record["cause_event_type"])
    folded = len(published) - len(history.entries)
    assert (history.summary.entries if history.summary else 0) == folded
    # line deltas add up to the state's buckets (while nothing is folded)
    if folded == 0:
        for line_id, ln in shell.state.lines.items():
            for bucket in tl.LINE_BUCKETS:
                total = sum(d for e in history.entries for c in e.lines if c.line_id == line_id
                            for b, d in c.deltas if b == bucket)
                assert total == getattr(ln, bucket), (line_id, bucket)


def test_the_state_carries_its_timeline_undecoded():
    from tables.order_state import OrderState

    state = OrderState("SO-1", channel="line\nbreak")  # a newline in a string stays escaped
    state.timeline = tl.append_stored(tl.append_stored(None, entry(1)), entry(2, "OrderHoldApplied"))
    raw = state.to_bytes()
    assert raw.count(b"\n") == 1
    again = OrderState.from_bytes(raw)
    assert again == state and again.channel == "line\nbreak"
    assert [e.seq for e in tl.from_stored(again.timeline).entries] == [1, 2]
    assert OrderState.from_bytes(OrderState("SO-2").to_bytes()).timeline is None
