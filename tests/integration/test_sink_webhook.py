"""The webhook sink against real local HTTP receivers: retries, signatures, dead letters, and a real
worker whose order agent goes on while the webhook keeps failing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import requests
from aiohttp import web

from sinks.base import StatusRecord
from sinks.webhook import WebhookGaveUp, WebhookRejected, WebhookSink
from streams.contracts.codec import Codec
from streams.contracts.flat import render_iso
from streams.metrics import METRICS
from streams.settings import load_settings
from tests.harness import free_port, read_topic
from tests.integration.test_sink_support import (
    ACCEPTED,
    PLACED,
    order_events,
    produce,
    status_event,
    status_record,
    wait_for,
)

SECRET = "s3cret"


@dataclass
class Seen:
    """One request as the receiver got it."""

    event: dict
    headers: dict[str, str]
    signature_ok: bool | None  # None: unsigned
    status: int


@dataclass
class Receiver:
    """A real aiohttp server on a free port, in its own thread; `answer(event, attempt)` picks the
    HTTP status of each request (attempt: the sender's X-O2C-Attempt)."""

    answer: Callable[[dict, int], int]
    secret: str | None = SECRET
    delay: Callable[[dict, int], float] = lambda event, attempt: 0.0
    port: int = field(default_factory=free_port)
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def attempts(self, event_id: str) -> list[Seen]:
        return [s for s in self.seen if s.headers["X-O2C-Event-Id"] == event_id]

    def delivered(self) -> list[Seen]:
        """Requests answered 2xx, in arrival order."""
        return [s for s in self.seen if 200 <= s.status < 300]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        ok = None
        if self.secret is not None:
            expected = hmac.new(
                self.secret.encode(), headers["X-O2C-Timestamp"].encode() + b"." + body, hashlib.sha256
            ).hexdigest()
            ok = hmac.compare_digest(headers.get("X-O2C-Signature", ""), f"sha256={expected}")
        event = json.loads(body)
        attempt = int(headers["X-O2C-Attempt"])
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay(event, attempt))
        finally:
            self.in_flight -= 1
        status = 401 if ok is False else self.answer(event, attempt)
        self.seen.append(Seen(event, headers, ok, status))
        return web.Response(status=status, text="bad signature" if ok is False else "ack")

    def __enter__(self) -> Receiver:
        started = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/hook", self._handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            started.set()

        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(10)
        started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def sink_for(url: str, **overrides) -> WebhookSink:
    values = dict(
        webhook_url=url,
        webhook_secret=SECRET,
        webhook_max_attempts=3,
        webhook_backoff_initial=0.01,
        webhook_backoff_max=0.05,
        webhook_timeout=5.0,
    ) | overrides
    return WebhookSink(load_settings(**values))


def deliver(sink: WebhookSink, records: list[StatusRecord]):
    async def go():
        await sink.start()
        try:
            return await sink.deliver(records)
        finally:
            await sink.stop()

    return asyncio.run(go())


def counter(name: str, **labels: str) -> float:
    return METRICS.registry.get_sample_value(name, labels) or 0.0


def test_retries_503_then_delivers_a_signed_event():
    record = status_record(status_event("SO-1", 4))
    retries_before = counter("o2c_sink_retries_total", sink="webhook")
    with Receiver(lambda event, attempt: 503 if attempt <= 2 else 200) as receiver:
        report = deliver(sink_for(receiver.url), [record])
    assert report.failed == []
    attempts = receiver.attempts("SO-1:4")
    assert [s.headers["X-O2C-Attempt"] for s in attempts] == ["1", "2", "3"]
    assert all(s.signature_ok for s in attempts)
    last = attempts[-1]
    assert last.event == render_iso("order-status", record.event)
    assert last.headers["X-O2C-Order-Id"] == "SO-1" and last.headers["X-O2C-Seq"] == "4"
    assert last.headers["Content-Type"] == "application/json"
    assert counter("o2c_sink_retries_total", sink="webhook") - retries_before == 2


def test_a_wrong_secret_is_refused_and_not_retried():
    with Receiver(lambda event, attempt: 200) as receiver:
        report = deliver(sink_for(receiver.url, webhook_secret="other"), [status_record(status_event("SO-1", 1))])
    [failure] = report.failed
    assert isinstance(failure.error, WebhookRejected) and "HTTP 401" in str(failure.error)
    assert len(receiver.seen) == 1 and receiver.seen[0].signature_ok is False


def test_unsigned_without_a_secret():
    with Receiver(lambda event, attempt: 200, secret=None) as receiver:
        report = deliver(sink_for(receiver.url, webhook_secret=None), [status_record(status_event("SO-1", 1))])
    assert report.failed == []
    assert "X-O2C-Signature" not in receiver.seen[0].headers and "X-O2C-Timestamp" in receiver.seen[0].headers


def test_gives_up_after_the_last_attempt_and_goes_on_with_the_others():
    bad, good = status_record(status_event("SO-BAD", 1), 0), status_record(status_event("SO-OK", 1), 1)
    with Receiver(lambda event, attempt: 500 if event["order_id"] == "SO-BAD" else 200) as receiver:
        report = deliver(sink_for(receiver.url), [bad, good])
    [failure] = report.failed
    assert failure.record is bad
    assert isinstance(failure.error, WebhookGaveUp)
    assert "HTTP 500" in str(failure.error) and "after 3 attempts" in str(failure.error)
    assert len(receiver.attempts("SO-BAD:1")) == 3
    assert [s.headers["X-O2C-Event-Id"] for s in receiver.delivered()] == ["SO-OK:1"]


def test_client_errors_other_than_408_429_are_permanent():
    statuses = {"SO-400": 400, "SO-408": 408, "SO-429": 429}
    records = [status_record(status_event(order_id, 1), i) for i, order_id in enumerate(statuses)]
    with Receiver(lambda event, attempt: statuses[event["order_id"]] if attempt == 1 else 200) as receiver:
        report = deliver(sink_for(receiver.url), records)
    assert [(f.record.order_id, type(f.error)) for f in report.failed] == [("SO-400", WebhookRejected)]
    assert len(receiver.attempts("SO-400:1")) == 1
    assert len(receiver.attempts("SO-408:1")) == 2 and len(receiver.attempts("SO-429:1")) == 2


def test_a_timeout_is_retried():
    with Receiver(lambda event, attempt: 200, delay=lambda event, attempt: 3.0 if attempt == 1 else 0.0) as receiver:
        report = deliver(sink_for(receiver.url, webhook_timeout=0.3), [status_record(status_event("SO-1", 1))])
        time.sleep(3.2)  # let the abandoned first request finish so the receiver records it
    assert report.failed == []
    assert [s.headers["X-O2C-Attempt"] for s in receiver.attempts("SO-1:1")] == ["2", "1"]


def test_connection_refused_is_retried_then_dead_lettered():
    report = deliver(sink_for(f"http://127.0.0.1:{free_port()}/hook"), [status_record(status_event("SO-1", 1))])
    [failure] = report.failed
    assert isinstance(failure.error, WebhookGaveUp) and "ClientConnectorError" in str(failure.error)


def test_events_of_one_order_stay_in_order_while_orders_go_concurrently():
    rng = random.Random(3)
    orders = [f"SO-{n}" for n in range(6)]
    batch = [status_record(status_event(o, seq), i) for i, (seq, o) in enumerate((s, o) for s in range(1, 6) for o in orders)]
    with Receiver(
        lambda event, attempt: 503 if rng.random() < 0.2 and attempt == 1 else 200,
        delay=lambda event, attempt: rng.uniform(0, 0.02),
    ) as receiver:
        report = deliver(sink_for(receiver.url, webhook_concurrency=3), batch)
    assert report.failed == []
    for order_id in orders:
        seqs = [s.event["seq"] for s in receiver.delivered() if s.event["order_id"] == order_id]
        assert seqs == [1, 2, 3, 4, 5]
    assert 1 < receiver.most_in_flight <= 3


# --------------------------------------------------------------------------- with a real worker

@pytest.mark.kafka
def test_dead_webhook_dead_letters_and_leaves_the_order_agent_alone(kafka_env, workers):
    down = {"SO-BAD"}  # orders whose events the receiver refuses (until the replay below)
    answer = lambda event, attempt: 500 if event["order_id"] in down else 200  # noqa: E731
    with Receiver(answer) as receiver:
        worker = workers(
            O2C_SINKS="webhook",
            O2C_WEBHOOK_URL=receiver.url,
            O2C_WEBHOOK_SECRET=SECRET,
            O2C_WEBHOOK_MAX_ATTEMPTS="2",
            O2C_WEBHOOK_BACKOFF_INITIAL="0.01",
            O2C_WEBHOOK_BACKOFF_MAX="0.05",
        ).start().wait_ready()
        # SO-BAD: SUBMITTED, ACCEPTED, then BACKORDERED once the inventory side answers (no stock)
        produce(kafka_env, "orders", order_events("SO-BAD", PLACED, ACCEPTED) + order_events("SO-OK", PLACED))

        dead = read_topic(kafka_env.settings, "dlq", expect=3)
        assert len(dead) == 3
        codec = Codec(kafka_env.settings)
        for letter in dead:
            headers = letter["_headers"]
            assert headers["o2c.sink"] == b"webhook"
            assert headers["o2c.error_class"] == b"WebhookGaveUp"
            assert b"HTTP 500" in headers["o2c.error_message"]
            assert headers["o2c.source_topic"] == kafka_env.settings.topic("order-status").encode()
            assert letter["_key"] == "SO-BAD"
        dead_events = sorted((codec.decode_flat("order-status", d["_value"]) for d in dead), key=lambda e: e["seq"])
        assert [(e["order_id"], e["seq"], e["status"]) for e in dead_events] == [
            ("SO-BAD", 1, "SUBMITTED"), ("SO-BAD", 2, "ACCEPTED"), ("SO-BAD", 3, "BACKORDERED")
        ]
        assert len(receiver.attempts("SO-BAD:1")) == 2

        # The sink goes on after its dead letters, and the order agent never waited for it.
        produce(kafka_env, "orders", order_events("SO-OK", ACCEPTED))
        ok = lambda: [s.event["seq"] for s in receiver.delivered() if s.event["order_id"] == "SO-OK"]  # noqa: E731
        wait_for(lambda: ok() == [1, 2, 3])
        reply = worker.get("/orders/SO-BAD?wait_for=BACKORDERED&timeout=10")
        assert reply.status_code == 200 and reply.json()["seq"] == 3
        statuses = read_topic(kafka_env.settings, "order-status", expect=6)
        assert sorted((s["order_id"], s["seq"]) for s in statuses) == [
            ("SO-BAD", 1), ("SO-BAD", 2), ("SO-BAD", 3), ("SO-OK", 1), ("SO-OK", 2), ("SO-OK", 3)
        ]
        assert all(s.signature_ok for s in receiver.seen)
        metrics = requests.get(f"{worker.url}/metrics", timeout=10).text
        assert 'o2c_sink_deliveries_total{outcome="dead_lettered",sink="webhook"} 3.0' in metrics
        assert 'o2c_sink_deliveries_total{outcome="delivered",sink="webhook"} 3.0' in metrics

        # The receiver is back: replaying the sink's dead letters delivers them to the webhook
        # again, and only there (the status topic keeps one record per (order_id, seq)).
        down.clear()
        done = kafka_env.o2c(
            "dlq", "replay", "--error-class", "WebhookGaveUp",
            env_extra={"O2C_WEBHOOK_URL": receiver.url, "O2C_WEBHOOK_SECRET": SECRET},
        )
        assert done.returncode == 0, done.stderr
        assert "replayed 3 dead letters" in done.stdout
        redelivered = [s.event["seq"] for s in receiver.delivered() if s.event["order_id"] == "SO-BAD"]
        assert redelivered == [1, 2, 3]
        assert len(read_topic(kafka_env.settings, "order-status", idle=1.0)) == 6
        assert worker.errors() == []


def test_sink_run_without_a_url_says_so():
    env = {k: v for k, v in os.environ.items() if not k.startswith("O2C_")}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "sink", "run", "--sink", "webhook"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "o2c: the webhook sink needs O2C_WEBHOOK_URL" in done.stderr
