"""PostgreSQL sink: the latest status of every order, and its lines, in two reporting tables.

Rows move only forward: an upsert lands only when its seq is higher than the row's, so replays,
redeliveries and out-of-order events leave the newest state in place. A batch is one transaction:
its events are reduced to the newest per order, sent as one JSON parameter and unpacked by
`jsonb_to_recordset`, three statements per batch whatever its size.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from sinks.base import DeliveryReport, Failure, StatusRecord
from streams.settings import Settings

log = logging.getLogger("o2c.sink.postgres")

SCHEMA = Path(__file__).with_name("schema.sql")
# Serializes schema creation when several workers start at once (CREATE ... IF NOT EXISTS races).
SCHEMA_LOCK = 0x6F3263  # "o2c"

# Column -> its type in the JSON rows; `timestamptz` columns arrive as epoch millis.
ORDER_COLUMNS = {
    "order_id": "text",
    "seq": "bigint",
    "status": "text",
    "previous_status": "text",
    "customer_id": "text",
    "channel": "text",
    "region": "text",
    "currency": "text",
    "holds": "text[]",
    "invoiced_minor": "bigint",
    "paid_minor": "bigint",
    "refunded_minor": "bigint",
    "open_balance_minor": "bigint",
    **{
        f"{milestone}_at": "timestamptz"
        for milestone in (
            "placed", "accepted", "allocated", "shipped", "delivered", "invoiced", "paid", "closed", "cancelled"
        )
    },
    "open_breaches": "jsonb",
    "exceptions": "jsonb",
    "cause_event_id": "text",
    "cause_event_type": "text",
    "correlation_id": "text",
    "occurred_at": "timestamptz",
    "emitted_at": "timestamptz",
}
LINE_COLUMNS = {
    "order_id": "text",
    "line_id": "text",
    "seq": "bigint",
    "sku": "text",
    "warehouse_id": "text",
    **{q: "bigint" for q in ("ordered", "cancelled", "allocated", "backordered", "shipped", "delivered", "invoiced")},
    "promised_at": "timestamptz",
}


def _from_json(columns: dict[str, str]) -> tuple[str, str]:
    """The SELECT list and the `jsonb_to_recordset` column definitions for `columns`."""
    select = ", ".join(
        f"to_timestamp(r.{c} / 1000.0)" if t == "timestamptz" else f"r.{c}" for c, t in columns.items()
    )
    definition = ", ".join(f"{c} {'bigint' if t == 'timestamptz' else t}" for c, t in columns.items())
    return select, definition


def _upsert_orders_sql() -> str:
    select, definition = _from_json(ORDER_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in ORDER_COLUMNS if c != "order_id")
    return (
        f"INSERT INTO order_status AS s ({', '.join(ORDER_COLUMNS)}) "
        f"SELECT {select} FROM jsonb_to_recordset($1::jsonb) AS r({definition}) "
        f"ON CONFLICT (order_id) DO UPDATE SET {updates}, updated_at = now() "
        "WHERE s.seq < EXCLUDED.seq "
        "RETURNING order_id"
    )


def _insert_lines_sql() -> str:
    select, definition = _from_json(LINE_COLUMNS)
    return (
        f"INSERT INTO order_lines ({', '.join(LINE_COLUMNS)}) "
        f"SELECT {select} FROM jsonb_to_recordset($1::jsonb) AS r({definition}) "
        "WHERE r.order_id = ANY($2::text[])"
    )


UPSERT_ORDERS = _upsert_orders_sql()
DELETE_LINES = "DELETE FROM order_lines WHERE order_id = ANY($1::text[])"
INSERT_LINES = _insert_lines_sql()

# Errors that belong to the rows, not to the server: they come back on every retry.
ROW_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


def order_row(event: dict[str, Any]) -> dict[str, Any]:
    row = {c: event[c] for c in ORDER_COLUMNS if c in event}
    row.update(event["milestones"])
    return row


def line_rows(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**line, "order_id": event["order_id"], "seq": event["seq"]} for line in event["lines"]]


class PostgresSink:
    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        if settings.postgres_dsn is None:
            raise ValueError("the postgres sink needs O2C_POSTGRES_DSN")
        self.dsn = settings.postgres_dsn.get_secret_value()
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        """Connect and create the tables if they are missing."""
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await conn.execute(SCHEMA.read_text())
        except BaseException:
            await pool.close()
            raise
        self.pool = pool

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def deliver(self, batch: Sequence[StatusRecord]) -> DeliveryReport:
        """Upsert the newest event per order in one transaction. If the database refuses a row,
        retry the events one by one so that only the refused ones are reported."""
        newest: dict[str, StatusRecord] = {}
        for record in batch:
            kept = newest.get(record.order_id)
            if kept is None or record.seq > kept.seq:
                newest[record.order_id] = record
        try:
            await self._upsert(list(newest.values()))
            return DeliveryReport()
        except ROW_ERRORS as exc:
            log.warning("batch of %d refused (%s: %s); upserting one by one", len(newest), type(exc).__name__, exc)
        failed = []
        for record in newest.values():
            try:
                await self._upsert([record])
            except ROW_ERRORS as exc:
                failed.append(Failure(record, exc))
        return DeliveryReport(failed)

    async def _upsert(self, records: list[StatusRecord]) -> None:
        assert self.pool is not None, "start() the sink first"
        orders = json.dumps([order_row(r.event) for r in records])
        lines = json.dumps([row for r in records for row in line_rows(r.event)])
        async with self.pool.acquire() as conn, conn.transaction():
            moved = [row["order_id"] for row in await conn.fetch(UPSERT_ORDERS, orders)]
            if moved:
                await conn.execute(DELETE_LINES, moved)
                await conn.execute(INSERT_LINES, lines, moved)
