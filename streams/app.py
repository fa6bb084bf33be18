"""The worker: a Faust application (web server, lifecycle, services) around the runtime thread
that consumes, processes and commits (streams/runtime/engine.py), all wired from one Settings."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import faust
from mode import Service

from streams.api.auth import AuthConfigError, auth_middleware
from streams.api.watch import Watchers
from streams.api.web import json_errors, register_views
from streams.contracts.codec import Codec
from streams.contracts.roles import CASE_ACTIONS
from streams.metrics import METRICS
from streams.processors.cases import CaseAgent
from streams.processors.inventory import InventoryAgent
from streams.processors.orders import OrderAgent
from streams.runtime.engine import Runtime
from streams.runtime.routing import Router
from streams.runtime.topics import Publisher, client_config, create_topics
from streams.settings import Settings
from tables.cases import CaseAction

log = logging.getLogger("o2c.app")


def base_app(settings: Settings, **options: Any) -> faust.App:
    """A Faust app configured from Settings, with nothing wired yet (the benchmark's naive
    baseline is built on the same configuration)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        store="rocksdb://",
        datadir=str(settings.data_dir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=settings.canonical_url,
        web_in_thread=False,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",  # every topic and changelog carries bytes we encode ourselves
        value_serializer="raw",
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        # Faust also reads unprefixed variables (WEB_PORT, BROKER_URL...) that would override
        # these settings, and Kubernetes sets WEB_PORT=tcp://... for a Service named "web".
        env_prefix="O2C_FAUST_",
        broker_credentials=broker_credentials(settings),
        **options,
    )


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's (aiokafka's) side of the Kafka security settings; the confluent-kafka clients
    get theirs from `streams.runtime.topics.security_config`."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol.endswith("SSL"):
        import ssl

        cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile is not None else None
        context = ssl.create_default_context(cafile=cafile)
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password is not None else None,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


def member_client_id(settings: Settings) -> str:
    """The consumer's client id carries the worker's URL: the group's description then says
    which worker owns which partition (HTTP routing, streams/runtime/routing.py)."""
    return f"o2c|{settings.canonical_url}"


def transactional_id(settings: Settings) -> str:
    """Stable per worker: a restarted worker fences its previous incarnation and aborts the
    transaction it left open at once, instead of blocking readers until it times out."""
    worker = settings.worker_id or re.sub(r"[^A-Za-z0-9._-]+", "-", settings.canonical_url.split("://")[-1])
    return f"{settings.app_id}-{worker}"


def build_runtime(settings: Settings, processors: list[Any], on_fatal: Any) -> Runtime:
    exactly_once = settings.processing_guarantee == "exactly_once"
    session_ms = int(settings.session_timeout * 1000)
    consumer = client_config(
        settings,
        **{
            "group.id": settings.app_id,
            "client.id": member_client_id(settings),
            "partition.assignment.strategy": "range",  # co-partitioned topics: one task per partition
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": min(int(settings.heartbeat_interval * 1000), session_ms // 3),
            "max.poll.interval.ms": 600_000,  # a restore runs inside the assignment callback
            "queued.max.messages.kbytes": 16_384,
            "fetch.wait.max.ms": 100,
        },
    )
    producer = client_config(
        settings,
        **{
            "enable.idempotence": True,
            "acks": "all",
            # librdkafka sends one request per partition, and a transaction's records are sent
            # in two bursts right before its commit (the sends held during the previous commit,
            # then the changelogs): a 5 ms linger sends each burst as one request per partition
            # while `send_offsets_to_transaction` makes its round trips, instead of all of them
            # at the commit's flush. Commit 25-26 -> 17-18 ms and p50 45-47 -> 35 ms at 1,000
            # events/s live, backlog throughput the same (issue 12, docs/runtime.md). A 2 ms
            # linger when records were sent as they were processed made thousands of requests a
            # second and the broker's CPU the bottleneck.
            "linger.ms": 5,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",  # as every producer of the pipeline (partitioner.py)
            # A transaction begun right after a commit finds the coordinator still writing the
            # previous one's markers (CONCURRENT_TRANSACTIONS) and retries; librdkafka's default
            # first backoff of 100 ms was a tenth of a second on every other commit (p90 of
            # send_offsets_to_transaction 102 ms vs a 3 ms median). Java clients use 20 ms.
            "retry.backoff.ms": 5,
            "retry.backoff.max.ms": 500,
        },
    )
    if exactly_once:
        producer["transactional.id"] = transactional_id(settings)
        producer["transaction.timeout.ms"] = int(settings.transaction_timeout * 1000)
    return Runtime(
        processors,
        consumer_config=consumer,
        producer_config=producer,
        restore_config=client_config(settings),
        exactly_once=exactly_once,
        commit_interval=settings.commit_interval,
        batch_size=settings.batch_size,
        on_fatal=on_fatal,
        standby_partitions=settings.partitions if settings.standby_replicas > 0 else 0,
        max_task_idle=settings.max_task_idle,
        alignment_horizon=settings.alignment_horizon,
        buffered_records=settings.buffered_records_per_partition,
        restore_helpers=settings.restore_helpers,
    )


class RuntimeService(Service):
    """Runs the runtime thread for as long as the worker runs."""

    def __init__(self, app: faust.App, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.runtime = runtime

    async def on_start(self) -> None:
        loop = asyncio.get_running_loop()

        def fatal(exc: BaseException) -> None:
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.app.crash(exc)))

        self.runtime.on_fatal = fatal
        self.runtime.start()

    async def on_stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.runtime.stop)


class Worker:
    """Everything one worker runs, for the web views and tests."""

    def __init__(self, settings: Settings, app: faust.App) -> None:
        self.settings = settings
        self.app = app
        codec = Codec(settings)
        self.codec = codec
        self.orders = OrderAgent(settings, codec, self._notify)
        self.inventory = InventoryAgent(settings, codec)
        self.cases = CaseAgent(settings, codec, self._notify)
        self.runtime = build_runtime(settings, [self.orders, self.inventory, self.cases], on_fatal=lambda exc: None)
        self._publisher: Publisher | None = None
        self.router = Router(settings, self.runtime, client_config(settings))
        self._loop: asyncio.AbstractEventLoop | None = None
        self.watchers = Watchers()

    async def publish_action(self, topic: str, key: str, action: CaseAction) -> None:
        """Produce a person's case action (POST /cases/...) and wait until the broker has it."""
        if self._publisher is None:
            self._publisher = Publisher(self.settings)
        record = {**action.to_dict(), "case_key": key, "occurred_at": action.at}
        del record["at"]
        value = self.codec.encode(CASE_ACTIONS, record)
        await asyncio.get_running_loop().run_in_executor(None, self._publisher.publish, topic, key.encode(), value)

    def _notify(self, order_id: str) -> None:
        """From the runtime thread: wake HTTP long-polls waiting on the order."""
        loop = self._loop
        if loop is not None and self.watchers.waiting(order_id):
            loop.call_soon_threadsafe(self.watchers.notify, order_id)


def middlewares(settings: Settings) -> list:
    """JSON errors outermost, then authentication (docs/security.md): a request without the
    right token reaches no view, whether it came from a client or was routed by another worker.
    With auth on and no token configured every request but the open ones answers 401."""
    if not settings.auth_enabled:
        log.warning(
            "HTTP API authentication is OFF (O2C_AUTH_ENABLED=false): anyone who reaches port %d "
            "reads every order, customer and amount, and acts on cases. Use only on a local machine.",
            settings.web_port,
        )
        return [json_errors]
    tokens = settings.api_token_entries
    log.info("HTTP API authentication on: %d token(s) (%s); /metrics %s", len(tokens),
             ", ".join(f"{t.name}={t.role.label}" for t in tokens) or "none",
             "open" if settings.metrics_public else "needs a token")
    return [json_errors, auth_middleware(tokens, settings.metrics_public)]


def check_auth(settings: Settings) -> None:
    """A worker with auth on and no token would answer 401 to everyone: refuse to start instead."""
    if settings.auth_enabled and not settings.api_token_entries:
        raise AuthConfigError(
            "HTTP API authentication is on (O2C_AUTH_ENABLED) but O2C_API_TOKENS holds no token: "
            "make one with `o2c token new --role viewer --name NAME`, or set O2C_AUTH_ENABLED=false "
            "for a local run (docs/security.md)"
        )


def create_app(settings: Settings) -> faust.App:
    """Build a fully wired app; nothing global, so tests can build several side by side."""
    app = base_app(settings, web_application_options={"middlewares": middlewares(settings)})
    # Faust runs the web server and our services; consumption, processing and commits are the
    # runtime's (docs/runtime.md), so Faust's own Kafka consumer and producer never start.
    app.producer_only = True
    app.boot_strategy = app.BootStrategy(app, enable_kafka=False)
    worker = Worker(settings, app)
    app.o2c = worker  # type: ignore[attr-defined]

    @app.task
    async def remember_loop() -> None:
        worker._loop = asyncio.get_running_loop()

    app.service(RuntimeService(app, worker.runtime))
    register_views(app, settings, worker)
    METRICS.orders_by_status.source = worker.orders.status_counts.totals
    METRICS.sla_at_risk.source = worker.orders.sla.risk_counts
    METRICS.business_kpis.source = lambda: worker.orders.kpis.totals().report(int(time.time() * 1000))
    METRICS.held_in_memory.source = worker.runtime.held_in_memory
    if settings.sink_names:  # downstream of the status topic; see docs/sinks.md
        from streams.downstream.sink_runner import SinkService

        app.service(SinkService(settings))  # type: ignore[arg-type]
    return app


def run_worker(settings: Settings) -> int:
    """Run one worker in the foreground until SIGTERM/SIGINT. The topics are created first:
    the consumer subscribes to topics that exist."""
    check_auth(settings)
    create_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0
