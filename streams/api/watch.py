"""Long-poll support: HTTP handlers wait until the agent publishes a change for their key.
Lives on the event loop; the runtime thread hands notifications over with call_soon_threadsafe."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


class Watchers:
    def __init__(self) -> None:
        self._waiting: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    def waiting(self, key: str) -> bool:
        """Whether anybody waits for `key` (asked from the runtime thread: a dict lookup)."""
        return key in self._waiting

    def notify(self, key: str) -> None:
        """Called by the agent on every published change (cheap when nobody waits)."""
        waiting = self._waiting.pop(key, None)
        if waiting:
            for event in waiting:
                event.set()

    @contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        """An event set at the next change of `key`. Register before reading the state: a
        change between the read and the wait is then not missed."""
        event = asyncio.Event()
        self._waiting[key].add(event)
        try:
            yield event
        finally:
            waiting = self._waiting.get(key)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiting[key]

    async def wait(self, key: str, timeout: float) -> bool:
        """Wait for the next change of `key`; False on timeout."""
        with self.watch(key) as event:
            try:
                await asyncio.wait_for(event.wait(), timeout)
                return True
            except TimeoutError:
                return False
