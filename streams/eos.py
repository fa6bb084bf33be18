"""Exactly-once plumbing around Faust's transactions.

Faust runs one transactional producer per *source* partition (transactional id
`{app id}-{topic group}-{partition}`) and commits each source partition's offsets in that
producer's transaction. Its `TransactionManager.send` however picks the producer from the
*destination* partition of the record being sent. That is only right when the destination
topic is co-partitioned with the source; a record keyed differently (an exception keyed by SKU,
an allocation request keyed by SKU, a dead letter) would join another partition's transaction,
or find no producer at all when that partition belongs to another worker (faust-streaming
issues #177, #323, #440 and #517).

`SourcePartitionTransactions` routes every send made while processing an event to the
transaction of the partition the event came from. `acting_for` lets batch code (which handles
events of several partitions at once) say which event it is working for, so that table writes
land in that partition's RocksDB store and changelog, and sends in its transaction.

It also records which transactions each commit really committed (Faust commits only the
transactions of partitions with newly acknowledged offsets, and reports one boolean for all),
and which transactions hold records no commit covered yet: the commit gate persists local state
only for committed transactions, and a rebalance aborts the leftovers, because after a
rebalance Faust seeks every partition back to its committed offset and processes those events
again (their first outputs would otherwise be committed with the second ones). Records sent
outside any event (a wall-clock SLA check, streams/sla.py) have no offset to be committed with:
their transactions are "owed" a commit, which the gate makes after Faust's own.

Finally, table recovery gets its targets from the broker: the last committed record of each
changelog partition. Faust's own (the last fetch's stable offset, minus one) may be unknown,
which skips recovery or crashes the worker, and otherwise points at a transaction marker that
is never delivered, which costs 10-15 s of waiting (see "recovery targets" below).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import faust
from aiokafka.errors import ProducerFenced
from faust.streams import _current_event, current_event
from faust.transport.consumer import TransactionManager
from faust.types import TP

log = logging.getLogger("o2c.eos")


class SourcePartitionTransactions(TransactionManager):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unfinished: set[str] = set()  # transactions with records no commit covered yet
        self.committed: set[str] = set()  # transactions committed since `committed` was reset
        self.owed: set[str] = set()  # transactions to commit even without new offsets (see `owe`)

    def transactional_id(self, topic: str, partition: int) -> str:
        return f"{self.app.conf.id}-{self.app.assignor.group_for_topic(topic)}-{partition}"

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        destination = self.consumer.key_partition(topic, key, partition)
        event = current_event()
        if event is not None:
            source = event.message
            tid = self.transactional_id(source.topic, source.partition)
        else:  # Faust's rule: the destination partition's transaction (co-partitioned topics)
            tid = self.transactional_id(topic, destination)
        self.unfinished.add(tid)
        return await self.producer.send(
            topic, key, value, destination, timestamp, headers, transactional_id=tid
        )

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        """Faust's commit, one transaction at a time, remembering which ones committed."""
        by_tid: dict[str, dict[TP, int]] = defaultdict(dict)
        for tp, offset in offsets.items():
            by_tid[self.transactional_id(tp.topic, tp.partition)][tp] = offset
        running = getattr(self.producer, "_transaction_producers", None)
        for tid, tid_offsets in by_tid.items():
            if running is not None and tid not in running:  # Faust would skip it with a warning
                log.warning("no transactional producer %s: offsets %s not committed", tid, tid_offsets)
                continue
            try:
                await self.producer.commit_transactions(
                    {tid: tid_offsets}, self.app.conf.id, start_new_transaction=start_new_transaction
                )
            except ProducerFenced as exc:
                log.warning("producer fenced: %s", exc)
                await self.app.crash(exc)
                return False
            self.committed.add(tid)
            self.unfinished.discard(tid)
        return True

    def owe(self, topic: str, partition: int) -> None:
        """Records were sent in this source partition's transaction that no input offset
        accompanies (an SLA check driven by a timer, not by an event): the next commit must
        commit the transaction anyway. Faust commits only transactions whose partitions have
        newly acknowledged offsets, so without this they would wait for the partition's next
        input event, or be aborted at the next rebalance."""
        self.owed.add(self.transactional_id(topic, partition))

    async def commit_owed(self, start_new_transaction: bool = True) -> None:
        """Commit the owed transactions that the offset commit did not cover (no offsets)."""
        owed, self.owed = self.owed - self.committed, set()
        running = self.producer._transaction_producers  # type: ignore[attr-defined]
        for tid in sorted(owed):
            producer = running.get(tid)
            if producer is None:  # revoked meanwhile: the rebalance aborted its transaction
                log.warning("no transactional producer %s: its records are not committed", tid)
                continue
            async with self.producer._trn_locks[tid]:  # type: ignore[attr-defined]
                try:
                    await producer.commit_transaction()
                except ProducerFenced as exc:
                    log.warning("producer fenced: %s", exc)
                    await self.app.crash(exc)
                    return
                if start_new_transaction:
                    await producer.begin_transaction()
            self.committed.add(tid)
            self.unfinished.discard(tid)

    async def abort_unfinished(self) -> None:
        """Abort (and restart) the transactions holding records no commit covered."""
        for tid in sorted(self.unfinished):
            log.warning("aborting transaction %s: it holds records of uncommitted offsets", tid)
            await self.producer.abort_transaction(tid)
            await self.producer.begin_transaction(tid)
        self.unfinished.clear()
        self.owed.clear()


PROBE_CONFIG = "_o2c_probe_config"  # app attribute: the probe's confluent-kafka client config


def install(app: faust.App, client_config: Mapping[str, Any]) -> None:
    """Make the app's transport build our transaction manager (before the consumer starts),
    and let table recovery stop at the last committed changelog record (read with a client of
    `client_config`: brokers and security settings)."""
    app.transport.TransactionManager = SourcePartitionTransactions  # type: ignore[misc]
    setattr(app, PROBE_CONFIG, dict(client_config))
    _patch_recovery_highwaters()


# --------------------------------------------------------------------------- recovery targets
#
# Faust recovers a changelog partition by reading it up to a "highwater". With exactly-once it
# takes that from the consumer's last fetch response (aiokafka `last_stable_offset`), which is
# unknown (None, so -1) for a partition not fetched since the rebalance: recovery is then
# skipped, leaving an empty table on a fresh worker, or fails its consistency check and crashes
# the worker. And when known, it reads up to "end offset - 1", which in a transactional
# changelog always holds a commit or abort marker that consumers never see: recovery then waits
# until its fallback (two idle 5 s polls of the changelog queue, then "Aborted tx until
# highwater", faust-streaming issue #47) declares it done, 10 to 15 s of not being ready.
#
# So with exactly-once we ask the broker for each changelog partition's end (the last stable
# offset, read_committed), read its tail to find the last committed record, and give Faust that
# offset (or the persisted one, when local state is already past it) as the target. Should the
# lookup fail, Faust's own highwaters stay.

_PROBE_TIMEOUT = 10.0


def changelog_tails(client_config: Mapping[str, Any], tps: Iterable[TP]) -> dict[TP, tuple[int, int]]:
    """Per partition: (end offset for read_committed consumers, offset of the last committed
    record below it, -1 when there is none)."""
    import time

    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    consumer = Consumer(
        {
            **client_config,
            "group.id": "o2c-changelog-probe",  # never joins nor commits: partitions are assigned
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
            "logger": logging.getLogger("librdkafka"),
        }
    )
    try:
        bounds = {
            tp: consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=_PROBE_TIMEOUT, cached=False
            )
            for tp in tps
        }
        found = {tp: (high, -1) for tp, (low, high) in bounds.items() if high <= low}
        todo = {tp: bound for tp, bound in bounds.items() if tp not in found}
        window = 16
        while todo:
            starts = {
                (tp.topic, tp.partition): (tp, max(high - window, low)) for tp, (low, high) in todo.items()
            }
            consumer.assign([TopicPartition(t, p, start) for (t, p), (_, start) in starts.items()])
            last = {key: -1 for key in starts}
            pending = set(starts)
            deadline = time.monotonic() + _PROBE_TIMEOUT
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading the tails of {sorted(pending)} took too long")
                msg = consumer.poll(0.2)
                if msg is None or (key := (msg.topic(), msg.partition())) not in pending:
                    continue
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(msg.error())
                    pending.discard(key)
                elif msg.offset() >= todo[starts[key][0]][1]:
                    pending.discard(key)
                else:
                    last[key] = msg.offset()
            for key, (tp, start) in starts.items():
                low, high = todo[tp]
                if last[key] >= 0 or start == low:
                    found[tp] = (high, last[key])
                    del todo[tp]
            window *= 16  # a tail of aborted transactions only: look further back
        return found
    finally:
        consumer.close()


def _patch_recovery_highwaters() -> None:
    from faust.tables.recovery import Recovery

    original = Recovery._build_highwaters
    if getattr(original, "_o2c", False):
        return

    async def _build_highwaters(
        self: Recovery, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        await original(self, consumer, tps, destination, title)
        if not self.app.in_transaction or not tps:
            return
        config = getattr(self.app, PROBE_CONFIG, None)
        if config is None:
            servers = ",".join(f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker)
            config = {"bootstrap.servers": servers}
        try:
            tails = await asyncio.get_running_loop().run_in_executor(None, changelog_tails, config, set(tps))
        except Exception as exc:  # noqa: BLE001 - keep Faust's highwaters
            log.warning("recovery: could not read the changelog tails (%r); keeping Faust's", exc)
            return
        for tp, (end, last) in tails.items():
            table = self.tp_to_table.get(tp)
            persisted = table.persisted_offset(tp) if table is not None else None
            if persisted is not None and persisted > end - 1:
                destination[tp] = end - 1  # local state ahead of the changelog: Faust says so
            else:
                destination[tp] = max(last, -1 if persisted is None else persisted)
        log.info(
            "recovery targets (%s): %s",
            title,
            " ".join(f"{tp.topic}[{tp.partition}]={destination[tp]}" for tp in sorted(tails)),
        )

    _build_highwaters._o2c = True  # type: ignore[attr-defined]
    Recovery._build_highwaters = _build_highwaters  # type: ignore[method-assign]


@contextmanager
def acting_for(event: faust.EventT | None) -> Iterator[None]:
    """Within the block, Faust treats `event` as the event being processed (None: no event)."""
    token = _current_event.set(weakref.ref(event) if event is not None else None)
    try:
        yield
    finally:
        _current_event.reset(token)


class CommitGate:
    """Keeps commits and batch processing apart, and flushes state stores inside each commit.

    Faust commits on a timer, concurrently with agents. A commit that lands while a batch is
    half processed would commit (in the transaction) records of events whose offsets are not
    committed yet; a crash then repeats them. Here a batch, including its acks, runs under the
    gate, and so does the commit, which first sends the stores' changelog records into the
    transactions and, once committed, persists locally what those transactions committed.
    A rebalance (after Faust's own commit) drops whatever is left uncommitted: Faust then
    processes those events again from the committed offsets.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.lock = asyncio.Lock()
        self.stores: list[Any] = []
        self.after_commit: list[Callable[[], None]] = []  # called under the gate after each commit
        self._installed = False
        self.failure: BaseException | None = None

    def register(self, store: Any) -> None:
        self.stores.append(store)

    def owe(self, source: TP) -> None:
        """Records were sent for `source` outside any event (streams/sla.py's timer): the next
        commit commits its transaction even if no offset of the partition moved."""
        transactions = self._transactions()
        if transactions is not None:
            transactions.owe(source.topic, source.partition)

    def processing(self) -> asyncio.Lock:
        """The lock a batch holds, acks included. Installs the gate if the app's start task has
        not yet: no event is acknowledged, hence no offset committed, before it is in place."""
        if not self._installed:
            self.install()
        return self.lock

    def poison(self, exc: BaseException) -> None:
        """A batch failed half way: its state changes and records must never be committed.

        Its events are not acked, but the stores hold some of their changes and the open
        transactions some of their records; committing now would publish them. Every later
        commit fails instead, so the worker stops without committing: exactly-once aborts the
        open transactions, at-least-once re-reads from the last commit.
        """
        if self.failure is None:
            self.failure = exc

    async def sender(self) -> Callable[..., Awaitable[Any]]:
        """`send(topic, key, value, partition, headers=None)` through the right producer."""
        producer = await self.app.maybe_start_producer()

        async def send(
            topic: str, key: bytes | None, value: bytes | None, partition: int | None, headers: Any = None
        ) -> Any:
            return await producer.send(topic, key, value, partition, None, headers)

        return send

    def _transactions(self) -> SourcePartitionTransactions | None:
        transactions = getattr(self.app.consumer, "transactions", None)
        return transactions if isinstance(transactions, SourcePartitionTransactions) else None

    async def _persist(self, transactions: SourcePartitionTransactions | None) -> None:
        """Persist locally what the commit committed: with transactions, the store partitions
        whose changelog transaction committed; without, everything flushed."""
        for store in self.stores:
            if transactions is None:
                await store.persist()
                continue
            topic = store.changelog_topic_name
            done = {
                p
                for p in store.uncommitted_partitions()
                if transactions.transactional_id(topic, p) in transactions.committed
            }
            await store.persist(done, transactional=True)

    def install(self) -> None:
        """Wrap the consumer's commit (call once the app has its consumer)."""
        if self._installed:
            return
        consumer = self.app.consumer
        original = consumer.commit

        async def gated_commit(*args: Any, **kwargs: Any) -> bool:
            async with self.lock:
                if self.failure is not None:
                    raise RuntimeError(f"not committing after a failed batch: {self.failure!r}")
                transactions = self._transactions()
                if transactions is not None:
                    transactions.committed.clear()
                try:
                    # Changelog records join their own partition's transaction, whatever
                    # event context the commit was called from (Faust also commits on task
                    # errors).
                    with acting_for(None):
                        send = await self.sender()
                        for store in self.stores:
                            await store.flush_changelog(send)
                    committed = await original(*args, **kwargs)
                    if transactions is not None and transactions.owed:
                        start_new = kwargs.get("start_new_transaction", args[1] if len(args) > 1 else True)
                        await transactions.commit_owed(start_new_transaction=start_new)
                except Exception as exc:
                    # Keep what did commit; the rest is lost with this process, whose
                    # restart processes those events again from the committed offsets.
                    if transactions is not None:
                        await self._persist(transactions)
                    for store in self.stores:
                        store.discard()
                    log.error("commit failed, stopping the worker: %r", exc)
                    await self.app.crash(exc)
                    raise
                except BaseException:
                    for store in self.stores:
                        store.discard()
                    raise
                if committed or transactions is not None:
                    await self._persist(transactions)
                for callback in self.after_commit:
                    callback()
                return committed

        async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
            """Faust has committed what it could; it processes the rest again after the
            rebalance, from the committed offsets: drop every trace of the first time."""
            async with self.lock:
                transactions = self._transactions()
                if transactions is not None:
                    await transactions.abort_unfinished()
                for store in self.stores:
                    store.discard()

        consumer.commit = gated_commit  # type: ignore[method-assign]
        self.app.on_partitions_revoked.connect(on_revoked)
        self._installed = True
