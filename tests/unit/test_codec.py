"""Codec: both framings round-trip every event, and undecodable bytes say why."""

from __future__ import annotations

import copy
import io
from datetime import UTC, datetime, timedelta, timezone

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro import schemaless_writer
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from streams.contracts.codec import Codec, CodecError, DecodeError, RegistryError, ValidationError
from streams.contracts.flat import to_record
from streams.contracts.roles import CONTRACT_ROLES, INPUT_ROLES
from streams.contracts.schemas import load_contracts
from streams.settings import REPO_ROOT, Settings
from tests.examples import EXAMPLES, T0

SCHEMAS = REPO_ROOT / "schemas"
CONTRACTS = load_contracts(SCHEMAS)
EVENT_TYPES = sorted(CONTRACTS.event_roles)  # discovered from the schemas


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(schemas_dir=SCHEMAS)


@pytest.fixture()
def registry() -> SchemaRegistryClient:
    return SchemaRegistryClient.new_client({"url": "mock://codec-tests"})


def role_of(event_type: str) -> str:
    return CONTRACTS.event_roles[event_type]


def rabin_fingerprint(data: bytes) -> int:
    """CRC-64-AVRO exactly as the Avro specification writes it."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


# -- round trips ------------------------------------------------------------------------


def test_examples_cover_every_event_type_of_every_topic() -> None:
    assert set(EXAMPLES) == set(CONTRACTS.event_roles)
    assert {role_of(t) for t in EXAMPLES} == set(CONTRACT_ROLES)
    assert len(CONTRACTS.event_types("orders")) == 7
    assert CONTRACTS.event_types("atp") == ("AtpChanged",)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_single_object_round_trip(codec: Codec, event_type: str) -> None:
    role, flat = role_of(event_type), EXAMPLES[event_type]
    data = codec.encode_flat(role, flat)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == CONTRACTS.fingerprints[role]
    assert codec.decode_flat(role, data) == flat
    assert codec.decode(role, data) == to_record(role, flat, contracts=CONTRACTS)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_confluent_round_trip(registry: SchemaRegistryClient, event_type: str) -> None:
    role, flat = role_of(event_type), EXAMPLES[event_type]
    writer = Codec(schemas_dir=SCHEMAS, registry_client=registry)
    data = writer.encode_flat(role, flat)
    schema_id = registry.get_latest_version(f"o2c.{role}-value").schema_id
    assert data[:5] == b"\x00" + schema_id.to_bytes(4, "big")
    assert writer.decode_flat(role, data) == flat
    # a fresh codec has to fetch the writer schema by id
    reader = Codec(schemas_dir=SCHEMAS, registry_client=registry)
    assert reader.decode_flat(role, data) == flat


def test_registry_codec_reads_both_framings(codec: Codec, registry: SchemaRegistryClient) -> None:
    with_registry = Codec(schemas_dir=SCHEMAS, registry_client=registry)
    flat = EXAMPLES["OrderPlaced"]
    assert with_registry.decode_flat("orders", codec.encode_flat("orders", flat)) == flat
    assert with_registry.decode_flat("orders", with_registry.encode_flat("orders", flat)) == flat


def test_codec_from_settings_uses_prefix_and_mock_registry_url() -> None:
    settings = Settings(schemas_dir=SCHEMAS, schema_registry_url="mock://from-settings", topic_prefix="acme.")
    codec = Codec(settings)
    assert codec.framing == "confluent"
    data = codec.encode_flat("atp", EXAMPLES["AtpChanged"])
    assert codec.registry.get_latest_version("acme.atp-value").schema_id == int.from_bytes(data[1:5], "big")
    assert Codec(Settings(schemas_dir=SCHEMAS)).framing == "single-object"


def test_fingerprint_is_the_specs_crc64_avro_of_the_canonical_form_little_endian() -> None:
    from fastavro.schema import to_parsing_canonical_form

    for role in CONTRACT_ROLES:
        canonical = to_parsing_canonical_form(CONTRACTS.raw[role])
        assert "logicalType" not in canonical and '"doc"' not in canonical
        expected = rabin_fingerprint(canonical.encode()).to_bytes(8, "little")
        assert CONTRACTS.fingerprints[role] == expected


def test_decoded_timestamps_are_epoch_millis_ints(codec: Codec) -> None:
    flat = codec.decode_flat("orders", codec.encode_flat("orders", EXAMPLES["OrderPlaced"]))
    assert type(flat["occurred_at"]) is int and type(flat["promised_ship_at"]) is int
    status = codec.decode("order-status", codec.encode("order-status", EXAMPLES["OrderStatusChanged"]))
    assert status["milestones"]["placed_at"] == T0 + 3_600_000
    assert status["open_breaches"][0]["due_at"] == T0 + 4 * 3_600_000


def test_encode_accepts_datetimes_naive_meaning_utc(codec: Codec) -> None:
    record = copy.deepcopy(EXAMPLES["SlaBreached"])
    record["due_at"] = datetime(2026, 1, 1, 4, tzinfo=UTC)
    record["detected_at"] = datetime(2026, 1, 1, 5, 0, 1, 500_000)  # naive: UTC
    decoded = codec.decode("sla-breaches", codec.encode("sla-breaches", record))
    assert decoded["due_at"] == T0 + 4 * 3_600_000
    assert decoded["detected_at"] == T0 + 5 * 3_600_000 + 1_500
    offset = datetime(2026, 1, 1, 6, tzinfo=timezone(timedelta(hours=2)))
    record["due_at"] = offset
    assert codec.decode("sla-breaches", codec.encode("sla-breaches", record))["due_at"] == T0 + 4 * 3_600_000


def test_encode_leaves_the_callers_record_untouched(codec: Codec) -> None:
    record = to_record("orders", EXAMPLES["OrderPlaced"], contracts=CONTRACTS)
    before = copy.deepcopy(record)
    codec.encode("orders", record)
    assert record == before


def test_payload_branch_follows_event_type_even_for_an_empty_record(codec: Codec) -> None:
    """OrderAccepted has no fields: any payload dict "fits" it, so guessing would be wrong."""
    accepted = to_record("orders", EXAMPLES["OrderAccepted"], contracts=CONTRACTS)
    assert accepted["payload"] == {}
    assert codec.decode("orders", codec.encode("orders", accepted))["event_type"] == "OrderAccepted"

    cancelled = dict(accepted, event_type="OrderCancelled")  # payload lacks its reason
    with pytest.raises(ValidationError) as err:
        codec.encode("orders", cancelled)
    assert str(err.value) == "payload.reason: missing required field (expected string)"

    placed_shape = dict(accepted, payload={"reason": "customer request"})  # OrderCancelled's shape
    with pytest.raises(ValidationError) as err:
        codec.encode("orders", placed_shape)
    assert str(err.value) == "payload.reason: unknown field for OrderAccepted"


def test_encode_explains_what_fastavro_refuses(codec: Codec) -> None:
    atp = dict(EXAMPLES["AtpChanged"], on_hand="12")
    with pytest.raises(ValidationError) as err:
        codec.encode("atp", atp)
    assert str(err.value) == 'on_hand: expected long, got string "12"'
    assert (err.value.path, err.value.expected, err.value.found) == ("on_hand", "long", 'string "12"')

    with pytest.raises(ValidationError) as err:
        codec.encode("orders", dict(to_record("orders", EXAMPLES["OrderCancelled"], contracts=CONTRACTS), event_type="Nope"))
    assert str(err.value).startswith('event_type: unknown event type "Nope" for topic orders (expected one of OrderPlaced,')


def test_encode_validate_refuses_floats_that_fastavro_would_truncate(codec: Codec) -> None:
    atp = dict(EXAMPLES["AtpChanged"], atp=1.5)
    with pytest.raises(ValidationError, match=r"^atp: expected long, got number 1\.5$"):
        codec.encode("atp", atp, validate=True)


def test_encode_flat_validates_before_encoding(codec: Codec) -> None:
    flat = copy.deepcopy(EXAMPLES["OrderPlaced"])
    flat["lines"][2]["quantity"] = "x"
    with pytest.raises(ValidationError) as err:
        codec.encode_flat("orders", flat)
    assert str(err.value) == 'lines[2].quantity: expected long, got string "x"'


def test_unknown_role_is_a_programming_error(codec: Codec) -> None:
    with pytest.raises(ValueError, match="unknown topic role 'order'"):
        codec.encode("order", {})
    with pytest.raises(ValueError, match="unknown topic role 'dlq'"):
        codec.decode("dlq", b"\xc3\x01")


# -- bytes that do not decode -----------------------------------------------------------


def _frame(codec: Codec, event_type: str = "OrderPlaced") -> bytes:
    return codec.encode_flat(role_of(event_type), EXAMPLES[event_type])


def _decode_error(codec: Codec, role: str, data: bytes) -> str:
    with pytest.raises(DecodeError) as err:
        codec.decode(role, data)
    assert isinstance(err.value, CodecError)
    return str(err.value)


def test_empty_value(codec: Codec) -> None:
    assert _decode_error(codec, "orders", b"") == (
        "orders: empty value (0 bytes): expected an Avro single-object (C3 01) or Confluent (00) frame"
    )
    assert _decode_error(codec, "orders", None) == (  # type: ignore[arg-type]
        "orders: no value (null): expected an Avro single-object (C3 01) or Confluent (00) frame"
    )


def test_random_bytes_and_bad_magic(codec: Codec) -> None:
    assert _decode_error(codec, "orders", bytes.fromhex("7f3a9be2c4")) == (
        "orders: unknown framing: value starts with 7F 3A, neither Avro single-object (C3 01) "
        "nor Confluent wire format (00)"
    )
    assert _decode_error(codec, "orders", b"\xc3\x02" + _frame(codec)[2:]) == (
        "orders: unknown framing: value starts with C3 02, neither Avro single-object (C3 01) "
        "nor Confluent wire format (00)"
    )
    assert _decode_error(codec, "orders", b'{"event_id": "e1"}').endswith(
        "nor Confluent wire format (00) (it looks like JSON, not Avro)"
    )


def test_unknown_fingerprint(codec: Codec) -> None:
    data = b"\xc3\x01" + bytes.fromhex("0102030405060708") + _frame(codec)[10:]
    assert _decode_error(codec, "orders", data) == (
        "orders: unknown writer schema fingerprint 0102030405060708: neither the current schema nor "
        f"any release under {SCHEMAS}/released/ has it (written with a schema that was never released here?)"
    )


def test_fingerprint_of_another_topic(codec: Codec) -> None:
    data = _frame(codec, "ShipmentDelivered")
    fingerprint = CONTRACTS.fingerprints["shipments"].hex()
    assert _decode_error(codec, "orders", data) == (
        f"orders: the writer schema (fingerprint {fingerprint}) is the shipments schema (current), "
        "not a orders schema: value on the wrong topic?"
    )


def test_truncated_header_and_body(codec: Codec) -> None:
    data = _frame(codec)
    assert _decode_error(codec, "orders", data[:6]) == (
        "orders: truncated single-object header: 6 bytes, need 10 (C3 01 + 8-byte fingerprint)"
    )
    assert _decode_error(codec, "orders", data[:-3]) == (
        f"orders: truncated Avro body: {len(data) - 13} body bytes end before the record does "
        "(writer schema current)"
    )
    assert _decode_error(codec, "orders", b"\x00\x00\x01") == (
        "orders: truncated Confluent header: 3 bytes, need 5 (00 + 4-byte schema id)"
    )


def test_trailing_bytes(codec: Codec) -> None:
    assert _decode_error(codec, "orders", _frame(codec) + b"\x00") == (
        "orders: corrupt Avro body: 1 byte(s) left after the end of the record (writer schema current)"
    )


def test_garbage_body_after_a_valid_header(codec: Codec) -> None:
    header = _frame(codec)[:10]
    message = _decode_error(codec, "orders", header + bytes([0x02, 0x41, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]))
    assert message.startswith("orders: ")
    assert "Avro body" in message and "writer schema current" in message


def test_event_type_disagreeing_with_the_payload_record(codec: Codec) -> None:
    record = to_record("orders", EXAMPLES["OrderPlaced"], contracts=CONTRACTS)
    datum = dict(record, event_type="OrderCancelled", payload=("o2c.OrderPlaced", record["payload"]))
    body = io.BytesIO()
    schemaless_writer(body, CONTRACTS.parsed["orders"], datum)
    data = b"\xc3\x01" + CONTRACTS.fingerprints["orders"] + body.getvalue()
    assert _decode_error(codec, "orders", data) == (
        'orders: event_type "OrderCancelled" does not match the payload record OrderPlaced'
    )


def test_confluent_frame_without_a_registry(codec: Codec) -> None:
    assert _decode_error(codec, "orders", b"\x00\x00\x00\x00\x07" + _frame(codec)[10:]) == (
        "orders: Confluent wire-format value (magic byte 00, schema id 7) but no schema registry "
        "is configured: set O2C_SCHEMA_REGISTRY_URL to read it"
    )


def test_unknown_schema_id(registry: SchemaRegistryClient) -> None:
    codec = Codec(schemas_dir=SCHEMAS, registry_client=registry)
    data = b"\x00\x00\x00\x01\x2c" + b"\x02"
    for _ in range(2):  # the second answer comes from the cache, same message
        assert _decode_error(codec, "orders", data) == (
            "orders: unknown schema id 300: the schema registry has no such schema"
        )


def test_schema_id_of_another_topic(registry: SchemaRegistryClient) -> None:
    codec = Codec(schemas_dir=SCHEMAS, registry_client=registry)
    data = codec.encode_flat("payments", EXAMPLES["PaymentReceived"])
    schema_id = int.from_bytes(data[1:5], "big")
    fresh = Codec(schemas_dir=SCHEMAS, registry_client=registry)
    assert _decode_error(fresh, "orders", data) == (
        f"orders: schema id {schema_id} is the payments schema (current), not a orders schema"
    )


class _DownRegistry:
    def register_schema(self, subject: str, schema: object) -> int:
        raise ConnectionError("connection refused")

    def get_schema(self, schema_id: int) -> object:
        raise ConnectionError("connection refused")


def test_registry_outage_is_not_a_decode_error() -> None:
    """Dead-lettering on an outage would lose good records: it must be told apart."""
    codec = Codec(schemas_dir=SCHEMAS, registry_client=_DownRegistry())  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="could not register the atp schema under subject o2c.atp-value"):
        codec.encode_flat("atp", EXAMPLES["AtpChanged"])
    with pytest.raises(RegistryError, match="schema registry unreachable fetching schema id 9"):
        codec.decode("atp", b"\x00\x00\x00\x00\x09\x02")


def test_input_roles_are_the_enveloped_ones() -> None:
    assert INPUT_ROLES == ("orders", "shipments", "payments", "inventory")
    for role in INPUT_ROLES:
        names = [f["name"] for f in CONTRACTS.raw[role]["fields"]]
        assert names[:5] == ["event_id", "event_type", "occurred_at", "source", "correlation_id"]
        assert names[-1] == "payload"


@hypothesis_settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=64))
def test_any_body_after_a_valid_header_decodes_or_raises_decode_error(body: bytes) -> None:
    """Bad bytes must never escape as anything but DecodeError: the app dead-letters those."""
    codec = Codec(schemas_dir=SCHEMAS)
    for role in ("orders", "order-status", "atp"):
        try:
            codec.decode(role, b"\xc3\x01" + CONTRACTS.fingerprints[role] + body)
        except DecodeError:
            pass


@hypothesis_settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=32))
def test_any_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        Codec(schemas_dir=SCHEMAS).decode("inventory", data)
    except DecodeError:
        pass
