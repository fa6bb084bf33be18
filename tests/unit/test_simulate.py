"""The traffic generator: contract-valid, deterministic, coherent per order, and paced."""

from __future__ import annotations

import importlib
from collections import Counter, defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contracts import roles
from streams.simulator.simulate import (
    INPUT_ROLES,
    KEY_FIELDS,
    TIME_FIELDS,
    SimEvent,
    SimulationConfig,
    Summary,
    generate,
    live,
    rate_limited,
    summary,
)

# --------------------------------------------------------------------------- the contract
# Transcribed from docs/contract-fields.md, independent of the Avro codec.

STR, INT = "str", "int"
OPT_STR, OPT_INT = "str|null", "int|null"
CHANNELS = {"EDI", "ECOM", "SALES", "MARKETPLACE"}
HOLD_TYPES = {"CREDIT", "FRAUD", "COMPLIANCE", "MANUAL"}
ADJUSTMENT_REASONS = {"DAMAGE", "SHRINK", "COUNT_CORRECTION", "RETURN_TO_STOCK", "OTHER"}
ORDER_LINE = {"line_id": STR, "sku": STR, "quantity": INT, "unit_price_minor": INT, "warehouse_id": OPT_STR}
SHIPMENT_LINE = {"line_id": STR, "quantity": INT}
INVOICE_LINE = {"line_id": STR, "quantity": INT, "amount_minor": INT}

CONTRACT: dict[str, dict[str, dict[str, Any]]] = {
    "orders": {
        "OrderPlaced": {
            "customer_id": STR,
            "channel": CHANNELS,
            "region": STR,
            "currency": STR,
            "payment_terms_days": INT,
            "promised_ship_at": OPT_INT,
            "lines": [ORDER_LINE],
        },
        "OrderAccepted": {},
        "OrderHoldApplied": {"hold_type": HOLD_TYPES, "reason": STR},
        "OrderHoldReleased": {"hold_type": HOLD_TYPES},
        "OrderLineChanged": {"line_id": STR, "quantity": INT},
        "OrderLineCancelled": {"line_id": STR, "quantity": OPT_INT, "reason": STR},
        "OrderCancelled": {"reason": STR},
    },
    "inventory": {
        "InventoryReceived": {"warehouse_id": STR, "quantity": INT, "source_doc": STR},
        "InventoryAdjusted": {"warehouse_id": STR, "delta": INT, "reason": ADJUSTMENT_REASONS},
        "InventorySnapshot": {"warehouse_id": STR, "on_hand": INT, "as_of": INT},
        "SafetyStockSet": {"warehouse_id": STR, "quantity": INT},
        "SupplyExpected": {"warehouse_id": STR, "supply_id": STR, "quantity": INT, "expected_at": INT},
    },
    "shipments": {
        "ShipmentPicked": {"shipment_id": STR, "warehouse_id": STR, "lines": [SHIPMENT_LINE]},
        "ShipmentDispatched": {
            "shipment_id": STR,
            "warehouse_id": STR,
            "carrier": STR,
            "tracking_number": STR,
            "lines": [SHIPMENT_LINE],
        },
        "ShipmentDelivered": {"shipment_id": STR},
    },
    "payments": {
        "InvoicePosted": {"invoice_id": STR, "lines": [INVOICE_LINE], "total_minor": INT, "due_at": OPT_INT},
        "PaymentReceived": {"payment_id": STR, "invoice_id": OPT_STR, "amount_minor": INT},
        "PaymentRefunded": {"payment_id": STR, "amount_minor": INT, "reason": STR},
    },
}
ENVELOPE = {"event_id": STR, "event_type": STR, "occurred_at": INT, "source": STR, "correlation_id": OPT_STR}
ALL_TYPES = {event_type for types in CONTRACT.values() for event_type in types}


def _check_value(kind: Any, value: Any, where: str) -> None:
    if kind == STR:
        assert type(value) is str and value, where
    elif kind == INT:
        assert type(value) is int, where
    elif kind == OPT_STR:
        assert value is None or (type(value) is str and value), where
    elif kind == OPT_INT:
        assert value is None or type(value) is int, where
    elif isinstance(kind, set):
        assert value in kind, where
    elif isinstance(kind, list):
        assert type(value) is list and value, f"{where}: a non-empty list"
        for i, element in enumerate(value):
            _check_record(kind[0], element, f"{where}[{i}]")
    else:  # pragma: no cover
        raise AssertionError(kind)


def _check_record(fields: dict[str, Any], record: dict[str, Any], where: str) -> None:
    assert type(record) is dict, where
    assert set(record) == set(fields), f"{where}: fields {sorted(record)} != {sorted(fields)}"
    for name, kind in fields.items():
        _check_value(kind, record[name], f"{where}.{name}={record[name]!r}")


def check_contract(sim: SimEvent) -> None:
    assert sim.role in CONTRACT, sim.role
    event = sim.event
    payload = CONTRACT[sim.role].get(event.get("event_type"))
    assert payload is not None, f"{event.get('event_type')} is not an event of {sim.role}"
    fields = {**ENVELOPE, KEY_FIELDS[sim.role]: STR, **payload}
    _check_record(fields, event, f"{sim.role}/{event['event_type']}")
    assert sim.key == event[KEY_FIELDS[sim.role]]


# --------------------------------------------------------------------------- fixtures

RUN_2000 = SimulationConfig(orders=2000, seed=7)


@pytest.fixture(scope="module")
def run() -> list[SimEvent]:
    return list(generate(RUN_2000))


@pytest.fixture(scope="module")
def unique(run: list[SimEvent]) -> list[SimEvent]:
    """The run without the intentional duplicates (first delivery of each event_id)."""
    seen: set[str] = set()
    out = []
    for sim in run:
        if sim.event["event_id"] not in seen:
            seen.add(sim.event["event_id"])
            out.append(sim)
    return out


def _by_order(events: list[SimEvent]) -> dict[str, list[tuple[int, SimEvent]]]:
    """Order events (with their emission position) grouped by order."""
    orders: dict[str, list[tuple[int, SimEvent]]] = defaultdict(list)
    for position, sim in enumerate(events):
        if sim.role != "inventory":
            orders[sim.event["order_id"]].append((position, sim))
    return orders


# --------------------------------------------------------------------------- determinism


def test_the_simulators_own_roles_and_keys_are_the_contracts():
    """The simulator imports nothing from the project, so it keeps a copy of the roles."""
    assert INPUT_ROLES == roles.INPUT_ROLES
    assert {role: (field,) for role, field in KEY_FIELDS.items()} == {r: roles.KEY_FIELDS[r] for r in roles.INPUT_ROLES}


def test_same_seed_same_stream_different_seed_different_stream():
    config = SimulationConfig(orders=300, seed=11)
    first = list(generate(config))
    assert first == list(generate(config))
    other = list(generate(SimulationConfig(orders=300, seed=12)))
    assert [s.event["event_id"] for s in other] != [s.event["event_id"] for s in first]
    assert [s.event for s in other] != [s.event for s in first]
    # ids carry the seed: two seeds never collide on orders or events
    assert not {s.event["event_id"] for s in first} & {s.event["event_id"] for s in other}
    assert not {s.key for s in first if s.role == "orders"} & {s.key for s in other if s.role == "orders"}


def test_generate_is_lazy_and_defaults_work():
    stream = generate(SimulationConfig(orders=10**9))  # would never fit in memory as a list
    head = [next(stream) for _ in range(1000)]
    assert len(head) == 1000
    assert next(generate()).role in INPUT_ROLES


def test_zero_orders_gives_only_the_opening_inventory():
    events = list(generate(SimulationConfig(orders=0, duplicate_share=0)))
    assert {s.role for s in events} == {"inventory"}
    assert Counter(s.event["event_type"] for s in events) == {"SafetyStockSet": 150, "InventoryReceived": 150}


def test_config_is_validated():
    with pytest.raises(ValueError):
        SimulationConfig(cancel_share=1.5)
    with pytest.raises(ValueError):
        SimulationConfig(orders=-1)
    with pytest.raises(ValueError):
        SimulationConfig(warehouses=())


# --------------------------------------------------------------------------- contract


def test_every_event_follows_the_contract(run):
    for sim in run:
        check_contract(sim)


def test_every_event_encodes_with_the_codec_when_it_exists(run):
    try:
        flat = importlib.import_module("streams.contracts.flat")
    except ImportError:
        pytest.skip("streams.contracts.flat is not there yet")
    for sim in run:
        record = flat.to_record(sim.role, sim.event)
        assert flat.key_of(sim.role, sim.event) == sim.key
        assert flat.to_flat(sim.role, record) == sim.event


def test_the_mix_contains_every_input_event_type(run):
    seen = {(s.role, s.event["event_type"]) for s in run}
    assert seen == {(role, t) for role, types in CONTRACT.items() for t in types}
    assert {s.event["event_type"] for s in run} == ALL_TYPES


def test_every_order_is_placed_once_and_master_data_is_consistent(unique):
    placed = [s.event for s in unique if s.event["event_type"] == "OrderPlaced"]
    assert len(placed) == RUN_2000.orders
    assert len({e["order_id"] for e in placed}) == RUN_2000.orders
    assert {e["channel"] for e in placed} == CHANNELS
    assert {e["region"] for e in placed} == {"EU", "NA", "APAC"}
    currency = {"EU": "EUR", "NA": "USD", "APAC": "SGD"}
    for e in placed:
        assert e["currency"] == currency[e["region"]]
        assert 1 <= len(e["lines"]) <= 5
        assert len({line["line_id"] for line in e["lines"]}) == len(e["lines"])
        assert len({line["sku"] for line in e["lines"]}) == len(e["lines"])
        assert all(line["quantity"] > 0 and line["unit_price_minor"] > 0 for line in e["lines"])
        assert e["promised_ship_at"] is None or e["promised_ship_at"] > e["occurred_at"]
    lines = [line for e in placed for line in e["lines"]]
    without = sum(line["warehouse_id"] is None for line in lines)
    assert 0.1 < without / len(lines) < 0.3
    assert any(e["promised_ship_at"] is not None for e in placed)
    assert any(e["correlation_id"] is None for e in placed) and any(e["correlation_id"] for e in placed)


# --------------------------------------------------------------------------- ids and duplicates


def test_event_ids_unique_except_exact_duplicates(run):
    first: dict[str, tuple[int, SimEvent]] = {}
    duplicates = 0
    for position, sim in enumerate(run):
        event_id = sim.event["event_id"]
        if event_id in first:
            original_position, original = first[event_id]
            assert sim == original, "a duplicate is an exact copy"
            assert sim.event is not original.event
            assert position > original_position
            duplicates += 1
        else:
            first[event_id] = (position, sim)
    counts = Counter(s.event["event_id"] for s in run)
    assert max(counts.values()) == 2
    assert 0.01 < duplicates / len(run) < 0.035


def test_business_ids_are_unique(unique):
    for event_type, id_field in [
        ("ShipmentDispatched", "shipment_id"),
        ("InvoicePosted", "invoice_id"),
        ("PaymentReceived", "payment_id"),
        ("SupplyExpected", "supply_id"),
    ]:
        ids = [s.event[id_field] for s in unique if s.event["event_type"] == event_type]
        assert ids and len(ids) == len(set(ids)), event_type


# --------------------------------------------------------------------------- coherence


def test_per_order_quantities_and_money_are_coherent(unique):
    checked_full = 0
    for order_id, events in _by_order(unique).items():
        events = sorted(events, key=lambda pe: (pe[1].event["occurred_at"], pe[0]))
        types = [s.event["event_type"] for _, s in events]
        assert types[0] == "OrderPlaced", (order_id, types)
        placed = events[0][1].event
        price = {line["line_id"]: line["unit_price_minor"] for line in placed["lines"]}
        ordered = {line["line_id"]: line["quantity"] for line in placed["lines"]}
        cancelled = dict.fromkeys(ordered, 0)
        shipped = dict.fromkeys(ordered, 0)
        invoiced = dict.fromkeys(ordered, 0)
        picked: dict[str, list] = {}
        dispatched: dict[str, list] = {}
        invoice_totals: dict[str, int] = {}
        paid = refunded = 0
        payments: dict[str, int] = {}
        for _, sim in events[1:]:
            e = sim.event
            t = e["event_type"]
            assert t != "OrderPlaced"
            if t == "OrderLineChanged":
                assert shipped[e["line_id"]] == 0
                ordered[e["line_id"]] = e["quantity"]
            elif t == "OrderLineCancelled":
                open_ = ordered[e["line_id"]] - cancelled[e["line_id"]] - shipped[e["line_id"]]
                q = open_ if e["quantity"] is None else e["quantity"]
                assert 0 < q <= open_
                cancelled[e["line_id"]] += q
            elif t == "OrderCancelled":
                assert not dispatched, "orders are cancelled before anything ships"
                for line_id in ordered:
                    cancelled[line_id] = ordered[line_id] - shipped[line_id]
            elif t == "ShipmentPicked":
                picked[e["shipment_id"]] = e["lines"]
            elif t == "ShipmentDispatched":
                assert picked[e["shipment_id"]] == e["lines"], "dispatched what was picked"
                dispatched[e["shipment_id"]] = e["lines"]
                for line in e["lines"]:
                    assert line["quantity"] > 0
                    shipped[line["line_id"]] += line["quantity"]
            elif t == "ShipmentDelivered":
                assert e["shipment_id"] in dispatched
            elif t == "InvoicePosted":
                assert e["total_minor"] == sum(line["amount_minor"] for line in e["lines"])
                for line in e["lines"]:
                    assert line["amount_minor"] == line["quantity"] * price[line["line_id"]]
                    invoiced[line["line_id"]] += line["quantity"]
                    assert invoiced[line["line_id"]] <= shipped[line["line_id"]]
                assert (
                    e["due_at"] is None
                    or e["due_at"] == e["occurred_at"] + placed["payment_terms_days"] * 86_400_000
                )
                invoice_totals[e["invoice_id"]] = e["total_minor"]
            elif t == "PaymentReceived":
                assert e["amount_minor"] > 0
                assert e["invoice_id"] is None or e["invoice_id"] in invoice_totals
                payments[e["payment_id"]] = e["amount_minor"]
                paid += e["amount_minor"]
            elif t == "PaymentRefunded":
                assert 0 < e["amount_minor"] <= payments[e["payment_id"]]
                refunded += e["amount_minor"]
        for line_id in ordered:
            assert shipped[line_id] <= ordered[line_id] - cancelled[line_id], (order_id, line_id)
        if dispatched:  # once an order ships, it ships everything still open
            assert all(shipped[i] == ordered[i] - cancelled[i] for i in ordered), order_id
            checked_full += 1
        if invoice_totals:  # one invoice per shipment, for the shipped quantities
            assert len(invoice_totals) == len(dispatched)
            assert invoiced == shipped, order_id
        if paid:  # collected in full, net of refunds of duplicate payments
            assert paid - refunded == sum(invoice_totals.values()), order_id
    assert checked_full > 0.8 * RUN_2000.orders


def test_milestones_follow_each_other_in_business_time(unique):
    for events in _by_order(unique).values():
        at: dict[str, list[int]] = defaultdict(list)
        for _, sim in events:
            at[sim.event["event_type"]].append(sim.event["occurred_at"])
        placed = min(at["OrderPlaced"])
        assert all(t >= placed for ts in at.values() for t in ts)
        if at["OrderAccepted"] and at["ShipmentPicked"]:
            assert min(at["ShipmentPicked"]) > max(at["OrderAccepted"])
        if at["ShipmentDispatched"]:
            assert min(at["ShipmentDispatched"]) > min(at["ShipmentPicked"])
        if at["ShipmentDelivered"]:
            assert min(at["ShipmentDelivered"]) > min(at["ShipmentDispatched"])
        if at["InvoicePosted"]:
            assert min(at["InvoicePosted"]) > min(at["ShipmentDispatched"])
        if at["PaymentReceived"]:
            assert min(at["PaymentReceived"]) > min(at["InvoicePosted"])


def test_business_time_mostly_advances_in_emission_order(run):
    late = 0
    high = run[0].event["occurred_at"]
    for sim in run:
        t = sim.event["occurred_at"]
        if t < high:
            late += 1  # duplicates and the deliberately delayed events
        high = max(high, t)
    assert late / len(run) < 0.06
    span_days = (high - run[0].event["occurred_at"]) / 86_400_000
    assert 10 < span_days < 365


def test_out_of_order_share_is_present(run):
    orders_out_of_order: set[str] = set()
    payment_before_invoice = shipment_before_placed = placed_after_accepted = 0
    placed_seen: set[str] = set()
    invoices_seen: set[str] = set()
    for sim in run:
        e = sim.event
        t = e["event_type"]
        if sim.role == "inventory":
            continue
        if t == "OrderPlaced":
            placed_seen.add(e["order_id"])
        elif e["order_id"] not in placed_seen:
            orders_out_of_order.add(e["order_id"])
            shipment_before_placed += sim.role == "shipments"
            placed_after_accepted += t == "OrderAccepted"
        if t == "InvoicePosted":
            invoices_seen.add(e["invoice_id"])
        elif t == "PaymentReceived" and e["invoice_id"] and e["invoice_id"] not in invoices_seen:
            payment_before_invoice += 1
            orders_out_of_order.add(e["order_id"])
    assert shipment_before_placed and placed_after_accepted and payment_before_invoice
    assert 0.01 < len(orders_out_of_order) / RUN_2000.orders < 0.04


def test_cancels_holds_lapses_and_backorder_material(unique):
    by_type: dict[str, set[str]] = defaultdict(set)
    for sim in unique:
        by_type[sim.event["event_type"]].add(sim.key)
    orders = RUN_2000.orders
    assert 0.02 < len(by_type["OrderCancelled"]) / orders < 0.05
    assert 0.03 < len(by_type["OrderHoldApplied"]) / orders < 0.08
    assert by_type["OrderHoldReleased"] <= by_type["OrderHoldApplied"]
    never_accepted = set(by_type["OrderPlaced"]) - by_type["OrderAccepted"] - by_type["OrderCancelled"]
    assert never_accepted, "some orders lapse before acceptance"
    shipments = [s.event for s in unique if s.event["event_type"] == "ShipmentDispatched"]
    placed = {s.key: s.event for s in unique if s.event["event_type"] == "OrderPlaced"}
    line_wh = {(o, line["line_id"]): line["warehouse_id"] for o, e in placed.items() for line in e["lines"]}
    rerouted = [
        e
        for e in shipments
        for line in e["lines"]
        if line_wh[e["order_id"], line["line_id"]] not in (None, e["warehouse_id"])
    ]
    assert rerouted, "some lines ship from another warehouse than their own"
    split = Counter(e["order_id"] for e in shipments)
    assert any(n > 1 for n in split.values())
    deltas = [s.event["delta"] for s in unique if s.event["event_type"] == "InventoryAdjusted"]
    assert min(deltas) < 0 < max(deltas)


def test_stock_runs_short_sometimes_without_going_physically_negative(unique):
    """Replay the stock the simulator describes: demand exceeds supply at times (backorders),
    but counts never report negative stock, and late supply is announced before it arrives."""
    expected: dict[str, int] = {}
    for sim in unique:
        e = sim.event
        if e["event_type"] == "SupplyExpected":
            assert e["expected_at"] > e["occurred_at"]
            expected[e["supply_id"]] = e["quantity"]
        elif e["event_type"] == "InventoryReceived" and not e["source_doc"].startswith("OPENING"):
            assert 0 < e["quantity"] <= expected[e["source_doc"]]
        elif e["event_type"] == "InventorySnapshot":
            assert e["on_hand"] >= 0 and e["as_of"] == e["occurred_at"]
    assert len(expected) > 50, "replenishment happens"


def test_without_noise_every_order_runs_to_cash():
    quiet = SimulationConfig(
        orders=150,
        seed=3,
        duplicate_share=0,
        out_of_order_share=0,
        cancel_share=0,
        hold_decline_share=0,
        line_cancel_share=0,
        backorder_cancel_share=0,
        lapse_share=0,
        refund_share=0,
    )
    events = list(generate(quiet))
    assert len({s.event["event_id"] for s in events}) == len(events)
    orders = defaultdict(set)
    for s in events:
        if s.role != "inventory":
            orders[s.key].add(s.event["event_type"])
    assert len(orders) == 150
    for types in orders.values():
        assert {
            "OrderPlaced",
            "OrderAccepted",
            "ShipmentDelivered",
            "InvoicePosted",
            "PaymentReceived",
        } <= types


def test_with_full_lapse_no_order_completes():
    config = SimulationConfig(orders=100, seed=5, lapse_share=1.0, out_of_order_share=0, cancel_share=0)
    orders: dict[str, Counter] = defaultdict(Counter)
    delivered: dict[str, set] = defaultdict(set)
    dispatched: dict[str, set] = defaultdict(set)
    for s in generate(config):
        if s.role != "inventory":
            orders[s.key][s.event["event_type"]] += 1
        if s.event["event_type"] == "ShipmentDispatched":
            dispatched[s.key].add(s.event["shipment_id"])
        if s.event["event_type"] == "ShipmentDelivered":
            delivered[s.key].add(s.event["shipment_id"])
    assert len(orders) == 100
    for order_id, types in orders.items():
        complete = (
            types["OrderAccepted"]
            and dispatched[order_id]
            and delivered[order_id] == dispatched[order_id]
            and types["InvoicePosted"]
            and types["PaymentReceived"]
        )
        assert not complete, order_id


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    shares=st.fixed_dictionaries(
        {
            "duplicate_share": st.floats(0, 0.3),
            "out_of_order_share": st.floats(0, 1),
            "cancel_share": st.floats(0, 1),
            "hold_share": st.floats(0, 1),
            "lapse_share": st.floats(0, 1),
            "split_share": st.floats(0, 1),
            "no_warehouse_share": st.floats(0, 1),
        }
    ),
    concurrency=st.integers(1, 50),
)
def test_any_knobs_give_contract_valid_streams(seed, shares, concurrency):
    config = SimulationConfig(
        orders=40, seed=seed, concurrency=concurrency, skus=5, warehouses=("W1", "W2"), **shares
    )
    events = list(generate(config))
    ids = Counter()
    for sim in events:
        check_contract(sim)
        ids[sim.event["event_id"]] += 1
    assert max(ids.values()) <= 2
    assert sum(s.event["event_type"] == "OrderPlaced" for s in events) >= 40


# --------------------------------------------------------------------------- summary


def test_summary_counts_by_role_and_type(run):
    result = summary(run)
    assert result.total == len(run)
    assert sum(result.by_role.values()) == len(run)
    assert list(result.by_role) == list(INPUT_ROLES)
    assert result.by_type["orders"]["OrderPlaced"] == sum(s.event["event_type"] == "OrderPlaced" for s in run)
    lines = list(result)
    assert lines[-1].split()[0] == "total" and lines[-1].split()[1].replace(",", "") == str(len(run))
    tapped = Summary()
    assert list(tapped.tap(run[:100])) == run[:100]
    assert tapped.total == 100


# --------------------------------------------------------------------------- pacing


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limited_never_exceeds_the_rate():
    fake = FakeTime()
    rate, burst = 100.0, 5.0
    stamps = [fake.now for _ in rate_limited(range(1000), rate, fake.clock, fake.sleep, burst=burst)]
    assert len(stamps) == 1000
    # in every window [a, b] at most rate * (b - a) + burst events
    for i in range(0, 1000, 37):
        for j in range(i, 1000, 53):
            assert j - i + 1 <= rate * (stamps[j] - stamps[i]) + burst + 1e-9
    assert stamps[-1] == pytest.approx((1000 - burst) / rate, rel=0.02)  # and is not slower


def test_rate_limited_bursts_then_sleeps_in_batches():
    fake = FakeTime()
    out = list(rate_limited(iter(range(10_000)), 50_000.0, fake.clock, fake.sleep))
    assert out == list(range(10_000))
    burst = 50_000 * 0.05  # the default bucket: 50 ms worth
    assert (10_000 - burst) / 50_000 <= fake.now <= 10_000 / 50_000
    assert len(fake.sleeps) < 10_000 / 100  # not one sleep per event


def test_rate_limited_unlimited_and_lazy():
    def boom() -> float:
        raise AssertionError("no clock without a rate")

    assert list(rate_limited(range(5), None, boom, boom)) == list(range(5))
    assert list(rate_limited(range(5), 0, boom, boom)) == list(range(5))

    pulled = []

    def source():
        for i in range(100):
            pulled.append(i)
            yield i

    fake = FakeTime()
    limited = rate_limited(source(), 10.0, fake.clock, fake.sleep)
    assert [next(limited) for _ in range(3)] == [0, 1, 2]
    assert pulled == [0, 1, 2]


def test_rate_limited_with_a_real_clock_is_close_to_the_rate():
    events = list(rate_limited(generate(SimulationConfig(orders=5)), 2000.0))
    assert events


def test_live_maps_business_time_onto_the_wall_clock():
    """Business time starts now and runs `speedup` times as fast; each event waits for its time."""
    fake = FakeTime()
    fake.now = 1_000_000.0  # wall seconds
    config = SimulationConfig(orders=30, seed=5)
    original = list(generate(config))
    replayed = []
    for sim in live(iter(original), 1440, config.start_at, fake.clock, fake.sleep):
        replayed.append((fake.now, sim))
    assert len(replayed) == len(original)
    for (sent_at, sim), before in zip(replayed, original):
        assert sim.role == before.role
        for name in TIME_FIELDS:  # every absolute time shifted and compressed alike
            if before.event.get(name) is not None:
                assert sim.event[name] == int(1_000_000_000 + (before.event[name] - config.start_at) / 1440)
        assert {k: v for k, v in sim.event.items() if k not in TIME_FIELDS} == {
            k: v for k, v in before.event.items() if k not in TIME_FIELDS
        }
        # sent once its time came, never before; late (out-of-order) events at once
        assert sent_at * 1000 >= sim.event["occurred_at"] - 1
    assert all(b.event is not s.event for b, (_, s) in zip(original, replayed))  # copies
    business_span = max(e.event["occurred_at"] for e in original) - config.start_at
    assert fake.now - 1_000_000.0 == pytest.approx(business_span / 1440 / 1000, abs=1e-3)
    with pytest.raises(ValueError):
        list(live(iter(original), 0))
