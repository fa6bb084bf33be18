"""The event contracts: the `.avsc` files of `schemas/`, loaded once per directory.

Everything the codec and the validators need is derived here at load time (parsed
schemas, fingerprints, the event_type -> topic map), so the per-event path never parses
or compares a schema. The codec's error hierarchy lives here too, because every module
that reads or writes events (codec, flat form) raises it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fastavro import parse_schema
from fastavro.schema import (
    SchemaParseException,
    expand_schema,
    fingerprint,
    to_parsing_canonical_form,
)

from streams.contracts.roles import CONTRACT_ROLES, INPUT_ROLES, KEY_FIELDS

ENVELOPE_FIELDS: tuple[str, ...] = (
    "event_id",
    "event_type",
    "occurred_at",
    "source",
    "correlation_id",
)
PAYLOAD_FIELD = "payload"
RELEASED_DIR = "released"
CURRENT = "current"


class CodecError(Exception):
    """Base of every error of the event contracts: catch this to handle them all."""


class ContractError(CodecError):
    """The schemas directory itself is broken (missing file, invalid schema): a deployment
    error raised at load time, never for a single event."""


class DecodeError(CodecError):
    """Bytes that cannot be turned into an event: bad framing, unknown writer schema,
    corrupt body. The record belongs in the dead-letter topic."""


class ValidationError(CodecError):
    """An event that does not satisfy its contract (wrong type, missing or unknown field,
    unknown event_type). The record belongs in the dead-letter topic.

    `path` locates the offending value (`lines[1].quantity`, empty for the whole value),
    `expected` says what the contract wants there (`long`) and `found` what was given
    (`string "x"`).
    """

    def __init__(self, message: str, *, path: str = "", expected: str = "", found: str = ""):
        super().__init__(message)
        self.message = message
        self.path = path
        self.expected = expected
        self.found = found


class RegistryError(CodecError):
    """The schema registry could not be used (unreachable, refused a registration).
    Not the record's fault: retry or stop, do not dead-letter."""


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """A schema data may have been written with, as found under one version."""

    role: str
    version: str  # "current" or "released/N"
    fingerprint: bytes  # 8 bytes, in the order of the single-object header
    schema: dict[str, Any]  # fastavro-parsed, timestamp-millis stripped


@dataclass(frozen=True, eq=False)
class Contracts:
    """All schemas of one schemas directory (compared by identity: one per directory)."""

    schemas_dir: Path
    # role -> the .avsc as written (registered with the schema registry as is)
    raw: Mapping[str, dict[str, Any]]
    # role -> named types inlined, full names: what the validators walk
    expanded: Mapping[str, dict[str, Any]]
    # role -> fastavro-parsed with timestamp-millis stripped: the codec's reader and
    # writer schema, so timestamps are plain epoch-millis ints both ways
    parsed: Mapping[str, dict[str, Any]]
    # role -> single-object fingerprint of the current schema
    fingerprints: Mapping[str, bytes]
    # fingerprint -> every known writer schema: current and every released version
    writers: Mapping[bytes, WriterSchema]
    # role -> event types of the topic: payload union order for inputs; the one
    # record name for outputs
    role_events: Mapping[str, tuple[str, ...]]
    # event_type -> role
    event_roles: Mapping[str, str]
    # event_type -> expanded record schema: the payload record of an input event, the
    # whole record of an output
    event_records: Mapping[str, dict[str, Any]]
    # released version numbers, ascending
    releases: tuple[int, ...]

    def event_types(self, role: str) -> tuple[str, ...]:
        """Event types of a topic role, in payload-union order (outputs: their record)."""
        try:
            return self.role_events[role]
        except KeyError:
            raise unknown_role(role) from None

    def role_of(self, event_type: str) -> str:
        """Topic role of an event type; ValidationError if it is not in any schema."""
        try:
            return self.event_roles[event_type]
        except KeyError:
            known = ", ".join(self.event_roles)
            raise ValidationError(
                f'event_type: unknown event type "{event_type}" (expected one of {known})',
                path="event_type",
                expected=f"one of {known}",
                found=f'string "{event_type}"',
            ) from None


def load_contracts(schemas_dir: Path | str | None = None) -> Contracts:
    """The contracts of `schemas_dir` (default: the configured `O2C_SCHEMAS_DIR`),
    loaded once per directory and cached."""
    if schemas_dir is None:
        return _load(_configured_schemas_dir())
    return _load(Path(schemas_dir).resolve())


def clear_cache() -> None:
    """Forget loaded contracts (tests that rewrite a schemas directory in place)."""
    _load.cache_clear()
    _configured_schemas_dir.cache_clear()


@cache
def _configured_schemas_dir() -> Path:
    """Read once: `load_contracts()` is called per event by callers that keep no codec."""
    from streams.settings import load_settings

    return Path(load_settings().schemas_dir).resolve()


def unknown_role(role: str) -> ValueError:
    """A role outside CONTRACT_ROLES is a programming error, not bad data: ValueError."""
    return ValueError(f"unknown topic role {role!r}; expected one of {', '.join(CONTRACT_ROLES)}")


def short_name(full_name: str) -> str:
    return full_name.rsplit(".", 1)[-1]


def single_object_fingerprint(schema: dict[str, Any] | list[Any] | str) -> bytes:
    """CRC-64-AVRO (Rabin) of the Parsing Canonical Form, little-endian as framed."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def strip_timestamp_logical_types(node: Any) -> Any:
    """Copy of a schema whose timestamp-millis longs are plain longs, so fastavro reads
    epoch-millis ints instead of building datetimes (and writes ints as they are)."""
    if isinstance(node, dict):
        if node.get("logicalType") == "timestamp-millis":
            return {k: v for k, v in node.items() if k != "logicalType"}
        return {k: strip_timestamp_logical_types(v) for k, v in node.items()}
    if isinstance(node, list):
        return [strip_timestamp_logical_types(v) for v in node]
    return node


def released_versions(schemas_dir: Path) -> tuple[int, ...]:
    """Released version numbers found under `schemas_dir/released/`, ascending."""
    root = schemas_dir / RELEASED_DIR
    if not root.is_dir():
        return ()
    return tuple(sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()))


def read_schema_file(path: Path) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        parse_schema(schema)
    except (OSError, ValueError, TypeError, KeyError, SchemaParseException) as exc:
        raise ContractError(f"{path}: not a valid Avro schema: {exc}") from exc
    return schema


@cache
def _load(schemas_dir: Path) -> Contracts:
    raw: dict[str, dict[str, Any]] = {}
    for role in CONTRACT_ROLES:
        path = schemas_dir / f"{role}.avsc"
        if not path.is_file():
            raise ContractError(f"{path}: missing: every topic role needs its schema")
        raw[role] = read_schema_file(path)

    expanded = {role: expand_schema(schema) for role, schema in raw.items()}
    parsed = {role: parse_schema(strip_timestamp_logical_types(s)) for role, s in raw.items()}
    fingerprints = {role: single_object_fingerprint(s) for role, s in raw.items()}

    role_events: dict[str, tuple[str, ...]] = {}
    event_roles: dict[str, str] = {}
    event_records: dict[str, dict[str, Any]] = {}
    for role, schema in expanded.items():
        records = _event_records(role, schema)
        role_events[role] = tuple(records)
        for event_type, record in records.items():
            if event_type in event_roles:
                raise ContractError(
                    f"record {event_type} is defined by both {event_roles[event_type]}.avsc "
                    f"and {role}.avsc: event types must be unique"
                )
            event_roles[event_type] = role
            event_records[event_type] = record

    writers: dict[bytes, WriterSchema] = {}
    for role in CONTRACT_ROLES:
        writers[fingerprints[role]] = WriterSchema(role, CURRENT, fingerprints[role], parsed[role])
    releases = released_versions(schemas_dir)
    for version in reversed(releases):  # newest first: an identical older copy adds nothing
        for path in sorted((schemas_dir / RELEASED_DIR / str(version)).glob("*.avsc")):
            schema = read_schema_file(path)
            fp = single_object_fingerprint(schema)
            known = writers.get(fp)
            if known is not None:
                if known.role != path.stem:
                    raise ContractError(
                        f"{path} has the fingerprint of {known.role}.avsc ({known.version}): "
                        "a released file must keep its topic's name"
                    )
                continue
            writers[fp] = WriterSchema(
                path.stem,
                f"{RELEASED_DIR}/{version}",
                fp,
                parse_schema(strip_timestamp_logical_types(schema)),
            )

    return Contracts(
        schemas_dir=schemas_dir,
        raw=MappingProxyType(raw),
        expanded=MappingProxyType(expanded),
        parsed=MappingProxyType(parsed),
        fingerprints=MappingProxyType(fingerprints),
        writers=MappingProxyType(writers),
        role_events=MappingProxyType(role_events),
        event_roles=MappingProxyType(event_roles),
        event_records=MappingProxyType(event_records),
        releases=releases,
    )


def _event_records(role: str, schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """event_type -> record of one topic, checking the shape the codec relies on."""
    where = f"{role}.avsc"
    if schema.get("type") != "record":
        raise ContractError(f"{where}: the top-level schema must be a record")
    fields = {f["name"]: f for f in schema["fields"]}
    for key in KEY_FIELDS[role]:
        if key not in fields:
            raise ContractError(f"{where}: key field {key} is missing")
    if role not in INPUT_ROLES:
        return {short_name(schema["name"]): schema}

    missing = [name for name in (*ENVELOPE_FIELDS, PAYLOAD_FIELD) if name not in fields]
    if missing:
        raise ContractError(f"{where}: envelope field(s) missing: {', '.join(missing)}")
    branches = fields[PAYLOAD_FIELD]["type"]
    if not isinstance(branches, list) or not all(
        isinstance(b, dict) and b.get("type") == "record" for b in branches
    ):
        raise ContractError(f"{where}: payload must be a union of records")
    envelope_names = set(fields) - {PAYLOAD_FIELD}
    records: dict[str, dict[str, Any]] = {}
    for branch in branches:
        event_type = short_name(branch["name"])
        clash = envelope_names & {f["name"] for f in branch["fields"]}
        if clash:
            raise ContractError(
                f"{where}: {event_type} repeats envelope field(s) {', '.join(sorted(clash))}: "
                "the flat form could not tell them apart"
            )
        records[event_type] = branch
    return records
