"""Avro bytes <-> events, in both framings the platform reads and writes (SPEC §2).

- Avro single-object encoding: `C3 01` + 8-byte little-endian CRC-64-AVRO fingerprint of
  the writer schema + body. The fingerprint is resolved against the schemas in the
  repository, current and every release, so old data stays readable without a server.
- Confluent wire format: `00` + 4-byte big-endian schema id + body, when a schema registry
  is configured. Decoding then accepts both framings: the magic byte decides.

Data written with an older schema is resolved to the current schema (Avro resolution
rules). Timestamps come out as epoch-millis ints. Everything schema-related is prepared
at construction; encode and decode are on the per-event path of the app.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from streams.contracts.avro_writer import Unsure, compile_writer
from streams.contracts.flat import to_record, validate_record
from streams.contracts.roles import CONTRACT_ROLES, INPUT_ROLES
from streams.contracts.schemas import (
    CURRENT,
    PAYLOAD_FIELD,
    CodecError,
    Contracts,
    DecodeError,
    RegistryError,
    ValidationError,
    load_contracts,
    short_name,
    single_object_fingerprint,
    strip_timestamp_logical_types,
    unknown_role,
)

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from streams.settings import Settings

__all__ = [
    "CONFLUENT_MAGIC",
    "SINGLE_OBJECT_MAGIC",
    "Codec",
    "CodecError",
    "DecodeError",
    "RegistryError",
    "ValidationError",
]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SINGLE_OBJECT_HEADER = len(SINGLE_OBJECT_MAGIC) + 8
_CONFLUENT_HEADER = len(CONFLUENT_MAGIC) + 4


@dataclass(frozen=True, slots=True)
class _ReadPlan:
    """How to read one writer schema's bodies with the current reader schema."""

    writer: dict[str, Any]
    reader: dict[str, Any] | None  # None: the writer is the current schema, no resolution
    source: str  # for messages: "current", "released/1", "schema id 7"


class Codec:
    """Encodes and decodes the values of every topic role (`orders`, `order-status`...).

    `encode`/`decode` work on the record form (envelope + `payload` for input topics);
    `encode_flat`/`decode_flat` on the flat form of docs/contract-fields.md.
    Encoding writes the Confluent wire format when a registry is configured (the schema
    is registered on first use under `<topic>-value`), single-object encoding otherwise.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        schemas_dir: Path | str | None = None,
        registry_url: str | None = None,
        registry_client: SchemaRegistryClient | None = None,
        topic_prefix: str | None = None,
    ) -> None:
        """Explicit arguments win over `settings`; with neither, settings come from the
        environment. Pass a `registry_client` to share one (e.g. one `mock://` store)."""
        if settings is None and schemas_dir is None:
            from streams.settings import load_settings

            settings = load_settings()
        if schemas_dir is None:
            assert settings is not None
            schemas_dir = settings.schemas_dir
        if topic_prefix is None:
            topic_prefix = settings.topic_prefix if settings is not None else "o2c."
        if registry_client is None:
            url = registry_url or (settings.schema_registry_url if settings is not None else None)
            registry_client = _registry_client(url) if url else None

        self.contracts: Contracts = load_contracts(schemas_dir)
        self.topic_prefix = topic_prefix
        self.registry = registry_client

        contracts = self.contracts
        self._envelope = {role: role in INPUT_ROLES for role in CONTRACT_ROLES}
        self._branch_names = {  # event_type -> full name of its payload branch
            event_type: contracts.event_records[event_type]["name"]
            for role in INPUT_ROLES
            for event_type in contracts.event_types(role)
        }
        self._event_types = {name: short_name(name) for name in self._branch_names.values()}
        # Output records (no envelope) are written per event: compiled writers, fastavro's
        # bytes at a fraction of the cost (streams/contracts/avro_writer.py).
        self._compiled = {role: compile_writer(contracts.parsed[role]) for role in CONTRACT_ROLES if not self._envelope[role]}
        self._headers: dict[str, bytes] = {}
        if registry_client is None:
            self._headers = {role: SINGLE_OBJECT_MAGIC + contracts.fingerprints[role] for role in CONTRACT_ROLES}
        self._fingerprint_plans: dict[str, dict[bytes, _ReadPlan]] = {role: {} for role in CONTRACT_ROLES}
        for fp, writer in contracts.writers.items():
            if writer.role in self._fingerprint_plans:
                reader = None if writer.version == CURRENT else contracts.parsed[writer.role]
                self._fingerprint_plans[writer.role][fp] = _ReadPlan(writer.schema, reader, writer.version)
        # (role, schema id) -> plan, or the message of why that id cannot be read
        self._id_plans: dict[tuple[str, int], _ReadPlan | str] = {}

    @property
    def framing(self) -> str:
        """What `encode` writes: `confluent` or `single-object`."""
        return "confluent" if self.registry is not None else "single-object"

    # -- encoding ---------------------------------------------------------------------

    def encode(self, role: str, record: dict[str, Any], *, validate: bool = False) -> bytes:
        """Avro bytes of a record-form event.

        The payload branch is chosen by `event_type`, never guessed from field shapes.
        Records from trusted code go straight to fastavro (which rejects missing and
        unknown fields, bad enum symbols, out-of-range ints); anything it refuses, e.g.
        datetimes, is normalized or explained by the full validator. `validate=True`
        runs the full validator first (it also refuses floats for longs, which fastavro
        would truncate).
        """
        header = self._header(role)
        compiled = self._compiled.get(role)
        if compiled is not None and not validate:
            try:
                return header + compiled(record)
            except Unsure:
                pass  # the generic way writes it or says what is wrong
        schema = self.contracts.parsed[role]
        if validate:
            record = validate_record(role, record, contracts=self.contracts)
        try:
            return self._write(header, schema, self._datum(role, record))
        except Exception:  # noqa: BLE001 - fastavro's errors are terse: let the validator explain
            normalized = validate_record(role, record, contracts=self.contracts)
            try:
                return self._write(header, schema, self._datum(role, normalized))
            except Exception as exc:  # noqa: BLE001
                raise ValidationError(f"{role}: the record does not encode: {exc}") from exc

    def encode_flat(self, role: str, flat: dict[str, Any]) -> bytes:
        """Validate a flat event fully (ValidationError names the path) and encode it."""
        return self.encode(role, to_record(role, flat, contracts=self.contracts))

    def _datum(self, role: str, record: dict[str, Any]) -> Any:
        if not self._envelope[role]:
            return record
        datum = record.copy()  # shallow: the caller's record is left as it was
        datum[PAYLOAD_FIELD] = (self._branch_names[record["event_type"]], record[PAYLOAD_FIELD])
        return datum

    @staticmethod
    def _write(header: bytes, schema: dict[str, Any], datum: Any) -> bytes:
        buffer = BytesIO()
        buffer.write(header)
        schemaless_writer(buffer, schema, datum, strict_allow_default=True)
        return buffer.getvalue()

    def _header(self, role: str) -> bytes:
        header = self._headers.get(role)
        if header is None:
            if role not in CONTRACT_ROLES:
                raise unknown_role(role)
            header = self._headers[role] = self._register(role)
        return header

    def _register(self, role: str) -> bytes:
        """Register the current schema of `role` (TopicNameStrategy) and frame with its id."""
        from confluent_kafka.schema_registry import Schema

        assert self.registry is not None
        subject = f"{self.topic_prefix}{role}-value"
        schema = Schema(json.dumps(self.contracts.raw[role]), "AVRO")
        try:
            schema_id = self.registry.register_schema(subject, schema)
        except Exception as exc:  # noqa: BLE001 - HTTP, auth and registry errors alike
            raise RegistryError(f"could not register the {role} schema under subject {subject}: {exc}") from exc
        # Our own messages then decode without asking the registry.
        self._id_plans[(role, schema_id)] = self._fingerprint_plans[role][self.contracts.fingerprints[role]]
        return CONFLUENT_MAGIC + schema_id.to_bytes(4, "big")

    # -- decoding ---------------------------------------------------------------------

    def decode(self, role: str, data: bytes) -> dict[str, Any]:
        """Record-form event of Avro bytes in either framing.

        For input topics `event_type` is checked against the payload branch actually
        written. Raises DecodeError saying plainly what is wrong with the bytes.
        """
        plan, offset = self._read_plan(role, data)
        envelope = self._envelope[role]
        stream = BytesIO(data)
        stream.seek(offset)
        try:
            record = schemaless_reader(stream, plan.writer, plan.reader, return_record_name=envelope)
        except EOFError as exc:
            raise DecodeError(
                f"{role}: truncated Avro body: {len(data) - offset} body bytes end before the "
                f"record does (writer schema {plan.source})"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - any failure of the parser means corrupt bytes
            raise DecodeError(
                f"{role}: corrupt Avro body (writer schema {plan.source}): {type(exc).__name__}: {exc}"
            ) from exc
        unread = len(data) - stream.tell()
        if unread:
            raise DecodeError(
                f"{role}: corrupt Avro body: {unread} byte(s) left after the end of the record "
                f"(writer schema {plan.source})"
            )
        if envelope:
            branch, payload = record[PAYLOAD_FIELD]
            event_type = self._event_types.get(branch) or short_name(branch)
            if record["event_type"] != event_type:
                raise DecodeError(
                    f'{role}: event_type "{record["event_type"]}" does not match the payload '
                    f"record {event_type}"
                )
            record[PAYLOAD_FIELD] = payload
        return record

    def decode_flat(self, role: str, data: bytes) -> dict[str, Any]:
        """Flat-form event of Avro bytes (envelope and payload fields side by side)."""
        record = self.decode(role, data)
        if self._envelope[role]:
            record.update(record.pop(PAYLOAD_FIELD))  # the dict is ours: flatten in place
        return record

    def _read_plan(self, role: str, data: bytes) -> tuple[_ReadPlan, int]:
        if role not in self._fingerprint_plans:
            raise unknown_role(role)
        if not data:
            what = "no value (null)" if data is None else "empty value (0 bytes)"
            raise DecodeError(
                f"{role}: {what}: expected an Avro single-object (C3 01) or Confluent (00) frame"
            )
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < _SINGLE_OBJECT_HEADER:
                raise DecodeError(
                    f"{role}: truncated single-object header: {len(data)} bytes, "
                    f"need {_SINGLE_OBJECT_HEADER} (C3 01 + 8-byte fingerprint)"
                )
            fingerprint = bytes(data[2:_SINGLE_OBJECT_HEADER])
            plan = self._fingerprint_plans[role].get(fingerprint)
            if plan is None:
                raise DecodeError(self._unknown_fingerprint(role, fingerprint))
            return plan, _SINGLE_OBJECT_HEADER
        if data[:1] == CONFLUENT_MAGIC:
            if len(data) < _CONFLUENT_HEADER:
                raise DecodeError(
                    f"{role}: truncated Confluent header: {len(data)} bytes, "
                    f"need {_CONFLUENT_HEADER} (00 + 4-byte schema id)"
                )
            schema_id = int.from_bytes(data[1:_CONFLUENT_HEADER], "big")
            found = self._id_plans.get((role, schema_id))
            if found is None:
                found = self._id_plans[(role, schema_id)] = self._fetch_plan(role, schema_id)
            if isinstance(found, str):
                raise DecodeError(found)
            return found, _CONFLUENT_HEADER
        start = " ".join(f"{b:02X}" for b in bytes(data[:2]))
        hint = " (it looks like JSON, not Avro)" if data[:1] in (b"{", b"[") else ""
        raise DecodeError(
            f"{role}: unknown framing: value starts with {start}, neither Avro single-object "
            f"(C3 01) nor Confluent wire format (00){hint}"
        )

    def _unknown_fingerprint(self, role: str, fingerprint: bytes) -> str:
        other = self.contracts.writers.get(fingerprint)
        if other is not None:
            return (
                f"{role}: the writer schema (fingerprint {fingerprint.hex()}) is the {other.role} "
                f"schema ({other.version}), not a {role} schema: value on the wrong topic?"
            )
        return (
            f"{role}: unknown writer schema fingerprint {fingerprint.hex()}: neither the current "
            f"schema nor any release under {self.contracts.schemas_dir}/released/ has it "
            "(written with a schema that was never released here?)"
        )

    def _fetch_plan(self, role: str, schema_id: int) -> _ReadPlan | str:
        """Plan for a registry schema id, or why it cannot be read (cached either way:
        a flood of bad values must not become a flood of registry requests)."""
        if self.registry is None:
            return (
                f"{role}: Confluent wire-format value (magic byte 00, schema id {schema_id}) but "
                "no schema registry is configured: set O2C_SCHEMA_REGISTRY_URL to read it"
            )
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            registered = self.registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return f"{role}: unknown schema id {schema_id}: the schema registry has no such schema"
            raise RegistryError(f"schema registry error fetching schema id {schema_id}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - HTTP and auth errors: not the record's fault
            raise RegistryError(f"schema registry unreachable fetching schema id {schema_id}: {exc}") from exc
        if (registered.schema_type or "AVRO") != "AVRO":
            return f"{role}: schema id {schema_id} is a {registered.schema_type} schema, not Avro"
        try:
            raw = json.loads(registered.schema_str)
            fingerprint = single_object_fingerprint(raw)
            writer = parse_schema(strip_timestamp_logical_types(raw))
        except Exception as exc:  # noqa: BLE001
            return f"{role}: schema id {schema_id} is not a valid Avro schema: {exc}"
        known = self.contracts.writers.get(fingerprint)
        if known is not None:
            if known.role != role:
                return f"{role}: schema id {schema_id} is the {known.role} schema ({known.version}), not a {role} schema"
            return self._fingerprint_plans[role][fingerprint]
        reader = self.contracts.parsed[role]
        if isinstance(writer, dict) and writer.get("name") != reader["name"]:
            return f"{role}: schema id {schema_id} is record {writer.get('name')}, not {reader['name']}"
        return _ReadPlan(writer, reader, f"schema id {schema_id}")


def _registry_client(url: str) -> SchemaRegistryClient:
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError as exc:  # the schema-registry extras of confluent-kafka
        raise RegistryError(
            f"a schema registry is configured ({url}) but confluent-kafka's schema-registry "
            f"dependencies are missing: {exc}"
        ) from exc
    return SchemaRegistryClient.new_client({"url": url})  # `mock://` gives the in-memory mock
