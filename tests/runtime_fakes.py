"""What the runtime's `Record` reads of a confluent-kafka Message, for tests without a broker."""

from __future__ import annotations


class Msg:
    def __init__(self, topic: str, offset: int, ts: int, headers: list | None = None, value: bytes = b"v") -> None:
        self._t, self._o, self._ts, self._h, self._v = topic, offset, ts, headers, value

    def topic(self): return self._t  # noqa: E704
    def partition(self): return 0  # noqa: E704
    def offset(self): return self._o  # noqa: E704
    def key(self): return b"k"  # noqa: E704
    def value(self): return self._v  # noqa: E704
    def timestamp(self): return (1, self._ts)  # noqa: E704
    def headers(self): return self._h  # noqa: E704
    def error(self): return None  # noqa: E704


class QueueConsumer:
    """librdkafka's one queue for every assigned partition, as `Consumer.consume` serves it."""

    def __init__(self, msgs: list[Msg]) -> None:
        self.queue = list(msgs)
        self.paused: list[tuple[str, int]] = []

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Msg]:
        taken, self.queue = self.queue[:num_messages], self.queue[num_messages:]
        return taken

    def pause(self, partitions) -> None:
        self.paused.extend((tp.topic, tp.partition) for tp in partitions)

    def resume(self, partitions) -> None:
        """Like librdkafka, only this clears a pause: giving a partition up and getting it back
        in a rebalance does not."""
        for tp in partitions:
            self.paused.remove((tp.topic, tp.partition))
