"""The Faust application: wiring of topics, tables, agents and web views from one Settings."""

from __future__ import annotations

import logging

import faust

from streams.settings import Settings
from streams.topics import ALL_ROLES

log = logging.getLogger("o2c.app")


def create_app(settings: Settings) -> faust.App:
    """Build a fully wired app; nothing global, so tests can build several side by side."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
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
    )
    app.o2c_settings = settings  # type: ignore[attr-defined]
    topics = {
        role: app.topic(
            settings.topic(role),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            replicas=settings.replication_factor,
        )
        for role in ALL_ROLES
    }
    app.o2c_topics = topics  # type: ignore[attr-defined]

    @app.task
    async def declare_topics() -> None:
        """Create the SPEC §1 topics if missing, so a fresh cluster works out of the box."""
        for topic in topics.values():
            await topic.maybe_declare()

    from streams.web import register_views

    register_views(app, settings)
    return app


def run_worker(settings: Settings) -> int:
    """Run one worker in the foreground until SIGTERM/SIGINT."""
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0
