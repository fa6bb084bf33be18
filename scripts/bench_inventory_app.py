"""The inventory agent alone, for `python -m scripts.bench inventory-agent`: the app of
streams/app.py without the order agent (its allocation results are produced but nobody reads
them), so the measurement is the inventory path's own cost.

    O2C_APP_ID=... O2C_TOPIC_PREFIX=... O2C_DATA_DIR=... python -m scripts.bench_inventory_app
"""

from __future__ import annotations

import sys

import faust

from streams import bulk_consumer, eos
from streams.app import base_app
from streams.codec import Codec
from streams.inventory import InventoryAgent
from streams.logs import configure_logging
from streams.settings import Settings, load_settings
from streams.topics import client_config


def create_app(settings: Settings) -> faust.App:
    app = base_app(settings)
    eos.install(app, client_config(settings))
    gate = eos.CommitGate(app)
    agent = InventoryAgent(app, settings, Codec(settings), gate)
    bulk_consumer.install(app, agent.bulk_handlers(), batch_size=settings.batch_size)

    @app.task
    async def start() -> None:
        gate.install()

    return app


def main() -> int:
    settings = load_settings()
    configure_logging(settings.log_level)
    worker = faust.Worker(create_app(settings), loglevel=settings.log_level.lower(), redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
