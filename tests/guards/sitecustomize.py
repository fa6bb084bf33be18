"""Loaded by every process the tests start (`PYTHONPATH`, see `tests.conftest.make_env`).

confluent-kafka keeps one per-thread "call state" per client; a call that blocks in librdkafka
(poll, consume, close, metadata) sets it and clears it on return. Made on a consumer from
inside that consumer's own rebalance callback, such a call clears the state of the `consume()`
still running the callback, and the next log line or error it serves aborts the process
(`CallState_get: Assertion cs != NULL`) — one run in a few, whenever librdkafka happens to log.
This guard makes every such call fail at once, with its name, instead.
"""

from __future__ import annotations

import threading

import confluent_kafka

_REENTRANT = ("poll", "consume", "close", "list_topics", "list_groups", "cluster_id")  # CallState_begin


class ReentrantCall(RuntimeError):
    pass


class GuardedConsumer(confluent_kafka.Consumer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._guard = threading.local()

    def subscribe(self, topics, on_assign=None, on_revoke=None, on_lost=None, **kwargs):
        callbacks = {"on_assign": on_assign, "on_revoke": on_revoke, "on_lost": on_lost}
        wrapped = {name: self._guarded(cb) for name, cb in callbacks.items() if cb is not None}
        return super().subscribe(topics, **wrapped, **kwargs)

    def _guarded(self, callback):
        def run(consumer, partitions):
            self._guard.inside = callback.__name__
            try:
                return callback(consumer, partitions)
            finally:
                self._guard.inside = None

        return run


def _checked(name):
    original = getattr(confluent_kafka.Consumer, name)

    def call(self, *args, **kwargs):
        inside = getattr(self._guard, "inside", None)
        if inside is not None:
            raise ReentrantCall(f"Consumer.{name}() called from inside its own {inside} callback")
        return original(self, *args, **kwargs)

    call.__name__ = name
    return call


for _name in _REENTRANT:
    if hasattr(confluent_kafka.Consumer, _name):  # not every version has every call
        setattr(GuardedConsumer, _name, _checked(_name))

confluent_kafka.Consumer = GuardedConsumer
