"""OpenAPI 3.1 description of the worker's HTTP API, served at `/openapi.json`."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


PATHS: dict[str, Any] = {
    "/health": {"get": {"summary": "Liveness: the process answers.", "responses": {"200": _json("alive")}}},
    "/ready": {
        "get": {
            "summary": "Readiness: partitions assigned and tables recovered.",
            "responses": {"200": _json("ready"), "503": _json("not ready yet")},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics in the text exposition format.",
            "responses": {"200": {"description": "metrics", "content": {"text/plain": {}}}},
        }
    },
    "/openapi.json": {"get": {"summary": "This document.", "responses": {"200": _json("OpenAPI")}}},
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "o2c-streams worker API", "version": "1"},
        "paths": PATHS,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                }
            }
        },
    }
