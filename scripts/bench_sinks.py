"""`python -m scripts.bench sinks`: status events/s through the webhook and postgres sinks, each
run by the real SinkRunner over the same pre-produced status topic, against a same-run baseline:
the runner with a sink that delivers nothing (consume + decode + commit only).

The webhook goes to a local always-200 aiohttp receiver in its own process; PostgreSQL is a
private server from scripts/postgres.sh (or O2C_BENCH_POSTGRES_DSN). Each run reads the topic in a
new consumer group and is timed from its first delivered batch (group join left out) until every
event is delivered.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence

from aiohttp import web
from pydantic import SecretStr

from scripts.bench_harness import REPO, delete_topics_of, free_port, isolated_settings, raw_produce
from sinks.base import DeliveryReport, Sink, StatusRecord
from sinks.postgres import PostgresSink
from sinks.webhook import WebhookSink
from streams.contracts.codec import Codec
from streams.downstream.sink_runner import SinkRunner
from streams.metrics import METRICS
from tests.examples import EXAMPLES


class NullSink:
    """The baseline: takes every batch without doing anything with it."""

    name = "null"

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def deliver(self, batch: Sequence[StatusRecord]) -> DeliveryReport:
        return DeliveryReport()


def produce_status_events(settings, events: int, orders: int) -> None:
    """`events` OrderStatusChanged for `orders` orders (seq 1, 2, ... each), keyed by order_id."""
    codec = Codec(settings)
    topic = settings.topic("order-status")
    template = EXAMPLES["OrderStatusChanged"]
    records = []
    for i in range(events):
        order_id = f"SO-{i % orders:06d}"
        event = {**template, "order_id": order_id, "seq": i // orders + 1}
        records.append((topic, order_id.encode(), codec.encode("order-status", event)))
    raw_produce(settings, records)


def delivered(name: str) -> float:
    return METRICS.registry.get_sample_value("o2c_sink_deliveries_total", {"sink": name, "outcome": "delivered"}) or 0.0


def measure(settings, sink: Sink, events: int) -> tuple[float, float]:
    """(events/s from the first delivered batch to the last event, seconds to the first batch)."""

    async def go() -> tuple[float, float]:
        before = delivered(sink.name)
        runner = SinkRunner(settings, sink, group_id=f"{settings.app_id}-bench-{sink.name}-{uuid.uuid4().hex[:6]}")
        started = time.perf_counter()
        task = asyncio.ensure_future(runner.run())
        first: tuple[float, float] | None = None
        try:
            while (done := delivered(sink.name) - before) < events:
                if task.done():
                    task.result()
                if first is None and done > 0:
                    first = (time.perf_counter(), done)
                await asyncio.sleep(0.005)
            end = time.perf_counter()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert first is not None
        return (events - first[1]) / (end - first[0]), first[0] - started

    return asyncio.run(go())


def serve_receiver(port: int) -> None:
    """A webhook receiver that answers 200 to everything (run as its own process)."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def start_postgres() -> tuple[str, dict[str, str] | None]:
    """(DSN, env to stop it with) of the server the benchmark uses."""
    if os.environ.get("O2C_BENCH_POSTGRES_DSN"):
        return os.environ["O2C_BENCH_POSTGRES_DSN"], None
    env = {**os.environ, "PG_PORT": os.environ.get("O2C_BENCH_POSTGRES_PORT") or str(free_port())}
    up = subprocess.run(["scripts/postgres.sh", "up"], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return up.stdout.strip().splitlines()[-1], env


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def bench_sinks(events: int, orders: int) -> None:
    settings = isolated_settings()
    produce_status_events(settings, events, orders)
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "scripts.bench_sinks", str(port)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    dsn, pg_env = start_postgres()
    try:
        wait_for_port(port)
        webhook_settings = settings.model_copy(update={"webhook_url": f"http://127.0.0.1:{port}/hook"})
        pg_settings = settings.model_copy(update={"postgres_dsn": SecretStr(dsn)})
        results = {
            "baseline": measure(settings, NullSink(), events),
            "webhook": measure(webhook_settings, WebhookSink(webhook_settings), events),
            "postgres": measure(pg_settings, PostgresSink(pg_settings), events),
        }
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(10)
        if pg_env is not None:
            subprocess.run(["scripts/postgres.sh", "down"], cwd=REPO, env=pg_env, capture_output=True)
        delete_topics_of(settings)
    print(f"$ python -m scripts.bench sinks --events {events} --orders {orders}")
    print(
        f"  input: {events:,} OrderStatusChanged for {orders:,} orders on {settings.partitions} partitions; batch"
        f" {settings.sink_batch_size}, webhook concurrency {settings.webhook_concurrency}; events/s from each run's"
        " first delivered batch until every event is delivered"
    )
    names = {
        "baseline": "baseline: runner with a sink that delivers nothing (consume, decode, commit)",
        "webhook": "webhook sink -> local always-200 aiohttp receiver (own process)",
        "postgres": "postgres sink -> local PostgreSQL 127.0.0.1 (upsert + lines, one transaction per batch)",
    }
    for key, (rate, startup) in results.items():
        ratio = "" if key == "baseline" else f"; ratio to baseline {rate / results['baseline'][0]:.2f}"
        print(f"    {names[key]}: {rate:,.0f} events/s (first batch after {startup:.1f} s{ratio})")


if __name__ == "__main__":
    serve_receiver(int(sys.argv[1]))
