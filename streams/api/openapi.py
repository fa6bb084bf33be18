"""OpenAPI 3.1 description of the worker's HTTP API, served at `/openapi.json`."""

from __future__ import annotations

from typing import Any

from tables.sla import CHANNELS, MILESTONES

ERROR = {"$ref": "#/components/schemas/Error"}
STATUSES = (
    "SUBMITTED", "ACCEPTED", "BACKORDERED", "PARTIALLY_ALLOCATED", "ALLOCATED", "PARTIALLY_SHIPPED",
    "SHIPPED", "DELIVERED", "INVOICED", "PARTIALLY_PAID", "CLOSED", "ON_HOLD", "CANCELLED",
)


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


KEY_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:\\-]{0,63}$"}


MOVING = {
    **_json("the key's partition is moving between workers (rebalance, a worker gone, restoring) and "
            "no standby copy here can answer: ask again after Retry-After seconds. Answers read from "
            "a standby copy meanwhile are 200 with the header X-O2C-Stale: standby (committed state, "
            "possibly behind)", ERROR),
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
}


def _key(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": KEY_SCHEMA}


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
    "/": {
        "get": {
            "summary": "The operations console: a page for the browser, on this API (docs/console.md).",
            "responses": {"200": {"description": "the console's page", "content": {"text/html": {}}}},
        }
    },
    "/console/{name}": {
        "get": {
            "summary": "The console's ES modules and stylesheet.",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the file"}, "404": _json("no such console file", ERROR)},
        }
    },
    "/orders/{order_id}": {
        "get": {
            "summary": "Full state of one order (routed to the worker that owns it).",
            "parameters": [
                _key("order_id"),
                {"name": "wait_for", "in": "query", "required": False,
                 "description": "Long-poll until the order reaches this status.",
                 "schema": {"type": "string", "enum": list(STATUSES)}},
                {"name": "timeout", "in": "query", "required": False,
                 "description": "Seconds to wait with wait_for (default 30, at most 60).",
                 "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 60}},
            ],
            "responses": {
                "200": _json("the order: status, lines with quantity buckets, holds, amounts, milestones"),
                "400": _json("malformed order_id, wait_for or timeout", ERROR),
                "404": _json("unknown order", ERROR),
                "408": _json("wait_for status not reached within timeout", ERROR),
                "503": MOVING,
            },
        }
    },
    "/orders/{order_id}/timeline": {
        "get": {
            "summary": "Every published change of one order in order (routed to its owner): seq, "
            "status before/after, cause event type and id, source system, correlation id, business "
            "time (occurred_at), processing time, and what changed (line quantity deltas, holds, "
            "amounts, milestones reached, breaches opened/closed, exceptions raised). The last "
            "O2C_TIMELINE_ENTRIES changes in full, older ones summarised under `earlier`.",
            "parameters": [_key("order_id")],
            "responses": {
                "200": _json("order_id, seq, status, entries[], earlier (null or the summary of older changes)"),
                "400": _json("malformed order_id", ERROR),
                "404": _json("unknown order", ERROR),
                "503": MOVING,
            },
        }
    },
    "/atp/{sku}": {
        "get": {
            "summary": "Available to promise of one SKU at every warehouse and across the network "
            "(routed to the worker that owns the SKU).",
            "parameters": [_key("sku")],
            "responses": {
                "200": _json("sku, network_atp, on_hand, reserved, backordered, unassigned_backorders, "
                             "warehouses[]: the per-warehouse position"),
                "400": _json("malformed sku", ERROR),
                "404": _json("unknown sku", ERROR),
                "503": MOVING,
            },
        }
    },
    "/atp/{sku}/{warehouse_id}": {
        "get": {
            "summary": "Position of one SKU at one warehouse: on_hand, reserved, backordered, "
            "safety_stock, atp, network_atp, expected supply and the FIFO backorder queue.",
            "parameters": [_key("sku"), _key("warehouse_id")],
            "responses": {
                "200": _json("the warehouse position"),
                "400": _json("malformed sku or warehouse_id", ERROR),
                "404": _json("unknown sku, or no position at that warehouse", ERROR),
                "503": MOVING,
            },
        }
    },
    "/stats": {
        "get": {
            "summary": "Orders by status, region and channel across all workers.",
            "responses": {"200": _json(
                "counts: by_status, by_region, by_channel, orders; sla.open_breaches by milestone,"
                " sla.at_risk by milestone and level; cases.by_state_severity, cases.indexing; workers"
            )},
        }
    },
    "/stats/local": {
        "get": {
            "summary": "The same counts for this worker's own partitions (used by /stats).",
            "responses": {"200": _json("counts")},
        }
    },
}


_BREACH_FILTERS = [
    {"name": "milestone", "in": "query", "required": False, "description": "Only this milestone (any case).",
     "schema": {"type": "string", "enum": list(MILESTONES)}},
    {"name": "channel", "in": "query", "required": False, "description": "Only orders of this channel (any case).",
     "schema": {"type": "string", "enum": list(CHANNELS)}},
    {"name": "region", "in": "query", "required": False, "description": "Only orders of this region.",
     "schema": KEY_SCHEMA},
    {"name": "limit", "in": "query", "required": False,
     "description": "Most breaches returned, earliest due first (default 100).",
     "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
]
BREACH = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "milestone": {"type": "string", "enum": list(MILESTONES)},
        "due_at": {"type": "integer", "description": "epoch ms"},
        "detected_at": {"type": "integer", "description": "epoch ms, on the clock of O2C_SLA_CLOCK"},
        "channel": {"type": ["string", "null"]},
        "region": {"type": ["string", "null"]},
    },
}

PATHS["/sla/breaches"] = {
    "get": {
        "summary": "Open SLA breaches across all workers, earliest due first (SPEC §6).",
        "parameters": _BREACH_FILTERS,
        "responses": {
            "200": _json("breaches[], count, truncated (more matched than limit), workers, "
                         "unreachable_workers (if any)",
                         {"type": "object", "properties": {"breaches": {"type": "array", "items": BREACH}}}),
            "400": _json("unknown parameter, or bad milestone, channel, region or limit", ERROR),
        },
    }
}
PATHS["/sla/breaches/local"] = {
    "get": {
        "summary": "The same for this worker's own partitions (used by /sla/breaches).",
        "parameters": _BREACH_FILTERS,
        "responses": {
            "200": _json("breaches[], truncated"),
            "400": _json("unknown parameter, or bad milestone, channel, region or limit", ERROR),
        },
    }
}
_RISK_FILTERS = [
    {"name": "level", "in": "query", "required": False,
     "description": "Milestones at this level or above (any case; default MEDIUM). A milestone is MEDIUM, HIGH, "
     "CRITICAL from O2C_SLA_RISK_THRESHOLDS (default 50, 75, 90 %) of its allowed time, CRITICAL also past "
     "its due time until the breach is detected; breached milestones are listed by /sla/breaches.",
     "schema": {"type": "string", "enum": ["LOW", "MEDIUM", "HIGH", "CRITICAL"]}},
    *_BREACH_FILTERS[:3],
    {"name": "limit", "in": "query", "required": False,
     "description": "Most rows returned, earliest due first (default 100).",
     "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
]
_RISK_ROW = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "milestone": {"type": "string", "enum": list(MILESTONES)},
        "level": {"type": "string", "enum": ["LOW", "MEDIUM", "HIGH", "CRITICAL"]},
        "consumed_pct": {"type": "number", "description": "share of the allowed time consumed at the owner's clock"},
        "started_at": {"type": "integer", "description": "epoch ms the milestone's clock started"},
        "due_at": {"type": "integer", "description": "epoch ms it breaches"},
        "channel": {"type": ["string", "null"]},
        "region": {"type": ["string", "null"]},
    },
}
_CASE_FILTERS = [
    {"name": name, "in": "query", "required": False, "description": doc, "schema": {"type": "string"}}
    for name, doc in (
        ("state", "Comma-separated: OPEN, ACKNOWLEDGED, RESOLVED."),
        ("code", "Comma-separated codes: exception codes, SLA-<MILESTONE>, HOLD-<TYPE>."),
        ("severity", "Comma-separated: CRITICAL, HIGH, MEDIUM, LOW."),
        ("warehouse_id", "Exact."), ("region", "Exact."), ("channel", "Exact."), ("customer_id", "Exact."),
        ("order_id", "Exact."), ("sku", "Exact."),
        ("cursor", "Opaque: the `next_cursor` of the previous page (same filters)."),
    )
] + [{"name": "limit", "in": "query", "required": False, "description": "Cases per page (default 50).",
      "schema": {"type": "integer", "minimum": 1, "maximum": 500}}]
CASE_ID = {"name": "case_id", "in": "path", "required": True, "schema": {"type": "string"},
           "description": "o.<order_id>.<code>... or s.<sku>.<code>... (docs/operations-api.md)"}
PATHS["/cases"] = {
    "get": {
        "summary": "The exception work queue across every worker: business exceptions, SLA breaches and active "
        "holds as cases, oldest first, paged by cursor (docs/operations-api.md).",
        "parameters": _CASE_FILTERS,
        "responses": {
            "200": _json("cases[] (each with age_ms), next_cursor (null on the last page), workers"),
            "400": _json("unknown parameter, bad value or a cursor made for other filters", ERROR),
        },
    }
}
PATHS["/cases/local"] = {
    "get": {
        "summary": "This worker's page of the same query (merged by /cases).",
        "parameters": _CASE_FILTERS,
        "responses": {"200": _json("one worker's page"), "400": _json("bad query", ERROR)},
    }
}
PATHS["/cases/{case_id}"] = {
    "get": {
        "summary": "One case (routed to the worker that owns it).",
        "parameters": [CASE_ID],
        "responses": {"200": _json("the case"), "404": _json("unknown case", ERROR), "503": MOVING},
    }
}
PATHS["/cases/{case_id}/{verb}"] = {
    "post": {
        "summary": "acknowledge, assign or resolve a case. Body {\"who\": ..., \"note\": ...} (assign: also "
        "\"assignee\"); header Idempotency-Key makes a retry apply once. Checked on the owner, then an event "
        "on o2c.case-actions applied exactly once; 200 with the case once applied, 202 if not within 10 s.",
        "parameters": [CASE_ID, {"name": "verb", "in": "path", "required": True,
                                 "schema": {"type": "string", "enum": ["acknowledge", "assign", "resolve"]}}],
        "responses": {
            "200": _json("the case after the action"),
            "202": _json("status accepted, action_id: not applied within 10 s"),
            "400": _json("malformed body, unknown verb", ERROR),
            "404": _json("unknown case", ERROR),
            "409": _json("the case's state does not allow it (e.g. resolving twice); reason says why", ERROR),
            "503": MOVING,
        },
    }
}
PATHS["/kpis"] = {
    "get": {
        "summary": "Business KPIs over every worker's orders (docs/operations-api.md 'Business KPIs'): order cycle "
        "time placed->shipped and placed->closed (histograms), on-time-in-full, line fill rate at first allocation, "
        "backorders (count, quantity, age), invoice readiness, open and overdue receivables, DSO and mean days to "
        "pay per currency, SLA adherence per milestone, sync latency by source system; each with an `all` total "
        "and rows `by` region, channel (and warehouse where it applies).",
        "responses": {
            "200": _json("as_of, cycle_time, otif, fill_rate_first_allocation, backorders, invoice_readiness, "
                         "receivables, sla_adherence, sync_latency, workers, unreachable_workers (if any)"),
            "400": _json("any query parameter (none are taken)", ERROR),
        },
    }
}
PATHS["/kpis/local"] = {
    "get": {
        "summary": "This worker's KPI sums (its active partitions), merged by /kpis.",
        "responses": {"200": _json("sums: [[metric, *dimensions, value], ...]")},
    }
}
PATHS["/sla/at-risk"] = {
    "get": {
        "summary": "Open SLA milestones at a risk level or above across all workers, earliest due first, "
        "served from the SLA index (cost in proportion to the rows, not to open orders).",
        "parameters": _RISK_FILTERS,
        "responses": {
            "200": _json("level, at_risk[], count, truncated, workers, unreachable_workers (if any)",
                         {"type": "object", "properties": {"at_risk": {"type": "array", "items": _RISK_ROW}}}),
            "400": _json("unknown parameter, or bad level, milestone, channel, region or limit", ERROR),
        },
    }
}
PATHS["/sla/at-risk/local"] = {
    "get": {
        "summary": "The same for this worker's own partitions (used by /sla/at-risk).",
        "parameters": _RISK_FILTERS,
        "responses": {
            "200": _json("at_risk[], truncated"),
            "400": _json("unknown parameter, or bad level, milestone, channel, region or limit", ERROR),
        },
    }
}


UNAUTHORIZED = {
    **_json("no token, or not a configured one (docs/security.md)", ERROR),
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer realm=\"o2c\""}},
}
FORBIDDEN = _json("the token's role may not do this: error, role, required_role", ERROR)


def _secured(paths: dict[str, Any]) -> dict[str, Any]:
    """Each operation with who may call it (streams/api/auth.py): open ones say `security: []`,
    the others get their 401 (and 403 when a viewer is not enough) and the role they need."""
    from streams.api.auth import Role, is_open, required_role

    secured: dict[str, Any] = {}
    for path, operations in paths.items():
        secured[path] = {}
        for method, operation in operations.items():
            operation = {**operation, "responses": dict(operation["responses"])}
            if is_open(method.upper(), path, metrics_public=False):
                operation["security"] = []
            else:
                role = required_role(method.upper(), path.replace("{", "").replace("}", ""))
                operation["x-o2c-role"] = role.label
                operation["responses"]["401"] = UNAUTHORIZED
                if path == "/metrics":  # open by default: no token, or a viewer's
                    operation["security"] = [{}, {"bearer": []}]
                    operation["description"] = "Open unless O2C_METRICS_PUBLIC=false; then a viewer token."
                if role > Role.VIEWER:
                    operation["responses"]["403"] = FORBIDDEN
            secured[path][method] = operation
    return secured


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "o2c-streams worker API",
            "version": "1",
            "description": "Timestamps in answers (fields named *_at, since, orphan_since, as_of) are ISO-8601 UTC "
            "strings with milliseconds, e.g. 2026-11-02T09:00:00.000Z; durations are numbers named *_ms or *_days. "
            "The per-worker /local answers that /sla/breaches, /sla/at-risk and /kpis merge keep epoch milliseconds.",
        },
        "paths": _secured(PATHS),
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token (`o2c token new`) whose role allows the operation: viewer reads, "
                    "operator also acts on cases, admin is a superset (docs/security.md). Open without a token: "
                    "/health, /ready, /openapi.json, the console's static files, and /metrics unless "
                    "O2C_METRICS_PUBLIC=false.",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                }
            }
        },
    }
