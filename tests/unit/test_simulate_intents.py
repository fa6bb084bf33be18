"""The simulator's intents (streams/simulator/simulate.py `Intent`): which business exceptions it causes on
purpose. Fast, no broker: the claims are checked against the pure models (tables/), in emission
order and in other orders a worker may read the topics in."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import pytest

from scripts.exceptions_report import reference_exceptions
from streams.simulator.simulate import INTENT_KINDS, Intent, SimEvent, SimulationConfig, generate
from tables.inventory import SkuState, apply_inventory_event, apply_order_message
from tables.order import OrderState, apply_event

DEFAULT = SimulationConfig(orders=1500, seed=7)
# Every deliberate irregularity often, including the rare ones (a loss below safety stock needs
# few SKUs and many counts; a cancel after every line was cancelled, many cancels).
STRESS = SimulationConfig(
    orders=1500,
    seed=3,
    skus=10,
    adjustment_share=1.0,
    snapshot_share=1.0,
    refund_share=0.3,
    out_of_order_share=0.3,
    cancel_share=0.3,
    line_cancel_share=0.3,
    duplicate_share=0.1,
    unapplied_payment_share=0.3,
)
CONFIGS = {"default": DEFAULT, "stress": STRESS}


def recorded(config: SimulationConfig) -> tuple[list[SimEvent], list[Intent], list[int]]:
    """Events, intents, and for each event how many intents had been appended when it was yielded."""
    intents: list[Intent] = []
    events, marks = [], []
    for sim in generate(config, intents=intents):
        events.append(sim)
        marks.append(len(intents))
    return events, intents, marks


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def run(request):
    return CONFIGS[request.param], *recorded(CONFIGS[request.param])


@pytest.fixture(scope="module")
def stress():
    return recorded(STRESS)


def test_the_bookkeeping_leaves_the_stream_unchanged(run):
    config, events, intents, _ = run
    assert [(s.role, s.event) for s in generate(config)] == [(s.role, s.event) for s in events]
    assert intents == recorded(config)[1]  # deterministic too


def test_each_intent_comes_with_the_event_that_causes_it(run):
    _, events, intents, marks = run
    before = 0
    for sim, mark in zip(events, marks):
        for intent in intents[before:mark]:
            assert intent.event_id == sim.event["event_id"]
            assert intent.key == sim.key
        before = mark
    assert before == len(intents)


def test_every_kind_has_its_documented_code(run):
    _, _, intents, _ = run
    for intent in intents:
        assert intent.code == INTENT_KINDS[intent.kind]


def test_every_stress_kind_occurs(stress):
    _, intents, _ = stress
    assert set(INTENT_KINDS) <= {i.kind for i in intents}


def test_every_deliberate_duplicate_yields_a_duplicate_intent(run):
    _, events, intents, marks = run
    seen: set[str] = set()
    copies = Counter()
    before = 0
    for sim, mark in zip(events, marks):
        eid = sim.event["event_id"]
        kinds = [i.kind for i in intents[before:mark]]
        if eid in seen:
            copies[sim.key, eid] += 1
            assert kinds == ["duplicate"]  # with the copy, and nothing else
        else:
            assert "duplicate" not in kinds
        seen.add(eid)
        before = mark
    dups = Counter((i.key, i.event_id) for i in intents if i.kind == "duplicate")
    assert dups == copies
    assert sum(copies.values()) > 0


def test_a_duplicate_copy_is_a_no_op_for_the_models(run):
    _, events, intents, _ = run
    orders: dict[str, OrderState] = {}
    skus: dict[str, SkuState] = {}
    seen: set[str] = set()
    for sim in events:
        event = sim.event
        if sim.role == "inventory":
            out = apply_inventory_event(skus.setdefault(event["sku"], SkuState(event["sku"])), event)
        else:
            oid = event["order_id"]
            out = apply_event(orders.setdefault(oid, OrderState(oid)), event, now=event["occurred_at"])
        assert out.duplicate == (event["event_id"] in seen)
        seen.add(event["event_id"])


def test_in_emission_order_every_coded_intent_is_raised_and_no_quiet_one(run):
    config, _, _, _ = run
    _, intents, raised = reference_exceptions(config)
    causes = Counter((e.code, e.order_id or e.sku, e.cause_event_id) for e in raised)
    coded = [i for i in intents if i.code is not None]
    assert coded
    for intent in coded:
        assert causes[intent.code, intent.key, intent.event_id] >= 1, intent
    quiet = {i.event_id for i in intents if i.code is None and i.kind != "duplicate"}
    assert not [e for e in raised if e.cause_event_id in quiet]
    # The codes claimed with certainty have no other cause in this stream.
    for code in ("UNKNOWN_INVOICE", "EVENT_AFTER_CANCEL"):
        claimed = {(i.key, i.event_id) for i in coded if i.code == code}
        assert {(e.order_id, e.cause_event_id) for e in raised if e.code == code} == claimed


ORDER_TOPICS = ("orders", "shipments", "payments")


@pytest.mark.parametrize("topic_order", list(itertools.permutations(ORDER_TOPICS)))
def test_order_intents_are_raised_whatever_the_topic_order(stress, topic_order):
    """A worker may read an order's topics in any interleaving, each topic in its own order; the
    extreme ones read one topic to its end before the next."""
    events, intents, _ = stress
    by_order: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for sim in events:
        if sim.role != "inventory":
            by_order[sim.key][sim.role].append(sim.event)
    causes = Counter()
    for oid, topics in by_order.items():
        state = OrderState(oid)
        for role in topic_order:
            for event in topics[role]:
                for e in apply_event(state, event, now=event["occurred_at"]).exceptions:
                    causes[e.code, e.order_id, e.cause_event_id] += 1
    roles = {sim.event["event_id"]: sim.role for sim in events}
    claimed = [i for i in intents if i.code is not None and roles[i.event_id] != "inventory"]
    assert claimed
    for intent in claimed:
        assert causes[intent.code, intent.key, intent.event_id] >= 1, (topic_order, intent)


@pytest.mark.parametrize("messages", ["none", "first", "emission"])
def test_negative_atp_intents_are_raised_whatever_the_shipments_read(stress, messages):
    """The inventory topic in its order, and the order side's messages (stock issues lower
    on-hand) not at all, all before it, or in emission order."""
    events, intents, _ = stress
    claimed = [i for i in intents if i.code == "NEGATIVE_ATP"]
    assert claimed
    orders: dict[str, OrderState] = {}
    per_sku: dict[str, list] = defaultdict(list)  # (is_message, item) in emission order
    for sim in events:
        event = sim.event
        if sim.role == "inventory":
            per_sku[event["sku"]].append((False, event))
            continue
        oid = event["order_id"]
        out = apply_event(orders.setdefault(oid, OrderState(oid)), event, now=event["occurred_at"])
        for message in out.allocation:
            per_sku[message.sku].append((True, message))
    causes = Counter()
    for sku, items in per_sku.items():
        if messages == "none":
            items = [x for x in items if not x[0]]
        elif messages == "first":
            items = [x for x in items if x[0]] + [x for x in items if not x[0]]
        state = SkuState(sku)
        for is_message, item in items:
            out = apply_order_message(state, item) if is_message else apply_inventory_event(state, item)
            for e in out.exceptions:
                causes[e.code, e.sku, e.cause_event_id] += 1
    for intent in claimed:
        assert causes["NEGATIVE_ATP", intent.key, intent.event_id] >= 1, (messages, intent)
