"""A Faust consumer that hands the records of chosen topics to their handler a fetch at a time.

Why: Faust delivers every record on its own. `Consumer._drain_messages` awaits
`wait_first(callback(message), suspend_flow.wait())` per record (two asyncio tasks), the
conductor wraps it in an Event and queues it on a channel, and the agent's stream takes it off
again; about 66 µs per record on our machines before the agent does anything, i.e. a ceiling of
~15k events/s however little the agent does. The order agent handles records in batches anyway,
so for its topics that machinery buys nothing.

What stays Faust's: group membership, assignment (the topics stay subscribed through the
conductor, see `register_topics`), table recovery and standbys (changelog records still go
through the normal callback), transactions, commits and their offset bookkeeping, the web
server. What changes: for each `getmany` result, the records of the *bulk topics* are tracked
(`track_message`) and passed, in one list per handler (the order agent's topics to one, the
inventory agent's to another), to that async handler; the handler processes and acks
them (`Consumer.ack`) under the commit gate, exactly as an agent would acknowledge events.
Everything else is delivered record by record as before.

The drain loop below re-implements what Faust's loop does for correctness:
- records arrive only while the flow is active; a fetch that returns while it is suspended
  (a rebalance started) is dropped and the consumer seeks back to the committed offsets;
- records older than the partition's read offset (re-delivered after a seek) are skipped;
- holes in the offsets (transaction markers, compacted records) are recorded as gaps so that
  commits can move past them;
- `broker_commit_every` is honoured;
- records of paused partitions that were already in flight are not delivered.
Two things differ on purpose. A hand-over never overlaps a seek or a revocation: Faust resumes
the stream partitions *before* it seeks them to their committed offsets after a rebalance, so
its own loop can deliver records fetched from aiokafka's default position while the seek is
still waiting for the broker; those records were processed, then fetched and processed again
after the seek (and their offsets, read before Faust knew the committed ones, carried no gaps,
so a partition whose committed offset sat on a transaction marker never committed again: the
open transaction timed out and fenced the worker). Likewise a hand-over still running when
Faust forgets the revoked partitions' offsets would record its acks and read offsets into the
next generation, where they made the worker skip re-fetched records. So a seek or revocation
waits for the hand-over in flight, nothing is fetched or handed over while it runs, and what a
fetch begun before it brought is dropped, after which the consumer seeks back to the committed
offsets (`_repositioning`). And a handler call is never cancelled half way. It runs as a task the
loop waits on through `asyncio.shield`, so stopping the fetcher (shutdown, rebalance) lets the
batch finish and ack; Faust's `wait_empty` then commits it. Cancelling a batch in the middle
would leave state changes and sent records of events whose offsets are never acked, which the
next commit would publish (breaking exactly-once).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from time import monotonic
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP, Message

log = logging.getLogger("o2c.bulk")

BulkHandler = Callable[["BulkConsumer", Sequence[Message]], Awaitable[None]]

FETCHING = "FETCHING"  # the diag flag Faust's own loop sets while it fetches


class BulkConsumer(AIOKafkaConsumer):
    """aiokafka consumer whose drain loop batches each bulk topic's records for its handler."""

    bulk_handlers: Mapping[str, BulkHandler] = {}  # topic -> handler
    bulk_batch_size: int = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turns = asyncio.Lock()  # held by a hand-over; a seek or revocation waits for it
        self._epoch = 0  # bumped when a seek or revocation starts and ends: older fetches are stale
        self._moving = 0  # seeks and revocations under way: no fetch nor hand-over meanwhile
        self._settled = asyncio.Event()  # set while nothing is moving
        self._settled.set()
        self._stuck: dict[TP, int] = {}  # partitions reported as unable to commit, at offset

    @asynccontextmanager
    async def _repositioning(self) -> AsyncIterator[None]:
        """Let the hand-over in flight finish, and start no fetch nor hand-over until the block
        is over. The lock is not held through the block: a seek waits on the consumer thread,
        which may itself be waiting for a rebalance callback."""
        async with self._turns:
            self._epoch += 1
            self._moving += 1
            self._settled.clear()
        try:
            yield
        finally:
            self._moving -= 1
            self._epoch += 1
            if not self._moving:
                self._settled.set()

    def _stale(self, epoch: int) -> bool:
        return self._moving > 0 or self._epoch != epoch

    async def perform_seek(self) -> None:
        async with self._repositioning():
            await super().perform_seek()

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        async with self._repositioning():
            await super().on_partitions_revoked(revoked)

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's next committable offset, saying so when a hole at the head of the acked
        offsets blocks it for good (the partition's transaction would time out)."""
        offset = super()._new_offset(tp)
        acked = self._acked.get(tp)
        committed = self._committed_offset.get(tp)
        if offset is None and acked and committed is not None and min(acked) - committed > 1:
            if self._stuck.get(tp) != committed:
                self._stuck[tp] = committed
                log.error(
                    "offsets of %s cannot be committed past %d: the first acknowledged offset is "
                    "%d and nothing in between was delivered",
                    tp,
                    committed,
                    min(acked),
                )
        return offset

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Faust's seek after every assignment, plus an explicit seek to the beginning for the
        bulk topics' partitions that have no committed offset yet.

        aiokafka seeks only partitions with a committed offset and leaves the others to its
        offset-reset logic. After a rebalance that moved a never-committed partition to a worker
        (a second worker joining while the first had not reached that partition yet), we saw
        such partitions never fetched, or fetched from the end: the inventory partitions stalled
        with their whole content as lag, or allocation requests were skipped and never answered
        (faust-streaming #629 and #523 report the same). An explicit seek leaves no doubt.
        """
        committed = await super().seek_to_committed()
        fresh = [
            tp
            for tp, offset in committed.items()
            if tp.topic in self.bulk_handlers and (offset is None or offset < 0)
        ]
        if fresh:
            log.info(
                "no committed offset yet, reading from the beginning: %s", " ".join(map(str, sorted(fresh)))
            )
            await self._thread.seek_to_beginning(*fresh)
            for tp in fresh:
                self._read_offset.pop(tp, None)
        return committed

    async def _drain_messages(self, fetcher: Any) -> None:
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                await self._settled.wait()
                self.diag.set_flag(FETCHING)
                epoch = self._epoch
                try:
                    records, active = await self._wait_next_records(1.0)
                finally:
                    self.diag.unset_flag(FETCHING)
                await self.sleep(0)  # getmany can return at once many times in a row
                if not records or self.should_stop:
                    continue
                if not self.flow_active:
                    # Fetched while a rebalance suspended the flow: forget these records and
                    # rewind, they are fetched again once the flow resumes.
                    await self._seek_back("fetched while flow suspended")
                    continue
                if not await self._deliver(records, active, epoch):
                    # A seek or revocation came after this fetch began: the records left were
                    # dropped, and fetched again from the committed offsets (nothing was handed
                    # over since the seek, or the revocation forgot it).
                    await self._seek_back("records fetched around a seek or revocation were dropped")
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            log.exception("Drain messages raised: %r", exc)
            raise

    async def _seek_back(self, why: str) -> None:
        log.info("seek back to committed offsets: %s", why)
        try:
            await self.perform_seek()
        except Exception as exc:  # noqa: BLE001 - as Faust: the next rebalance seeks anyway
            log.warning("exception performing seek (%s): %r", why, exc)

    async def _deliver(self, records: dict[TP, list[Any]], active: set[TP] | None, epoch: int) -> bool:
        """Deliver one fetch; False if bulk records were dropped as stale (see `_hand_over`)."""
        generation = self.app.consumer_generation_id
        monitor = self.app.monitor
        bulk: list[tuple[TP, list[Message]]] = []
        stale = False
        for tp, batch in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue  # paused while the fetch was in flight: aiokafka fetches it again
            if tp.topic in self.bulk_handlers and self._stale(epoch):
                stale = True
                continue
            monitor.track_tp_end_offset(tp, self.highwater(tp))
            fresh = await self._fresh_records(tp, batch)
            if not fresh:
                continue
            messages = [self._to_message(tp, record) for record in fresh]
            if tp.topic in self.bulk_handlers:
                bulk.append((tp, messages))
            else:
                if not await self._deliver_one_by_one(tp, messages, generation):
                    return True
        if stale:
            return False
        if bulk:
            handlers = self.bulk_handlers
            by_handler: dict[BulkHandler, list[tuple[TP, list[Message]]]] = {}
            for tp, messages in bulk:
                by_handler.setdefault(handlers[tp.topic], []).append((tp, messages))
            for handler, its_bulk in by_handler.items():
                if not await self._deliver_bulk(handler, its_bulk, generation, epoch):
                    return False
        return True

    async def _fresh_records(self, tp: TP, batch: list[Any]) -> list[Any]:
        """The records not read yet, recording holes in the offsets as gaps."""
        read = self._read_offset[tp]
        if read is not None:
            first = 0
            while first < len(batch) and batch[first].offset < read:
                first += 1
            if first:
                batch = batch[first:]
        if not batch or not self.app.topics.acks_enabled_for(tp.topic):
            return batch
        previous = read
        for record in batch:
            offset = record.offset
            # `read` is the committed offset right after a seek, the last offset read after
            # that (as in Faust); a hole of one right after a seek is tolerated by Faust's
            # `_new_offset`, so only holes of two or more offsets become gaps there.
            if previous is not None and offset > previous + 1:
                await self._add_gap(tp, previous + 1, offset - 1)
            previous = offset
        return batch

    async def _deliver_one_by_one(self, tp: TP, messages: list[Message], generation: int) -> bool:
        """Faust's own path (changelogs, other topics); False if a rebalance interrupted it."""
        callback = self.callback
        commit_every = self._commit_every
        for message in messages:
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return False
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            await self.wait_first(callback(message), self.suspend_flow.wait())
            self._read_offset[tp] = message.offset
        return True

    async def _deliver_bulk(
        self, handler: BulkHandler, bulk: list[tuple[TP, list[Message]]], generation: int, epoch: int
    ) -> bool:
        """Hand one handler's records over in batches of at most `bulk_batch_size`.

        One fetch can hold everything aiokafka prefetched (a megabyte per partition, ~10k
        records each), and the handler holds the commit gate for a whole call, so handing over
        a fetch at once would hold off commits for seconds. Within a partition number the
        co-partitioned topics are merged by record timestamp (as a Kafka Streams task picks its
        next record), so that an order's placement, shipment and invoice of about the same time
        land in the same batch, where the agent orders them by event time; cutting topic by
        topic instead put shipments batches ahead of the orders they ship (thousands of
        spurious business exceptions in the bench). Each batch takes an equal share of every
        partition number. Between batches a rebalance or a seek can stop the rest (False): it
        was not tracked yet, and is fetched again from the committed offsets.
        """
        by_partition: dict[int, list[list[Message]]] = {}
        for tp, messages in bulk:
            by_partition.setdefault(tp.partition, []).append(messages)
        streams = [
            runs[0] if len(runs) == 1 else list(heapq.merge(*runs, key=_timestamp))
            for runs in by_partition.values()
        ]
        pending = [(stream, 0) for stream in streams]
        size = self.bulk_batch_size
        while pending:
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return False
            share = max(1, size // len(pending))
            taken: list[Message] = []
            rest = []
            for stream, start in pending:
                taken.extend(stream[start : start + share])
                if start + share < len(stream):
                    rest.append((stream, start + share))
            pending = rest
            if not await self._hand_over(handler, taken, epoch):
                return False
        return True

    async def _hand_over(self, handler: BulkHandler, messages: list[Message], epoch: int) -> bool:
        """Track the records, let the handler process and ack them, and mark them read; False
        (nothing done) if a seek or revocation came since their fetch began."""
        commit_every = self._commit_every
        if commit_every is not None and self._n_acked >= commit_every:
            self._n_acked = 0
            await self.commit()
        async with self._turns:
            if self._stale(epoch):
                return False
            track = self.track_message
            last: dict[TP, int] = {}
            for message in messages:
                track(message)
                last[message.tp] = message.offset
            now = monotonic()
            inbound = self.app.monitor.stream_inbound_time  # feeds Faust's livelock detector
            for tp in last:
                inbound[tp] = now
            task = asyncio.ensure_future(handler(self, messages))
            await asyncio.shield(task)  # never cancelled half way (see the module docstring)
            self._read_offset.update(last)
        return True


def _timestamp(message: Message) -> float:
    return message.timestamp or 0.0


def install(app: faust.App, handlers: Mapping[str, BulkHandler], *, batch_size: int = 1000) -> None:
    """Make the app's transport build a BulkConsumer handing each topic's records to its
    handler (before the consumer exists)."""
    transport = app.transport
    base = transport.Consumer
    if not issubclass(base, AIOKafkaConsumer):
        raise TypeError(f"the bulk consumer needs the aiokafka transport, not {base!r}")
    transport.Consumer = type(  # type: ignore[misc]
        "O2CBulkConsumer",
        (BulkConsumer,),
        {"bulk_handlers": dict(handlers), "bulk_batch_size": batch_size},
    )


def register_topics(app: faust.App, topic: faust.TopicT) -> None:
    """Subscribe `topic` through the conductor without any stream reading it.

    The conductor is what the consumer subscribes from, what the assignor's co-partitioned
    groups (hence `assignor.group_for_topic` and the transactional ids) are built from, and what
    enables acks for the topic (`acks_enabled_for`), without which `Consumer.ack` records
    nothing. Faust adds a topic when a stream starts iterating it; we add the iterator clone
    ourselves. Should a record of it ever reach the conductor (no bulk consumer installed), it
    would sit in the channel's queue unacked: the worker stalls rather than skipping input.
    """
    app.topics.add(topic.clone(is_iterator=True))
