"""Baseline of `python -m scripts.bench orders`: the naive Faust loop the order agent is measured
against. One agent over the same three co-partitioned topics (orders, shipments, payments) that
does, per event, one RocksDB table write (`table[key] = value`, so one changelog record per event
too); no decoding, no output.

Configured from the same `O2C_*` environment as `o2c worker` (streams/settings.py), and the Faust
App is built with the settings of streams/app.py that matter here: RocksDB store, partitions,
processing guarantee, commit interval, raw serializers, earliest offset reset. It only differs
by doing nothing but the table write.

`O2C_BENCH_ROLES=orders,shipments,payments,inventory` widens the input to those topics (all keyed
alike and with the same partition count; `scripts.bench inventory`).

`O2C_BENCH_AGENT=noop` makes the agent do nothing at all (it only iterates the stream, so Faust
acks and commits): the reference `scripts.bench orders` prints as the most any Faust agent over
these topics can do on this machine, i.e. Faust's own per-event cost.

    O2C_APP_ID=... O2C_TOPIC_PREFIX=... O2C_DATA_DIR=... O2C_WEB_PORT=... \\
        python -m scripts.bench_baseline_app
"""

from __future__ import annotations

import os
import sys

import faust

from streams.app import base_app
from streams.logs import configure_logging
from streams.settings import Settings, load_settings

ROLES = tuple(os.environ.get("O2C_BENCH_ROLES", "orders,shipments,payments").split(","))


def create_app(settings: Settings) -> faust.App:
    app = base_app(settings)
    table = app.Table("naive", partitions=settings.partitions)
    # As streams/processors/orders.py does: raw bytes in, raw bytes out (Faust defaults tables to JSON).
    table.key_serializer = table.value_serializer = "raw"
    table.changelog_topic = table._new_changelog_topic()
    source = app.topic(
        *(settings.topic(role) if "." not in role and "-allocation-" not in role else role for role in ROLES),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )

    if os.environ.get("O2C_BENCH_AGENT", "table") == "noop":

        @app.agent(source, name="bench.naive")
        async def noop(stream: faust.StreamT) -> None:
            async for _event in stream.events():
                pass

    else:

        @app.agent(source, name="bench.naive")
        async def naive(stream: faust.StreamT) -> None:
            async for event in stream.events():
                table[event.key] = event.value  # one RocksDB write + one changelog record per event

    return app


def main() -> int:
    settings = load_settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
