"""The sink runner on the real broker: a sink that cannot take a batch gets it again, a delivery that
outlasts the keepalive threshold loses and repeats nothing, offsets are committed after delivery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
from confluent_kafka import Producer

from sinks.base import DeliveryReport, StatusRecord
from streams.contracts.codec import Codec
from streams.downstream import sink_runner
from streams.downstream.sink_runner import SinkRunner
from streams.metrics import METRICS
from streams.runtime.topics import producer_config
from tests.integration.test_sink_support import status_event

pytestmark = pytest.mark.kafka


class RecordingSink:
    """A sink that keeps what it got; it can refuse its first calls or linger on them."""

    def __init__(self, name: str, refuse: int = 0, linger: float = 0.0) -> None:
        self.name = name
        self.refuse = refuse
        self.linger = linger
        self.calls = 0
        self.got: list[tuple[str, int]] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def deliver(self, batch: Sequence[StatusRecord]) -> DeliveryReport:
        self.calls += 1
        if self.calls <= self.refuse:
            raise ConnectionError("receiver down")
        if self.calls == 1 and self.linger:
            await asyncio.sleep(self.linger)
        self.got += [(r.order_id, r.seq) for r in batch]
        return DeliveryReport()


def produce_statuses(settings, orders: list[str], seqs: range) -> None:
    codec = Codec(settings)
    producer = Producer(producer_config(settings))
    for seq in seqs:
        for order_id in orders:
            value = codec.encode("order-status", status_event(order_id, seq))
            producer.produce(settings.topic("order-status"), key=order_id.encode(), value=value)
    assert producer.flush(10) == 0


def run_until(runner: SinkRunner, sink: RecordingSink, count: int, during=None) -> None:
    """Run until the sink got `count` events (and a second more for repeats); `during` is called
    once while the sink's first delivery is under way."""

    async def go():
        task = asyncio.ensure_future(runner.run())
        deadline = time.monotonic() + 60
        fired = during is None
        while len(sink.got) < count:
            assert time.monotonic() < deadline and not task.done(), f"got {len(sink.got)} of {count}"
            if not fired and sink.calls >= 1:
                fired = True
                during()
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # anything extra (a repeat) would arrive now
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())


def test_a_refused_batch_is_delivered_again_and_committed_after(kafka_env):
    settings = kafka_env.settings.model_copy(update={"sink_retry_max": 0.05})
    orders = ["SO-1", "SO-2", "SO-3"]
    produce_statuses(settings, orders, range(1, 4))
    sink = RecordingSink("refusing", refuse=2)
    retries = METRICS.registry.get_sample_value("o2c_sink_retries_total", {"sink": "refusing"}) or 0.0
    run_until(SinkRunner(settings, sink), sink, 9)
    assert sorted(sink.got) == sorted((o, s) for o in orders for s in range(1, 4))
    assert METRICS.registry.get_sample_value("o2c_sink_retries_total", {"sink": "refusing"}) - retries == 2

    # Same group again: everything was committed, nothing comes back until new events arrive.
    again = RecordingSink("refusing")
    produce_statuses(settings, ["SO-4"], range(1, 2))
    run_until(SinkRunner(settings, again), again, 1)
    assert again.got == [("SO-4", 1)]


def test_a_delivery_past_the_keepalive_threshold_loses_and_repeats_nothing(kafka_env, monkeypatch):
    monkeypatch.setattr(sink_runner, "KEEPALIVE_AFTER", 0.5)
    monkeypatch.setattr(sink_runner, "KEEPALIVE_EVERY", 0.1)
    settings = kafka_env.settings.model_copy(update={"sink_batch_size": 5})
    orders = [f"SO-{n}" for n in range(4)]
    produce_statuses(settings, orders, range(1, 3))
    sink = RecordingSink("lingering", linger=3.0)
    run_until(
        SinkRunner(settings, sink), sink, 16, during=lambda: produce_statuses(settings, orders, range(3, 5))
    )
    assert sorted(sink.got) == sorted((o, s) for o in orders for s in range(1, 5))  # each exactly once
    for order_id in orders:
        assert [s for o, s in sink.got if o == order_id] == [1, 2, 3, 4]
