"""The runtime: consumption, event-time ordering, transactions, commits, assignment and state
restore for the processors (the order and inventory agents), on one thread of its own.

Design (docs/runtime.md has the reasons and the measurements):
- **One consumer, one transactional producer per worker** (confluent-kafka / librdkafka). Input
  offsets are committed with `send_offsets_to_transaction` and the consumer's group metadata
  (KIP-447): a worker that lost its partitions in a rebalance can no longer commit for them, so
  fencing follows group membership, not the order in which workers happened to initialise
  per-partition transactional ids (what crashed survivors under Faust, issue 11).
- **Assignment**: the `range` assignor, eager. Every processor's topics have the same partition
  count, so partition `p` of all of a processor's topics lands on one worker: a *task*.
- **Revocation commits first.** The revoke callback runs while this worker is still a member of
  the old generation: it commits what was processed (offsets, outputs and changelog records in
  one transaction), then closes the partitions. No transaction outlives the partitions it wrote
  for, and nothing is processed twice because of a rebalance (but allocation requests past the
  committed offset of their partition, read again as the duplicates they are: `Task.positions`).
- **Restore before processing**: an assigned partition's stores replay their changelog from the
  persisted position to its end (read_committed) before the task's first record.
- **Event-time order within a task** (as Kafka Streams' PartitionGroup, KIP-695, on business
  time): the next record is the buffered one with the lowest `occurred_at`; while an input
  partition has nothing buffered but has not reported end-of-partition since its last record, the
  task waits for it. The inventory task also waits for the order tasks' frontiers on the
  allocation requests (see `Task`).
- **Commits**: every `commit_interval`, or sooner once nothing is left to process (low latency
  when traffic is light, few transactions when it is heavy). The transaction's round trips run
  on a committer thread while processing goes on; sends made meanwhile are held and produced
  into the next transaction.
- Faust stays the application framework (web server, worker lifecycle, services); this thread
  never touches the event loop except to hand notifications over with `call_soon_threadsafe`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streams.metrics import METRICS
from streams.runtime.collector import Collector
from streams.runtime.restore import restore
from streams.runtime.rocks import release_free_memory
from streams.runtime.store import PartitionedStore

log = logging.getLogger("o2c.runtime")

_MAX_HELD_SENDS = 20_000
"""Records processing may send while a commit is in flight before it waits for that commit."""
_SWITCH_INTERVAL = 0.001  # seconds: sys.setswitchinterval of the worker process (see _setup)
_SLOW_COMMIT = 2.0  # seconds: a commit this long is logged
_SLOW_PERSIST = 0.5  # seconds: writing a commit's state this long is logged (it holds the GIL: queries wait)
_MAX_INTAKE = 20_000  # records a step takes from the consumer at most (see _take_in)
_STALL_WARNING = 5.0  # seconds a task waits for a silent input partition before it goes on (logged)


CAUSE_TIME = "o2c.cause_ts"
"""Header of records the pipeline sends to itself (the allocation saga): the time of the cause,
which is their place in the receiving task's time order (the sending task's stream time after
the cause: see `Task`). Their own timestamp is when they were produced: during a catch-up that
is far later than the backlog around them."""
CAUSE_TASK = "o2c.cause_task"
"""Header of internal records and frontier markers: the partition number of the sending task."""
FRONTIER = "o2c.frontier"
"""Header of a frontier marker (an empty record on an internal topic): the sending task will send
nothing more there with a time below this (see `Task.frontier`)."""
INF = 1 << 62  # a frontier: nothing will come unless new input arrives


class Record:
    """One input record, with the attribute names the processors and dead letters use.

    `timestamp` orders it within its task: the cause's time for internal records (`internal`),
    else the record's own timestamp (`produced`) until the processor's `event_time` replaces it
    with the business time it decoded (`decoded` keeps what it decoded, or the error, for
    `process`). `frontier` is set on frontier markers, which the task consumes itself."""

    __slots__ = (
        "topic", "partition", "offset", "key", "value", "timestamp", "produced", "headers", "internal",
        "decoded", "sender", "frontier", "cause_time",
    )

    def __init__(self, msg: Any) -> None:
        self.topic = msg.topic()
        self.partition = msg.partition()
        self.offset = msg.offset()
        self.key = msg.key()
        self.value = msg.value()
        self.timestamp = self.produced = msg.timestamp()[1]
        self.internal = False
        self.decoded: Any = None
        self.sender = 0
        self.frontier: int | None = None
        headers = msg.headers()
        self.headers: list[tuple[str, bytes]] = headers or []
        if headers:
            for name, value in headers:
                if name == CAUSE_TIME:
                    self.timestamp = int(value)
                    self.internal = True
                elif name == CAUSE_TASK:
                    self.sender = int(value)
                elif name == FRONTIER:
                    self.frontier = int(value)
        self.cause_time = self.timestamp

    def cause_header(self) -> list[tuple[str, bytes]]:
        """Headers for a record this one causes on an internal topic."""
        return [(CAUSE_TIME, str(self.cause_time).encode()), (CAUSE_TASK, str(self.partition).encode())]


class Output:
    """What a processor sends with: every record joins the worker's open transaction. While a
    commit is in flight no record may join its transaction: sends are held, and produced into
    the next transaction once it begins (`release`), or dropped with an abort (`drop_held`)."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.produced = 0  # records since the last commit
        self._held: list[tuple[Any, ...]] | None = None

    @property
    def held(self) -> int:
        """Sends waiting for the commit in flight to end."""
        return len(self._held) if self._held is not None else 0

    def hold(self) -> None:
        self._held = []

    def release(self) -> None:
        held, self._held = self._held, None
        for args in held or ():
            self.send(*args)

    def drop_held(self) -> None:
        self._held = None

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: Any = None,
        timestamp: int | None = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None:
        if self._held is not None:
            self._held.append((topic, key, value, partition, headers, timestamp, on_delivery))
            self.produced += 1
            return
        kwargs: dict[str, Any] = {}
        if partition is not None:
            kwargs["partition"] = partition
        if headers:
            kwargs["headers"] = headers
        if timestamp:
            kwargs["timestamp"] = timestamp
        if on_delivery is not None:
            kwargs["on_delivery"] = on_delivery
        while True:
            try:
                self.producer.produce(topic, value, key, **kwargs)
                break
            except BufferError:  # the local queue is full: let the producer deliver some
                self.producer.poll(0.05)
            except KafkaException as exc:
                if exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:  # name what outgrew it
                    raise KafkaException(
                        KafkaError(
                            KafkaError.MSG_SIZE_TOO_LARGE,
                            f"a record for {topic} key {key!r} is {len(value or b'')} bytes,"
                            " over the producer's message.max.bytes",
                        )
                    ) from exc
                raise
        self.produced += 1

    def produce(self, topic: str, key: bytes, value: bytes, partition: int, on_delivery: Any) -> None:
        """The stores' changelog flush (`PartitionedStore.flush_changelog`)."""
        self.send(topic, key, value, partition, on_delivery=on_delivery)


class Processor(Protocol):
    """What the runtime drives. Every method runs on the runtime thread."""

    name: str
    topics: Mapping[str, str]  # topic -> role; the order breaks event-time ties
    internal: Collection[str]  # of `topics`, those another processor of the pipeline writes
    emits: Mapping[str, Collection[str]]  # internal topic it writes -> the topics whose records cause them
    stores: Sequence[PartitionedStore[Any]]
    punctuate_interval: float | None

    def event_time(self, record: Record) -> int:
        """The time that places `record` among the task's other inputs (its business time);
        called once per record as it is buffered."""
        ...

    def process(self, records: Sequence[Record], out: Output) -> None: ...

    def assigned(self, partitions: set[int]) -> None: ...

    def revoked(self, partitions: set[int]) -> None: ...

    def punctuate(self, out: Output) -> None: ...

    def before_commit(self) -> None: ...

    def committed(self) -> None: ...


@dataclass(slots=True)
class Lane:
    """One input of a task: a source topic partition, or what one upstream task sent on an
    internal topic partition (records of one sender arrive in their time order)."""

    topic: str
    sender: int | None  # internal: the sending task's partition; None: a source
    queue: deque[Record] = field(default_factory=deque)
    at_end: bool = False  # sources: end of partition reported since the last record
    bound: int = -INF  # internal: the sender's latest frontier (nothing below it will come)
    silent: bool = False  # internal: the sender said nothing for too long; not waited for until it does
    done: int = -1  # internal: offset of the last record taken (a lane is taken in offset order)


@dataclass
class Task:
    """Partition `partition` of every topic of one processor, merged by event time.

    The rule (docs/runtime.md): the next record is the buffered head with the lowest time, ties
    to the input listed first (source topics in the processor's order, then internal topics by
    sending task); each input keeps its own order. A source partition with nothing buffered that
    has not reported its end since its last record (data known to exist on the broker) is waited
    for; with `max_idle` > 0 one at its end is waited for that long too (a quiet producer), then
    the others go on until every input has data again (Kafka Streams' `max.task.idle.ms`). An
    internal input (`senders`: the allocation requests, one lane per sending order task) with
    nothing buffered is waited for while its sender's frontier says it may still send something
    earlier: the inventory side does not run ahead of the order side in business time, however
    fast each was fetched (issue 13). With `awaits` (the order side), only the records it names
    wait so (an order an answer may still change: docs/runtime.md), and records of internal
    inputs; `awaits` reads the processor's state, so a batch ends before a second record of a
    key already in it (`cut`), and the next batch decides on the state the first one left.

    `stream_time` is the highest time processed; a record's `cause_time`, the time of what it
    causes on internal topics, is the stream time after it (a late record's effects are placed
    where the task is, so a sender's records go out in time order)."""

    processor: Processor
    partition: int
    topics: list[str]
    max_idle: float = 0.0
    senders: Mapping[str, int] = field(default_factory=dict)  # internal topic -> sending tasks
    horizon: float = 5.0  # s: records with a business time this close to now (either side) do not wait for senders
    awaits: Callable[[Record], bool] | None = None  # which source records wait for senders (None: all)
    # s: how long an internal input's sender may stay silent before the task goes on without it;
    # frontiers travel with the sender's commits, so the runtime raises it when commits are slow
    sender_patience: float = _STALL_WARNING
    lanes: list[Lane] = field(default_factory=list)
    waiting_since: float | None = None
    idle_deadline: float | None = None  # max_idle: when waiting for a quiet input ends
    stream_time: int = -INF
    progressed: bool = False  # something consumed since the last commit
    fetched: dict[str, int] = field(default_factory=dict)  # topic -> offset after the last buffered
    announced: dict[str, int] = field(default_factory=dict)  # emitted topic -> last frontier sent
    cut: bool = False  # the last `take` stopped early with records ready (see `awaits`)

    def __post_init__(self) -> None:
        self.lanes = []
        self.source_lane: dict[str, Lane] = {}
        self.internal_lanes: dict[str, list[Lane]] = {}
        for topic in self.topics:
            senders = self.senders.get(topic)
            if senders is None:
                lane = Lane(topic, None)
                self.source_lane[topic] = lane
                self.lanes.append(lane)
        for topic in self.topics:
            senders = self.senders.get(topic)
            if senders is not None:
                lanes = [Lane(topic, s) for s in range(senders)]
                self.internal_lanes[topic] = lanes
                self.lanes.extend(lanes)
        self.ranked_internal = [(rank, lane) for rank, lane in enumerate(self.lanes) if lane.sender is not None]

    @property
    def queues(self) -> list[deque[Record]]:
        """The source lanes' queues, in topic order (what the unit tests fill)."""
        return [self.source_lane[t].queue for t in self.topics if t in self.source_lane]

    @property
    def at_end(self) -> list[bool]:
        return [self.source_lane[t].at_end for t in self.topics if t in self.source_lane]

    @at_end.setter
    def at_end(self, values: Sequence[bool]) -> None:
        for topic, value in zip([t for t in self.topics if t in self.source_lane], values):
            self.source_lane[topic].at_end = value

    def add(self, record: Record) -> None:
        """Buffer a record fetched for this task."""
        self.fetched[record.topic] = record.offset + 1
        lanes = self.internal_lanes.get(record.topic)
        if lanes is None:
            lane = self.source_lane[record.topic]
            lane.at_end = False
            if record.frontier is not None:  # a frontier nobody here waits on: consumed
                self.progressed = True
                return
        else:
            lane = lanes[record.sender] if 0 <= record.sender < len(lanes) else lanes[0]
            lane.silent = False
            if record.offset <= lane.done:  # processed before the restart (see `positions`)
                self.progressed = True
                return
        lane.queue.append(record)

    def end_of(self, topic: str) -> None:
        lane = self.source_lane.get(topic)
        if lane is not None:
            lane.at_end = True

    def buffered(self, topic: str) -> int:
        lanes = self.internal_lanes.get(topic)
        return sum(len(lane.queue) for lane in lanes) if lanes is not None else len(self.source_lane[topic].queue)

    def starved(self, topic: str) -> bool:
        """An internal input partition with a sender's lane empty and still waited for. Its
        fetching must not pause however much the other senders' lanes hold: only reading on
        brings that sender's next record or frontier, and the others' records cannot be taken
        past it. (Paused at the partition's total, the inventory tasks waited for a frontier
        that could not arrive until the stall limit, then went on out of business-time order.)"""
        lanes = self.internal_lanes.get(topic)
        return lanes is not None and any(not lane.queue and not lane.silent for lane in lanes)

    def _markers(self, lane: Lane) -> None:
        queue = lane.queue
        while queue and queue[0].frontier is not None:
            marker = queue.popleft()
            if marker.frontier > lane.bound:
                lane.bound = marker.frontier
            lane.done = marker.offset
            self.progressed = True

    def take(self, limit: int, now: float) -> list[Record]:
        """Up to `limit` records in time order; stops where an input may still deliver an
        earlier record."""
        lanes = self.lanes
        taken: list[Record] = []
        live_from, live_until = self._live_window()
        awaits = self.awaits
        keys: set[bytes | None] | None = set() if awaits is not None and self.ranked_internal else None
        self.cut = False
        while len(taken) < limit:
            best: Lane | None = None
            best_ts = 0
            best_rank = 0
            waiting = False
            for rank, lane in enumerate(lanes):
                queue = lane.queue
                if lane.sender is not None:
                    if queue and queue[0].frontier is not None:
                        self._markers(lane)
                    if queue:
                        ts = queue[0].timestamp
                        if best is None or ts < best_ts:
                            best, best_ts, best_rank = lane, ts, rank
                    continue
                if queue:
                    ts = queue[0].timestamp
                    if best is None or ts < best_ts:
                        best, best_ts, best_rank = lane, ts, rank
                elif not lane.at_end:
                    if self.waiting_since is None:
                        self.waiting_since = now
                    elif now - self.waiting_since > _STALL_WARNING:
                        log.warning(
                            "task %s[%d] waited %.1f s for %s[%d] (no record, no end of partition): "
                            "processing the others", self.processor.name, self.partition,
                            now - self.waiting_since, lane.topic, self.partition,
                        )
                        lane.at_end = True
                        self.waiting_since = None
                        continue
                    return taken
                else:
                    waiting = True
            if best is None:
                break
            if waiting and self.max_idle > 0:  # a quiet source: wait for it up to max_idle
                if self.idle_deadline is None:
                    self.idle_deadline = now + self.max_idle
                if now < self.idle_deadline:
                    return taken
            elif self.idle_deadline is not None and not waiting:
                self.idle_deadline = None  # every source has data again: the next gap waits anew
            if live_from <= best_ts <= live_until:  # live traffic does not wait: latency first (`alignment_horizon`)
                waits_for_senders = False
            elif keys is None:
                waits_for_senders = True
            else:
                head = best.queue[0]
                if head.key in keys:  # decided on the state after the records before it
                    self.cut = True
                    break
                waits_for_senders = best.sender is not None or awaits(head)  # type: ignore[misc]
            for rank, lane in self.ranked_internal if waits_for_senders else ():
                # an internal input may still send an earlier one
                if not lane.queue and not lane.silent:
                    if lane.bound < best_ts or (lane.bound == best_ts and rank < best_rank):
                        if self.waiting_since is None:
                            self.waiting_since = now
                        elif now - self.waiting_since > self.sender_patience:
                            log.warning(
                                "task %s[%d] waited %.1f s for task %d's frontier on %s (at %d, next record at %d):"
                                " processing without it until it sends again", self.processor.name,
                                self.partition, now - self.waiting_since, lane.sender, lane.topic, lane.bound, best_ts,
                            )
                            lane.silent = True
                            self.waiting_since = None
                            continue
                        return taken
            record = best.queue.popleft()
            if best.sender is not None:
                best.done = record.offset
            if best_ts > self.stream_time:
                self.stream_time = best_ts
            record.cause_time = self.stream_time
            taken.append(record)
            if keys is not None:
                keys.add(record.key)
            self.progressed = True
            self.waiting_since = None  # progress: a later wait is timed from its own start
        self.waiting_since = None
        return taken

    def _live_window(self) -> tuple[int, int]:
        """Business times counted as live traffic, which never waits for senders: within
        `horizon` of the wall clock, on either side. Not simply "recent": a stream dated in the
        future (a simulation running past today, a replay shifted forward) is a backlog like one in
        the past. Counted as live, it went unaligned: at 200k simulated orders, whose business time
        passes today a third of the way in, the inventory side ran fifteen months of business
        time ahead of the order side and stamped its answers accordingly (issue 13)."""
        now_ms = time.time() * 1000
        return int(now_ms - self.horizon * 1000), int(now_ms + self.horizon * 1000)

    def ready(self, now: float) -> bool:
        """Something to process now: what `take` would return is not empty (the same rule,
        without consuming nor starting a wait)."""
        best_ts = 0
        best_rank = -1
        waiting = False
        for rank, lane in enumerate(self.lanes):
            queue = lane.queue
            if lane.sender is not None:
                if queue and queue[0].frontier is not None:
                    self._markers(lane)
                if queue and (best_rank < 0 or queue[0].timestamp < best_ts):
                    best_ts, best_rank = queue[0].timestamp, rank
                continue
            if queue:
                if best_rank < 0 or queue[0].timestamp < best_ts:
                    best_ts, best_rank = queue[0].timestamp, rank
            elif not lane.at_end:
                return False
            else:
                waiting = True
        if best_rank < 0:
            return False
        if waiting and self.max_idle > 0 and (self.idle_deadline is None or now < self.idle_deadline):
            return False
        live_from, live_until = self._live_window()
        if live_from <= best_ts <= live_until:
            return True
        if self.awaits is not None:
            best = self.lanes[best_rank]
            if best.sender is None and not self.awaits(best.queue[0]):
                return True
        for rank, lane in self.ranked_internal:
            if not lane.queue and not lane.silent:
                if lane.bound < best_ts or (lane.bound == best_ts and rank < best_rank):
                    return False
        return True

    def frontier(self, causes: Collection[str]) -> int:
        """The lowest time this task may still give a record it sends on an internal topic whose
        records are caused by the `causes` topics: its stream time, or the earliest thing those
        inputs may still deliver if later (INF when they are all at their end and empty)."""
        low = INF
        for lane in self.lanes:
            if lane.topic not in causes:
                continue
            if lane.sender is not None:
                self._markers(lane)
                low = min(low, lane.queue[0].timestamp if lane.queue else lane.bound)
            elif lane.queue:
                low = min(low, lane.queue[0].timestamp)
            elif not lane.at_end:
                return self.stream_time  # a record may come at any time: placed at the stream time
        return max(self.stream_time, low)

    def positions(self) -> dict[str, int]:
        """Per topic, the offset to commit: every record before it processed. An internal topic's
        senders' lanes are consumed out of offset order; records after the lowest unprocessed one
        are read again after a restart, and each lane drops those at or below the last offset it
        had taken (committed with the offsets as `checkpoint` metadata), so nothing is applied
        twice. (Relying on the saga's sequence numbers alone was not enough: a finished line is
        evicted from the SKU's state, and a release read again after it was applied as new.)"""
        out: dict[str, int] = {}
        for topic, after in self.fetched.items():
            lanes = self.internal_lanes.get(topic)
            if lanes is None:
                lanes = [self.source_lane[topic]]
            heads = [lane.queue[0].offset for lane in lanes if lane.queue]
            out[topic] = min(heads) if heads else after
        return out

    def checkpoint(self) -> str:
        """What a restart needs besides the offsets (committed as their metadata)."""
        bounds = {t: [lane.bound for lane in lanes] for t, lanes in self.internal_lanes.items()}
        done = {t: [lane.done for lane in lanes] for t, lanes in self.internal_lanes.items()}
        return json.dumps({"s": self.stream_time, "b": bounds, "d": done}, separators=(",", ":"))

    def resume(self, metadata: str | None) -> None:
        if not metadata:
            return
        try:
            saved = json.loads(metadata)
        except ValueError:
            return
        self.stream_time = max(self.stream_time, int(saved.get("s", -INF)))
        for topic, bounds in saved.get("b", {}).items():
            for lane, bound in zip(self.internal_lanes.get(topic, ()), bounds):
                lane.bound = max(lane.bound, int(bound))
        for topic, done in saved.get("d", {}).items():
            for lane, offset in zip(self.internal_lanes.get(topic, ()), done):
                lane.done = max(lane.done, int(offset))


class Runtime:
    """The worker's processing thread. `start()`, then `stop()` from any thread."""

    def __init__(
        self,
        processors: Sequence[Processor],
        *,
        consumer_config: Mapping[str, Any],
        producer_config: Mapping[str, Any],
        restore_config: Mapping[str, Any],
        exactly_once: bool,
        commit_interval: float,
        batch_size: int,
        on_fatal: Callable[[BaseException], None],
        standby_partitions: int = 0,
        max_task_idle: float = 0.0,
        alignment_horizon: float = 5.0,
        buffered_records: int = 5_000,
        restore_helpers: int = 0,
    ) -> None:
        """`standby_partitions`: the stores' partition count, to keep standby copies of every
        partition this worker does not process (0: no standbys). `max_task_idle`: see `Task`.
        `alignment_horizon`: records whose business time is within this many seconds of the wall
        clock are processed without waiting for the senders of internal topics (`Task.horizon`).
        `buffered_records`: records buffered per input partition before fetching it pauses
        (resumed once a fifth is left). `restore_helpers`: helper processes a restore may start
        (streams/runtime/restore.py)."""
        self.processors = list(processors)
        self.standby_partitions = standby_partitions
        self.standby_consumer: Consumer | None = None
        self.standby_of: dict[tuple[str, int], PartitionedStore[Any]] = {}
        self.standby_read: dict[tuple[str, int], list[int]] = {}  # [first, after last] offset read
        self.exactly_once = exactly_once
        self.commit_interval = commit_interval
        self.max_task_idle = max_task_idle
        self.alignment_horizon = alignment_horizon
        self.batch_size = batch_size
        self.on_fatal = on_fatal
        self._consumer_config = dict(consumer_config)
        self._producer_config = dict(producer_config)
        self._restore_config = dict(restore_config)
        self._restore_helpers = restore_helpers
        # A dead owner's open transaction is aborted by the broker after its timeout: restores
        # wait that long at most for its changelog partitions to settle (`_settled_ends`).
        self._settle_timeout = int(self._producer_config.get("transaction.timeout.ms", 60_000)) / 1000 + 30
        self.processor_of: dict[str, Processor] = {}
        for processor in self.processors:
            for topic in processor.topics:
                self.processor_of[topic] = processor
        self.tasks: dict[tuple[str, int], Task] = {}  # (processor name, partition) -> task
        self.task_of: dict[tuple[str, int], Task] = {}  # input tp -> its task
        self.timestamps: list[int] = []  # produce times of this transaction's inputs (latency metric)
        self._partitions: dict[str, int] = {}  # internal topic -> partition count
        self.paused: set[tuple[str, int]] = set()
        self.pause_at = buffered_records
        self.resume_at = max(1, buffered_records // 5)
        self.assignment: set[tuple[str, int]] = set()
        self.generation = 0  # assignments seen (routing caches key on it)
        self.rebalancing = True  # until the first assignment is restored
        self.started = threading.Event()
        self.stopping = threading.Event()
        self.failure: BaseException | None = None
        self.last_commit = time.monotonic()
        self._next_punctuate = {p.name: time.monotonic() for p in self.processors}
        self._thread: threading.Thread | None = None
        self._committer: ThreadPoolExecutor | None = None
        self._inflight: tuple[Future[None], float, list[int]] | None = None  # a commit under way
        self._recent_commits: deque[tuple[float, float]] = deque()  # (when, seconds): slow ones of the last minute
        self.sender_patience = _STALL_WARNING  # see `_adapt_patience`
        self._next_task = 0  # where the next step begins among the tasks (see _process)
        self._backlogged = False  # the last step left records it could have processed
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.out: Output | None = None
        self.collector = Collector(lambda generation, seconds: METRICS.child(
            METRICS.gc_pause_seconds, str(generation)).observe(seconds))

    def held_in_memory(self) -> tuple[dict[str, int], dict[str, int]]:
        """Records buffered per processor and decoded values cached per store (the
        `o2c_buffered_records` and `o2c_state_cache_entries` gauges). From any thread: sizes
        read while the runtime thread changes them, so approximate."""
        buffered: dict[str, int] = {p.name: 0 for p in self.processors}
        for task in list(self.tasks.values()):
            buffered[task.processor.name] += sum(len(lane.queue) for lane in task.lanes)
        cached = {
            store.name: sum(len(c) for c in list(store.cache.values()))
            for p in self.processors for store in p.stores
        }
        return buffered, cached

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="o2c-runtime", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("runtime thread did not stop within %.0f s", timeout)

    @property
    def ready(self) -> bool:
        return self.started.is_set() and not self.rebalancing and self.failure is None

    def _run(self) -> None:
        try:
            self._setup()
            self.started.set()
            while not self.stopping.is_set():
                self._step()
            self._shutdown()
        except BaseException as exc:  # noqa: BLE001 - reported to the worker, which exits
            self.failure = exc
            log.exception("runtime stopped by an error: %r", exc)
            self._abort_quietly()
            self.on_fatal(exc)

    def _setup(self) -> None:
        # The committer thread needs the interpreter lock for moments (a delivery report, the
        # return of each transactional call) while this thread holds it for whole batches; a
        # waiting thread gets it after the switch interval. 1 ms instead of CPython's 5: at
        # 2,700 events/s live the commit's flush took 39 ms at the median with 5 ms, 13.5 ms
        # with 1 ms; backlog throughput the same within noise (docs/runtime.md, issue 12).
        sys.setswitchinterval(_SWITCH_INTERVAL)
        self.producer = Producer(self._producer_config)
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="o2c-commit")
        if self.exactly_once:
            self.producer.init_transactions(30)
            self.producer.begin_transaction()
        self.out = Output(self.producer)
        self.consumer = Consumer(self._consumer_config)
        if self.standby_partitions:
            self.standby_consumer = Consumer(
                {
                    **self._restore_config,
                    "group.id": "o2c-standby",  # never joins nor commits: partitions are assigned
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "auto.offset.reset": "earliest",
                    "enable.partition.eof": True,  # a standby answers queries once caught up
                    "fetch.wait.max.ms": 100,
                }
            )
            # Until the first assignment, every local partition is a standby copy: a restarted
            # worker answers (marked stale) from its files at once, not only once the group
            # has rebalanced (after a SIGKILL: once the dead member's session timed out).
            self._plan_standbys()
        self._resolve_partition_counts()
        topics = sorted(self.processor_of)
        self.consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        log.info("runtime started: topics %s, exactly_once=%s", ", ".join(topics), self.exactly_once)
        self.collector.install()

    def _shutdown(self) -> None:
        assert self.consumer is not None and self.producer is not None
        self._commit(wait=True, rewind=False)
        self.consumer.close()  # revokes (nothing left to commit) and leaves the group at once
        if self.standby_consumer is not None:
            self.standby_consumer.close()
        if self.exactly_once:
            try:
                self.producer.abort_transaction(10)  # the empty one begun by the last commit
            except KafkaException:
                pass
        self.producer.flush(10)
        for processor in self.processors:
            for store in processor.stores:
                store.close_all()
        if self._committer is not None:
            self._committer.shutdown()
        self.collector.uninstall()
        log.info("runtime stopped")

    def _abort_quietly(self) -> None:
        if self._inflight is not None:
            self._inflight[0].exception()  # let it end before aborting
            self._inflight = None
        try:
            if self.producer is not None and self.exactly_once:
                self.producer.abort_transaction(5)
        except Exception:  # noqa: BLE001 - already failing
            pass
        try:
            if self.consumer is not None:
                self.consumer.close()
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------ the loop

    def _step(self) -> None:
        assert self.consumer is not None and self.producer is not None
        if self._inflight is not None and self.out is not None and self.out.held >= _MAX_HELD_SENDS:
            # Back pressure: everything processed while a commit is in flight joins the next
            # transaction, which its commit must flush before the transaction timeout. Without a
            # bound a slow commit (a busy broker) let the next transaction grow until its own
            # commit outlasted the timeout and the broker fenced the worker (100k-order backlog).
            wait([self._inflight[0]], timeout=0.05)
            if not self._inflight[0].done():
                return
            if not self._finish_commit():
                return
        self.collector.tick()
        self._take_in(time.monotonic())
        processed = self._process()
        if self.standby_of:
            self._follow_standbys()
        self._punctuate()
        self.producer.poll(0)
        if self._inflight is not None:
            if not self._inflight[0].done():
                return
            if not self._finish_commit():
                return
        now = time.monotonic()
        due = now - self.last_commit >= self.commit_interval
        idle = not processed and not self._backlogged
        if due or (idle and now - self.last_commit >= 0.005):
            self._commit()

    def _take_in(self, now: float) -> None:
        """Move what the consumer has fetched into the tasks' buffers: all of it, up to
        `_MAX_INTAKE` records a step.

        librdkafka keeps one queue for all assigned partitions and fills it far ahead (100,000
        records per partition by default): in a backlog it held 25k-93k records, about 5 s of
        processing. Taken 1,000 a step, a partition whose records (or end-of-partition event)
        sat behind them was waited for by its task for seconds, then skipped against the
        event-time order (a different outcome per run: issue 13). Drained each step, the queue
        stays short and the backlog waits in the tasks' per-partition buffers instead, bounded by
        pausing a partition at `pause_at` (O2C_BUFFERED_RECORDS_PER_PARTITION)."""
        assert self.consumer is not None
        if self._backlogged:  # the last step left records it could process: no waiting
            msgs = self.consumer.consume(1000, 0)
        else:
            # consume(n, timeout) waits for n records or the whole timeout: wait for the first
            # record only, then take what else is there.
            timeout = min(0.05, max(0.0, self.commit_interval - (now - self.last_commit)))
            if self._inflight is not None:
                timeout = min(timeout, 0.002)  # notice the commit's end soon: its sends are held
            msgs = self.consumer.consume(1, timeout)
            if msgs:
                msgs += self.consumer.consume(999, 0)
        taken = 0
        while msgs:
            self._buffer(msgs)
            taken += len(msgs)
            if len(msgs) < 1000 or taken >= _MAX_INTAKE:
                return
            msgs = self.consumer.consume(1000, 0)

    def _buffer(self, msgs: list[Any]) -> None:
        task_of = self.task_of
        touched: set[tuple[str, int]] = set()
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    found = task_of.get((msg.topic(), msg.partition()))
                    if found is not None:
                        found.end_of(msg.topic())
                    continue
                if err.fatal():
                    raise KafkaException(err)
                log.warning("consumer error: %s", err)
                continue
            tp = (msg.topic(), msg.partition())
            task = task_of.get(tp)
            if task is None:
                continue  # not (or no longer) assigned
            record = Record(msg)
            if record.frontier is None:
                record.timestamp = task.processor.event_time(record)
            task.add(record)
            touched.add(tp)
        for tp in touched:
            task = task_of[tp]
            if task.buffered(tp[0]) >= self.pause_at and tp not in self.paused and not task.starved(tp[0]):
                self.consumer.pause([TopicPartition(*tp)])  # type: ignore[union-attr]
                self.paused.add(tp)

    def _process(self) -> int:
        assert self.out is not None
        total = 0
        now = time.monotonic()
        self._backlogged = False
        tasks = list(self.tasks.values())
        first = self._next_task % len(tasks) if tasks else 0
        for k in range(len(tasks)):
            task = tasks[(first + k) % len(tasks)]
            if total and self._commit_can_begin():
                # Let the commit begin before the other tasks' batches: what they hold waits
                # one step, not one commit. They go first next time (no task starves).
                self._next_task = first + k
                self._backlogged = True
                break
            records = task.take(self.batch_size, now)
            if not records:
                continue
            if len(records) == self.batch_size or task.cut:
                self._backlogged = True  # more may be ready: the next step does not wait
            started = time.perf_counter()
            task.processor.process(records, self.out)
            METRICS.child(METRICS.consume_to_produce, task.processor.name).observe(time.perf_counter() - started)
            self.timestamps.extend(record.produced for record in records)
            total += len(records)
        if self.paused:
            drained = {
                tp for tp in self.paused
                if tp not in self.task_of or self.task_of[tp].buffered(tp[0]) <= self.resume_at
                or self.task_of[tp].starved(tp[0])
            }
            if drained:
                self._resume_paused(drained)
        return total

    def _commit_can_begin(self) -> bool:
        """The commit in flight has ended, or none is and the next one is due."""
        if self._inflight is not None:
            return self._inflight[0].done()
        return time.monotonic() - self.last_commit >= self.commit_interval

    def _punctuate(self) -> None:
        assert self.out is not None
        if self.rebalancing:
            return
        now = time.monotonic()
        for processor in self.processors:
            interval = processor.punctuate_interval
            if interval is None or now < self._next_punctuate[processor.name]:
                continue
            self._next_punctuate[processor.name] = now + interval
            processor.punctuate(self.out)

    # ------------------------------------------------------------------ commits

    def _commit(self, wait: bool = False, rewind: bool = True) -> bool:
        """Commit what was processed since the last commit: outputs, changelog records and
        input offsets in one transaction. The transaction's round trips run on the committer
        thread while processing goes on (its sends are held until the next transaction begins,
        see `Output`); `wait` (revocation, shutdown) finishes it here. False if a transaction
        had to be aborted (its input is then read again from the committed offsets, unless
        `rewind` is False: the partitions are being given up anyway)."""
        assert self.consumer is not None and self.producer is not None and self.out is not None
        if self._inflight is not None and not self._finish_commit(rewind):
            return False
        self._announce()
        for processor in self.processors:
            processor.before_commit()
        dirty = any(store.dirty for p in self.processors for store in p.stores)
        progressed = [task for task in self.tasks.values() if task.progressed]
        if not (progressed or self.out.produced or dirty):
            self.last_commit = time.monotonic()
            return True
        started = time.perf_counter()
        for processor in self.processors:
            for store in processor.stores:
                store.flush_changelog(self.out.produce)
        offsets = []
        for task in progressed:
            checkpoint = task.checkpoint()
            for topic, offset in task.positions().items():
                offsets.append(TopicPartition(topic, task.partition, offset, metadata=checkpoint))
            task.progressed = False
        stamps = self.timestamps
        self.timestamps = []
        self.out.produced = 0
        self.last_commit = time.monotonic()
        if not self.exactly_once:
            try:
                remaining = self.producer.flush(30)
                if remaining:
                    raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{remaining} records undelivered"))
                if offsets:
                    self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                self._abort(exc, rewind)
                return False
            self._committed(started, stamps)
            return True
        metadata = self.consumer.consumer_group_metadata() if offsets else None
        assert self._committer is not None
        self._inflight = (self._committer.submit(self._transact, offsets, metadata), started, stamps)
        self.out.hold()
        return self._finish_commit(rewind) if wait else True

    def _announce(self) -> None:
        """Send each task's frontier on the internal topics it writes, when it moved: the tasks
        reading them wait for nothing earlier than it (see `Task`). In the open transaction:
        visible with the records sent before it, in the same partitions, after them."""
        assert self.out is not None
        for task in self.tasks.values():
            emits = getattr(task.processor, "emits", None)
            if not emits:
                continue
            for topic, causes in emits.items():
                frontier = task.frontier(causes)
                if task.announced.get(topic) == frontier:
                    continue
                task.announced[topic] = frontier
                headers = [(FRONTIER, str(frontier).encode()), (CAUSE_TASK, str(task.partition).encode())]
                for partition in range(self._partition_count(topic)):
                    self.out.send(topic, None, b"", partition, headers)

    def _resolve_partition_counts(self) -> None:
        """Look up, once and before subscribing, how many partitions each internal topic has.
        Not later, on first use: that is inside the rebalance callbacks (a task opens, a
        revocation commits), and a metadata call on the consumer from within its own callback
        clears confluent-kafka's per-thread call state, so the next librdkafka log line or error
        served by the same `consume()` aborted the process (`CallState_get: cs != NULL`)."""
        assert self.consumer is not None
        internal = {t for p in self.processors for t in (*p.internal, *p.emits)}
        for topic in sorted(internal):
            metadata = self.consumer.list_topics(topic, timeout=30).topics[topic]
            if metadata.error is not None:
                raise KafkaException(metadata.error)
            self._partitions[topic] = len(metadata.partitions)

    def _partition_count(self, topic: str) -> int:
        return self._partitions[topic]  # every internal topic: `_resolve_partition_counts`

    def _transact(self, offsets: list[TopicPartition], metadata: Any) -> None:
        """On the committer thread: the transaction's round trips. A retriable error (a
        timeout) means the call may be made again, as librdkafka documents; anything else
        propagates (abortable: the caller aborts; fatal: the worker stops)."""
        assert self.producer is not None
        if offsets:
            _retrying(lambda: self.producer.send_offsets_to_transaction(offsets, metadata, 30))
        _retrying(lambda: self.producer.commit_transaction(30))  # flushes first

    def _finish_commit(self, rewind: bool = True) -> bool:
        """Wait for the commit in flight; then persist what it committed and begin the next
        transaction with the sends held meanwhile (or abort and rewind, False)."""
        assert self._inflight is not None and self.producer is not None and self.out is not None
        future, started, stamps = self._inflight
        self._inflight = None
        try:
            future.result()
        except KafkaException as exc:
            self.out.drop_held()  # made after the failed transaction's state: done again
            self._abort(exc, rewind)
            return False
        self.producer.poll(0)  # delivery reports: the changelog offsets the stores persist
        self._committed(started, stamps)
        self.producer.begin_transaction()
        self.out.release()
        return True

    def _committed(self, started: float, stamps: list[int]) -> None:
        took = time.perf_counter() - started
        METRICS.commit_seconds.observe(took)
        self._adapt_patience(took)
        if took > _SLOW_COMMIT:
            log.warning("a commit took %.1f s (%d records sent meanwhile wait for the next one)",
                        took, self.out.held if self.out is not None else 0)
        wall_ms = time.time() * 1000
        observe = METRICS.record_to_commit.observe
        for stamp in stamps:
            observe(max(wall_ms - stamp, 0.0) / 1000)
        began = time.perf_counter()
        for processor in self.processors:
            for store in processor.stores:
                store.persist()
            processor.committed()
        took = time.perf_counter() - began
        if took > _SLOW_PERSIST:
            log.warning("writing a commit's state to RocksDB took %.2f s", took)

    def _adapt_patience(self, took: float, now: float | None = None) -> None:
        """Let the tasks wait for a silent sender at least three times the longest commit of the
        last minute (and never less than `_STALL_WARNING`). A sender's frontier comes with its
        commits: at 200k orders commits took 2-5 s (transactions of ~20k records) and the
        inventory tasks gave up after 5 s on a sender that was only committing, then went on
        out of business-time order."""
        now = time.monotonic() if now is None else now
        recent = self._recent_commits  # only commits slow enough to matter: a few, not ~40 a second
        if 3 * took > _STALL_WARNING:
            recent.append((now, took))
        while recent and recent[0][0] < now - 60:
            recent.popleft()
        patience = max([_STALL_WARNING, *(3 * t for _, t in recent)])
        if patience != self.sender_patience:
            self.sender_patience = patience
            for task in self.tasks.values():
                task.sender_patience = patience

    def _abort(self, exc: KafkaException, rewind: bool = True) -> None:
        """The transaction failed: abort it, forget its state changes and read its input
        again from the committed offsets. A fatal error (fenced: another process took this
        worker's transactional id) stops the worker."""
        assert self.consumer is not None and self.producer is not None and self.out is not None
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is not None and error.fatal():
            raise exc
        log.warning("transaction failed, aborting and reading again from the committed offsets: %s", exc)
        METRICS.aborted_transactions.inc()
        self._drop_uncommitted()
        assigned = set(self.assignment)
        if assigned and rewind:
            self._close_tasks(assigned)
            self._open_tasks(assigned, rewind=True)

    # ------------------------------------------------------------------ rebalances

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        log.info("partitions revoked: %s", _names(revoked))
        self.rebalancing = True
        if not self._commit(wait=True, rewind=False):
            log.warning("the revoked partitions' last transaction was aborted")
        self._close_tasks(revoked)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = {(tp.topic, tp.partition) for tp in partitions}
        log.warning("partitions lost (this worker left the group): %s", _names(lost))
        self.rebalancing = True
        assert self.producer is not None and self.out is not None
        if self._inflight is not None:
            self._finish_commit(rewind=False)  # fails if the group moved on: aborted
        self.out.drop_held()
        self._drop_uncommitted()
        self._close_tasks(lost)

    def _drop_uncommitted(self) -> None:
        """Abort the open transaction, forget the state changes and offsets it held, begin the
        next one."""
        assert self.producer is not None and self.out is not None
        if self.exactly_once:
            try:
                self.producer.abort_transaction(30)
            finally:
                self.producer.begin_transaction()
        for processor in self.processors:
            for store in processor.stores:
                store.discard()
        for task in self.tasks.values():
            task.progressed = False
        self.timestamps.clear()
        self.out.produced = 0

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assigned = {(tp.topic, tp.partition) for tp in partitions}
        log.info("partitions assigned: %s", _names(assigned))
        started = time.monotonic()
        self._open_tasks(assigned, rewind=False)
        self._plan_standbys()
        self.generation += 1
        self.rebalancing = False
        log.info("assignment ready in %.2f s", time.monotonic() - started)

    def _close_tasks(self, tps: set[tuple[str, int]]) -> None:
        self._resume_paused(tps)
        by_processor: dict[str, set[int]] = {}
        for tp in tps:
            processor = self.processor_of.get(tp[0])
            if processor is not None:
                by_processor.setdefault(processor.name, set()).add(tp[1])
            self.task_of.pop(tp, None)
        self.assignment -= tps
        for processor in self.processors:
            partitions = by_processor.get(processor.name)
            if not partitions:
                continue
            processor.revoked(partitions)
            for partition in partitions:
                self.tasks.pop((processor.name, partition), None)
                for store in processor.stores:
                    if self.standby_partitions:  # committed state: queries may read it meanwhile
                        store.deactivate(partition)
                        store.standby.add(partition)
                        store.standby_current.add(partition)
                    else:
                        store.close(partition)

    def _resume_paused(self, tps: set[tuple[str, int]]) -> None:
        """Resume those of `tps` this worker paused (`_buffer`): drained, starved, or given up.
        Given up too, since librdkafka keeps a partition's pause across revocation and
        reassignment: a partition paused when a rebalance took it and gave it back was never
        fetched again, since its new task had not paused it. Its task waited for it, then went on without it, and the tasks
        waiting for that task's frontier stopped: two workers starting on a backlog stalled
        for good (`python -m scripts.bench scale`)."""
        paused = sorted(self.paused & tps)
        self.paused.difference_update(paused)
        if paused and self.consumer is not None:
            try:
                self.consumer.resume([TopicPartition(*tp) for tp in paused])
            except KafkaException as exc:  # not known to the consumer any more: nothing kept
                log.warning("could not resume %s: %s", _names(set(paused)), exc)

    def _open_tasks(self, tps: set[tuple[str, int]], *, rewind: bool) -> None:
        assert self.consumer is not None
        self.assignment |= tps
        # Waits until no transaction of the previous owner is pending on these offsets
        # (read_committed offset fetches are "stable", KIP-447). Its changelog partitions may
        # still await their commit markers: `restore` waits for those (`_settled_ends`).
        committed = self.consumer.committed([TopicPartition(*tp) for tp in sorted(tps)], 60)
        if rewind:  # read again from the committed offsets (after an aborted transaction)
            for tp in committed:
                offset = tp.offset if tp.offset >= 0 else -2  # OFFSET_BEGINNING
                self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        saved = {(tp.topic, tp.partition): tp.metadata for tp in committed}
        for processor in self.processors:
            partitions = sorted({p for t, p in tps if t in processor.topics})
            if not partitions:
                continue
            for store in processor.stores:  # a standby copy answers queries until restored
                for partition in partitions:
                    self._log_standby_read((store.changelog_topic, partition))
                restore(store, partitions, self._restore_config, self._settle_timeout, self._restore_helpers)
            senders = {topic: self._partition_count(topic) for topic in getattr(processor, "internal", ())}
            for partition in partitions:
                task = Task(
                    processor, partition, list(processor.topics), self.max_task_idle, senders, self.alignment_horizon,
                    awaits=getattr(processor, "awaits_answers", None), sender_patience=self.sender_patience,
                )
                self.tasks[(processor.name, partition)] = task
                for topic in task.topics:
                    if (topic, partition) in self.assignment:
                        self.task_of[(topic, partition)] = task
                        task.resume(saved.get((topic, partition)))
                    else:
                        task.end_of(topic)  # not ours (topics mis-partitioned): never wait
            for store in processor.stores:
                store.standby.difference_update(partitions)
                store.standby_current.difference_update(partitions)
                store.active.update(partitions)
            processor.assigned(set(partitions))
        release_free_memory()  # the restores' and index rebuilds' buffers (streams/runtime/rocks.py)


    # ------------------------------------------------------------------ standbys

    def _plan_standbys(self) -> None:
        """Follow the changelog of every store partition this worker does not process, so that
        a partition moving here restores only a short tail, and queries for it can be answered
        from committed state while it moves (streams/api/web.py marks such answers as stale)."""
        if self.standby_consumer is None:
            return
        wanted: dict[tuple[str, int], PartitionedStore[Any]] = {}
        for processor in self.processors:
            for store in processor.stores:
                for partition in range(self.standby_partitions):
                    if partition not in store.active:
                        wanted[(store.changelog_topic, partition)] = store
        starts = []
        self.standby_read = {}
        for (topic, partition), store in sorted(wanted.items(), key=lambda item: item[0]):
            store.open(partition)
            store.standby.add(partition)
            position = store.position(partition)
            starts.append(TopicPartition(topic, partition, position if position is not None else -2))
            self.standby_read[(topic, partition)] = [position or 0, position or 0]
        self.standby_of = wanted
        self.standby_consumer.assign(starts)

    def _follow_standbys(self) -> None:
        assert self.standby_consumer is not None
        msgs = self.standby_consumer.consume(2_000, 0)
        if not msgs:
            return
        batches: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = {}
        last: dict[tuple[str, int], int] = {}
        caught_up = []
        for msg in msgs:
            tp = (msg.topic(), msg.partition())
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    caught_up.append(tp)
                continue
            batches.setdefault(tp, []).append((msg.key(), msg.value()))
            last[tp] = msg.offset()
        for tp, records in batches.items():
            store = self.standby_of.get(tp)
            if store is not None and tp[1] in store.standby:
                store.restore_batch(tp[1], records, last[tp] + 1)
                if tp in self.standby_read:
                    self.standby_read[tp][1] = last[tp] + 1
        for tp in caught_up:
            store = self.standby_of.get(tp)
            if store is not None and tp[1] in store.standby and tp[1] not in store.standby_current:
                store.standby_current.add(tp[1])
                self._log_standby_read(tp)

    def _log_standby_read(self, tp: tuple[str, int]) -> None:
        """Say what a standby copy read since it was planned (what a restore of the partition
        no longer has to read): at its first end of partition, or when it becomes active."""
        read = self.standby_read.pop(tp, None)
        if read is not None and read[1] > read[0]:
            log.info("recovery (standby): %s[%d] from %d to %d", tp[0], tp[1], read[0], read[1])


def _retrying(call: Callable[[], None], attempts: int = 3) -> None:
    for attempt in range(attempts):
        try:
            return call()
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is None or not error.retriable() or attempt == attempts - 1:
                raise
            log.warning("transaction call timed out, trying again: %s", exc)


def _names(tps: set[tuple[str, int]]) -> str:
    return " ".join(f"{t}[{p}]" for t, p in sorted(tps)) or "none"
