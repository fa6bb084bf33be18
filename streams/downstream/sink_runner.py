"""Runs one sink over the committed status topic, off the order agent's path.

Each sink reads `o2c.order-status` (read_committed) in its own consumer group
`<app_id>-sink-<name>`, hands it batches, dead-letters what the sink reports as failed for good,
and commits the batch's offsets only then: at-least-once delivery, which receivers make
effectively-once by `(order_id, seq)`. A slow or dead receiver delays only its own sink; the order
agent never waits for one (docs/sinks.md).

The confluent-kafka consumer and the dead-letter producer are called from one thread of their own,
so the event loop (in a worker: the order agent's) only awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import mode
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from sinks import create_sink
from sinks.base import Failure, Sink, StatusRecord
from streams.contracts.codec import Codec, CodecError, DecodeError
from streams.metrics import METRICS
from streams.processors.deadletter import dead_letter_headers
from streams.runtime.topics import client_config, producer_config
from streams.settings import Settings

log = logging.getLogger("o2c.sink")

T = TypeVar("T")

# A delivery running longer than this pauses the partitions and keeps polling (once a second), so
# the group does not evict a consumer that is busy retrying a webhook (max.poll.interval.ms).
KEEPALIVE_AFTER = 5.0
KEEPALIVE_EVERY = 1.0
RETRY_INITIAL = 0.5


@dataclass
class Polled:
    """One batch off the status topic: decoded records, the undecodable ones, next offsets."""

    records: list[StatusRecord] = field(default_factory=list)
    undecodable: list[Failure] = field(default_factory=list)
    ends: dict[int, int] = field(default_factory=dict)  # partition -> offset to commit


class SinkRunner:
    def __init__(self, settings: Settings, sink: Sink, *, group_id: str | None = None) -> None:
        """`group_id` defaults to `<app_id>-sink-<name>`; another group re-reads the topic from
        the start (how tests and benchmarks replay)."""
        self.settings = settings
        self.sink = sink
        self.name = sink.name
        self.group_id = group_id or f"{settings.app_id}-sink-{sink.name}"
        self.topic = settings.topic("order-status")
        self.dlq = settings.topic("dlq")
        self.codec = Codec(settings)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"o2c-sink-{sink.name}")
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._pending: list[Any] = []  # records polled while paused, delivered first next batch

    # -- the loop --------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """`run`, restarted after any crash (logged), until cancelled."""
        crashes = 0
        while True:
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                crashes += 1
                delay = min(RETRY_INITIAL * 2**crashes, self.settings.sink_retry_max)
                log.exception("sink %s crashed; restarting in %.1f s", self.name, delay)
                await asyncio.sleep(delay)

    async def run(self) -> None:
        """Deliver batches until cancelled; nothing is committed for a batch cut short."""
        await self._until_done("start", self.sink.start)
        try:
            await self._in_thread(self._open)
            log.info("sink %s reading %s as group %s", self.name, self.topic, self.group_id)
            while True:
                polled = await self._in_thread(self._poll)
                if polled.ends:
                    await self.process(polled)
        finally:
            with contextlib.suppress(Exception):
                await self._in_thread(self._close)
            await self.sink.stop()
            log.info("sink %s stopped", self.name)

    async def process(self, polled: Polled) -> None:
        """Deliver one polled batch, dead-letter what failed for good, then commit it."""
        records, failed = polled.records, list(polled.undecodable)
        if records:
            started = time.perf_counter()
            async with self._keepalive():
                report = await self._until_done("deliver", lambda: self.sink.deliver(records))
            METRICS.sink_delivery_seconds.labels(self.name).observe(time.perf_counter() - started)
            failed.extend(report.failed)
            METRICS.sink_deliveries.labels(self.name, "delivered").inc(len(records) - len(report.failed))
        if failed:
            await self._until_done("dead-letter", lambda: self._in_thread(self._dead_letter, failed))
            METRICS.sink_deliveries.labels(self.name, "dead_lettered").inc(len(failed))
        await self._in_thread(self._commit, polled.ends)

    async def _until_done(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """Retry `step` with doubling pauses until it succeeds: nothing is skipped or lost."""
        retry = 0
        while True:
            try:
                return await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                METRICS.sink_failures.labels(self.name).inc()
                delay = min(RETRY_INITIAL * 2**retry, self.settings.sink_retry_max)
                log.warning(
                    "sink %s: %s failed (%s: %s); retrying in %.1f s",
                    self.name, what, type(exc).__name__, exc, delay,
                    exc_info=retry == 0 and not isinstance(exc, (OSError, KafkaException)),
                )
                await asyncio.sleep(delay)
                retry += 1
                METRICS.sink_retries.labels(self.name).inc()

    @contextlib.asynccontextmanager
    async def _keepalive(self) -> AsyncIterator[None]:
        async def poll_while_paused() -> None:
            await asyncio.sleep(KEEPALIVE_AFTER)
            await self._in_thread(self._pause)
            while True:
                await self._in_thread(self._keepalive_poll)
                await asyncio.sleep(KEEPALIVE_EVERY)

        task = asyncio.ensure_future(poll_while_paused())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._in_thread(self._resume)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    # -- Kafka calls (the runner's own thread) -------------------------------------------------

    def _open(self) -> None:
        s = self.settings
        self._consumer = Consumer(
            client_config(
                s,
                **{
                    "group.id": self.group_id,
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",  # a new sink delivers the topic's history
                    "session.timeout.ms": int(s.session_timeout * 1000),
                    "heartbeat.interval.ms": int(s.heartbeat_interval * 1000),
                },
            )
        )
        self._consumer.subscribe([self.topic])
        self._pending = []  # a restarted run starts again from the committed offsets
        self._producer = Producer(producer_config(s))

    def _close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
        if self._consumer is not None:
            self._consumer.close()
        self._consumer = self._producer = None

    def _poll(self) -> Polled:
        """The next batch, decoded here rather than on the event loop."""
        assert self._consumer is not None
        batch, self._pending = self._pending, []
        room = self.settings.sink_batch_size - len(batch)
        if room > 0:
            batch += self._consumer.consume(room, timeout=0 if batch else 0.5)
        polled = Polled()
        for msg in batch:
            error = msg.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("sink %s: consumer error: %s", self.name, error)
                continue
            polled.ends[msg.partition()] = max(polled.ends.get(msg.partition(), 0), msg.offset() + 1)
            record = StatusRecord(
                {}, msg.key(), msg.value(), list(msg.headers() or []), msg.topic(), msg.partition(), msg.offset()
            )
            try:
                if record.value is None:
                    raise DecodeError("order-status: a record without a value (tombstone)")
                polled.records.append(replace(record, event=self.codec.decode_flat("order-status", record.value)))
            except CodecError as exc:
                polled.undecodable.append(Failure(record, exc))
        return polled

    def _pause(self) -> None:
        assert self._consumer is not None
        self._consumer.pause(self._consumer.assignment())

    def _keepalive_poll(self) -> None:
        assert self._consumer is not None
        msg = self._consumer.poll(0)  # resets max.poll.interval; partitions assigned meanwhile may yield
        if msg is not None and msg.error() is None:
            self._pending.append(msg)

    def _resume(self) -> None:
        if self._consumer is not None:
            self._consumer.resume(self._consumer.assignment())

    def _dead_letter(self, failed: list[Failure]) -> None:
        assert self._producer is not None
        for failure in failed:
            record, error = failure.record, failure.error
            log.warning(
                "sink %s dead letter partition=%s offset=%s order_id=%s seq=%s error=%s: %s",
                self.name, record.partition, record.offset, record.event.get("order_id"),
                record.event.get("seq"), type(error).__name__, error,
            )
            headers = dead_letter_headers(record, error) + [("o2c.sink", self.name.encode())]
            self._producer.produce(self.dlq, key=record.key, value=record.value, headers=headers)
            self._producer.poll(0)
        if self._producer.flush(30):
            raise KafkaException(f"dead letters not acknowledged within 30 s on {self.dlq}")

    def _commit(self, ends: dict[int, int]) -> None:
        assert self._consumer is not None
        try:
            self._consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in ends.items()], asynchronous=False
            )
        except KafkaException as exc:  # e.g. partitions moved to another worker meanwhile
            log.warning("sink %s: commit failed (%s); the batch will be delivered again", self.name, exc)


class SinkService(mode.Service):
    """Runs the sinks of O2C_SINKS inside a worker, next to (never in the way of) the agents."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.runners = [SinkRunner(settings, create_sink(name, settings)) for name in settings.sink_names]
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        for runner in self.runners:
            self.add_future(runner.run_forever())


async def run_sink(settings: Settings, sink: Sink) -> None:
    """`o2c sink run --sink NAME`: one sink in the foreground until SIGTERM/SIGINT."""
    task = asyncio.ensure_future(SinkRunner(settings, sink).run_forever())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
