"""The inventory agent alone, for `python -m scripts.bench inventory-agent`: the worker of
streams/app.py without the order agent (its allocation results are produced but nobody reads
them), so the measurement is the inventory path's own cost.

Built the way `streams.app.create_app` builds a worker: a Faust app for the lifecycle (and the
web server: `/metrics`), Faust's own Kafka consumer and producer off, and the runtime thread
(`streams.runtime.engine.Runtime`, configured by `streams.app.build_runtime`) driving one
processor, `InventoryAgent`. Same consumer, transactional producer, commits, stores and restore
as `o2c worker`; only the order agent (and the HTTP views that need it) is left out.

    O2C_APP_ID=... O2C_TOPIC_PREFIX=... O2C_DATA_DIR=... python -m scripts.bench_inventory_app
"""

from __future__ import annotations

import sys

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.app import RuntimeService, base_app, build_runtime
from streams.contracts.codec import Codec
from streams.logs import configure_logging
from streams.metrics import METRICS
from streams.processors.inventory import InventoryAgent
from streams.runtime.topics import create_topics
from streams.settings import Settings, load_settings


def create_app(settings: Settings) -> faust.App:
    """A worker running only the inventory agent; nothing global (settings passed in)."""
    app = base_app(settings)
    app.producer_only = True  # as create_app: the runtime consumes, produces and commits
    app.boot_strategy = app.BootStrategy(app, enable_kafka=False)
    agent = InventoryAgent(settings, Codec(settings))
    agent.internal = ()  # no order agent runs here: the pre-produced requests are a finished source
    runtime = build_runtime(settings, [agent], on_fatal=lambda exc: None)  # RuntimeService sets it
    app.service(RuntimeService(app, runtime))

    @app.page("/metrics")  # as streams/api/web.py: the counters, for the benchmark's report
    async def metrics(self, request):  # noqa: ANN001, ANN202 - a Faust view
        return self.bytes(generate_latest(METRICS.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    app.o2c_inventory = agent  # type: ignore[attr-defined]
    app.o2c_runtime = runtime  # type: ignore[attr-defined]
    return app


def main() -> int:
    settings = load_settings()
    configure_logging(settings.log_level)
    create_topics(settings)  # as run_worker: the consumer subscribes to topics that exist
    worker = faust.Worker(create_app(settings), loglevel=settings.log_level.lower(), redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
