"""Flat form: validation names the exact path, defaults are filled, keys are right."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from streams.contracts.flat import (
    ValidationError,
    iso_from_millis,
    key_of,
    millis_from,
    render_iso,
    to_flat,
    to_record,
    validate_record,
)
from streams.contracts.roles import CONTRACT_ROLES
from streams.contracts.schemas import load_contracts
from streams.settings import REPO_ROOT
from tests.examples import EXAMPLES, T0

CONTRACTS = load_contracts(REPO_ROOT / "schemas")
EVENT_TYPES = sorted(CONTRACTS.event_roles)
TS = "timestamp-millis (epoch millis or ISO-8601 string)"


def role_of(event_type: str) -> str:
    return CONTRACTS.event_roles[event_type]


def example(name: str, /, **changes: Any) -> dict[str, Any]:
    flat = copy.deepcopy(EXAMPLES[name])
    flat.update(changes)
    return flat


def invalid(role: str, flat: Any) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        to_record(role, flat, contracts=CONTRACTS)
    return err.value


# -- round trip and defaults ------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_flat_record_flat_round_trip(event_type: str) -> None:
    role, flat = role_of(event_type), EXAMPLES[event_type]
    record = to_record(role, flat, contracts=CONTRACTS)
    assert to_flat(role, record, contracts=CONTRACTS) == flat
    if role in ("orders", "shipments", "payments", "inventory"):
        assert record["event_type"] == event_type
        assert set(record["payload"]) == {f["name"] for f in CONTRACTS.event_records[event_type]["fields"]}


def test_record_form_moves_payload_fields_under_payload() -> None:
    record = to_record("orders", EXAMPLES["OrderHoldApplied"], contracts=CONTRACTS)
    assert list(record) == ["event_id", "event_type", "occurred_at", "source", "correlation_id", "order_id", "payload"]
    assert record["payload"] == {"hold_type": "CREDIT", "reason": "credit limit exceeded by 1,250.00 EUR"}


def test_defaults_of_optional_fields_are_filled() -> None:
    flat = example("OrderPlaced")
    for name in ("correlation_id", "payment_terms_days", "promised_ship_at"):
        del flat[name]
    del flat["lines"][0]["warehouse_id"]
    record = to_record("orders", flat, contracts=CONTRACTS)
    assert record["correlation_id"] is None
    assert record["payload"]["payment_terms_days"] == 30
    assert record["payload"]["promised_ship_at"] is None
    assert record["payload"]["lines"][0]["warehouse_id"] is None
    cancel = to_record("orders", example("OrderLineCancelled", quantity=None), contracts=CONTRACTS)
    assert cancel["payload"]["quantity"] is None


def test_to_record_does_not_touch_its_input() -> None:
    flat = example("OrderPlaced")
    before = copy.deepcopy(flat)
    record = to_record("orders", flat, contracts=CONTRACTS)
    record["payload"]["lines"][0]["quantity"] = 1
    assert flat == before


def test_output_flat_form_is_the_record_itself() -> None:
    atp = EXAMPLES["AtpChanged"]
    assert to_flat("atp", atp) is atp
    assert to_record("atp", atp, contracts=CONTRACTS) == atp


# -- timestamps -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        T0,
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.000Z",
        "2026-01-01T01:00:00+01:00",
        "2025-12-31T19:00:00-05:00",
        "2026-01-01T00:00:00",  # naive: UTC
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1),  # naive: UTC
    ],
)
def test_timestamps_as_epoch_millis_iso_strings_or_datetimes(given: Any) -> None:
    record = to_record("orders", example("OrderAccepted", occurred_at=given), contracts=CONTRACTS)
    assert record["occurred_at"] == T0
    assert millis_from(given) == T0


def test_iso_keeps_milliseconds() -> None:
    assert millis_from("2026-01-01T08:30:00.123Z") == T0 + 8 * 3_600_000 + 30 * 60_000 + 123
    assert iso_from_millis(T0 + 8 * 3_600_000 + 30 * 60_000 + 123) == "2026-01-01T08:30:00.123Z"
    assert iso_from_millis(T0) == "2026-01-01T00:00:00.000Z"


def test_bad_timestamp_string() -> None:
    err = invalid("orders", example("OrderAccepted", occurred_at="yesterday"))
    assert str(err) == f'occurred_at: expected {TS}, got string "yesterday"'
    assert (err.path, err.expected, err.found) == ("occurred_at", TS, 'string "yesterday"')


def test_bad_optional_timestamp_says_null_was_fine() -> None:
    err = invalid("orders", example("OrderPlaced", promised_ship_at="next week"))
    assert str(err) == f'promised_ship_at: expected null or {TS}, got string "next week"'


def test_render_iso_for_json_output() -> None:
    flat = render_iso("orders", EXAMPLES["OrderPlaced"], contracts=CONTRACTS)
    assert flat["occurred_at"] == "2026-01-01T01:00:00.000Z"
    assert flat["promised_ship_at"] == "2026-01-03T00:00:00.000Z"
    assert EXAMPLES["OrderPlaced"]["occurred_at"] == T0 + 3_600_000  # input untouched
    status = to_flat("order-status", EXAMPLES["OrderStatusChanged"], iso_timestamps=True, contracts=CONTRACTS)
    assert status["milestones"]["placed_at"] == "2026-01-01T01:00:00.000Z"
    assert status["milestones"]["shipped_at"] is None
    assert status["lines"][0]["promised_at"] is None
    assert status["lines"][1]["promised_at"] == "2026-01-08T00:00:00.000Z"
    assert status["open_breaches"][0]["detected_at"] == "2026-01-01T04:00:01.500Z"
    assert status["seq"] == 4
    # ISO output is valid input again
    assert to_record("order-status", status, contracts=CONTRACTS) == EXAMPLES["OrderStatusChanged"]


# -- validation errors ------------------------------------------------------------------


def test_nested_wrong_type_names_the_path() -> None:
    flat = example("OrderPlaced")
    flat["lines"][2]["quantity"] = "x"
    err = invalid("orders", flat)
    assert str(err) == 'lines[2].quantity: expected long, got string "x"'
    assert (err.path, err.expected, err.found) == ("lines[2].quantity", "long", 'string "x"')


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"customer_id": 42}, "customer_id: expected string, got integer 42"),
        ({"region": None}, "region: expected string, got null"),
        ({"payment_terms_days": 2**31}, "payment_terms_days: expected int, got integer 2147483648 (out of range)"),
        ({"payment_terms_days": True}, "payment_terms_days: expected int, got boolean true"),
        ({"lines": {"line_id": "10"}}, "lines: expected array of record OrderLine, got object"),
        ({"lines": ["10"]}, 'lines[0]: expected record OrderLine, got string "10"'),
        ({"channel": "FAX"}, 'channel: expected enum Channel (EDI, ECOM, SALES, MARKETPLACE), got string "FAX"'),
        ({"channel": "edi"}, 'channel: expected enum Channel (EDI, ECOM, SALES, MARKETPLACE), got string "edi"'),
        ({"correlation_id": 7}, "correlation_id: expected null or string, got integer 7"),
    ],
)
def test_wrong_types(changes: dict[str, Any], message: str) -> None:
    assert str(invalid("orders", example("OrderPlaced", **changes))) == message


def test_floats_are_not_longs() -> None:
    flat = example("OrderPlaced")
    flat["lines"][1]["unit_price_minor"] = 7.0
    err = invalid("orders", flat)
    assert str(err) == "lines[1].unit_price_minor: expected long, got number 7.0"


def test_missing_required_field() -> None:
    flat = example("OrderPlaced")
    del flat["customer_id"]
    err = invalid("orders", flat)
    assert str(err) == "customer_id: missing required field (expected string)"
    assert (err.path, err.expected, err.found) == ("customer_id", "string", "nothing")
    flat = example("OrderPlaced")
    del flat["lines"][1]["sku"]
    assert str(invalid("orders", flat)) == "lines[1].sku: missing required field (expected string)"
    flat = example("OrderAccepted")
    del flat["order_id"]
    assert str(invalid("orders", flat)) == "order_id: missing required field (expected string)"


def test_unknown_fields_are_rejected_by_name() -> None:
    err = invalid("orders", example("OrderPlaced", colour="red"))
    assert str(err) == "colour: unknown field for OrderPlaced"
    assert err.path == "colour"
    flat = example("OrderPlaced")
    flat["lines"][0]["discount"] = 5
    assert str(invalid("orders", flat)) == "lines[0].discount: unknown field for OrderLine"
    # a field of another event of the same topic is unknown too
    assert str(invalid("orders", example("OrderAccepted", reason="x"))) == "reason: unknown field for OrderAccepted"
    assert str(invalid("atp", example("AtpChanged", order_id="SO-1"))) == "order_id: unknown field for AtpChanged"


def test_event_type_problems() -> None:
    known = "OrderPlaced, OrderAccepted, OrderHoldApplied, OrderHoldReleased, OrderLineChanged, OrderLineCancelled, OrderCancelled"
    err = invalid("orders", example("OrderAccepted", event_type="OrderShipped"))
    assert str(err) == f'event_type: unknown event type "OrderShipped" for topic orders (expected one of {known})'
    assert (err.path, err.expected) == ("event_type", f"one of {known}")
    err = invalid("orders", example("OrderAccepted", event_type="InventoryReceived"))
    assert str(err) == "event_type: InventoryReceived is an event of topic inventory, not orders"
    flat = example("OrderAccepted")
    del flat["event_type"]
    assert str(invalid("orders", flat)) == f"event_type: missing required field (expected one of {known})"
    assert str(invalid("orders", example("OrderAccepted", event_type=3))) == (
        f"event_type: expected one of {known}, got integer 3"
    )


def test_not_an_object() -> None:
    assert str(invalid("orders", ["OrderPlaced"])) == "expected object, got array of 1 item"
    assert str(invalid("atp", "x")) == 'expected record AtpChanged, got string "x"'


def test_output_records_are_validated() -> None:
    flat = example("AtpChanged")
    del flat["atp"]
    assert str(invalid("atp", flat)) == "atp: missing required field (expected long)"
    status = example("OrderStatusChanged", status="SHIPPING")
    assert str(invalid("order-status", status)).startswith('status: expected enum OrderStatus (SUBMITTED, ACCEPTED,')
    status = example("OrderStatusChanged")
    status["milestones"]["paid_at"] = "soon"
    assert str(invalid("order-status", status)) == f'milestones.paid_at: expected null or {TS}, got string "soon"'
    status = example("OrderStatusChanged")
    status["lines"][1]["backordered"] = "800"
    assert str(invalid("order-status", status)) == 'lines[1].backordered: expected long, got string "800"'
    breach = example("SlaBreached", clock="wall")
    assert str(invalid("sla-breaches", breach)) == 'clock: expected enum Clock (WALL, EVENT), got string "wall"'


def test_record_form_paths_start_with_payload() -> None:
    record = to_record("orders", EXAMPLES["OrderPlaced"], contracts=CONTRACTS)
    record["payload"]["lines"][1]["quantity"] = "many"
    with pytest.raises(ValidationError) as err:
        validate_record("orders", record, contracts=CONTRACTS)
    assert str(err.value) == 'payload.lines[1].quantity: expected long, got string "many"'


def test_unknown_role() -> None:
    with pytest.raises(ValueError, match="unknown topic role 'dlq'"):
        to_record("dlq", {})


# -- keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_key_of_every_event(event_type: str) -> None:
    role, flat = role_of(event_type), EXAMPLES[event_type]
    expected = flat["sku"] if role in ("inventory", "atp") else flat["case_key"] if role == "case-actions" else flat["order_id"]
    assert key_of(role, flat) == expected
    assert key_of(role, to_record(role, flat, contracts=CONTRACTS)) == expected  # record form too


def test_exception_key_falls_back_to_sku() -> None:
    exception = example("BusinessException", order_id=None, sku="SKU-BOLT-M8", code="NEGATIVE_ATP")
    assert key_of("exceptions", exception) == "SKU-BOLT-M8"
    with pytest.raises(ValidationError) as err:
        key_of("exceptions", example("BusinessException", order_id=None, sku=None))
    assert str(err.value) == "order_id: no Kafka key: the exceptions event has no order_id nor sku"
    with pytest.raises(ValidationError) as err:
        key_of("orders", example("OrderAccepted", order_id=17))
    assert str(err.value) == "order_id: expected string, got integer 17"


def test_every_role_has_a_key() -> None:
    assert {role for role in CONTRACT_ROLES} == {role_of(t) for t in EXAMPLES}
