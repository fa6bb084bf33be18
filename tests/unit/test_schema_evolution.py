"""Schema evolution: newer readers read released data; `schemas check` catches breaks."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.contracts.codec import Codec, DecodeError
from streams.contracts.roles import CONTRACT_ROLES, OPERATIONS_ROLES
from streams.contracts.schema_check import check, main
from streams.contracts.schemas import clear_cache, load_contracts
from streams.settings import REPO_ROOT
from tests.examples import EXAMPLES

SCHEMAS = REPO_ROOT / "schemas"

Schema = dict[str, Any]


def copy_schemas(target: Path) -> Path:
    shutil.copytree(SCHEMAS, target)
    return target


def edit(schemas_dir: Path, role: str, change: Callable[[Schema], None]) -> None:
    path = schemas_dir / f"{role}.avsc"
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2))


def payload_record(envelope: Schema, name: str) -> Schema:
    return next(branch for branch in field(envelope, "payload")["type"] if branch["name"] == name)


def field(record: Schema, name: str) -> Schema:
    return next(f for f in record["fields"] if f["name"] == name)


def v2_adds_fields_with_defaults(orders: Schema) -> None:
    placed = payload_record(orders, "OrderPlaced")
    placed["fields"].append({"name": "priority", "type": "string", "default": "NORMAL", "doc": "v2"})
    line = field(placed, "lines")["type"]["items"]
    line["fields"].append({"name": "uom", "type": "string", "default": "EA", "doc": "v2"})


@pytest.fixture()
def v1(tmp_path: Path) -> Path:
    """The repository's schemas as they are: current == released/1."""
    return copy_schemas(tmp_path / "v1")


@pytest.fixture()
def v2(tmp_path: Path) -> Path:
    """v1 released, then OrderPlaced and OrderLine gained a field with a default."""
    schemas = copy_schemas(tmp_path / "v2")
    edit(schemas, "orders", v2_adds_fields_with_defaults)
    return schemas


def expected_v2(flat: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(flat))
    out["priority"] = "NORMAL"
    for line in out["lines"]:
        line["uom"] = "EA"
    return out


# -- reading old data -------------------------------------------------------------------


UNRELEASED_FIELDS = {"order-status": ["closed_breaches"]}
"""Fields added (with defaults) since release 1, waiting for release 2 (docs/sla.md)."""


def test_repository_schemas_are_released_as_version_1() -> None:
    contracts = load_contracts(SCHEMAS)
    assert contracts.releases[0] == 1
    for role in CONTRACT_ROLES:
        if role in OPERATIONS_ROLES:  # topics added after release 1 (issue 16): released with the next one
            assert not (SCHEMAS / "released" / "1" / f"{role}.avsc").exists()
            continue
        released = json.loads((SCHEMAS / "released" / "1" / f"{role}.avsc").read_text())
        current = json.loads(json.dumps(contracts.raw[role]))
        pending = UNRELEASED_FIELDS.get(role, [])
        current["fields"] = [f for f in current["fields"] if f["name"] not in pending]
        assert all("default" in field(contracts.raw[role], name) for name in pending)
        assert released == current, f"{role}.avsc changed since release 1: release it"


def test_v2_reads_v1_single_object_data_with_defaults(v1: Path, v2: Path) -> None:
    old, new = Codec(schemas_dir=v1), Codec(schemas_dir=v2)
    placed = EXAMPLES["OrderPlaced"]
    data = old.encode_flat("orders", placed)
    v1_fingerprint = load_contracts(v1).fingerprints["orders"]
    assert data[2:10] == v1_fingerprint != load_contracts(v2).fingerprints["orders"]
    assert load_contracts(v2).writers[v1_fingerprint].version == "released/1"

    assert new.decode_flat("orders", data) == expected_v2(placed)
    # unchanged events of the same topic resolve too
    assert new.decode_flat("orders", old.encode_flat("orders", EXAMPLES["OrderAccepted"])) == EXAMPLES["OrderAccepted"]


def test_v1_cannot_read_v2_data_until_it_is_released_to_it(v1: Path, v2: Path) -> None:
    """Forward compatibility is not promised: an old reader names the unknown fingerprint."""
    data = Codec(schemas_dir=v2).encode_flat("orders", expected_v2(EXAMPLES["OrderPlaced"]))
    with pytest.raises(DecodeError, match="orders: unknown writer schema fingerprint"):
        Codec(schemas_dir=v1).decode("orders", data)


def test_v2_reads_v1_data_through_the_registry(v1: Path, v2: Path) -> None:
    registry = SchemaRegistryClient.new_client({"url": "mock://evolution"})
    old = Codec(schemas_dir=v1, registry_client=registry)
    data = old.encode_flat("orders", EXAMPLES["OrderPlaced"])
    v1_id = int.from_bytes(data[1:5], "big")

    new = Codec(schemas_dir=v2, registry_client=registry)
    assert new.decode_flat("orders", data) == expected_v2(EXAMPLES["OrderPlaced"])

    # the v2 writer registers its own version under the same subject
    v2_data = new.encode_flat("orders", expected_v2(EXAMPLES["OrderPlaced"]))
    assert int.from_bytes(v2_data[1:5], "big") != v1_id
    assert sorted(registry.get_versions("o2c.orders-value")) == [1, 2]
    assert new.decode_flat("orders", v2_data) == expected_v2(EXAMPLES["OrderPlaced"])


def test_registry_writer_unknown_to_the_repository_is_resolved(v2: Path, tmp_path: Path) -> None:
    """A writer schema only the registry knows (not in released/) still resolves."""
    registry = SchemaRegistryClient.new_client({"url": "mock://evolution-unreleased"})
    unreleased = copy_schemas(tmp_path / "unreleased")
    shutil.rmtree(unreleased / "released")
    data = Codec(schemas_dir=unreleased, registry_client=registry).encode_flat("atp", EXAMPLES["AtpChanged"])

    def v2_atp(atp: Schema) -> None:
        atp["fields"].append({"name": "in_transit", "type": "long", "default": 0})

    edit(v2, "atp", v2_atp)
    shutil.rmtree(v2 / "released")
    decoded = Codec(schemas_dir=v2, registry_client=registry).decode("atp", data)
    assert decoded == {**EXAMPLES["AtpChanged"], "in_transit": 0}


# -- the compatibility check ------------------------------------------------------------


def test_repository_schemas_pass_the_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert check(SCHEMAS) == []
    assert main(["--schemas-dir", str(SCHEMAS)]) == 0
    assert capsys.readouterr().out == f"schemas check: OK, {SCHEMAS} reads released/1\n"
    assert main([str(SCHEMAS)]) == 0  # the directory may also be given positionally


def test_added_field_with_default_passes(v2: Path) -> None:
    assert check(v2) == []


def test_new_field_without_default_fails(v1: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def add_required(orders: Schema) -> None:
        payload_record(orders, "OrderPlaced")["fields"].append({"name": "incoterm", "type": "string"})
        line = field(payload_record(orders, "OrderPlaced"), "lines")["type"]["items"]
        line["fields"].append({"name": "uom", "type": "string"})

    edit(v1, "orders", add_required)
    assert check(v1) == [
        "orders.avsc cannot read data written with released/1: OrderEvent.payload(OrderPlaced).lines[].uom: "
        "new field without a default (data written before has no value for it)",
        "orders.avsc cannot read data written with released/1: OrderEvent.payload(OrderPlaced).incoterm: "
        "new field without a default (data written before has no value for it)",
    ]
    assert main(["--schemas-dir", str(v1)]) == 1
    err = capsys.readouterr().err
    assert "OrderPlaced).incoterm: new field without a default" in err
    assert err.endswith(f"schemas check: 2 incompatible change(s) in {v1}\n")


def test_type_change_long_to_string_fails(v1: Path) -> None:
    def quantity_as_string(shipments: Schema) -> None:
        line = field(payload_record(shipments, "ShipmentPicked"), "lines")["type"]["items"]
        field(line, "quantity")["type"] = "string"

    edit(v1, "shipments", quantity_as_string)
    # ShipmentLine is shared: ShipmentDispatched breaks with it
    assert check(v1) == [
        "shipments.avsc cannot read data written with released/1: "
        "ShipmentEvent.payload(ShipmentPicked).lines[].quantity: type changed from long to string",
        "shipments.avsc cannot read data written with released/1: "
        "ShipmentEvent.payload(ShipmentDispatched).lines[].quantity: type changed from long to string",
    ]


def test_removed_enum_symbol_fails(v1: Path) -> None:
    def drop_marketplace(orders: Schema) -> None:
        field(payload_record(orders, "OrderPlaced"), "channel")["type"]["symbols"].remove("MARKETPLACE")

    edit(v1, "orders", drop_marketplace)
    assert check(v1) == [
        "orders.avsc cannot read data written with released/1: OrderEvent.payload(OrderPlaced).channel: "
        "enum Channel lost symbol(s) MARKETPLACE and has no default to read them as",
    ]


def test_output_schema_change_is_checked_too(v1: Path) -> None:
    def seq_as_int(status: Schema) -> None:
        field(status, "seq")["type"] = "int"  # int cannot read long

    edit(v1, "order-status", seq_as_int)
    assert check(v1) == [
        "order-status.avsc cannot read data written with released/1: OrderStatusChanged.seq: "
        "type changed from long to int",
    ]


def test_removed_event_type_fails(v1: Path) -> None:
    def drop_refunds(payments: Schema) -> None:
        union = field(payments, "payload")["type"]
        union[:] = [branch for branch in union if branch["name"] != "PaymentRefunded"]

    edit(v1, "payments", drop_refunds)
    assert check(v1) == [
        "payments.avsc cannot read data written with released/1: PaymentEvent.payload: "
        "the union no longer has a branch for record PaymentRefunded",
    ]


def test_removed_schema_file_fails(v1: Path) -> None:
    (v1 / "atp.avsc").unlink()
    assert check(v1) == [
        "atp.avsc: removed, but released/1/atp.avsc is released: data written with it could no "
        "longer be read (restore the file)",
    ]


def test_every_release_is_checked_not_only_the_newest(v2: Path) -> None:
    """v2 released; v3 drops v1's OrderLine.warehouse_id default: v1 data breaks."""
    shutil.copytree(v2, v2 / "released" / "2", ignore=shutil.ignore_patterns("released"))

    def drop_uom_default(orders: Schema) -> None:
        line = field(payload_record(orders, "OrderPlaced"), "lines")["type"]["items"]
        del field(line, "uom")["default"]

    edit(v2, "orders", drop_uom_default)
    problems = check(v2)
    assert problems == [
        "orders.avsc cannot read data written with released/1: OrderEvent.payload(OrderPlaced).lines[].uom: "
        "new field without a default (data written before has no value for it)",
    ]


def test_release_procedure_keeps_old_data_readable(v1: Path, v2: Path) -> None:
    """Releasing v2 = copying its schemas to released/2; both versions then decode."""
    old_data = Codec(schemas_dir=v1).encode_flat("orders", EXAMPLES["OrderPlaced"])
    new_data = Codec(schemas_dir=v2).encode_flat("orders", expected_v2(EXAMPLES["OrderPlaced"]))
    release = v2 / "released" / "2"
    release.mkdir()
    for path in v2.glob("*.avsc"):
        shutil.copy(path, release / path.name)
    assert check(v2) == []
    clear_cache()  # contracts are loaded once per directory; this one just changed
    contracts = load_contracts(v2)
    assert contracts.releases == (1, 2)
    codec = Codec(schemas_dir=v2)
    assert codec.decode_flat("orders", old_data) == expected_v2(EXAMPLES["OrderPlaced"])
    assert codec.decode_flat("orders", new_data) == expected_v2(EXAMPLES["OrderPlaced"])


def test_invalid_current_schema_is_reported(v1: Path) -> None:
    (v1 / "atp.avsc").write_text('{"type": "record", "name": "AtpChanged", "fields": [{"name": "x", "type": "lng"}]}')
    problems = check(v1)
    assert len(problems) == 1 and problems[0].startswith("atp.avsc: not a valid Avro schema: ")
