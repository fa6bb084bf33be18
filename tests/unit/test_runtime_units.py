"""The runtime's pieces that need no broker: the task merge (event-time order, KIP-695 waiting),
the partitioner, and the store's commit protocol."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from streams.runtime import engine
from streams.runtime.engine import CAUSE_TASK, CAUSE_TIME, Record, Runtime, Task
from streams.runtime.partitioner import partition_of
from streams.runtime.restore import _settled_ends
from streams.runtime.store import PartitionedStore, Split
from tests.runtime_fakes import Msg, QueueConsumer


def task(*topics: str) -> Task:
    return Task(SimpleNamespace(name="p"), 0, list(topics))


def fill(t: Task, index: int, *stamps: int) -> None:
    for offset, ts in enumerate(stamps):
        t.queues[index].append(Record(Msg(t.topics[index], offset, ts)))


def test_lowest_timestamp_first_and_ties_by_topic_order():
    t = task("orders", "shipments")
    fill(t, 0, 10, 30, 30)
    fill(t, 1, 20, 30)
    t.at_end = [True, True]
    taken = t.take(10, now=0.0)
    assert [(r.topic, r.timestamp) for r in taken] == [
        ("orders", 10), ("shipments", 20), ("orders", 30), ("orders", 30), ("shipments", 30)
    ]


def test_waits_for_a_partition_that_may_hold_an_earlier_record():
    t = task("orders", "shipments")
    fill(t, 0, 10, 20)
    t.at_end = [False, False]  # shipments: nothing buffered, end not reported since its last record
    assert t.take(10, now=0.0) == []
    t.end_of("shipments")  # end of partition: nothing earlier can come
    assert [r.timestamp for r in t.take(10, now=0.1)] == [10, 20]


def test_a_partition_that_never_reports_stops_blocking_after_the_stall_limit():
    t = task("orders", "shipments")
    fill(t, 0, 10)
    assert t.take(10, now=0.0) == []
    assert t.take(10, now=1.0) == []
    assert [r.timestamp for r in t.take(10, now=6.0)] == [10]


def test_max_task_idle_waits_for_a_quiet_partition_then_goes_on_until_it_has_data_again():
    t = Task(SimpleNamespace(name="p"), 0, ["orders", "shipments"], max_idle=0.5)
    fill(t, 0, 10, 20)
    t.at_end = [True, True]  # shipments: nothing buffered, nothing on the broker either
    assert not t.ready(0.0) and t.take(10, now=0.0) == []
    assert not t.ready(0.4) and t.take(10, now=0.4) == []
    assert t.ready(0.5)
    assert [r.timestamp for r in t.take(1, now=0.5)] == [10]
    assert [r.timestamp for r in t.take(1, now=0.6)] == [20]  # still quiet: no new wait
    fill(t, 0, 30)
    t.queues[1].append(Record(Msg("shipments", 0, 25)))  # every input has data again
    assert [r.timestamp for r in t.take(1, now=0.7)] == [25]
    assert t.take(10, now=0.8) == []  # shipments quiet again: a new wait begins
    assert [r.timestamp for r in t.take(10, now=1.3)] == [30]


def test_without_max_task_idle_a_quiet_partition_never_blocks():
    t = task("orders", "shipments")
    fill(t, 0, 10)
    t.at_end = [True, True]
    assert t.ready(0.0) and [r.timestamp for r in t.take(10, now=0.0)] == [10]


def test_the_stall_limit_counts_from_the_last_progress_not_the_first_wait():
    t = task("orders", "shipments")
    fill(t, 0, 10, 20, 30)
    t.queues[1].append(Record(Msg("shipments", 0, 15)))
    assert [r.timestamp for r in t.take(10, now=0.0)] == [10, 15]  # then shipments may hold more
    t.queues[1].append(Record(Msg("shipments", 1, 25)))
    assert [r.timestamp for r in t.take(10, now=4.0)] == [20, 25]
    assert t.take(10, now=8.0) == []  # 4 s since the last progress: still waiting for shipments
    assert [r.timestamp for r in t.take(10, now=9.5)] == [30]  # 5.5 s: given up, logged


def test_a_step_takes_in_a_partition_queued_behind_a_deep_backlog_of_another():
    """librdkafka's single queue held ~5 s of other partitions' backlog in front of a partition's
    records: taken 1,000 a step, its task waited, then skipped it (issue 13). One step moves
    the whole queue into the tasks' buffers and pauses the partition that went over its bound."""
    processor = SimpleNamespace(name="p", event_time=lambda record: record.timestamp)
    t = Task(processor, 0, ["orders", "shipments"])
    backlog = [Msg("orders", offset, 1_000 + offset) for offset in range(12_000)]
    consumer = QueueConsumer([*backlog, Msg("shipments", 0, 5)])
    runtime = Runtime(
        [], consumer_config={}, producer_config={}, restore_config={}, exactly_once=True,
        commit_interval=0.025, batch_size=1000, on_fatal=print,
    )
    runtime.consumer = consumer
    runtime.task_of = {("orders", 0): t, ("shipments", 0): t}
    runtime._take_in(now=0.0)
    assert consumer.queue == []
    assert t.buffered("orders") == 12_000 and t.buffered("shipments") == 1
    assert consumer.paused == [("orders", 0)]  # over pause_at (5,000 by default): fetching it stops until drained
    t.end_of("shipments")
    assert [r.timestamp for r in t.take(3, now=0.0)] == [5, 1_000, 1_001]  # business order across both
    consumer.queue = [Msg("orders", 12_000 + offset, 0) for offset in range(engine._MAX_INTAKE + 5)]
    runtime._take_in(now=0.0)
    assert len(consumer.queue) == 5  # a step takes in at most _MAX_INTAKE: processing goes on


def test_a_partition_paused_when_a_rebalance_takes_it_is_resumed():
    """librdkafka keeps a pause across revocation and reassignment (checked against the broker:
    a consumer whose paused partitions were revoked and assigned back received nothing more).
    The runtime forgot its pauses with the tasks, so a partition it got back was never fetched
    again: two workers starting on a backlog stalled for good (`python -m scripts.bench scale`)."""
    processor = SimpleNamespace(name="p", event_time=lambda record: record.timestamp)
    t = Task(processor, 0, ["orders", "shipments"])
    consumer = QueueConsumer([Msg("orders", offset, offset) for offset in range(120)])
    runtime = Runtime(
        [], consumer_config={}, producer_config={}, restore_config={}, exactly_once=True,
        commit_interval=0.025, batch_size=1000, on_fatal=print, buffered_records=100,
    )
    runtime.consumer = consumer
    runtime.task_of = {("orders", 0): t, ("shipments", 0): t}
    runtime._take_in(now=0.0)
    assert consumer.paused == [("orders", 0)]
    runtime._close_tasks({("orders", 0), ("shipments", 0)})  # a rebalance revokes them
    assert consumer.paused == [] and runtime.paused == set()


def test_an_internal_partition_waiting_on_one_senders_lane_keeps_fetching():
    """The requests partition carries one lane per sending task. Paused at its total, with
    sender 1's lane empty and its frontier behind the others' records, the task could neither
    take those records nor fetch what would unblock them: it waited until the stall limit and
    went on out of business-time order (a different outcome with a smaller buffer, issue 13).
    A partition with a starved lane is not paused, and a paused one is resumed once starved."""
    processor = SimpleNamespace(name="inventory", event_time=lambda record: record.timestamp)
    t = Task(processor, 0, ["inventory", "requests"], senders={"requests": 2})
    from_sender_0 = [Msg("requests", offset, 0, [(CAUSE_TIME, str(100 + offset).encode()), (CAUSE_TASK, b"0")])
                     for offset in range(150)]
    consumer = QueueConsumer(from_sender_0)
    runtime = Runtime(
        [], consumer_config={}, producer_config={}, restore_config={}, exactly_once=True,
        commit_interval=0.025, batch_size=1000, on_fatal=print, buffered_records=100,
    )
    runtime.consumer = consumer
    runtime.task_of = {("inventory", 0): t, ("requests", 0): t}
    runtime.tasks = {("inventory", 0): t}
    t.end_of("inventory")
    runtime._take_in(now=0.0)
    assert t.buffered("requests") == 150 and not t.ready(now=0.0)  # sender 1 may send earlier
    assert consumer.paused == []  # over the bound, but only reading on can bring sender 1's frontier
    t.internal_lanes["requests"][1].queue.append(Record(Msg("requests", 150, 0, [(CAUSE_TIME, b"500"), (CAUSE_TASK, b"1")])))
    runtime._buffer([Msg("requests", 151, 0, [(CAUSE_TIME, b"600"), (CAUSE_TASK, b"1")])])
    assert consumer.paused == [("requests", 0)]  # every lane has something: the bound holds
    t.internal_lanes["requests"][1].queue.clear()  # sender 1's records were taken: starved again
    runtime.out = SimpleNamespace()
    assert runtime._process() == 0  # nothing can be taken; the check at its end resumes
    assert consumer.paused == []


def test_the_memory_gauges_count_every_lane_and_every_cached_value():
    """`o2c_buffered_records` and `o2c_state_cache_entries` (streams/metrics.py HeldInMemory):
    what a worker's memory grows with besides RocksDB, per processor and per store."""
    orders = SimpleNamespace(name="orders-agent", event_time=lambda record: record.timestamp, topics={"orders": "o"},
                             stores=[SimpleNamespace(name="orders", cache={0: {b"a": 1, b"b": 2}, 1: {b"c": 3}})])
    inventory = SimpleNamespace(name="inventory-agent", event_time=lambda record: record.timestamp,
                                topics={"inventory": "i", "requests": "r"}, stores=[])
    runtime = Runtime(
        [orders, inventory], consumer_config={}, producer_config={}, restore_config={}, exactly_once=True,
        commit_interval=0.025, batch_size=1000, on_fatal=print,
    )
    t = Task(inventory, 0, ["inventory", "requests"], senders={"requests": 2})
    runtime.task_of = {("inventory", 0): t, ("requests", 0): t}
    runtime.tasks = {("inventory-agent", 0): t}
    runtime._buffer([Msg("inventory", 0, 5), Msg("requests", 0, 0, [(CAUSE_TIME, b"9"), (CAUSE_TASK, b"1")])])
    assert runtime.held_in_memory() == ({"orders-agent": 0, "inventory-agent": 2}, {"orders": 3})


def test_the_patience_for_a_silent_sender_follows_the_slowest_commit_of_the_last_minute():
    runtime = Runtime(
        [], consumer_config={}, producer_config={}, restore_config={}, exactly_once=True,
        commit_interval=0.025, batch_size=1000, on_fatal=print,
    )
    task = Task(SimpleNamespace(name="inventory"), 0, ["inventory", "requests"], senders={"requests": 2})
    runtime.tasks = {("inventory", 0): task}
    runtime._adapt_patience(0.02, now=0.0)
    assert runtime.sender_patience == task.sender_patience == engine._STALL_WARNING  # never below it
    runtime._adapt_patience(3.5, now=10.0)  # a slow commit: frontiers come that far apart
    assert task.sender_patience == 10.5
    runtime._adapt_patience(0.02, now=50.0)
    assert task.sender_patience == 10.5  # still within the minute
    runtime._adapt_patience(0.02, now=71.0)
    assert task.sender_patience == engine._STALL_WARNING


def test_internal_records_are_ordered_by_their_cause():
    record = Record(Msg("results", 0, 999_999, [(CAUSE_TIME, b"15")]))
    assert record.timestamp == 15
    assert Record(Msg("orders", 0, 7, [("other", b"1")])).timestamp == 7
    assert record.cause_header() == [(CAUSE_TIME, b"15"), (CAUSE_TASK, b"0")]  # its time, the sending task


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40)), max_size=60), st.integers(1, 7))
def test_merge_is_a_function_of_the_records_not_of_the_batch_size(items, limit):
    """Any batch size gives the same order; each topic keeps its own order; nothing is lost."""

    def merged(batch: int) -> list[tuple[str, int]]:
        t = task("a", "b", "c")
        for i, (topic, ts) in enumerate(items):
            t.queues[topic].append(Record(Msg(t.topics[topic], i, ts)))
        t.at_end = [True, True, True]
        out = []
        while True:
            taken = t.take(batch, now=0.0)
            if not taken:
                return out
            out += [(r.topic, r.offset) for r in taken]

    whole = merged(1000)
    assert merged(limit) == whole
    assert sorted(whole) == sorted((t, i) for i, (t, _) in enumerate(("abc"[x], ts) for x, ts in items))
    for topic in "abc":
        offsets = [o for t, o in whole if t == topic]
        assert offsets == sorted(offsets)


@given(st.binary(max_size=40), st.integers(1, 64))
def test_partitioner_matches_kafkas_default(key, partitions):
    expected = DefaultPartitioner()(key, list(range(partitions)), list(range(partitions)))
    assert partition_of(key, partitions) == expected


def store(tmp_path) -> PartitionedStore[str]:
    s: PartitionedStore[str] = PartitionedStore(
        "t", "app-t-changelog", tmp_path, decode=bytes.decode, encode=str.encode, partition_of=lambda k: 0
    )
    s.open(0)
    s.active.add(0)
    return s


class Delivered:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def partition(self): return 0  # noqa: E704
    def offset(self): return self._offset  # noqa: E704


def test_state_reaches_rocksdb_only_after_its_transaction_committed(tmp_path):
    s = store(tmp_path)
    s.put(0, b"a", "1")
    s.put(0, b"a", "2")  # one changelog record per key per commit
    sent = []
    s.flush_changelog(lambda topic, key, value, partition, cb: sent.append((key, value, cb)))
    assert [(k, v) for k, v, _ in sent] == [(b"a", b"2")]
    assert s.dbs[0].get(b"a") is None  # not committed yet
    sent[0][2](None, Delivered(41))
    s.persist()
    assert s.dbs[0].get(b"a") == b"2"
    assert s.position(0) == 42  # the commit marker's offset: a restart reads from there
    assert s.lookup(b"a") == "2"


def test_only_a_partitions_last_changelog_record_asks_for_its_delivery_report(tmp_path):
    s = store(tmp_path)
    for key in (b"a", b"b", b"c"):
        s.put(0, key, key.decode())
    sent = []
    s.flush_changelog(lambda topic, key, value, partition, cb: sent.append((key, value, cb)))
    assert [cb is not None for _, _, cb in sent] == [False, False, True]
    sent[-1][2](None, Delivered(12))  # offsets 10, 11, 12: the last one's report is enough
    s.persist()
    assert s.position(0) == 13
    assert [s.dbs[0].get(k) for k in (b"a", b"b", b"c")] == [b"a", b"b", b"c"]


def test_an_aborted_transaction_leaves_rocksdb_and_memory_as_committed(tmp_path):
    s = store(tmp_path)
    s.restore_batch(0, [(b"a", b"1"), (b"gone", b"x"), (b"gone", None)], 10)
    assert s.get(0, b"gone") is None
    s.put(0, b"a", "changed")
    s.flush_changelog(lambda *args: None)
    s.discard()
    assert s.get(0, b"a") == "1" and s.position(0) == 10
    assert s.uncommitted_partitions() == set()


def test_a_standby_copy_answers_only_once_caught_up_and_while_it_is_one(tmp_path):
    s = store(tmp_path)
    s.restore_batch(0, [(b"a", b"1")], 5)
    s.deactivate(0)
    assert s.lookup(b"a") is None and s.lookup_standby(b"a") is None
    s.standby.add(0)  # following the changelog, not at its end yet: it may miss keys
    assert s.lookup_standby(b"a") is None and not s.has_standby(b"a")
    s.standby_current.add(0)
    assert s.lookup_standby(b"a") == "1" and s.has_standby(b"a")
    s.close(0)
    assert not s.has_standby(b"a")


def test_a_lookup_tells_a_partition_given_up_from_a_missing_key(tmp_path):
    """A query that waited for the mutex while a rebalance took the partition away (and maybe
    gave it back) must not answer 404 for a key that exists: the lookup says "not owned"."""
    s = store(tmp_path)
    s.restore_batch(0, [(b"a", b"1")], 5)
    assert s.lookup_owned(b"a") == (True, "1")
    assert s.lookup_owned(b"zz") == (True, None)  # owned, and no such key
    read = s.lookup_at

    def given_up_and_back_meanwhile(partition, key):
        s.deactivate(partition)
        s.active.add(partition)
        return None

    s.lookup_at = given_up_and_back_meanwhile
    assert s.lookup_owned(b"a") == (False, None)
    s.lookup_at = read
    s.deactivate(0)
    assert s.lookup_owned(b"a") == (False, None)


def split_store(tmp_path) -> PartitionedStore[dict[str, str]]:
    """Values are dicts: the head is the sorted key list, every item a part."""

    def parts(value):
        return ",".join(sorted(value)).encode(), {k.encode(): v.encode() for k, v in value.items()}

    def join(head, raw_parts):
        values = [raw.decode() for raw in raw_parts]
        names = [n for n in head.decode().split(",") if n]
        assert len(names) == len(values), (names, values)  # head and parts read together
        return dict(zip(names, values, strict=True))

    s: PartitionedStore[dict[str, str]] = PartitionedStore(
        "t", "app-t-changelog", tmp_path, decode=lambda raw: join(raw, ()), encode=lambda v: b"",
        partition_of=lambda k: 0, split=Split(parts, join),
    )
    s.open(0)
    s.active.add(0)
    return s


def commit(s: PartitionedStore, offset: int) -> list[tuple[bytes, bytes | None]]:
    sent = []
    s.flush_changelog(lambda topic, key, value, partition, cb: sent.append((key, value, cb)))
    for i, (_, _, cb) in enumerate(sent):
        if cb is not None:  # as the producer: a report for the records that asked for one
            cb(None, Delivered(offset + i))
    s.persist()
    return [(k, v) for k, v, _ in sent]


def test_a_split_value_writes_its_head_and_only_the_parts_that_changed(tmp_path):
    s = split_store(tmp_path)
    s.put(0, b"sku", {"a": "1", "b": "2"})
    assert commit(s, 0) == [(b"sku", b"a,b"), (b"sku\x1fa", b"1"), (b"sku\x1fb", b"2")]
    value = s.get(0, b"sku")
    value["b"] = "3"
    value["c"] = "4"
    del value["a"]
    s.put(0, b"sku", value)
    written = commit(s, 3)
    assert written[0] == (b"sku", b"b,c")
    assert sorted(written[1:]) == [(b"sku\x1fa", None), (b"sku\x1fb", b"3"), (b"sku\x1fc", b"4")]
    assert s.lookup(b"sku") == {"b": "3", "c": "4"}  # from RocksDB, a reader's way
    assert s.dbs[0].get(b"sku\x1fa") is None

    # a restarted worker restores the same records from the changelog
    restored = split_store(tmp_path / "other")
    restored.restore_batch(0, [(k, v) for k, v in [(b"sku", b"a,b"), (b"sku\x1fa", b"1"), (b"sku\x1fb", b"2"),
                                                   *written]], 7)
    assert restored.get(0, b"sku") == {"b": "3", "c": "4"}


def test_a_split_value_after_an_abort_is_what_was_committed(tmp_path):
    s = split_store(tmp_path)
    s.put(0, b"sku", {"a": "1"})
    commit(s, 0)
    s.put(0, b"sku", {"a": "2", "b": "5"})
    s.flush_changelog(lambda *args: None)
    s.discard()
    assert s.get(0, b"sku") == {"a": "1"}
    value = s.get(0, b"sku")
    value["a"] = "9"
    s.put(0, b"sku", value)
    assert commit(s, 5) == [(b"sku", b"a"), (b"sku\x1fa", b"9")]  # "b" was never committed


class Tracked(dict):
    """A split value that knows which items changed since its parts were last taken."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.changed: set[str] | None = None  # None: not known since when

    def __setitem__(self, k, v) -> None:
        super().__setitem__(k, v)
        if self.changed is not None:
            self.changed.add(k)

    def __delitem__(self, k) -> None:
        super().__delitem__(k)
        if self.changed is not None:
            self.changed.add(k)


def tracked_store(tmp_path) -> PartitionedStore[Tracked]:
    def parts(value):
        value.changed = set()
        return ",".join(sorted(value)).encode(), {k.encode(): v.encode() for k, v in value.items()}

    def changes(value):
        if value.changed is None:
            return None
        changed, value.changed = value.changed, set()
        return ",".join(sorted(value)).encode(), {k.encode(): value[k].encode() if k in value else None
                                                  for k in sorted(changed)}

    def join(head, raw_parts):
        value = Tracked(zip([n for n in head.decode().split(",") if n], [r.decode() for r in raw_parts],
                            strict=True))
        value.changed = set()  # the parts just read are the store's
        return value

    s: PartitionedStore[Tracked] = PartitionedStore(
        "t", "app-t-changelog", tmp_path, decode=lambda raw: join(raw, ()), encode=lambda v: b"",
        partition_of=lambda k: 0, split=Split(parts, join, changes),
    )
    s.open(0)
    s.active.add(0)
    return s


def test_a_split_value_that_names_its_changes_writes_those_without_comparing_every_part(tmp_path):
    s = tracked_store(tmp_path)
    s.put(0, b"sku", Tracked({"a": "1", "b": "2"}))
    assert commit(s, 0) == [(b"sku", b"a,b"), (b"sku\x1fa", b"1"), (b"sku\x1fb", b"2")]
    value = s.get(0, b"sku")
    value["b"] = "3"
    value["c"] = "4"
    del value["a"]
    value.changed.add("x")  # named but never there: no tombstone
    s.put(0, b"sku", value)
    assert commit(s, 3) == [(b"sku", b"b,c"), (b"sku\x1fa", None), (b"sku\x1fb", b"3"), (b"sku\x1fc", b"4")]
    assert s.lookup(b"sku") == {"b": "3", "c": "4"}

    # Another object under the key: its parts are compared with the last ones, not trusted.
    s.put(0, b"sku", Tracked({"b": "3", "c": "5"}))
    assert commit(s, 7) == [(b"sku", b"b,c"), (b"sku\x1fc", b"5")]
    # Read back after the cache forgot it: changes count from the parts read.
    s.cache.clear()
    value = s.get(0, b"sku")
    value["b"] = "6"
    s.put(0, b"sku", value)
    assert commit(s, 9) == [(b"sku", b"b,c"), (b"sku\x1fb", b"6")]
    assert s.lookup(b"sku") == {"b": "6", "c": "5"}


def test_the_cache_forgets_its_oldest_values_beyond_its_bound_but_not_uncommitted_ones(tmp_path):
    s = store(tmp_path)
    s.max_cached = 3
    for n, key in enumerate([b"a", b"b", b"c", b"d", b"e"]):
        s.put(0, key, key.decode() * 2)
        commit(s, n)
    assert list(s.cache[0]) == [b"c", b"d", b"e"]  # the oldest went
    s.put(0, b"f", "ff")
    s.flush_changelog(lambda *args: None)  # in flight: the next transaction's changes are pending
    s.put(0, b"c", "cc2")
    s.persist()
    assert b"c" in s.cache[0] and len(s.cache[0]) == 3  # changed since the flush: kept
    assert s.get(0, b"a") == "aa"  # forgotten, read again from RocksDB


class Watermarks:
    """A consumer whose `get_watermark_offsets` answers from a script, one answer per call."""

    def __init__(self, *answers: tuple[int, int]) -> None:
        self.answers = list(answers)

    def get_watermark_offsets(self, tp, timeout):
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_restore_waits_for_the_commit_markers_of_a_just_committed_transaction() -> None:
    # The previous owner's commit returned, but its markers are not written yet: the stable end
    # (513) lags the log end (1128). Restoring to 513 lost the transaction's records (issue 15's
    # CI run: orders whose inputs were committed answered 404). Wait until they agree.
    committed = Watermarks((0, 513), (0, 513), (0, 1129))
    uncommitted = Watermarks((0, 1128), (0, 1128), (0, 1129))
    assert _settled_ends(committed, uncommitted, "changelog", [0], timeout=5) == {0: (0, 1129)}


def test_a_transaction_that_stays_open_is_an_error_after_the_timeout() -> None:
    with pytest.raises(TimeoutError, match="stayed open"):
        _settled_ends(Watermarks((0, 5)), Watermarks((0, 9)), "changelog", [0], timeout=0.05)


def test_worker_processes_run_with_the_reentrant_call_guard():
    """The guard turns a consumer call from inside its own rebalance callback (which aborts the
    process one run in a few) into an immediate error; it must load in every worker the tests start."""
    import subprocess
    import sys

    from tests.conftest import WORKER_PYTHONPATH

    probe = (
        "import confluent_kafka\n"
        "c = confluent_kafka.Consumer({'group.id': 'g', 'bootstrap.servers': '127.0.0.1:1'})\n"
        "c._guard.inside = 'on_assign'\n"
        "try:\n    c.list_topics(timeout=0.1)\nexcept RuntimeError as e:\n    print(e)\n"
        "c._guard.inside = None\nc.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env={"PYTHONPATH": WORKER_PYTHONPATH}, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "Consumer.list_topics() called from inside its own on_assign callback", out.stderr
