"""The due index (RocksDB): ordering, rescheduling, rebuild, and the cost of a check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.processors.due_index import DueIndex, DueIndexes, StreamClock, _due_key, _risk_value
from tables.sla import MILESTONES, Milestone

A, S, D = Milestone.ACCEPTANCE, Milestone.SHIPMENT, Milestone.DELIVERY


@pytest.fixture()
def index(tmp_path: Path) -> Iterator[DueIndex]:
    idx = DueIndex(tmp_path / "due")
    yield idx
    idx.close()


def test_due_returns_passed_deadlines_in_due_order(index: DueIndex) -> None:
    index.schedule("SO-2", {A: 300, S: 100})
    index.schedule("SO-1", {A: 200, D: 100})
    index.schedule("SO-3", {S: 900})
    assert index.due(100) == []  # due < now: at its due time a deadline has not passed
    # ties: milestone order of SPEC §6, then order id
    assert index.due(101) == [("SO-2", S, 100), ("SO-1", D, 100)]
    assert index.due(301) == [("SO-2", S, 100), ("SO-1", D, 100), ("SO-1", A, 200), ("SO-2", A, 300)]
    assert index.due(301, limit=3) == index.due(301)[:3]
    assert index.next_due() == 100


def test_reschedule_replaces_and_unschedule_removes(index: DueIndex) -> None:
    assert index.schedule("SO-1", {A: 100, S: 500})
    assert not index.schedule("SO-1", {S: 500, A: 100})  # same deadlines: no write
    assert index.schedule("SO-1", {S: 400, D: 50})
    assert index.deadlines("SO-1") == {S: 400, D: 50}
    assert index.due(10_000) == [("SO-1", D, 50), ("SO-1", S, 400)]
    assert index.unschedule("SO-1")
    assert not index.unschedule("SO-1")
    assert index.due(10_000) == [] and index.deadlines("SO-1") == {} and index.next_due() is None


def test_negative_and_extreme_times_and_odd_order_ids(index: DueIndex) -> None:
    index.schedule("é/ü\x00x", {A: -5})
    index.schedule("o", {S: 2**62})
    index.schedule("", {D: 0})
    assert index.due(1) == [("é/ü\x00x", A, -5), ("", D, 0)]
    assert index.due(2**62 + 1)[-1] == ("o", S, 2**62)
    assert index.deadlines("é/ü\x00x") == {A: -5}


SCHEDULES = st.tuples(
    st.just("schedule"),
    st.sampled_from(["SO-1", "SO-2", "SO-3", "SO-4"]),
    st.dictionaries(st.sampled_from(MILESTONES), st.integers(-10, 10_000), max_size=4),
)
SCANS = st.tuples(st.just("due"), st.integers(-20, 11_000), st.integers(1, 6))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(SCHEDULES, SCANS), max_size=40))
def test_index_equals_a_sorted_list_of_the_latest_schedules(ops) -> None:
    """Interleaved schedules (also below earlier scans) and scans with limits."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        index = DueIndex(Path(tmp) / "due")
        latest: dict[str, dict[str, int]] = {}
        for op in ops:
            if op[0] == "schedule":
                index.schedule(op[1], op[2])
                latest[op[1]] = op[2]
                continue
            _, now, limit = op
            expected = sorted(
                (due, MILESTONES.index(m), oid)
                for oid, ds in latest.items() for m, due in ds.items() if due < now
            )[:limit]
            assert index.due(now, limit) == [(oid, MILESTONES[r], due) for due, r, oid in expected]
            assert index.last_scan_reads <= len(expected) + 1
        for oid, ds in latest.items():
            assert index.deadlines(oid) == ds
        index.close()


def test_scans_step_over_removed_deadlines_once(index: DueIndex) -> None:
    """Removed deadlines stay in RocksDB as tombstones until a compaction; a scan must not
    step over the same ones again and again (counted here as the entries it sees)."""
    index.rebuild((f"SO-{i:05d}", {A: 1000 + i}) for i in range(20_000))
    assert len(index.due(11_000)) == 10_000
    for i in range(10_000):  # the breached ones are rescheduled without that deadline
        index.unschedule(f"SO-{i:05d}")
    assert index.due(11_000) == [] and index.last_scan_reads == 1
    # the next scans start at the first live deadline, past the 10,000 tombstones
    assert index._low == _due_key(11_000, MILESTONES.index(A), b"SO-10000")
    assert index.next_due() == 11_000
    index.schedule("SO-EARLY", {S: 5})  # written below the scans so far: still found
    assert index.due(11_000) == [("SO-EARLY", S, 5)]


def test_rebuild_replaces_everything(index: DueIndex) -> None:
    index.schedule("SO-OLD", {A: 1})
    index.set_covered_offset(41)
    assert index.covered_offset() == 41
    n = index.rebuild(iter([("SO-1", {A: 10}), ("SO-2", {}), ("SO-3", {S: 5, D: 7})]))
    assert n == 2
    assert index.due(100) == [("SO-3", S, 5), ("SO-3", D, 7), ("SO-1", A, 10)]
    assert index.deadlines("SO-OLD") == {} and index.deadlines("SO-2") == {}
    assert index.covered_offset() is None  # a rebuilt index is current only once marked
    assert index.load([("SO-4", {A: 3}), ("SO-5", {A: 4})], batch_size=1) == 2  # more chunks
    assert index.due(100)[:2] == [("SO-4", A, 3), ("SO-5", A, 4)]


def test_one_check_reads_in_proportion_to_what_is_due(index: DueIndex) -> None:
    """200k open orders: nothing due reads one entry; 1,000 due read 1,000 (+1)."""
    now = 1_000_000_000
    index.rebuild(
        (f"SO-{i:06d}", {A: now + 1 + i, S: now + 10**9 + i}) for i in range(200_000)
    )
    assert index.due(now) == []
    assert index.last_scan_reads == 1
    for i in range(1000):  # 1,000 of them fall due
        index.schedule(f"SO-{i:06d}", {A: now - 1000 + i, S: now + 10**9 + i})
    due = index.due(now)
    assert len(due) == 1000 and index.last_scan_reads == 1001
    assert [d[2] for d in due] == sorted(d[2] for d in due)
    assert index.due(now, limit=10) == due[:10] and index.last_scan_reads == 10


def test_covered_offset_holds_only_while_nothing_changes(tmp_path: Path) -> None:
    index = DueIndex(tmp_path / "due")
    index.schedule("SO-1", {A: 5})
    index.set_covered_offset(7)
    index.schedule("SO-1", {A: 5})  # no change: still current
    index.close()
    index = DueIndex(tmp_path / "due")  # a clean restart keeps the mark
    assert index.covered_offset() == 7
    index.schedule("SO-1", {A: 6})
    assert index.covered_offset() is None
    index.set_covered_offset(8)
    index.load([("SO-2", {S: 1})])  # a bulk load changes it too
    assert index.covered_offset() is None
    index.close()
    index = DueIndex(tmp_path / "due")  # a crash after that change: rebuild
    assert index.covered_offset() is None
    index.close()


def test_due_indexes_open_reset_and_close(tmp_path: Path) -> None:
    indexes = DueIndexes(tmp_path / "sla")
    indexes.open(3).schedule("SO-1", {A: 1})
    assert indexes.get(3) is indexes.open(3)  # already open: the same
    indexes.close(3)
    assert indexes.get(3) is None
    assert indexes.open(3).deadlines("SO-1") == {A: 1}  # kept on disk
    assert indexes.reset(3).deadlines("SO-1") == {}
    assert not (tmp_path / "sla" / "p4").exists()
    indexes.reset(4).schedule("SO-2", {S: 2})
    indexes.close_all()
    assert indexes.by_partition == {}


def test_stream_clock_event_is_the_highest_occurred_at_per_partition() -> None:
    clock = StreamClock("event")
    assert clock.now(0) is None
    assert clock.observe(0, 100) and not clock.observe(0, 50) and not clock.observe(0, 100)
    assert clock.observe(1, 7)
    assert (clock.now(0), clock.now(1)) == (100, 7)
    clock.seed(2, 40)
    clock.seed(2, None)
    assert clock.now(2) == 40
    clock.forget(0)
    assert clock.now(0) is None


def test_stream_clock_wall_reads_the_wall() -> None:
    clock = StreamClock("wall", wall=lambda: 1234.5678)
    clock.observe(0, 10**15)
    assert clock.now(0) == clock.now(5) == 1_234_567
    with pytest.raises(ValueError, match="unknown SLA clock"):
        StreamClock("cpu")  # type: ignore[arg-type]


def test_open_breaches_are_listed_by_due_time_and_replaced_per_order(tmp_path: Path) -> None:
    index = DueIndex(tmp_path / "due")
    index.set_open_breaches("SO-2", [{"milestone": A, "due_at": 300, "detected_at": 310}], "EDI", "EU")
    index.set_open_breaches("SO-1", [{"milestone": S, "due_at": 100, "detected_at": 120},
                                     {"milestone": A, "due_at": 300, "detected_at": 301}], "ECOM", "NA")
    assert [(b["order_id"], b["milestone"], b["due_at"], b["detected_at"], b["channel"])
            for b in index.open_breaches()] == [
        ("SO-1", S, 100, 120, "ECOM"), ("SO-1", A, 300, 301, "ECOM"), ("SO-2", A, 300, 310, "EDI"),
    ]
    assert not index.set_open_breaches("SO-2", [{"milestone": A, "due_at": 300, "detected_at": 310}], "EDI", "EU")
    assert not index.set_open_breaches("SO-9", [])  # never listed: no read, no write
    assert index.set_open_breaches("SO-1", [{"milestone": A, "due_at": 300, "detected_at": 301}], "ECOM", "NA")
    assert [(b["order_id"], b["milestone"]) for b in index.open_breaches()] == [("SO-1", A), ("SO-2", A)]
    assert index.deadlines("SO-1") == {}  # listing breaches schedules nothing
    assert index.due(10**12) == []
    index.close()

    reopened = DueIndex(tmp_path / "due")  # the set of listed orders is read back
    assert reopened.set_open_breaches("SO-2", [])
    assert [b["order_id"] for b in reopened.open_breaches()] == ["SO-1"]
    reopened.clear()
    assert list(reopened.open_breaches()) == []
    assert reopened.load_open_breaches([("SO-3", [{"milestone": D, "due_at": 5, "detected_at": 6}], None, None),
                                        ("SO-4", [], "EDI", "EU")]) == 1
    assert [(b["order_id"], b["channel"]) for b in reopened.open_breaches()] == [("SO-3", None)]
    reopened.close()


def test_at_risk_lists_milestones_at_a_level_or_above_by_when_they_reached_it(index: DueIndex) -> None:
    from tables.risk import RiskThresholds

    thresholds = RiskThresholds()  # 50/75/90 %
    # SO-1: ACCEPTANCE from 0 to 100 (MEDIUM at 50, HIGH at 75, CRITICAL at 90);
    # SO-2: ACCEPTANCE from 0 to 1000 and SHIPMENT from 0 to 200 (MEDIUM 100, HIGH 150, CRITICAL 180).
    assert index.set_risks("SO-1", {"ACCEPTANCE": (0, 100)}, thresholds, "EDI", "EU")
    index.set_risks("SO-2", {"ACCEPTANCE": (0, 1000), "SHIPMENT": (0, 200)}, thresholds, "ECOM", None)
    assert not index.set_risks("SO-1", {"ACCEPTANCE": (0, 100)}, thresholds, "EDI", "EU")  # no change, no write

    def listed(level: str, now: int) -> list[tuple[str, str]]:
        return [(r["order_id"], r["milestone"]) for r in index.at_risk(level, now)]

    assert listed("MEDIUM", 49) == []
    assert listed("MEDIUM", 50) == [("SO-1", "ACCEPTANCE")]
    assert listed("MEDIUM", 150) == [("SO-1", "ACCEPTANCE"), ("SO-2", "SHIPMENT")]
    assert listed("HIGH", 150) == [("SO-1", "ACCEPTANCE"), ("SO-2", "SHIPMENT")]
    assert listed("CRITICAL", 150) == [("SO-1", "ACCEPTANCE")]
    row = next(index.at_risk("CRITICAL", 150))
    assert (row["started_at"], row["due_at"], row["channel"], row["region"]) == (0, 100, "EDI", "EU")
    assert index.refresh_risk_counts(150) == {("ACCEPTANCE", "CRITICAL"): 1, ("SHIPMENT", "HIGH"): 1}
    assert index.refresh_risk_counts(500) == index.risk_snapshot == {
        ("ACCEPTANCE", "CRITICAL"): 1, ("SHIPMENT", "CRITICAL"): 1, ("ACCEPTANCE", "MEDIUM"): 1,
    }

    # the order moved on: SO-1's acceptance is met, SO-2 only ships now
    index.set_risks("SO-1", {}, thresholds)
    index.set_risks("SO-2", {"SHIPMENT": (0, 200)}, thresholds, "ECOM", None)
    assert listed("MEDIUM", 10**6) == [("SO-2", "SHIPMENT")]
    # a rebuild loads the same entries
    index.clear()
    assert listed("MEDIUM", 10**6) == []
    index.load_risks([("SO-2", {"SHIPMENT": (0, 200)}, "ECOM", None)], thresholds)
    assert listed("MEDIUM", 10**6) == [("SO-2", "SHIPMENT")]
    assert not index.set_risks("SO-2", {"SHIPMENT": (0, 200)}, thresholds, "ECOM", None)


def test_breach_counts_by_milestone_agree_with_the_listing(tmp_path):
    index = DueIndex(tmp_path / "ix")
    index.set_open_breaches("SO-1", [{"milestone": "SHIPMENT", "due_at": 5, "detected_at": 6},
                                     {"milestone": "INVOICE", "due_at": 9, "detected_at": 10}], "EDI", "EU")
    index.set_open_breaches("SO-2", [{"milestone": "SHIPMENT", "due_at": 7, "detected_at": 8}], "EDI", "EU")
    index.set_open_breaches("SO-1", [{"milestone": "SHIPMENT", "due_at": 5, "detected_at": 6}], "EDI", "EU")
    listed: dict[str, int] = {}
    for breach in index.open_breaches():
        listed[breach["milestone"]] = listed.get(breach["milestone"], 0) + 1
    assert index.breach_counts() == listed == {"SHIPMENT": 2}
    index.close()
    reopened = DueIndex(tmp_path / "ix")  # counted again from the stored entries
    assert reopened.breach_counts() == {"SHIPMENT": 2}
    # removed entries leave tombstones: the listing starts past them once the mark is raised,
    # and an entry written below the mark afterwards is still listed
    reopened.set_open_breaches("SO-1", [])
    reopened.refresh_risk_counts(0)
    assert [b["order_id"] for b in reopened.open_breaches()] == ["SO-2"]
    reopened.set_open_breaches("SO-3", [{"milestone": "SHIPMENT", "due_at": 1, "detected_at": 2}], "EDI", "EU")
    assert [b["order_id"] for b in reopened.open_breaches()] == ["SO-3", "SO-2"]
    reopened.clear()
    assert reopened.breach_counts() == {}
    reopened.close()


def counted_from_scratch(index: DueIndex, now: int) -> dict[tuple[str, str], int]:
    """What the risk counts at `now` are: every entry listed at each level, as the at-risk
    listing reads them (the counts themselves read only what was reached since the last time)."""
    from tables.risk import LEVELS

    at_least: dict[tuple[str, str], int] = {}
    for level in LEVELS[1:]:
        for row in index.at_risk(level, now):
            at_least[(row["milestone"], level)] = at_least.get((row["milestone"], level), 0) + 1
    return _exact(at_least)


def expected_counts(kept: dict[str, dict], now: int, thresholds) -> dict[tuple[str, str], int]:
    """The same from the orders' milestones alone (tables.risk.crossings), not the index."""
    from tables.risk import LEVELS, crossings

    at_least: dict[tuple[str, str], int] = {}
    for milestones in kept.values():
        for milestone, (started, due) in milestones.items():
            for level, at in crossings(started, due, thresholds).items():
                if level != LEVELS[0] and at <= now:
                    at_least[(milestone, level)] = at_least.get((milestone, level), 0) + 1
    return _exact(at_least)


def _exact(at_least: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    from tables.risk import LEVELS

    exact = {}
    for (milestone, level), n in at_least.items():
        higher = LEVELS.index(level) + 1
        n -= at_least.get((milestone, LEVELS[higher]), 0) if higher < len(LEVELS) else 0
        if n:
            exact[(milestone, level)] = n
    return exact


_SET = st.tuples(st.just("set"), st.integers(0, 5), st.dictionaries(
    st.sampled_from(["ACCEPTANCE", "SHIPMENT", "INVOICE"]),
    st.tuples(st.integers(0, 400), st.integers(1, 400)).map(lambda p: (p[0], p[0] + p[1])), max_size=2))
_NOW = st.tuples(st.just("now"), st.integers(0, 900), st.none())
RISK_STEP = st.one_of(_SET, _SET, _SET, _NOW, _NOW, st.tuples(st.just("rebuild"), st.none(), st.none()))


@given(st.lists(RISK_STEP, max_size=30))
@example([("set", 0, {"ACCEPTANCE": (0, 100)}), ("now", 500, None), ("set", 0, {}), ("now", 600, None)])
@example([("now", 500, None), ("set", 1, {"SHIPMENT": (0, 100)}), ("now", 600, None), ("now", 90, None)])
@settings(max_examples=150, deadline=None)
def test_risk_counts_kept_as_entries_change_are_a_recount(steps):
    """The gauge's counts are brought to `now` by reading only the entries reached since the
    last time, and adjusted as orders' entries change in between (a scrape that walked every
    at-risk entry took seconds at 200k orders). Whatever the order of changes, clock moves
    (back too) and rebuilds, they equal a count of every entry."""
    import tempfile

    from tables.risk import RiskThresholds

    thresholds = RiskThresholds()
    with tempfile.TemporaryDirectory() as tmp:
        index = DueIndex(Path(tmp) / "ix")
        kept: dict[str, dict] = {}
        for kind, arg, milestones in steps:
            if kind == "set":
                index.set_risks(f"SO-{arg}", milestones, thresholds, "EDI", None)
                kept[f"SO-{arg}"] = milestones
            elif kind == "rebuild":
                index.clear()
                index.load_risks([(o, m, "EDI", None) for o, m in kept.items()], thresholds)
            else:
                expected = expected_counts(kept, arg, thresholds)
                assert index.refresh_risk_counts(arg) == expected
                # the listing starts at each level's low mark, past the removed entries' tombstones
                assert counted_from_scratch(index, arg) == expected
        index.close()


def test_deferred_writes_land_once_at_the_end_as_if_written_one_by_one(tmp_path: Path) -> None:
    one_by_one, deferred = DueIndex(tmp_path / "a"), DueIndex(tmp_path / "b")
    try:
        for idx in (one_by_one, deferred):
            idx.schedule("SO-0", {Milestone.ACCEPTANCE: 50})
            idx.set_covered_offset(7)
        changes = [("SO-1", {Milestone.ACCEPTANCE: 100}), ("SO-2", {Milestone.SHIPMENT: 200}), ("SO-0", {})]
        for order_id, deadlines in changes:
            one_by_one.schedule(order_id, deadlines)
            one_by_one.set_open_breaches(order_id, [{"milestone": Milestone.ACCEPTANCE, "due_at": 90,
                                                     "detected_at": 95}] if deadlines else [])
        with deferred.deferred():
            for order_id, deadlines in changes:
                assert deferred.schedule(order_id, deadlines)
                deferred.set_open_breaches(order_id, [{"milestone": Milestone.ACCEPTANCE, "due_at": 90,
                                                       "detected_at": 95}] if deadlines else [])
            assert deferred.due(1_000) == [("SO-0", Milestone.ACCEPTANCE, 50)]  # nothing written yet
        assert deferred.due(1_000) == one_by_one.due(1_000)
        assert list(deferred.open_breaches()) == list(one_by_one.open_breaches())
        assert dict(deferred.db.items()) == dict(one_by_one.db.items())
        assert deferred.covered_offset() is None and not deferred.marked  # a write removes the mark
    finally:
        one_by_one.close()
        deferred.close()


@given(
    st.one_of(st.integers(-(2**62), 2**62), st.booleans()),
    st.integers(-(2**62), 2**62),
    st.one_of(st.none(), st.text(max_size=8)),
    st.one_of(st.none(), st.text(max_size=8)),
)
@settings(max_examples=200, deadline=None)
def test_risk_values_are_what_json_dumps_writes(started, due, channel, region) -> None:
    assert _risk_value(started, due, channel, region) == json.dumps([started, due, channel, region]).encode()


RISK_CHANGES = st.tuples(
    st.just("risks"),
    st.sampled_from(["SO-1", "SO-2", "SO-3"]),
    st.dictionaries(st.sampled_from(MILESTONES), st.tuples(st.integers(0, 500), st.integers(0, 5_000)), max_size=3),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(SCHEDULES, RISK_CHANGES, st.just(("deferred",)), st.just(("rebuild",))), max_size=40),
       st.integers(1, 4))
def test_reverse_entries_remembered_in_memory_are_what_the_db_holds(ops, remembered) -> None:
    """`DueIndex` keeps the reverse entries it wrote or read in memory (a few, then it starts
    over): the same writes as an index that reads every one from RocksDB, also for changes
    written at the end of a `deferred` block."""
    import contextlib
    import tempfile

    from streams.processors import due_index as module
    from tables.risk import DEFAULT_THRESHOLDS

    with tempfile.TemporaryDirectory() as tmp:
        remembering, reading = DueIndex(Path(tmp) / "a"), DueIndex(Path(tmp) / "b")
        original = module._REMEMBERED
        try:
            module._REMEMBERED = remembered
            in_block = 0
            for op in ops:
                for idx in (remembering, reading):
                    if op[0] == "schedule":
                        with idx.deferred() if in_block else contextlib.nullcontext():
                            idx.schedule(op[1], op[2])
                    elif op[0] == "risks":
                        with idx.deferred() if in_block else contextlib.nullcontext():
                            idx.set_risks(op[1], op[2], DEFAULT_THRESHOLDS, "web", "EU")
                    elif op[0] == "rebuild":
                        idx.rebuild([("SO-1", {A: 7}), ("SO-4", {S: 9, D: 11})])
                    reading._reverse.clear()  # reads every reverse entry from RocksDB
                in_block = 3 if op[0] == "deferred" else max(in_block - 1, 0)
                assert dict(remembering.db.items()) == dict(reading.db.items())
                for key, value in remembering._reverse.items():
                    assert remembering.db.get(key) == value
        finally:
            module._REMEMBERED = original
            remembering.close()
            reading.close()
