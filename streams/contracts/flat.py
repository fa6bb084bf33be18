"""The flat JSON form of events, and full validation of events against their contract.

The flat form puts envelope and payload fields side by side, `event_type` naming the
payload record (docs/contract-fields.md): it is what the CLI, the simulator and the app's
handlers work with. The record form is what Avro encodes: envelope fields plus `payload`.
Output topics have no envelope, so their flat form is the record itself.

Validation is compiled once per schema into small closures, so checking an event walks
its values, not its schema. It stops at the first offending value and names its path
(`lines[1].quantity`), so bad input is rejected with a precise reason before anything is
produced.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from streams.contracts.roles import CONTRACT_ROLES, INPUT_ROLES, KEY_FIELDS
from streams.contracts.schemas import (
    PAYLOAD_FIELD,
    ContractError,
    Contracts,
    ValidationError,
    load_contracts,
    short_name,
    unknown_role,
)

__all__ = [
    "TIMESTAMP_EXPECTED",
    "ValidationError",
    "describe",
    "iso_from_millis",
    "key_of",
    "millis_from",
    "render_iso",
    "to_flat",
    "to_record",
    "validate_record",
]

TIMESTAMP_EXPECTED = "timestamp-millis (epoch millis or ISO-8601 string)"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_LONG_RANGE = (-(1 << 63), (1 << 63) - 1)
_INT_RANGE = (-(1 << 31), (1 << 31) - 1)
_MISSING: Any = object()

Check = Callable[[Any], Any]
Render = Callable[[Any], Any]


# -- public API ---------------------------------------------------------------------------


def to_record(role: str, flat: Any, *, contracts: Contracts | None = None) -> dict[str, Any]:
    """Validate a flat event fully and return its Avro record form.

    Input topics get their envelope back with the payload fields moved under `payload`;
    output topics are validated as they are. Defaults of omitted optional fields are
    filled in and timestamps (epoch millis, ISO-8601 with Z or offset, naive = UTC,
    datetimes) become epoch-millis ints. Raises ValidationError on the first problem.
    """
    validators = _validators(contracts or load_contracts())
    if role not in INPUT_ROLES:
        return _run(validators.output(role), flat)
    event_type = _event_type_of(validators.contracts, role, flat)
    record = _run(validators.flat[event_type], flat)
    record[PAYLOAD_FIELD] = {name: record.pop(name) for name in validators.payload_fields[event_type]}
    return record


def validate_record(role: str, record: Any, *, contracts: Contracts | None = None) -> dict[str, Any]:
    """Validate an event in record form (envelope + `payload`) and return it normalized
    (defaults filled, timestamps as epoch-millis ints). Paths of payload problems start
    with `payload.`."""
    validators = _validators(contracts or load_contracts())
    if role not in INPUT_ROLES:
        return _run(validators.output(role), record)
    event_type = _event_type_of(validators.contracts, role, record)
    return _run(validators.record[event_type], record)


def to_flat(
    role: str,
    record: dict[str, Any],
    *,
    iso_timestamps: bool = False,
    contracts: Contracts | None = None,
) -> dict[str, Any]:
    """Flat form of a record: envelope and payload fields side by side.

    Timestamps stay epoch-millis ints unless `iso_timestamps`, which renders them as
    ISO-8601 UTC strings for JSON output. For an output topic the record itself is
    returned (not a copy) unless timestamps are rendered.
    """
    if role in INPUT_ROLES:
        flat = {name: value for name, value in record.items() if name != PAYLOAD_FIELD}
        flat.update(record[PAYLOAD_FIELD])
    elif role in CONTRACT_ROLES:
        flat = record
    else:
        raise unknown_role(role)
    return render_iso(role, flat, contracts=contracts) if iso_timestamps else flat


def render_iso(role: str, flat: dict[str, Any], *, contracts: Contracts | None = None) -> dict[str, Any]:
    """Copy of a flat event with every timestamp-millis value rendered as ISO-8601 UTC
    (`2026-01-01T08:30:00.000Z`), nested ones included, for JSON output."""
    validators = _validators(contracts or load_contracts())
    if role in INPUT_ROLES:
        render = validators.flat_render.get(flat.get("event_type"))  # type: ignore[arg-type]
    else:
        validators.output(role)
        render = validators.output_render.get(role)
    return render(flat) if render is not None else dict(flat)


def key_of(role: str, flat: dict[str, Any]) -> str:
    """Kafka key of an event (flat or record form): order_id or sku per topic (SPEC §1);
    for exceptions order_id, else sku."""
    try:
        fields = KEY_FIELDS[role]
    except KeyError:
        raise unknown_role(role) from None
    for name in fields:
        value = flat.get(name)
        if isinstance(value, str):
            return value
        if value is not None:
            raise ValidationError(
                f"{name}: expected string, got {describe(value)}",
                path=name,
                expected="string",
                found=describe(value),
            )
    names = " nor ".join(fields)
    raise ValidationError(
        f"{fields[0]}: no Kafka key: the {role} event has no {names}",
        path=fields[0],
        expected="string",
        found="null",
    )


def millis_from(value: int | str | datetime) -> int:
    """Epoch millis of a timestamp given as epoch millis, ISO-8601 string (naive = UTC)
    or datetime; ValidationError otherwise."""
    try:
        return _check_timestamp(value)
    except _Invalid as exc:
        raise _to_error(exc) from None


def iso_from_millis(millis: int) -> str:
    """ISO-8601 UTC rendering of epoch millis, always with milliseconds and `Z`."""
    text = (_EPOCH + millis * _MILLISECOND).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def describe(value: Any) -> str:
    """A value as an error message shows it, in JSON terms: `string "x"`, `integer 5`."""
    if value is _MISSING:
        return "nothing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {json.dumps(value)}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        if len(text) > 60:
            text = text[:56] + '..."'
        return f"string {text}"
    if isinstance(value, (list, tuple)):
        return f"array of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, datetime):
        return f"datetime {value.isoformat()}"
    return type(value).__name__


# -- errors -------------------------------------------------------------------------------


class _Invalid(Exception):
    """Raised by compiled checks; path segments are added on the way up, so a valid
    event pays nothing for error reporting."""

    def __init__(self, expected: str, value: Any = _MISSING, problem: str | None = None):
        super().__init__(expected)
        self.expected = expected
        self.value = value
        self.problem = problem
        self.segments: list[str | int] = []


def _run(check: Check, value: Any) -> Any:
    try:
        return check(value)
    except _Invalid as exc:
        raise _to_error(exc) from None


def _to_error(exc: _Invalid) -> ValidationError:
    path = ""
    for segment in reversed(exc.segments):
        if isinstance(segment, int):
            path += f"[{segment}]"
        else:
            path += f".{segment}" if path else segment
    found = describe(exc.value)
    detail = exc.problem or f"expected {exc.expected}, got {found}"
    message = f"{path}: {detail}" if path else detail
    return ValidationError(message, path=path, expected=exc.expected, found=found)


def _event_type_of(contracts: Contracts, role: str, event: Any) -> str:
    """The event_type of an input event, checked against the topic's payload union."""
    if not isinstance(event, dict):
        raise _to_error(_Invalid("object", event))
    known = contracts.event_types(role)
    expected = f"one of {', '.join(known)}"
    event_type = event.get("event_type", _MISSING)
    if isinstance(event_type, str) and event_type in known:
        return event_type
    if event_type is _MISSING:
        problem = f"missing required field (expected {expected})"
    elif not isinstance(event_type, str):
        problem = None
    elif event_type in contracts.event_roles:
        other = contracts.event_roles[event_type]
        problem = f"{event_type} is an event of topic {other}, not {role}"
    else:
        problem = f'unknown event type "{event_type}" for topic {role} (expected {expected})'
    exc = _Invalid(expected, event_type, problem)
    exc.segments.append("event_type")
    raise _to_error(exc)


# -- compiled validators ------------------------------------------------------------------


@dataclass(frozen=True)
class _Validators:
    contracts: Contracts
    flat: dict[str, Check]  # input event_type -> check of its flat form
    record: dict[str, Check]  # input event_type -> check of its record form
    payload_fields: dict[str, tuple[str, ...]]  # input event_type -> payload field names
    outputs: dict[str, Check]  # output role -> check of its record
    flat_render: dict[str, Render]  # input event_type -> ISO renderer (if it has timestamps)
    output_render: dict[str, Render]  # output role -> ISO renderer (if it has timestamps)

    def output(self, role: str) -> Check:
        try:
            return self.outputs[role]
        except KeyError:
            raise unknown_role(role) from None


@cache
def _validators(contracts: Contracts) -> _Validators:
    flat: dict[str, Check] = {}
    record: dict[str, Check] = {}
    payload_fields: dict[str, tuple[str, ...]] = {}
    outputs: dict[str, Check] = {}
    flat_render: dict[str, Render] = {}
    output_render: dict[str, Render] = {}
    for role in CONTRACT_ROLES:
        schema = contracts.expanded[role]
        if role not in INPUT_ROLES:
            outputs[role] = _compile(schema)
            render = _renderer(schema)
            if render is not None:
                output_render[role] = render
            continue
        envelope = [f for f in schema["fields"] if f["name"] != PAYLOAD_FIELD]
        for event_type in contracts.event_types(role):
            payload = contracts.event_records[event_type]
            flat_fields = envelope + payload["fields"]
            flat[event_type] = _compile_record(event_type, flat_fields)
            record_fields = envelope + [{"name": PAYLOAD_FIELD, "type": payload}]
            record[event_type] = _compile_record(short_name(schema["name"]), record_fields)
            payload_fields[event_type] = tuple(f["name"] for f in payload["fields"])
            render = _renderer({"type": "record", "name": event_type, "fields": flat_fields})
            if render is not None:
                flat_render[event_type] = render
    return _Validators(contracts, flat, record, payload_fields, outputs, flat_render, output_render)


def _compile(schema: Any) -> Check:
    """A check for values of `schema` (expanded: named types inlined)."""
    if isinstance(schema, list):
        return _compile_union(schema)
    if isinstance(schema, str):
        return _PRIMITIVES[schema]
    kind = schema["type"]
    if kind == "long" and schema.get("logicalType") == "timestamp-millis":
        return _check_timestamp
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    if kind == "record":
        return _compile_record(short_name(schema["name"]), schema["fields"])
    if kind == "enum":
        return _compile_enum(schema)
    if kind == "array":
        return _compile_array(schema)
    if kind == "map":
        return _compile_map(schema)
    if kind == "fixed":
        return _compile_fixed(schema)
    raise ContractError(f"unsupported schema type {kind!r}")


def _type_name(schema: Any) -> str:
    """How an error message names what a schema expects: `long`, `array of record X`."""
    if isinstance(schema, list):
        return " or ".join(_type_name(branch) for branch in schema)
    if isinstance(schema, str):
        return schema
    kind = schema["type"]
    if kind == "long" and schema.get("logicalType") == "timestamp-millis":
        return TIMESTAMP_EXPECTED
    if kind == "record":
        return f"record {short_name(schema['name'])}"
    if kind == "enum":
        return f"enum {short_name(schema['name'])} ({', '.join(schema['symbols'])})"
    if kind == "array":
        return f"array of {_type_name(schema['items'])}"
    if kind == "map":
        return f"map of {_type_name(schema['values'])}"
    if kind == "fixed":
        return f"fixed {short_name(schema['name'])} ({schema['size']} bytes)"
    return str(kind)


def _compile_record(name: str, fields: list[dict[str, Any]]) -> Check:
    specs: list[tuple[str, Check, Any, str]] = []
    for field in fields:
        check = _compile(field["type"])
        default = _MISSING
        if "default" in field:
            try:
                default = check(field["default"])
            except _Invalid as exc:
                raise ContractError(f"{name}.{field['name']}: default does not match its type") from exc
        specs.append((field["name"], check, default, _type_name(field["type"])))
    names = frozenset(spec[0] for spec in specs)
    expected = f"record {name}"

    def check_record(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Invalid(expected, value)
        out: dict[str, Any] = {}
        present = 0
        for field_name, check, default, field_expected in specs:
            item = value.get(field_name, _MISSING)
            if item is _MISSING:
                if default is _MISSING:
                    exc = _Invalid(field_expected, _MISSING, f"missing required field (expected {field_expected})")
                    exc.segments.append(field_name)
                    raise exc
                # fresh copies of mutable defaults: records are handed out and mutated
                out[field_name] = default.copy() if isinstance(default, (list, dict)) else default
                continue
            present += 1
            try:
                out[field_name] = check(item)
            except _Invalid as exc:
                exc.segments.append(field_name)
                raise
        if present != len(value):
            extra = next(key for key in value if key not in names)
            exc = _Invalid(f"a field of {name}", extra, f"unknown field for {name}")
            exc.segments.append(str(extra))
            raise exc
        return out

    return check_record


def _compile_union(branches: list[Any]) -> Check:
    expected = _type_name(branches)
    checks = [_compile(branch) for branch in branches]
    if len(branches) == 2 and "null" in branches:
        other = checks[1 - branches.index("null")]

        def check_nullable(value: Any) -> Any:
            if value is None:
                return None
            try:
                return other(value)
            except _Invalid as exc:
                if not exc.segments and exc.problem is None:
                    exc.expected = expected  # the value itself is wrong: say null was fine
                raise

        return check_nullable

    def check_union(value: Any) -> Any:
        # Only reached for unions of primitives: the payload union of records is
        # resolved by event_type, never by trying branches.
        for check in checks:
            try:
                return check(value)
            except _Invalid:
                continue
        raise _Invalid(expected, value)

    return check_union


def _compile_enum(schema: dict[str, Any]) -> Check:
    symbols = frozenset(schema["symbols"])
    expected = _type_name(schema)

    def check_enum(value: Any) -> str:
        if isinstance(value, str) and value in symbols:
            return value
        raise _Invalid(expected, value)

    return check_enum


def _compile_array(schema: dict[str, Any]) -> Check:
    check_item = _compile(schema["items"])
    expected = _type_name(schema)

    def check_array(value: Any) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            raise _Invalid(expected, value)
        out = []
        for index, item in enumerate(value):
            try:
                out.append(check_item(item))
            except _Invalid as exc:
                exc.segments.append(index)
                raise
        return out

    return check_array


def _compile_map(schema: dict[str, Any]) -> Check:
    check_value = _compile(schema["values"])
    expected = _type_name(schema)

    def check_map(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Invalid(expected, value)
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Invalid("string map key", key)
            try:
                out[key] = check_value(item)
            except _Invalid as exc:
                exc.segments.append(key)
                raise
        return out

    return check_map


def _compile_fixed(schema: dict[str, Any]) -> Check:
    size = schema["size"]
    expected = _type_name(schema)

    def check_fixed(value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray)) and len(value) == size:
            return bytes(value)
        raise _Invalid(expected, value)

    return check_fixed


def _ranged(name: str, low: int, high: int) -> Check:
    def check_integer(value: Any) -> int:
        if type(value) is int and low <= value <= high:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if low <= value <= high:
                return int(value)
            raise _Invalid(name, value, f"expected {name}, got integer {value} (out of range)")
        raise _Invalid(name, value)

    return check_integer


def _check_null(value: Any) -> None:
    if value is None:
        return None
    raise _Invalid("null", value)


def _check_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid("boolean", value)


def _floating(name: str) -> Check:
    def check_floating(value: Any) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Invalid(name, value)

    return check_floating


def _check_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Invalid("string", value)


def _check_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise _Invalid("bytes", value)


_check_long = _ranged("long", *_LONG_RANGE)

_PRIMITIVES: dict[str, Check] = {
    "null": _check_null,
    "boolean": _check_boolean,
    "int": _ranged("int", *_INT_RANGE),
    "long": _check_long,
    "float": _floating("float"),
    "double": _floating("double"),
    "string": _check_string,
    "bytes": _check_bytes,
}


def _check_timestamp(value: Any) -> int:
    if type(value) is int:
        return _check_long(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Invalid(TIMESTAMP_EXPECTED, value) from None
        return _datetime_millis(parsed)
    if isinstance(value, datetime):
        return _datetime_millis(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _check_long(value)
    raise _Invalid(TIMESTAMP_EXPECTED, value)


def _datetime_millis(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # naive means UTC, whatever the host's zone
    return (value - _EPOCH) // _MILLISECOND


# -- ISO rendering ------------------------------------------------------------------------


def _renderer(schema: Any) -> Render | None:
    """A function rendering the timestamps inside values of `schema` as ISO-8601, or
    None when the schema holds no timestamp (the value is then used as is)."""
    if isinstance(schema, str):
        return None
    if isinstance(schema, list):
        inner = [_renderer(branch) for branch in schema]
        if len(schema) == 2 and "null" in schema:
            render = inner[1 - schema.index("null")]
            if render is None:
                return None
            return lambda value: None if value is None else render(value)
        return None  # unions of several non-null types hold no timestamp in our contracts
    kind = schema["type"]
    if kind == "long" and schema.get("logicalType") == "timestamp-millis":
        return _render_timestamp
    if kind == "record":
        fields = [(f["name"], r) for f in schema["fields"] if (r := _renderer(f["type"]))]
        if not fields:
            return None

        def render_record(value: dict[str, Any]) -> dict[str, Any]:
            out = dict(value)
            for name, render in fields:
                if name in out:
                    out[name] = render(out[name])
            return out

        return render_record
    if kind == "array":
        item = _renderer(schema["items"])
        return None if item is None else lambda value: [item(v) for v in value]
    if kind == "map":
        item = _renderer(schema["values"])
        return None if item is None else lambda value: {k: item(v) for k, v in value.items()}
    return None


def _render_timestamp(value: Any) -> Any:
    return iso_from_millis(value) if isinstance(value, int) else value
