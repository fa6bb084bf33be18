"""HTTP API of every worker (SPEC §8): health, readiness, metrics and the OpenAPI description."""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.settings import Settings


def readiness(app: faust.App) -> dict[str, Any]:
    """Ready = started, partitions assigned, not rebalancing, table recovery completed."""
    consumer = app.consumer if app.producer is not None else None
    assigned = sorted(str(tp) for tp in consumer.assignment()) if consumer is not None else []
    recovered = app.tables.recovery.completed.is_set()
    ready = bool(app.started and assigned and recovered and not app.rebalancing)
    return {
        "ready": ready,
        "assigned_partitions": len(assigned),
        "rebalancing": bool(app.rebalancing),
        "tables_recovered": recovered,
    }


def register_views(app: faust.App, settings: Settings) -> None:
    @app.page("/health")
    async def health(self: View, request: Request) -> Response:
        return self.json({"status": "ok", "worker": settings.canonical_url})

    @app.page("/ready")
    async def ready(self: View, request: Request) -> Response:
        body = readiness(app)
        return self.json(body, status=200 if body["ready"] else 503)

    @app.page("/metrics")
    async def metrics(self: View, request: Request) -> Response:
        return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/openapi.json")
    async def openapi(self: View, request: Request) -> Response:
        from streams.openapi import openapi_document

        return self.json(openapi_document())
