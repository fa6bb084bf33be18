"""Which worker owns a partition, for routing HTTP queries: the broker's description of the
consumer group, where every member's client id carries its URL (streams/app.py).

The group coordinator is the one authority on assignments, so nothing has to be gossiped
between workers. Answers are cached for a second, and dropped when this worker's own assignment
changes or a routed request fails; while the group rebalances there is no owner (the caller
answers 503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from streams.settings import Settings

log = logging.getLogger("o2c.routing")

_TTL = 1.0


class Router:
    def __init__(self, settings: Settings, runtime: Any, client_config: Mapping[str, Any]) -> None:
        self.settings = settings
        self.runtime = runtime
        self._config = dict(client_config)
        self._admin: AdminClient | None = None
        self._owners: dict[tuple[str, int], str] = {}
        self._members: list[str] = []
        self._fetched_at = 0.0
        self._generation = -1
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._fetched_at = 0.0

    async def owner(self, topic: str, partition: int) -> str | None:
        """URL of the worker that owns the partition, None while unknown (rebalancing)."""
        await self._refresh()
        return self._owners.get((topic, partition))

    async def members(self) -> list[str]:
        """URLs of the group's workers (this one included)."""
        await self._refresh()
        return list(self._members)

    async def _refresh(self) -> None:
        fresh = time.monotonic() - self._fetched_at < _TTL and self._generation == self.runtime.generation
        if fresh:
            return
        async with self._lock:
            if time.monotonic() - self._fetched_at < _TTL and self._generation == self.runtime.generation:
                return
            generation = self.runtime.generation
            try:
                owners, members = await self._describe()
            except Exception as exc:  # noqa: BLE001 - no routing answer: callers say 503
                log.warning("could not describe the consumer group: %r", exc)
                owners, members = {}, []
            self._owners, self._members = owners, members
            self._fetched_at = time.monotonic()
            self._generation = generation

    async def _describe(self) -> tuple[dict[tuple[str, int], str], list[str]]:
        if self._admin is None:
            self._admin = AdminClient(self._config)
        group = self.settings.app_id
        future = self._admin.describe_consumer_groups([group], request_timeout=5)[group]
        description = await asyncio.wait_for(asyncio.wrap_future(future), 6)
        owners: dict[tuple[str, int], str] = {}
        members: list[str] = []
        for member in description.members:
            client_id = member.client_id or ""
            if not client_id.startswith("o2c|"):
                continue
            url = client_id[4:]
            members.append(url)
            if description.state != ConsumerGroupState.STABLE:
                continue  # assignments being redistributed: nobody owns anything for sure
            for tp in member.assignment.topic_partitions:
                owners[(tp.topic, tp.partition)] = url
        return owners, sorted(set(members))
