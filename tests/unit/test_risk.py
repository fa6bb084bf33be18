"""SLA at risk (tables/risk.py): levels, crossings, thresholds, each milestone's clock."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables import risk
from tables.risk import LEVEL_RANK, RiskLevel, RiskThresholds, ThresholdError
from tables.sla import EVENT, WALL, SlaPolicy, pending_deadlines
from tests.unit.test_ops_support import CAPS, DAY, HOUR, POLICY, Shell, new_shell, run_story, story_ops
from tests.unit.test_order_support import T0

MIN = 60_000
LOW, MEDIUM, HIGH, CRITICAL = RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL


def test_default_levels_and_their_boundaries():
    assert risk.crossings(0, 10_000) == {LOW: 0, MEDIUM: 5_000, HIGH: 7_500, CRITICAL: 9_000}
    expected = [(-5, LOW), (0, LOW), (4_999, LOW), (5_000, MEDIUM), (7_499, MEDIUM), (7_500, HIGH), (8_999, HIGH),
                (9_000, CRITICAL), (10_000, CRITICAL), (25_000, CRITICAL)]
    assert [(t, risk.level_at(0, 10_000, t)) for t, _ in expected] == expected
    assert risk.consumed_bp(0, 10_000, 7_499) == 7_499
    assert risk.consumed_bp(0, 10_000, 25_000) == 25_000  # past due: until the breach is detected
    assert risk.consumed_bp(100, 10_000, 50) == 0


def test_a_crossing_is_the_first_whole_millisecond_the_share_is_consumed():
    assert risk.crossings(1_000, 1_003) == {LOW: 1_000, MEDIUM: 1_002, HIGH: 1_003, CRITICAL: 1_003}
    assert [risk.level_at(1_000, 1_003, t) for t in (1_001, 1_002, 1_003)] == [LOW, MEDIUM, CRITICAL]


def test_no_time_allowed_is_critical_from_the_start():
    assert risk.crossings(500, 400) == {LOW: 500, MEDIUM: 500, HIGH: 500, CRITICAL: 500}
    assert risk.level_at(500, 400, 499) == LOW
    assert risk.level_at(500, 500, 500) == CRITICAL
    assert risk.consumed_bp(500, 400, 500) == risk.FULL


def test_next_crossing():
    assert risk.next_crossing(0, 10_000, 0) == (MEDIUM, 5_000)
    assert risk.next_crossing(0, 10_000, 5_000) == (HIGH, 7_500)
    assert risk.next_crossing(0, 10_000, 9_000) is None


def test_thresholds_are_configurable_and_validated():
    assert RiskThresholds.parse("50,75,90") == risk.DEFAULT_THRESHOLDS
    custom = RiskThresholds.parse(" 60, 80%, 95.5")
    assert (custom.medium, custom.high, custom.critical) == (6_000, 8_000, 9_550)
    assert risk.crossings(0, 1_000, custom) == {LOW: 0, MEDIUM: 600, HIGH: 800, CRITICAL: 955}
    assert risk.level_at(0, 1_000, 954, custom) == HIGH
    for bad in ("90,75,50", "0,50,90", "50,75", "50,75,101", "50,50,90", "a,b,c"):
        with pytest.raises(ThresholdError):
            RiskThresholds.parse(bad)
    assert RiskThresholds.parse("50,75,100").critical == risk.FULL


THRESHOLDS = st.tuples(st.integers(1, 9_998), st.integers(1, 9_998), st.integers(1, 10_000)).filter(
    lambda t: t[0] < t[1] < t[2]).map(lambda t: RiskThresholds(*t))
TIMES = st.integers(-10**6, 10**12)


@given(TIMES, st.integers(-1_000, 10**10), st.lists(TIMES, min_size=2, max_size=6), THRESHOLDS)
@settings(max_examples=300, deadline=None)
def test_levels_are_monotone_in_time_and_agree_with_the_crossings(start, allowed, nows, thresholds):
    due = start + allowed
    cross = risk.crossings(start, due, thresholds)
    assert list(cross.values()) == sorted(cross.values()) and cross[LOW] == start
    ranks = [LEVEL_RANK[risk.level_at(start, due, t, thresholds)] for t in sorted(nows)]
    assert ranks == sorted(ranks)
    for now in nows:
        level = risk.level_at(start, due, now, thresholds)
        reached = [lv for lv, at in cross.items() if at <= now]
        assert level == (reached[-1] if reached else LOW)
        for lv, at in cross.items():  # the crossing is exactly the first millisecond
            if lv != LOW:
                assert LEVEL_RANK[risk.level_at(start, due, at, thresholds)] >= LEVEL_RANK[lv]
                assert LEVEL_RANK[risk.level_at(start, due, at - 1, thresholds)] < LEVEL_RANK[lv]
                assert (risk.consumed_bp(start, due, now) >= thresholds.start(lv)) == (now >= at)
        nxt = risk.next_crossing(start, due, now, thresholds)
        if nxt is not None:
            assert nxt[1] > now and LEVEL_RANK[nxt[0]] == LEVEL_RANK[level] + 1


# -- each milestone's clock -----------------------------------------------------------------
def test_a_placed_order_is_waiting_for_acceptance_and_its_promise():
    shell = new_shell({}, True)
    placed = T0 + MIN
    assert risk.open_milestones(shell.state, POLICY, EVENT) == {
        "ACCEPTANCE": (placed, placed + 4 * HOUR),
        "SHIPMENT": (placed, T0 + 2 * DAY),  # promised: the clock runs from placement
    }


def test_each_later_milestone_starts_when_it_becomes_expected():
    shell = new_shell({"10": 0}, False)
    shell.event(shell.ev.accepted())
    accepted = T0 + 2 * MIN
    shell.settle()
    assert risk.open_milestones(shell.state, POLICY, EVENT) == {
        "ALLOCATION": (accepted, accepted + 2 * HOUR),
        "SHIPMENT": (accepted, accepted + 48 * HOUR),
    }
    shell.event(shell.ev.dispatched("S1", {"20": 3, "30": 5}))
    dispatched = T0 + 3 * MIN
    assert risk.open_milestones(shell.state, POLICY, EVENT)["DELIVERY"] == (dispatched, dispatched + 5 * DAY)
    shell.event(shell.ev.dispatched("S2", {"10": 4}))
    shipped = T0 + 4 * MIN
    assert risk.open_milestones(shell.state, POLICY, EVENT)["INVOICE"] == (shipped, shipped + 24 * HOUR)
    shell.event(shell.ev.invoice("I1", {"10": (4, 400)}, due_at=T0 + 30 * DAY))
    shell.event(shell.ev.invoice("I2", {"20": (3, 750), "30": (5, 200)}, due_at=T0 + 20 * DAY))
    # the first unpaid invoice by due date is I2, posted at minute 6
    assert risk.open_milestones(shell.state, POLICY, EVENT)["PAYMENT"] == (T0 + 6 * MIN, T0 + 20 * DAY)
    shell.event(shell.ev.payment("P1", 950, "I2"))
    assert risk.open_milestones(shell.state, POLICY, EVENT)["PAYMENT"] == (T0 + 5 * MIN, T0 + 30 * DAY)


def test_a_breached_milestone_is_no_longer_at_risk():
    shell = new_shell({}, False)
    shell.check(T0 + 5 * HOUR)
    assert "ACCEPTANCE" not in risk.open_milestones(shell.state, POLICY, EVENT)


def test_an_orphan_counts_from_its_first_event_on_either_clock():
    shell = Shell()
    shell.event(shell.ev.payment("P1", 10))
    first = T0 + MIN
    assert risk.open_milestones(shell.state, POLICY, EVENT) == {"ORPHAN": (first, first + HOUR)}
    assert shell.state.orphan_since_wall == first  # the test shell's clock: it arrived then
    shell.state.orphan_since_wall = first + 30_000  # say it arrived 30 s later
    assert risk.open_milestones(shell.state, POLICY, WALL) == {"ORPHAN": (first + 30_000, first + 30_000 + HOUR)}


def test_the_rows_and_index_entries_of_an_order():
    shell = new_shell({}, False)
    shell.event(shell.ev.accepted())
    accepted = T0 + 2 * MIN
    rows = risk.risks(shell.state, POLICY, EVENT, accepted + 90 * MIN)
    assert [(r.milestone, r.level, r.consumed_bp) for r in rows] == [("ALLOCATION", "HIGH", 7_500),
                                                                     ("SHIPMENT", "LOW", 312)]
    assert (rows[0].next_level, rows[0].next_level_at) == ("CRITICAL", accepted + 108 * MIN)
    assert rows[0].view()["consumed_pct"] == 75.0
    entries = risk.index_entries(shell.state, POLICY, EVENT)
    assert entries[:3] == [(accepted + HOUR, "ALLOCATION", "MEDIUM"), (accepted + 90 * MIN, "ALLOCATION", "HIGH"),
                           (accepted + 108 * MIN, "ALLOCATION", "CRITICAL")]
    assert entries[3:] == [(accepted + 24 * HOUR, "SHIPMENT", "MEDIUM"), (accepted + 36 * HOUR, "SHIPMENT", "HIGH"),
                           (accepted + 48 * HOUR * 9 // 10, "SHIPMENT", "CRITICAL")]


@given(CAPS, st.booleans(), story_ops())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_open_milestones_are_the_pending_deadlines_with_a_start_before_them(caps, promised, ops):
    shell = new_shell(caps, promised)
    run_story(shell, ops)
    policy = SlaPolicy()
    opened = risk.open_milestones(shell.state, policy, EVENT)
    assert {m: due for m, (_, due) in opened.items()} == pending_deadlines(shell.state, policy, EVENT)
    for m, (start, due) in opened.items():
        assert start <= due or m == "SHIPMENT", (m, start, due)  # a promise can precede placement
