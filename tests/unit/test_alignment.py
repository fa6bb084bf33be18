"""Stages aligned by business time (issue 13): a task reading an internal topic waits while a
sending task's frontier says it may still send an earlier record; records of several senders
in one partition are merged by time whatever order they were appended in."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from streams.runtime.engine import CAUSE_TASK, CAUSE_TIME, FRONTIER, INF, Record, Task
from tests.runtime_fakes import Msg


def inventory_task(senders: int = 2) -> Task:
    """The inventory agent's shape: a source topic and an internal one written by `senders` tasks."""
    return Task(SimpleNamespace(name="inventory"), 0, ["inventory", "requests"], senders={"requests": senders})


def source(offset: int, ts: int) -> Record:
    return Record(Msg("inventory", offset, ts))


def internal(offset: int, ts: int, sender: int) -> Record:
    return Record(Msg("requests", offset, 10**12, [(CAUSE_TIME, str(ts).encode()), (CAUSE_TASK, str(sender).encode())]))


def marker(offset: int, frontier: int, sender: int) -> Record:
    return Record(Msg("requests", offset, 10**12, [(FRONTIER, str(frontier).encode()), (CAUSE_TASK, str(sender).encode())]))


def drain(task: Task, now: float = 0.0) -> list[tuple[str, int]]:
    out = []
    while taken := task.take(1000, now):
        out += [(r.topic, r.timestamp) for r in taken]
    return out


def test_a_source_record_waits_until_every_sender_is_past_it():
    t = inventory_task()
    t.add(source(0, 100))
    t.end_of("inventory")
    assert drain(t) == []  # nothing heard from the order tasks yet
    t.add(marker(0, 150, sender=0))
    assert drain(t) == []  # sender 1 may still send something before 100
    t.add(marker(1, 100, sender=1))
    assert drain(t) == [("inventory", 100)]  # tie: the source first, then what sender 1 may send at 100


def test_an_earlier_request_goes_before_the_receipt_and_a_later_one_after():
    t = inventory_task()
    for offset, rec in enumerate([internal(0, 90, 0), internal(1, 120, 0), marker(2, 200, 0), marker(3, 200, 1)]):
        rec.offset = offset
        t.add(rec)
    t.add(source(0, 100))
    t.end_of("inventory")
    assert drain(t) == [("requests", 90), ("inventory", 100), ("requests", 120)]


def test_nothing_waits_for_a_sender_at_its_end():
    t = inventory_task()
    t.add(marker(0, INF, 0))
    t.add(marker(1, INF, 1))
    t.add(source(0, 10**15))
    t.end_of("inventory")
    assert drain(t) == [("inventory", 10**15)]


@given(
    st.lists(st.integers(0, 30), max_size=12),
    st.lists(st.integers(0, 30), max_size=12),
    st.lists(st.integers(0, 30), max_size=12),
    st.randoms(use_true_random=False),
)
def test_the_merge_does_not_depend_on_how_senders_interleave_in_the_partition(a, b, inv, rnd):
    """Two order tasks send in their own time order; whatever order their records reach the
    partition in (and whenever their frontier markers come), the task takes the same sequence."""
    a, b, inv = sorted(a), sorted(b), sorted(inv)

    def run(seed: int) -> list[tuple[str, int]]:
        # A sender's frontier marker after each of its records (the next record's time).
        streams: list[list[Record]] = [[], []]
        for s, times in ((0, a), (1, b)):
            with_markers = []
            for i, ts in enumerate(times):
                with_markers.append(internal(0, ts, s))
                with_markers.append(marker(0, times[i + 1] if i + 1 < len(times) else INF, s))
            streams[s] = with_markers or [marker(0, INF, s)]
        order = random_interleaving(streams, seed)
        t = inventory_task()
        for ts in inv:
            t.add(source(0, ts))
        t.end_of("inventory")
        out: list[tuple[str, int]] = []
        for offset, rec in enumerate(order):
            rec.offset = offset
            t.add(rec)
            out += [(r.topic, r.timestamp) for r in t.take(rnd.randint(1, 3), 0.0)]
        return out + drain(t)

    first = run(1)
    assert run(2) == first
    assert sorted(first) == sorted([("requests", x) for x in a + b] + [("inventory", x) for x in inv])
    assert [ts for _, ts in first] == sorted(ts for _, ts in first)  # business-time order


def random_interleaving(streams: list[list[Record]], seed: int) -> list[Record]:
    import random

    rnd = random.Random(seed)
    cursors = [0] * len(streams)
    out = []
    while any(c < len(s) for c, s in zip(cursors, streams)):
        s = rnd.choice([i for i, st_ in enumerate(streams) if cursors[i] < len(st_)])
        out.append(streams[s][cursors[s]])
        cursors[s] += 1
    return out


def test_frontier_is_the_stream_time_or_the_earliest_pending_input():
    t = inventory_task()
    assert t.frontier({"inventory"}) == -INF  # nothing reported: a record may come at any time
    t.end_of("inventory")
    assert t.frontier({"inventory"}) == INF  # at its end, nothing buffered: nothing will come
    t.add(source(0, 100))
    assert t.frontier({"inventory"}) == 100
    t.end_of("inventory")
    t.add(marker(0, INF, 0))
    t.add(marker(1, INF, 1))
    assert drain(t) == [("inventory", 100)]
    assert t.frontier({"inventory", "requests"}) == INF
    t.add(source(1, 50))  # a late record: not at its end any more
    assert t.frontier({"inventory"}) == 100  # the stream time: its effects are placed there
    assert [r.cause_time for r in t.take(10, 0.0)] == [100]


def test_offsets_commit_only_what_every_sender_lane_processed():
    t = inventory_task()
    t.add(source(0, 10))
    t.end_of("inventory")
    t.add(internal(0, 70, 0))
    t.add(internal(1, 20, 1))
    t.add(marker(2, 60, 1))
    assert drain(t) == [("inventory", 10), ("requests", 20)]  # sender 1 may still send at 60..70
    assert t.positions() == {"inventory": 1, "requests": 0}  # offset 0 (sender 0's) not processed
    t.add(marker(3, INF, 1))
    assert drain(t) == [("requests", 70)]
    assert t.positions() == {"inventory": 1, "requests": 4}


def test_a_restarted_task_resumes_its_stream_time_and_the_senders_frontiers():
    t = inventory_task()
    t.add(marker(0, 70, 0))
    t.add(marker(1, 80, 1))
    t.add(source(0, 60))
    t.end_of("inventory")
    assert drain(t) == [("inventory", 60)]
    again = inventory_task()
    again.resume(t.checkpoint())
    assert again.stream_time == 60 and [lane.bound for lane in again.internal_lanes["requests"]] == [70, 80]
    again.resume("not json")  # ignored
    again.resume(None)
    assert again.stream_time == 60


# --------------------------------------------------------------------------- the order side: only
# the orders an answer may still change wait for the inventory side (OrderAgent.awaits_answers)


def order_task(waiting: set[bytes], senders: int = 2) -> Task:
    """The order agent's shape: a source topic and the results written by `senders` inventory tasks;
    records of the keys in `waiting` wait for the senders' frontiers, the others go on."""
    return Task(
        SimpleNamespace(name="orders"), 0, ["orders", "results"], senders={"results": senders},
        awaits=lambda record: record.key in waiting,
    )


def order_event(offset: int, ts: int, key: bytes) -> Record:
    record = Record(Msg("orders", offset, ts))
    record.key = key
    return record


def answer(offset: int, ts: int, sender: int, key: bytes) -> Record:
    record = Record(Msg("results", offset, 10**12, [(CAUSE_TIME, str(ts).encode()), (CAUSE_TASK, str(sender).encode())]))
    record.key = key
    return record


def result_marker(offset: int, frontier: int, sender: int) -> Record:
    return Record(Msg("results", offset, 10**12, [(FRONTIER, str(frontier).encode()), (CAUSE_TASK, str(sender).encode())]))


def keys_of(records: list[Record]) -> list[tuple[str, int, bytes]]:
    return [(r.topic, r.timestamp, r.key) for r in records]


def test_an_order_no_answer_can_change_goes_on_while_the_answers_are_behind():
    t = order_task(waiting={b"SO-1"})
    t.add(order_event(0, 100, b"SO-2"))
    t.add(order_event(1, 110, b"SO-1"))
    t.end_of("orders")
    assert keys_of(t.take(10, 0.0)) == [("orders", 100, b"SO-2")]  # SO-1 waits: an answer may come before 110
    assert t.ready(0.0) is False
    t.add(answer(0, 105, 1, b"SO-1"))
    t.add(result_marker(1, 200, 1))
    t.add(result_marker(0, 120, 0))
    assert keys_of(t.take(10, 0.0)) == [("results", 105, b"SO-1")]  # the answer first, then a cut:
    assert keys_of(t.take(10, 0.0)) == [("orders", 110, b"SO-1")]  # its order decided on the new state


def test_a_batch_ends_before_a_second_record_of_a_key_already_in_it():
    """Whether the second waits depends on the state the first leaves: decided in the next batch."""
    t = order_task(waiting=set())
    for offset, (ts, key) in enumerate([(100, b"SO-1"), (101, b"SO-2"), (102, b"SO-1"), (103, b"SO-3")]):
        t.add(order_event(offset, ts, key))
    t.end_of("orders")
    assert keys_of(t.take(10, 0.0)) == [("orders", 100, b"SO-1"), ("orders", 101, b"SO-2")]
    assert t.cut
    assert keys_of(t.take(10, 0.0)) == [("orders", 102, b"SO-1"), ("orders", 103, b"SO-3")]
    assert not t.cut


def test_answers_themselves_wait_for_every_sender():
    """Two answers for one order from two inventory tasks apply in their time order."""
    t = order_task(waiting=set())
    t.add(answer(0, 130, 0, b"SO-1"))
    t.end_of("orders")
    assert t.take(10, 0.0) == []  # sender 1 may still answer something before 130
    t.add(answer(1, 120, 1, b"SO-1"))
    t.add(result_marker(2, 300, 1))
    assert keys_of(t.take(10, 0.0)) == [("results", 120, b"SO-1")]  # then the cut: same key
    assert keys_of(t.take(10, 0.0)) == [("results", 130, b"SO-1")]


def test_live_records_of_a_waiting_order_do_not_wait():
    import time

    now_ms = int(time.time() * 1000)
    t = order_task(waiting={b"SO-1"})
    t.add(order_event(0, now_ms, b"SO-1"))
    t.end_of("orders")
    assert keys_of(t.take(10, 0.0)) == [("orders", now_ms, b"SO-1")]


def test_a_restarted_task_takes_again_only_what_it_had_not_taken():
    """Lanes are taken out of offset order, so the committed offset of the partition is the lowest
    unprocessed one; what was taken beyond it is read again after a restart and must not be
    applied twice (the saga's sequence numbers cannot tell: finished lines leave the state)."""
    t = inventory_task()
    for offset, rec in enumerate([internal(0, 200, 1), internal(1, 90, 0)]):
        rec.offset = offset
        t.add(rec)
    t.end_of("inventory")
    assert [r.offset for r in t.take(10, 0.0)] == [1]  # sender 0 may still send something before 200
    assert t.positions()["requests"] == 0
    again = inventory_task()
    again.resume(t.checkpoint())
    for offset, rec in enumerate([internal(0, 200, 1), internal(1, 90, 0), marker(2, INF, 0)]):
        rec.offset = offset
        again.add(rec)
    again.end_of("inventory")
    assert [r.offset for r in again.take(10, 0.0)] == [0]  # its own, not the one taken before


def test_a_silent_sender_is_waited_for_as_long_as_the_runtime_allows_then_passed():
    """A sender's frontier comes with its commits. At 200k orders commits took 2-5 s, and the
    inventory tasks gave up on a sender after the fixed 5 s while it was only committing: they
    went on out of business-time order. The runtime now sets the patience from its commits."""
    t = inventory_task()
    t.sender_patience = 15.0
    t.add(source(0, 100))
    t.end_of("inventory")
    t.add(marker(0, 150, sender=0))  # sender 1 says nothing
    assert drain(t, now=0.0) == [] and drain(t, now=10.0) == []  # 10 s: still within its patience
    assert not t.internal_lanes["requests"][1].silent
    assert drain(t, now=15.5) == [("inventory", 100)]  # past it: goes on without sender 1 (logged)
    assert t.internal_lanes["requests"][1].silent


def test_live_traffic_goes_unaligned_but_a_stream_dated_in_the_future_waits():
    """Live means within the alignment horizon of the wall clock, on either side: a simulation
    whose business time runs past today is a backlog and must stay aligned (at 200k simulated
    orders the inventory side ran fifteen months ahead of the order side when it was not)."""
    import time

    now_ms = int(time.time() * 1000)
    for ts, waits in ((now_ms - 1_000, False), (now_ms + 1_000, False), (now_ms + 86_400_000, True),
                      (now_ms - 86_400_000, True)):
        t = inventory_task()
        t.add(source(0, ts))
        t.end_of("inventory")
        assert t.ready(0.0) is not waits
        assert drain(t) == ([] if waits else [("inventory", ts)]), ts
