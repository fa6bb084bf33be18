"""Output adapters for status events (docs/sinks.md).

The Kafka topics of SPEC §7 are written by the order agent itself, transactionally; the sinks here
are downstream of `o2c.order-status`, each behind the small `Sink` interface of `sinks.base`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streams.settings import SINK_NAMES

if TYPE_CHECKING:
    from sinks.base import Sink
    from streams.settings import Settings

__all__ = ["SINK_NAMES", "create_sink"]


def create_sink(name: str, settings: Settings) -> Sink:
    """The sink called `name`, configured from settings (imports only the driver it needs)."""
    if name == "webhook":
        from sinks.webhook import WebhookSink

        return WebhookSink(settings)
    if name == "postgres":
        from sinks.postgres import PostgresSink

        return PostgresSink(settings)
    raise ValueError(f"unknown sink {name!r}; known: {', '.join(SINK_NAMES)}")
