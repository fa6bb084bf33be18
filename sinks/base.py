"""The one interface every sink implements: deliver a batch of status events, say what failed.

A sink raises from `deliver` when it could take nothing at all (database down): the runner retries
the whole batch later and commits nothing. Records it will never take (a webhook that kept failing
after its last attempt, a row the database rejects) come back in the report and are dead-lettered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """One decoded OrderStatusChanged with the Kafka record it came from (to dead-letter it as is)."""

    event: dict[str, Any]  # the flat form; timestamps are epoch millis
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    topic: str
    partition: int
    offset: int

    @property
    def order_id(self) -> str:
        return self.event["order_id"]

    @property
    def seq(self) -> int:
        return self.event["seq"]

    @property
    def event_id(self) -> str:
        """Stable id of this status event, the same on every redelivery: receivers dedupe by it."""
        return f"{self.order_id}:{self.seq}"


@dataclass(frozen=True, slots=True)
class Failure:
    record: StatusRecord
    error: Exception  # its class and message become the dead letter's error headers


@dataclass(slots=True)
class DeliveryReport:
    """What a batch delivery left undelivered for good; everything else was delivered."""

    failed: list[Failure] = field(default_factory=list)


class Sink(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def deliver(self, batch: Sequence[StatusRecord]) -> DeliveryReport: ...
