"""Long-poll support: HTTP handlers wait until the agent publishes a change for their key."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class Watchers:
    def __init__(self) -> None:
        self._waiting: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    def notify(self, key: str) -> None:
        """Called by the agent on every published change (cheap when nobody waits)."""
        waiting = self._waiting.pop(key, None)
        if waiting:
            for event in waiting:
                event.set()

    async def wait(self, key: str, timeout: float) -> bool:
        """Wait for the next change of `key`; False on timeout."""
        event = asyncio.Event()
        self._waiting[key].add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiting = self._waiting.get(key)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiting[key]
