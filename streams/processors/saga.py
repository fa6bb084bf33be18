"""The allocation saga's two internal topics and their encoding.

Orders and inventory live on different keys (order_id, sku), hence on different partitions and
possibly different workers. They talk through two internal topics (docs/inventory-agent.md):

- `<app_id>-allocation-requests`, keyed by `sku`, co-partitioned with `o2c.inventory`:
  AllocationRequest / AllocationRelease / StockIssue from the order agent;
- `<app_id>-allocation-results`, keyed by `order_id`, co-partitioned with the order topics:
  AllocationResult from the inventory agent.

Values are internal, never read by another system, and evolve with the code that writes and
reads them. About one is written and read per input event, so they are binary (issue 14: as
JSON one cost ~5 us to write and ~5 us to read; now ~1 and ~2): a byte naming the message type,
a byte with a bit set per optional long that is None, the longs as 8-byte little-endian ints
in declaration order (one `struct` call), then the strings in declaration order, each a 4-byte
length (0xFFFFFFFF for None) and its UTF-8. Records written as JSON by earlier versions (they
start with `{`) are still read. A reader rejects what it cannot read to the dead-letter topic.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, fields
from typing import Any

from streams.contracts.codec import CodecError
from streams.contracts.roles import ALLOCATION_REQUESTS, ALLOCATION_RESULTS
from streams.settings import Settings
from tables.allocation import (
    AllocationMessage,
    AllocationRelease,
    AllocationRequest,
    AllocationResult,
    StockIssue,
    message_from_dict,
)

# The type byte of each message; append only (a byte is never reused for another type).
_TYPES: dict[int, type] = {1: AllocationRequest, 2: AllocationRelease, 3: StockIssue, 4: AllocationResult}
_JSON_START = ord("{")
_NO_STRING = 0xFFFFFFFF
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class _Layout:
    """Where each field of one message type goes."""

    tag: bytes
    longs: tuple[str, ...]
    strings: tuple[str, ...]
    optional_longs: tuple[int, ...]  # positions in `longs` that may be None (one mask bit each)
    packer: struct.Struct
    order: tuple[int, ...]  # declaration order -> position in longs + strings

    @classmethod
    def of(cls, tag: int, message: type) -> _Layout:
        declared = [(f.name, "str" in str(f.type), "None" in str(f.type)) for f in fields(message)]
        longs = tuple(name for name, is_str, _ in declared if not is_str)
        strings = tuple(name for name, is_str, _ in declared if is_str)
        nullable = {name for name, _, may_be_none in declared if may_be_none}
        optional = tuple(i for i, name in enumerate(longs) if name in nullable)
        assert len(optional) <= 8, "one mask byte"
        position = {name: i for i, name in enumerate(longs + strings)}
        return cls(
            bytes([tag]), longs, strings, optional, struct.Struct("<" + "q" * len(longs)),
            tuple(position[name] for name, _, _ in declared),
        )


_LAYOUTS = {message: _Layout.of(tag, message) for tag, message in _TYPES.items()}
_BY_TAG = {tag: (message, _LAYOUTS[message]) for tag, message in _TYPES.items()}


class SagaDecodeError(CodecError):
    """An internal allocation record that is not a contract message."""


def requests_topic(settings: Settings) -> str:
    return settings.internal_topic(ALLOCATION_REQUESTS)


def results_topic(settings: Settings) -> str:
    return settings.internal_topic(ALLOCATION_RESULTS)


def encode(message: AllocationMessage | AllocationResult) -> bytes:
    layout = _LAYOUTS[type(message)]
    longs = [getattr(message, name) for name in layout.longs]
    mask = 0
    for bit, i in enumerate(layout.optional_longs):
        if longs[i] is None:
            mask |= 1 << bit
            longs[i] = 0
    parts = [layout.tag, bytes([mask]), layout.packer.pack(*longs)]
    for name in layout.strings:
        value = getattr(message, name)
        if value is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            body = value.encode()
            parts.append(_LENGTH.pack(len(body)))
            parts.append(body)
    return b"".join(parts)


def decode(value: bytes | None) -> Any:
    """The contract message in `value`, or SagaDecodeError."""
    if not value:
        raise SagaDecodeError("empty allocation record")
    if value[0] == _JSON_START:  # written by a version before the binary form
        try:
            return message_from_dict(json.loads(value))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SagaDecodeError(f"not an allocation message: {exc}") from None
    found = _BY_TAG.get(value[0])
    if found is None:
        raise SagaDecodeError(f"not an allocation message: unknown type byte {value[0]}")
    message, layout = found
    try:
        values = list(layout.packer.unpack_from(value, 2))
        mask = value[1]
        if mask:
            for bit, i in enumerate(layout.optional_longs):
                if mask & (1 << bit):
                    values[i] = None
        pos = 2 + layout.packer.size
        for _ in layout.strings:
            (size,) = _LENGTH.unpack_from(value, pos)
            pos += 4
            if size == _NO_STRING:
                values.append(None)
                continue
            if pos + size > len(value):
                raise ValueError(f"a string of {size} bytes runs past the end")
            values.append(value[pos : pos + size].decode())
            pos += size
    except (struct.error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise SagaDecodeError(f"corrupt {message.__name__} record: {exc}") from None
    if pos != len(value):
        raise SagaDecodeError(f"corrupt {message.__name__} record: {len(value) - pos} byte(s) after its end")
    return message(*[values[i] for i in layout.order])
