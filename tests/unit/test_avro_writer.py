"""The compiled writers write fastavro's bytes, or step aside (streams/contracts/avro_writer.py).

Generated from the contract schemas themselves: valid data must come out byte-identical to
fastavro's `schemaless_writer`; data with a wrong leaf or an unknown field either comes out
identical too (fastavro takes it the same way) or raises `Unsure`, never other bytes.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contracts.avro_writer import Unsure, compile_writer
from streams.contracts.codec import Codec
from streams.contracts.roles import OUTPUT_ROLES
from streams.contracts.schemas import load_contracts

CONTRACTS = load_contracts(Path(__file__).resolve().parents[2] / "schemas")

JUNK = st.sampled_from([None, True, False, 1.5, math.inf, -1, 0, 2**63, -(2**63) - 1, 2**31, "", "x", b"x", [], {}, ()])


def data_for(schema: Any, named: dict[str, Any], junk: bool) -> st.SearchStrategy[Any]:
    """Values of an Avro schema; with `junk`, any leaf may be something else and records may
    miss fields or carry unknown ones."""
    valid = _valid(schema, named, junk)
    return st.one_of(valid, JUNK) if junk else valid


def _valid(schema: Any, named: dict[str, Any], junk: bool) -> st.SearchStrategy[Any]:
    if isinstance(schema, list):
        return st.one_of([data_for(branch, named, junk) for branch in schema])
    if isinstance(schema, str) and schema in named:
        return data_for(named[schema], named, junk)
    kind = schema if isinstance(schema, str) else schema["type"]
    if isinstance(schema, dict) and "name" in schema:
        named.setdefault(schema["name"], schema)
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "int":
        return st.integers(-(2**31), 2**31 - 1)
    if kind == "long":
        return st.one_of(st.integers(-70, 70), st.integers(-(2**63), 2**63 - 1), st.integers(1_600_000_000_000, 1_900_000_000_000))
    if kind in ("float", "double"):
        return st.floats(width=32 if kind == "float" else 64)
    if kind == "string":
        return st.one_of(st.sampled_from(["", "SKU-1", "WH-1", "ORD-000001"]), st.text(max_size=200))
    if kind == "bytes":
        return st.binary(max_size=50)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(data_for(schema["items"], named, junk), max_size=4)
    if kind == "record":
        fields = schema["fields"]
        required = {f["name"]: data_for(f["type"], named, junk) for f in fields if "default" not in f}
        optional = {f["name"]: data_for(f["type"], named, junk) for f in fields if "default" in f}
        if junk:
            optional |= {name: data_for(schema, named, False) for name in list(required)[:2]}
            required = {name: value for name, value in list(required.items())[2:]}
            optional["unknown_field"] = JUNK
        return st.fixed_dictionaries(required, optional=optional)
    raise AssertionError(f"no strategy for {schema!r}")


def fastavro_body(schema: dict[str, Any], datum: Any) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, schema, datum, strict_allow_default=True)
    return buffer.getvalue()


@pytest.mark.parametrize("role", OUTPUT_ROLES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_valid_records_are_byte_identical(role: str, data: st.DataObject) -> None:
    schema = CONTRACTS.parsed[role]
    datum = data.draw(data_for(CONTRACTS.raw[role], {}, junk=False))
    assert compile_writer(schema)(datum) == fastavro_body(schema, datum)


@pytest.mark.parametrize("role", OUTPUT_ROLES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_doubtful_records_are_identical_or_refused(role: str, data: st.DataObject) -> None:
    schema = CONTRACTS.parsed[role]
    datum = data.draw(data_for(CONTRACTS.raw[role], {}, junk=True))
    try:
        compiled = compile_writer(schema)(datum)
    except Unsure:
        return  # the generic writer decides, as before
    assert compiled == fastavro_body(schema, datum)


def test_refusals_fall_back_to_the_generic_writer_and_its_errors() -> None:
    codec = Codec(schemas_dir=CONTRACTS.schemas_dir)
    compiled = compile_writer(CONTRACTS.parsed["exceptions"])
    good = {
        "code": "NEGATIVE_ATP",
        "order_id": None,
        "sku": "SKU-1",
        "detail": "stock below zero",
        "cause_event_id": "e-1",
        "occurred_at": 1_764_800_000_000,
    }
    body = fastavro_body(CONTRACTS.parsed["exceptions"], good)
    assert compiled(good) == body
    assert codec.encode("exceptions", good).endswith(body)
    # a datetime is refused by the compiled writer and normalized by the generic way
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(1_764_800_000, tz=UTC)
    with pytest.raises(Unsure):
        compiled({**good, "occurred_at": moment})
    assert codec.encode("exceptions", {**good, "occurred_at": moment}).endswith(body)
    with pytest.raises(Unsure):
        compiled({**good, "surprise": 1})
    with pytest.raises(Exception, match="surprise|unknown|extra|field"):
        codec.encode("exceptions", {**good, "surprise": 1})
