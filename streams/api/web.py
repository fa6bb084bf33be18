"""HTTP API of every worker (SPEC §8). Requests for keys another worker owns are routed to it;
errors are JSON `{"error": ...}` with a 4xx status for bad requests, never a 500. A key whose
partition is moving between workers (a rebalance, a worker gone) answers 503 with Retry-After
until its new owner has restored it: never a 500, never a hang."""

from __future__ import annotations

import asyncio
import heapq
import logging
import re
import time
import uuid
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, Any

import aiohttp
import faust
from aiohttp import web as aioweb
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.api.console import register_console
from streams.api.openapi import STATUSES as STATUS_LIST
from streams.contracts.flat import iso_from_millis
from streams.contracts.roles import CASE_ACTIONS
from streams.processors.cases import CaseIndexFilling
from streams.runtime.partitioner import partition_of
from streams.settings import Settings
from tables.cases import (
    Case,
    CasePage,
    CaseQueryError,
    CaseTransitionError,
    action_from_request,
    apply_action,
    merge_pages,
    parse_case_id,
    parse_query,
)
from tables.inventory import atp_view, warehouse_view
from tables.kpis import KpiTotals
from tables.order import derive_status, to_view
from tables.order_state import OrderState
from tables.risk import LEVELS, RiskLevel, risk_order
from tables.sla import CHANNELS, MILESTONES, breach_order
from tables.timeline import from_stored

if TYPE_CHECKING:
    from streams.app import Worker

log = logging.getLogger("o2c.web")

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
KEY_RULE = "1-64 characters of letters, digits and . _ : -"  # order ids, SKUs, warehouse ids
STATUSES = frozenset(STATUS_LIST)
MAX_WAIT_SECONDS = 60.0
MAX_BREACHES = 10_000
DEFAULT_BREACHES = 100
ROUTED_HEADER = "X-O2C-Routed"  # set on requests one worker forwards to another: never forwarded again
RETRY_AFTER = 1  # seconds a client waits before asking again for a key whose partition moves
ROUTE_TIMEOUT = 10.0
IDEMPOTENCY_HEADER = "Idempotency-Key"  # a case action sent again under the same key is applied once
CASE_ACTION_WAIT = 10.0  # seconds a POST on a case waits for its action to be applied
STALE_HEADER = {"X-O2C-Stale": "standby"}  # on answers read from a standby copy (committed state,
# possibly behind the owner's) while the key's partition moves


class Local(str):
    """Where `route` says a key is answered from, when not from another worker."""


LOCAL, STANDBY = Local("local"), Local("standby")


def readiness(app: faust.App, worker: Worker) -> dict[str, Any]:
    """Ready = started, partitions assigned (possibly none, with more workers than partitions),
    not rebalancing, every assigned partition's stores restored."""
    runtime = worker.runtime
    ready = bool(app.started and runtime.ready)
    return {
        "ready": ready,
        "assigned_partitions": len(runtime.assignment),
        "rebalancing": bool(runtime.rebalancing),
        "tables_recovered": ready,
    }


def error(view: View, code: int, message: str, **extra: Any) -> Response:
    return view.json({"error": message, **extra}, status=code)


def unavailable(view: View, message: str) -> Response:
    return view.json(
        {"error": message, "retry_after": RETRY_AFTER}, status=503, headers={"Retry-After": str(RETRY_AFTER)}
    )


@aioweb.middleware
async def json_errors(request: aioweb.Request, handler: Any) -> aioweb.StreamResponse:
    """Errors raised by the web server itself (unknown path, wrong method) as JSON too."""
    try:
        return await handler(request)
    except aioweb.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if exc.status == 404:
            message = f"no such path {request.path!r}; see /openapi.json"
        elif exc.status == 405:
            message = f"method {request.method} not allowed on {request.path!r}"
        else:
            message = exc.reason
        return aioweb.json_response({"error": message}, status=exc.status, headers=headers)


def parse_wait(request: Request) -> tuple[str | None, float]:
    """`?wait_for=STATUS&timeout=S`; raises ValueError with a user-facing message."""
    wait_for = request.query.get("wait_for")
    raw_timeout = request.query.get("timeout")
    if wait_for is None:
        if raw_timeout is not None:
            raise ValueError("timeout is only meaningful with wait_for")
        return None, 0.0
    if wait_for not in STATUSES:
        raise ValueError(f"wait_for must be one of {', '.join(sorted(STATUSES))}")
    try:
        timeout = float(raw_timeout) if raw_timeout is not None else 30.0
    except ValueError:
        raise ValueError(f"timeout must be a number of seconds, got {raw_timeout!r}") from None
    if not 0 < timeout <= MAX_WAIT_SECONDS:
        raise ValueError(f"timeout must be > 0 and <= {MAX_WAIT_SECONDS:g} seconds")
    return wait_for, timeout


def parse_breach_filters(request: Request, query: Any = None) -> dict[str, Any]:
    """`?milestone=&channel=&region=&limit=` of `/sla/breaches`; raises ValueError with a
    user-facing message. Milestone and channel are case-insensitive."""
    query = request.query if query is None else query
    unknown = set(query) - {"milestone", "channel", "region", "limit"}
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(sorted(unknown))}; expected milestone, channel, "
                         "region, limit")
    filters: dict[str, Any] = {}
    milestone = query.get("milestone")
    if milestone is not None:
        if milestone.upper() not in MILESTONES:
            raise ValueError(f"milestone must be one of {', '.join(MILESTONES)}")
        filters["milestone"] = milestone.upper()
    channel = query.get("channel")
    if channel is not None:
        if channel.upper() not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
        filters["channel"] = channel.upper()
    region = query.get("region")
    if region is not None:
        if not KEY_PATTERN.match(region):
            raise ValueError(f"region must be {KEY_RULE}")
        filters["region"] = region
    raw_limit = query.get("limit", str(DEFAULT_BREACHES))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise ValueError(f"limit must be an integer, got {raw_limit!r}") from None
    if not 1 <= limit <= MAX_BREACHES:
        raise ValueError(f"limit must be between 1 and {MAX_BREACHES}")
    filters["limit"] = limit
    return filters


def register_views(app: faust.App, settings: Settings, worker: Worker) -> None:
    register_console(app)  # the operations console at / (docs/console.md)
    orders, inventory, cases = worker.orders, worker.inventory, worker.cases
    order_topic, sku_topic = settings.topic("orders"), settings.topic("inventory")

    async def route(view: View, request: Request, topic: str, store: Any, key: str,
                    timeout: float = ROUTE_TIMEOUT) -> Response | Local:
        """LOCAL when this worker answers for `key` as owner of its partition; STANDBY when it
        keeps a standby copy of the partition and nobody can answer better; otherwise the
        owner's answer, or 503 while the key's partition has no ready owner (rebalancing, owner
        gone, restoring) and no standby copy here."""
        raw = key.encode()
        if store.owns(raw):
            return LOCAL
        if not request.headers.get(ROUTED_HEADER):
            partition = partition_of(raw, settings.partitions)
            for _attempt in range(2):
                url = await worker.router.owner(topic, partition)
                if url is None or url == settings.canonical_url:
                    break
                try:
                    reply = await forward(view, request, url, timeout)
                except Exception as exc:  # noqa: BLE001 - unreachable, closed, timed out: ask again
                    # the exception's name and text only: its repr may carry the request's headers
                    log.info("routing %s to %s failed (%s: %s): asking the group again", request.path, url,
                             type(exc).__name__, exc)
                    worker.router.invalidate()
                    continue
                if reply.status != 503 or not store.has_standby(raw):
                    return reply
                break
        if store.has_standby(raw) and "wait_for" not in request.query:
            return STANDBY
        return unavailable(view, f"partition of {key!r} is moving to another worker")

    async def forward(view: View, request: Request, url: str, timeout: float) -> Response:
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        headers = {ROUTED_HEADER: "1", **passed_credentials(request)}
        body = None
        if request.method == "POST":
            body = await request.read()
            headers["Content-Type"] = "application/json"
            if IDEMPOTENCY_HEADER in request.headers:
                headers[IDEMPOTENCY_HEADER] = request.headers[IDEMPOTENCY_HEADER]
        async with app.http_client.request(
            request.method, f"{url}{request.path_qs}", headers=headers, data=body, timeout=client_timeout
        ) as response:
            body = await response.read()
            headers = {"Retry-After": response.headers["Retry-After"]} if "Retry-After" in response.headers else None
            return view.bytes(
                body, content_type=response.content_type or "application/json", status=response.status,
                headers=headers,
            )

    @app.page("/health")
    async def health(self: View, request: Request) -> Response:
        return self.json({"status": "ok", "worker": settings.canonical_url})

    @app.page("/ready")
    async def ready(self: View, request: Request) -> Response:
        body = readiness(app, worker)
        return self.json(body, status=200 if body["ready"] else 503)

    @app.page("/metrics")
    async def metrics(self: View, request: Request) -> Response:
        return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/openapi.json")
    async def openapi(self: View, request: Request) -> Response:
        from streams.api.openapi import openapi_document

        return self.json(openapi_document())

    @app.page("/orders/{order_id}")
    async def order(self: View, request: Request, order_id: str) -> Response:
        if not KEY_PATTERN.match(order_id):
            return error(self, 400, f"order_id must be {KEY_RULE}")
        try:
            wait_for, timeout = parse_wait(request)
        except ValueError as exc:
            return error(self, 400, str(exc))
        routed = await route(self, request, order_topic, orders.store, order_id, timeout + ROUTE_TIMEOUT)
        if routed is STANDBY:
            state = orders.store.lookup_standby(order_id.encode())
            if state is None:  # a standby copy may be behind: it cannot tell the order does not exist
                return unavailable(self, f"partition of {order_id!r} is moving to another worker")
            return self.json(iso_times(to_view(state)), headers=dict(STALE_HEADER))
        if routed is not LOCAL:
            return routed
        deadline = time.monotonic() + timeout
        while True:
            with worker.watchers.watch(order_id) as changed:
                with orders.store.mutex:
                    owned, state = orders.store.lookup_owned(order_id.encode())
                    status = derive_status(state) if state is not None else None
                    view = to_view(state) if state is not None and (wait_for is None or status == wait_for) else None
                if not owned:
                    return unavailable(self, f"partition of {order_id!r} is moving to another worker")
                if wait_for is None or status == wait_for:
                    break
                if not orders.store.owns(order_id.encode()):
                    return unavailable(self, f"partition of {order_id!r} is moving to another worker")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    body = {"order_id": order_id, "status": status, "wait_for": wait_for}
                    return error(self, 408, f"order did not reach {wait_for} within {timeout:g} s", **body)
                try:  # woken by a change, or every second to notice a partition moving away
                    await asyncio.wait_for(changed.wait(), min(remaining, 1.0))
                except TimeoutError:
                    pass
        if state is None:  # an order with only early (buffered) events still answers, unplaced
            return error(self, 404, f"unknown order {order_id!r}")
        return self.json(iso_times(view))

    @app.page("/orders/{order_id}/timeline")
    async def timeline(self: View, request: Request, order_id: str) -> Response:
        """The order's changes in order (tables/timeline.py; docs/operations-api.md)."""
        if not KEY_PATTERN.match(order_id):
            return error(self, 400, f"order_id must be {KEY_RULE}")
        routed = await route(self, request, order_topic, orders.store, order_id)
        if routed is STANDBY:
            state = orders.store.lookup_standby(order_id.encode())
            if state is None:
                return unavailable(self, f"partition of {order_id!r} is moving to another worker")
            return self.json(iso_times(timeline_view(state)), headers=dict(STALE_HEADER))
        if routed is not LOCAL:
            return routed
        with orders.store.mutex:
            owned, state = orders.store.lookup_owned(order_id.encode())
            body = timeline_view(state) if state is not None else None
        if not owned:
            return unavailable(self, f"partition of {order_id!r} is moving to another worker")
        if body is None:
            return error(self, 404, f"unknown order {order_id!r}")
        return self.json(iso_times(body))

    @app.page("/atp/{sku}")
    async def atp(self: View, request: Request, sku: str) -> Response:
        return await sku_position(self, request, sku, None)

    @app.page("/atp/{sku}/{warehouse_id}")
    async def atp_at(self: View, request: Request, sku: str, warehouse_id: str) -> Response:
        return await sku_position(self, request, sku, warehouse_id)

    async def sku_position(self: View, request: Request, sku: str, warehouse_id: str | None) -> Response:
        """The SKU's ledger at every warehouse (or one), from the worker that owns the SKU."""
        if not KEY_PATTERN.match(sku):
            return error(self, 400, f"sku must be {KEY_RULE}")
        if warehouse_id is not None and not KEY_PATTERN.match(warehouse_id):
            return error(self, 400, f"warehouse_id must be {KEY_RULE}")
        routed = await route(self, request, sku_topic, inventory.store, sku)
        if routed is not LOCAL and routed is not STANDBY:
            return routed
        headers = dict(STALE_HEADER) if routed is STANDBY else None
        with inventory.store.mutex:
            if headers:
                owned, state = True, inventory.store.lookup_standby(sku.encode())
            else:
                owned, state = inventory.store.lookup_owned(sku.encode())
            if state is None and (headers or not owned):  # a standby copy may be behind, a
                # partition given up meanwhile says nothing: neither proves the SKU absent
                return unavailable(self, f"partition of {sku!r} is moving to another worker")
            if state is None:
                return error(self, 404, f"unknown sku {sku!r}")
            body = atp_view(state) if warehouse_id is None else warehouse_view(state, warehouse_id)
        if body is None and headers:
            return unavailable(self, f"partition of {sku!r} is moving to another worker")
        if body is None:
            return error(self, 404, f"sku {sku!r} has no position at warehouse {warehouse_id!r}")
        return self.json(iso_times(body), headers=headers)

    async def from_other_workers(request: Request, path: str) -> tuple[list[Any], list[str]]:
        """`path` asked of every other worker of the group, with the caller's credentials: the
        answers, and the workers that did not answer (reported, not fatal: the rest of the
        cluster still answers)."""
        hosts = sorted(set(await worker.router.members()) - {settings.canonical_url})
        headers = passed_credentials(request)
        replies = await asyncio.gather(*(fetch_json(app, f"{h}{path}", headers) for h in hosts),
                                       return_exceptions=True)
        failed = [h for h, r in zip(hosts, replies) if isinstance(r, BaseException)]
        return [r for r in replies if not isinstance(r, BaseException)], failed

    def local_stats() -> dict[str, Any]:
        return {**orders.status_counts.summary(), "sla": orders.sla.counts(), "cases": cases.counts()}

    @app.page("/stats/local")
    async def stats_local(self: View, request: Request) -> Response:
        return self.json(local_stats())

    @app.page("/stats")
    async def stats(self: View, request: Request) -> Response:
        """Sum of every worker's `/stats/local` (each counts its own active partitions): orders
        by status, region and channel; open SLA breaches and milestones at risk; cases by state
        and severity (`cases.indexing`: partitions whose cases are still being counted)."""
        replies, failed = await from_other_workers(request, "/stats/local")
        body: dict[str, Any] = {}
        for part in [local_stats(), *replies]:
            add_counts(body, part)
        body["orders"] = sum(body.get("by_status", {}).values())
        body["workers"] = 1 + len(replies)
        if failed:
            body["unreachable_workers"] = failed
        return self.json(body)

    async def sla_listing(view: View, request: Request, what: str, local: bool) -> Response:
        """`/sla/breaches` and `/sla/at-risk`: the SLA index's entries of every worker (each
        lists its active partitions in the listing's order), merged here and cut at `limit`."""
        parse, listing, order = SLA_LISTINGS[what]
        try:
            filters = parse(request)
        except ValueError as exc:
            return error(view, 400, str(exc))
        found, more = getattr(orders.sla, listing)(**filters)
        if local:
            return view.json({what: found, "truncated": more})
        parts = [found]
        replies, failed = await from_other_workers(request, f"{request.path}/local?{_listing(filters)}")
        for reply in replies:
            parts.append(reply[what])
            more = more or reply["truncated"]
        merged = list(islice(heapq.merge(*parts, key=order), filters["limit"] + 1))
        body: dict[str, Any] = {
            **({"level": filters["level"]} if "level" in filters else {}),
            what: merged[: filters["limit"]],
            "count": min(len(merged), filters["limit"]),
            "truncated": more or len(merged) > filters["limit"],
            "workers": len(parts),
        }
        if failed:
            body["unreachable_workers"] = failed
        return view.json(iso_times(body))

    @app.page("/sla/breaches/local")
    async def breaches_local(self: View, request: Request) -> Response:
        return await sla_listing(self, request, "breaches", local=True)

    @app.page("/sla/breaches")
    async def breaches(self: View, request: Request) -> Response:
        """Open breaches of every worker, by due time."""
        return await sla_listing(self, request, "breaches", local=False)

    actions_topic = settings.topic(CASE_ACTIONS)

    @app.page("/cases/local")
    async def cases_local(self: View, request: Request) -> Response:
        try:
            query = parse_query(dict(request.query))
        except CaseQueryError as exc:
            return error(self, exc.http_status, str(exc), reason=exc.code)
        if worker.runtime.rebalancing:
            return unavailable(self, "partitions are moving between workers")
        try:
            return self.json(cases.local_page(query).to_json())
        except CaseIndexFilling as exc:
            return unavailable(self, str(exc))

    @app.page("/cases")
    async def case_list(self: View, request: Request) -> Response:
        """The exception work queue across every worker, oldest first, paged by cursor."""
        try:
            query = parse_query(dict(request.query))
        except CaseQueryError as exc:
            return error(self, exc.http_status, str(exc), reason=exc.code)
        if worker.runtime.rebalancing:  # partitions moving: a page could miss their cases
            return unavailable(self, "partitions are moving between workers")
        try:
            mine = cases.local_page(query)
        except CaseIndexFilling as exc:
            return unavailable(self, str(exc))
        replies, failed = await from_other_workers(request, f"/cases/local?{request.query_string}")
        pages = [mine, *(CasePage.from_json(r) for r in replies)]
        body = merge_pages(pages, query).view(int(time.time() * 1000))
        body["workers"] = len(pages)
        if failed:
            body["unreachable_workers"] = failed
        return self.json(iso_times(body))

    async def case_of(view: View, request: Request, case_id: str) -> Response | tuple[str, Case]:
        """The case answered here (routed to its owner otherwise), or the error answer."""
        try:
            key = parse_case_id(case_id).key
        except CaseQueryError as exc:
            return error(view, 404, str(exc))
        routed = await route(view, request, actions_topic, cases.store, key)
        if routed is STANDBY:  # cases are not served from standby copies
            return unavailable(view, f"the owner of case {case_id!r} is moving to another worker")
        if routed is not LOCAL:
            return routed
        with cases.store.mutex:
            owned, found = cases.lookup(key, case_id)
        if not owned:
            return unavailable(view, f"the owner of case {case_id!r} is moving to another worker")
        if found is None:
            return error(view, 404, f"unknown case {case_id!r}")
        return key, found

    @app.page("/cases/{case_id}")
    async def case_get(self: View, request: Request, case_id: str) -> Response:
        answer = await case_of(self, request, case_id)
        if not isinstance(answer, tuple):
            return answer
        return self.json(iso_times(answer[1].view(int(time.time() * 1000))))

    @app.page("/cases/{case_id}/{verb}")
    class CaseActionView(View):
        """POST acknowledge | assign | resolve with {"who", "note"?, "assignee"?}: checked on the
        case's owner (400/404/409 at once), then an event on o2c.case-actions applied exactly
        once; answers with the case once the action is applied (200), or 202 after 10 s."""

        async def post(self, request: Request, case_id: str, verb: str) -> Response:
            try:
                body = await request.json()
            except ValueError:
                return error(self, 400, "the body must be JSON: {\"who\": ..., \"note\": ...}")
            action_id = request.headers.get(IDEMPOTENCY_HEADER) or uuid.uuid4().hex
            if not 1 <= len(action_id) <= 128:
                return error(self, 400, f"{IDEMPOTENCY_HEADER} must be 1-128 characters")
            now = int(time.time() * 1000)
            try:
                action = action_from_request(case_id, verb, body, action_id, now)
            except CaseQueryError as exc:
                return error(self, 404, str(exc))
            except CaseTransitionError as exc:
                return error(self, exc.http_status, str(exc), reason=exc.code)
            answer = await case_of(self, request, case_id)
            if not isinstance(answer, tuple):
                return answer
            key, current = answer
            try:
                predicted = apply_action(current, action)
            except CaseTransitionError as exc:
                return error(self, exc.http_status, str(exc), reason=exc.code, case=iso_times(current.view(now)))
            if predicted is current:  # this action id was applied before
                return self.json(iso_times(current.view(now)))
            with worker.watchers.watch(case_id) as changed:
                await worker.publish_action(actions_topic, key, action)
                deadline = time.monotonic() + CASE_ACTION_WAIT
                while True:
                    with cases.store.mutex:
                        _, found = cases.lookup(key, case_id)
                    if found is not None and action_id in found.action_ids:
                        return self.json(iso_times(found.view(int(time.time() * 1000))))
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    changed.clear()
                    try:
                        await asyncio.wait_for(changed.wait(), min(remaining, 0.5))
                    except TimeoutError:
                        pass
            return self.json({"status": "accepted", "action_id": action_id, "case_id": case_id}, status=202)

    @app.page("/kpis/local")
    async def kpis_local(self: View, request: Request) -> Response:
        return self.json({"sums": orders.kpis.totals().to_json()})

    @app.page("/kpis")
    async def kpis(self: View, request: Request) -> Response:
        """Business KPIs over every worker's orders (tables/kpis.py; docs/operations-api.md)."""
        if request.query:
            return error(self, 400, f"unknown parameter(s) {', '.join(sorted(request.query))}; /kpis takes none")
        replies, failed = await from_other_workers(request, "/kpis/local")
        totals = KpiTotals.merged([orders.kpis.totals(), *(KpiTotals.from_json(r["sums"]) for r in replies)])
        body = totals.report(int(time.time() * 1000))
        body["workers"] = 1 + len(replies)
        if failed:
            body["unreachable_workers"] = failed
        return self.json(iso_times(body))

    @app.page("/sla/at-risk/local")
    async def at_risk_local(self: View, request: Request) -> Response:
        return await sla_listing(self, request, "at_risk", local=True)

    @app.page("/sla/at-risk")
    async def at_risk(self: View, request: Request) -> Response:
        """Open milestones at a risk level or above, of every worker, most urgent first."""
        return await sla_listing(self, request, "at_risk", local=False)


def parse_risk_filters(request: Request) -> dict[str, Any]:
    """`?level=&milestone=&channel=&region=&limit=` of `/sla/at-risk` (level: at or above,
    default MEDIUM); raises ValueError with a user-facing message."""
    query = request.query
    unknown = set(query) - {"level", "milestone", "channel", "region", "limit"}
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(sorted(unknown))}; expected level, milestone, "
                         "channel, region, limit")
    level = query.get("level", RiskLevel.MEDIUM).upper()
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}")
    rest = {k: v for k, v in query.items() if k != "level"}
    return {"level": level, **parse_breach_filters(request, rest)}


SLA_LISTINGS: dict[str, tuple[Callable[[Request], dict[str, Any]], str, Callable[[Any], Any]]] = {
    "breaches": (parse_breach_filters, "open_breaches", breach_order),
    "at_risk": (parse_risk_filters, "at_risk", risk_order),
}
"""The SLA listings: their filters, the SLA index's method, and their order across workers."""


def add_counts(total: dict[str, Any], part: dict[str, Any]) -> None:
    """Add nested {name: count} maps (workers' `/stats/local` answers) into `total`."""
    for name, value in part.items():
        if isinstance(value, dict):
            add_counts(total.setdefault(name, {}), value)
        else:
            total[name] = total.get(name, 0) + value


def _listing(filters: dict[str, Any]) -> str:
    return "&".join(f"{k}={v}" for k, v in filters.items())


TIMESTAMP_KEYS = frozenset({"since", "orphan_since", "as_of"})
"""Timestamp fields not named `*_at`; durations are named `*_ms` or `*_days` and stay numbers."""


def iso_times(body: Any) -> Any:
    """`body` with every timestamp (epoch ms in a field named `*_at`, or one of TIMESTAMP_KEYS)
    rendered as ISO-8601 UTC with milliseconds, as the CLI prints them (issue 16). Applied to
    public answers only: the per-worker `/local` answers keep epoch ms for merging."""
    if isinstance(body, dict):
        return {
            k: iso_from_millis(v) if type(v) is int and (k.endswith("_at") or k in TIMESTAMP_KEYS) else iso_times(v)
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [iso_times(v) for v in body]
    return body


def timeline_view(state: OrderState) -> dict[str, Any]:
    return {
        "order_id": state.order_id,
        "seq": state.seq,
        "status": state.last_status,
        **from_stored(state.timeline).view(),
    }


def passed_credentials(request: Request) -> dict[str, str]:
    """The caller's Authorization header, for a request this worker makes on the caller's behalf
    (routed to a key's owner, or fanned out to `/local`): the other worker checks the same token
    and role, so routing never widens what a caller may do (streams/api/auth.py)."""
    authorization = request.headers.get("Authorization")
    return {"Authorization": authorization} if authorization else {}


async def fetch_json(app: faust.App, url: str, headers: dict[str, str] | None = None) -> Any:
    async with app.http_client.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=ROUTE_TIMEOUT)) as response:
        response.raise_for_status()
        return await response.json()
