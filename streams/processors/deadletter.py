"""Dead letters (SPEC §7): the original key, value and headers, plus headers saying what failed
and where the record came from, so `o2c dlq replay` can put it back once fixed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from streams.metrics import METRICS
from streams.settings import Settings

log = logging.getLogger("o2c.dlq")

HEADER_PREFIX = "o2c."
ERROR_HEADERS = ("error_class", "error_message", "source_topic", "source_partition", "source_offset")


def dead_letter_headers(message: Any, error: Exception) -> list[tuple[str, bytes]]:
    original = [(k, v) for k, v in (message.headers or []) if not k.startswith(HEADER_PREFIX)]
    return original + [
        ("o2c.error_class", type(error).__name__.encode()),
        ("o2c.error_message", str(error).encode("utf-8", "replace")),
        ("o2c.source_topic", message.topic.encode()),
        ("o2c.source_partition", str(message.partition).encode()),
        ("o2c.source_offset", str(message.offset).encode()),
    ]


def dead_letter(send: Callable[..., Any], settings: Settings, message: Any, error: Exception) -> None:
    """Send `message` to the dead-letter topic with the reason; the pipeline keeps going."""
    topic = message.topic
    role = topic[len(settings.topic_prefix) :] if topic.startswith(settings.topic_prefix) else topic
    log.warning(
        "dead letter topic=%s partition=%s offset=%s error=%s: %s",
        message.topic,
        message.partition,
        message.offset,
        type(error).__name__,
        error,
    )
    METRICS.dead_letters.labels(role, type(error).__name__).inc()
    send(settings.topic("dlq"), message.key, message.value, None, dead_letter_headers(message, error))
