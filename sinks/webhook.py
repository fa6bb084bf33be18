"""Webhook sink: POSTs every status event as JSON to one URL, retrying with backoff, signed when a
secret is set.

Delivery is at least once: a receiver dedupes by `X-O2C-Event-Id` (`order_id:seq`) or simply keeps
the highest `X-O2C-Seq` per order. Events of one order are sent one after the other, in seq order;
different orders go out concurrently (O2C_WEBHOOK_CONCURRENCY requests in flight).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence

import aiohttp

from sinks.backoff import full_jitter
from sinks.base import DeliveryReport, Failure, StatusRecord
from streams.contracts.flat import render_iso
from streams.metrics import METRICS
from streams.settings import Settings

log = logging.getLogger("o2c.sink.webhook")

# 408 and 429 say "not now"; any other 4xx says the request itself is wrong: retrying cannot help.
RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})
SIGNATURE_HEADER = "X-O2C-Signature"
TIMESTAMP_HEADER = "X-O2C-Timestamp"


class WebhookRejected(Exception):
    """The receiver refused the event for good (a 4xx other than 408/429, a redirect, an event that
    cannot be sent): dead-lettered at once."""


class WebhookGaveUp(Exception):
    """Every attempt failed (5xx, 408, 429, timeout, connection error): dead-lettered; replay these
    with `o2c dlq replay --error-class WebhookGaveUp` once the receiver is back."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` HMAC over `<timestamp>.<body>`: signing the timestamp too lets receivers
    refuse old captured requests, not only forged ones."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookSink:
    name = "webhook"

    def __init__(self, settings: Settings) -> None:
        if not settings.webhook_url:
            raise ValueError("the webhook sink needs O2C_WEBHOOK_URL")
        self.url = settings.webhook_url
        secret = settings.webhook_secret
        self.secret = secret.get_secret_value().encode() if secret is not None else None
        self.timeout = settings.webhook_timeout
        self.max_attempts = settings.webhook_max_attempts
        self.backoff_initial = settings.webhook_backoff_initial
        self.backoff_max = settings.webhook_backoff_max
        self.concurrency = settings.webhook_concurrency
        self.session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            headers={"User-Agent": "o2c-streams-webhook"},
        )
        self._slots = asyncio.Semaphore(self.concurrency)

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def deliver(self, batch: Sequence[StatusRecord]) -> DeliveryReport:
        by_order: dict[str, list[StatusRecord]] = {}
        for record in batch:
            by_order.setdefault(record.order_id, []).append(record)
        failed: list[Failure] = []

        async def send_in_order(records: list[StatusRecord]) -> None:
            for record in records:
                error = await self._send(record)
                if error is not None:
                    failed.append(Failure(record, error))

        await asyncio.gather(*(send_in_order(records) for records in by_order.values()))
        failed.sort(key=lambda f: (f.record.partition, f.record.offset))
        return DeliveryReport(failed)

    async def _send(self, record: StatusRecord) -> Exception | None:
        """Deliver one event; None when the receiver took it, else why it never will."""
        try:
            body = json.dumps(render_iso("order-status", record.event), separators=(",", ":")).encode()
        except (ValueError, OverflowError) as exc:  # e.g. a timestamp beyond year 9999
            return WebhookRejected(f"cannot render the event as JSON: {exc}")
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._post(record, body, attempt)
                return None
            except _Retryable as exc:
                METRICS.sink_failures.labels(self.name).inc()
                if attempt == self.max_attempts:
                    return WebhookGaveUp(f"{exc}; gave up after {attempt} attempts")
                delay = full_jitter(attempt, self.backoff_initial, self.backoff_max)
                if exc.retry_after is not None:
                    delay = min(max(delay, exc.retry_after), self.backoff_max)
                log.info(
                    "webhook attempt %d for order_id=%s seq=%s failed (%s); retrying in %.2f s",
                    attempt, record.order_id, record.seq, exc, delay,
                )
                await asyncio.sleep(delay)
                METRICS.sink_retries.labels(self.name).inc()
            except WebhookRejected as exc:
                METRICS.sink_failures.labels(self.name).inc()
                return exc
        raise AssertionError("unreachable: the last attempt returns")

    async def _post(self, record: StatusRecord, body: bytes, attempt: int) -> None:
        assert self.session is not None and self._slots is not None, "start() the sink first"
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-O2C-Event-Id": record.event_id,
            "X-O2C-Order-Id": record.order_id,
            "X-O2C-Seq": str(record.seq),
            "X-O2C-Attempt": str(attempt),
            TIMESTAMP_HEADER: timestamp,
        }
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.secret, timestamp, body)
        async with self._slots:
            try:
                async with self.session.post(
                    self.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    if 200 <= response.status < 300:
                        return
                    detail = f"HTTP {response.status} {response.reason or ''}".rstrip()
                    text = (await response.text(errors="replace"))[:200].strip()
                    if text:
                        detail = f"{detail}: {text}"
                    if response.status >= 500 or response.status in RETRYABLE_CLIENT_ERRORS:
                        raise _Retryable(detail, _retry_after(response.headers.get("Retry-After")))
                    raise WebhookRejected(detail)
            except TimeoutError:
                raise _Retryable(f"no answer within {self.timeout:g} s") from None
            except aiohttp.ClientError as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from None
            except ValueError as exc:  # e.g. an order id that is not a valid header value
                raise WebhookRejected(f"cannot send the event: {exc}") from None


def _retry_after(value: str | None) -> float | None:
    """Seconds of a numeric Retry-After header (HTTP dates are ignored: backoff applies)."""
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
