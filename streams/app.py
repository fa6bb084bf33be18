"""The Faust application: wiring of topics, tables, agents and web views from one Settings."""

from __future__ import annotations

import logging

import faust

from streams import bulk_consumer, eos
from streams.codec import Codec
from streams.inventory import InventoryAgent
from streams.metrics import METRICS
from streams.orders import OrderAgent
from streams.settings import Settings
from streams.topics import client_config, create_topics
from streams.web import register_views

log = logging.getLogger("o2c.app")


def base_app(settings: Settings) -> faust.App:
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
        table_standby_replicas=settings.standby_replicas,
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
    )


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's (aiokafka's) side of the Kafka security settings; the confluent-kafka clients
    get theirs from `streams.topics.security_config`."""
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


def create_app(settings: Settings) -> faust.App:
    """Build a fully wired app; nothing global, so tests can build several side by side."""
    app = base_app(settings)
    if settings.processing_guarantee == "exactly_once":
        eos.install(app, client_config(settings))
    gate = eos.CommitGate(app)
    codec = Codec(settings)
    orders = OrderAgent(app, settings, codec, gate)
    inventory = InventoryAgent(app, settings, codec, gate)
    if settings.bulk_consumer:
        handlers = orders.bulk_handlers() | inventory.bulk_handlers()
        bulk_consumer.install(app, handlers, batch_size=settings.batch_size)

    @app.task
    async def start() -> None:
        """Put the commit gate in place before any event is acknowledged."""
        gate.install()

    register_views(app, settings, orders, inventory)
    METRICS.orders_by_status.source = orders.status_counts.totals
    app.on_rebalance_complete.connect(record_recovery_time)
    if settings.sink_names:  # downstream of the status topic; see docs/sinks.md
        from streams.sink_runner import SinkService

        app.service(SinkService(settings))  # type: ignore[arg-type]
    return app


async def record_recovery_time(sender: faust.App, **kwargs: object) -> None:
    """`o2c_table_recovery_seconds`: Faust recovers all tables' active partitions together."""
    recovery = sender.tables.recovery
    started, ended = recovery._recovery_started_at, recovery._recovery_ended_at
    if started is not None and ended is not None and ended >= started:
        for table in sender.tables.values():
            METRICS.child(METRICS.table_recovery, table.name).set(ended - started)


def run_worker(settings: Settings) -> int:
    """Run one worker in the foreground until SIGTERM/SIGINT. The topics are created first:
    Faust subscribes only to topics that exist when the group forms."""
    create_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0
