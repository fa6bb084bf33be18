"""The exception work queue (tables/cases.py): ids, severities, opening, automatic resolution,
people's actions, listing and paging across workers."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables import cases as cs
from tables.cases import Case, CaseQueryError, CaseState, CaseTransitionError, Resolution, Severity
from tables.exceptions import ALL_CODES, BusinessException, Code
from tables.ledger import InventoryCode
from tables.sla import MILESTONES
from tests.unit.test_ops_support import (
    CAPS,
    HOUR,
    Shell,
    new_shell,
    run_story,
    story_ops,
)
from tests.unit.test_order_support import T0

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]+")


def by_code(shell: Shell, code: str) -> list[Case]:
    return [c for c in shell.cases.values() if c.code == code]


def only(shell: Shell, code: str) -> Case:
    found = by_code(shell, code)
    assert len(found) == 1, (code, found)
    return found[0]


# -- severities and ids ------------------------------------------------------------------
def test_every_code_has_a_documented_severity():
    inventory = {v for k, v in vars(InventoryCode).items() if not k.startswith("_")}
    for code in ALL_CODES | inventory:
        assert code in cs.SEVERITY_BY_CODE, code
    for m in MILESTONES:
        assert cs.SEVERITY_BY_CODE[cs.SLA_PREFIX + m] in cs.SEVERITIES
    assert cs.severity_of(Code.BUFFER_FULL) == Severity.CRITICAL
    assert cs.severity_of("SLA-SHIPMENT") == Severity.HIGH
    assert cs.severity_of("HOLD-MANUAL") == Severity.LOW
    assert cs.severity_of("SOMETHING_NEW") == Severity.MEDIUM
    # the codes of breaches and holds can never be taken for an exception code
    assert not [c for c in ALL_CODES | inventory if c.startswith((cs.SLA_PREFIX, cs.HOLD_PREFIX))]


def test_a_release_of_a_hold_not_active_is_an_exception_not_a_hold():
    shell = new_shell({}, False)
    shell.event(shell.ev.release("CREDIT"))
    case = only(shell, Code.HOLD_NOT_ACTIVE)
    assert (case.state, case.severity, case.ref) == ("OPEN", "LOW", None)
    assert cs.parse_case_id(case.case_id).rest[0] == "SO-1-e2"


def test_id_components_are_escaped_into_url_unreserved_characters():
    assert cs.escape_part("SO-1_a") == "SO-1_a"
    assert cs.escape_part("SO/1 ü.x~") == "SO~2F1~20~C3~BC~2Ex~7E"
    assert cs.unescape_part("SO~2F1~20~C3~BC~2Ex~7E") == "SO/1 ü.x~"
    case_id = cs.make_case_id("o", "SO/1.2", "UNKNOWN_LINE", "evt 9", "4f23db92")
    assert case_id == "o.SO~2F1~2E2.UNKNOWN_LINE.evt~209.4f23db92"
    assert cs.parse_case_id(case_id) == cs.CaseRef("o", "SO/1.2", "UNKNOWN_LINE", ("evt 9", "4f23db92"))


@pytest.mark.parametrize(
    "bad",
    [
        "x.SO-1.SLA-SHIPMENT",  # unknown kind
        "o.SO-1",  # too short
        "o.SO-1.SLA-SHIPMENT.extra",  # a breach id has no more parts
        "o.SO-1.HOLD-CREDIT",  # a hold id names its start
        "o.SO-1.UNKNOWN_LINE.evt",  # an exception id has cause and digest
        "o.S~2f.SLA-SHIPMENT",  # lower-case hex is not the canonical form
        "o.~41.SLA-SHIPMENT",  # an escaped letter is not either
        "o.S~ZZ.SLA-SHIPMENT",
        "o.S/1.SLA-SHIPMENT",
    ],
)
def test_ids_no_case_can_have_are_404(bad):
    with pytest.raises(CaseQueryError) as err:
        cs.parse_case_id(bad)
    assert err.value.http_status == 404 and err.value.code == "NO_SUCH_CASE"


@given(st.text(max_size=30), st.text(max_size=30))
@settings(max_examples=150, deadline=None)
def test_any_key_and_cause_make_a_url_safe_id_that_parses_back(key, cause):
    case_id = cs.make_case_id("o", key, "UNKNOWN_LINE", cause, "00ff00ff")
    assert URL_SAFE.fullmatch(case_id)
    assert cs.parse_case_id(case_id) == cs.CaseRef("o", key, "UNKNOWN_LINE", (cause, "00ff00ff"))


def test_exception_ids_are_pinned_and_tell_apart_two_exceptions_of_one_event():
    shell = new_shell({}, False)
    shell.event(shell.ev.accepted())
    shell.settle()
    shell.event(shell.ev.dispatched("S1", {"10": 4, "98": 1, "99": 1}))
    ids = sorted(c.case_id for c in by_code(shell, Code.UNKNOWN_LINE))
    # pinned: a change of the id scheme changes the ids of cases already stored
    assert ids == ["o.SO-1.UNKNOWN_LINE.SO-1-e3.4f23db92", "o.SO-1.UNKNOWN_LINE.SO-1-e3.61e6ac63"]
    exc = BusinessException(Code.UNKNOWN_LINE, "SO-1", "ShipmentDispatched S1 for unknown line 99", "SO-1-e3", 0)
    assert cs.exception_digest(exc) == "4f23db92"


# -- opening and automatic resolution ------------------------------------------------------
def test_a_hold_opens_a_case_that_its_release_resolves():
    shell = new_shell({}, False)
    shell.event(shell.ev.hold("CREDIT", "limit exceeded"))
    since = T0 + 2 * 60_000
    case = shell.cases[f"o.SO-1.HOLD-CREDIT.{since}"]
    assert (case.code, case.severity, case.state, case.opened_at) == ("HOLD-CREDIT", "MEDIUM", "OPEN", since)
    assert (case.order_id, case.region, case.channel, case.customer_id) == ("SO-1", "EU", "EDI", "C-1")
    assert case.warehouse_id is None  # lines at W1, W2 and none
    assert case.detail == "CREDIT hold: limit exceeded"
    assert cs.clears(case, shell.state) is None
    shell.event(shell.ev.release("CREDIT"))
    done = shell.cases[case.case_id]
    assert (done.state, done.resolution, done.resolved_by) == (CaseState.RESOLVED, Resolution.AUTO, "system")
    assert (done.resolved_at, done.note, done.version) == (T0 + 3 * 60_000, "CREDIT hold released", 2)
    shell.event(shell.ev.hold("CREDIT"))  # a new hold is a new case
    assert sorted(c.state for c in by_code(shell, "HOLD-CREDIT")) == ["OPEN", "RESOLVED"]


def test_cancelling_the_order_resolves_its_holds_and_withdraws_its_breaches():
    shell = new_shell({}, False)
    shell.event(shell.ev.hold("FRAUD"))
    shell.advance(5 * HOUR)
    shell.check(T0 + 5 * HOUR)  # not accepted 4 h after placement
    breach = shell.cases["o.SO-1.SLA-ACCEPTANCE"]
    assert (breach.state, breach.severity, breach.milestone) == ("OPEN", "MEDIUM", "ACCEPTANCE")
    assert (breach.due_at, breach.opened_at) == (T0 + 60_000 + 4 * HOUR, T0 + 5 * HOUR)
    shell.event(shell.ev.cancelled())
    assert only(shell, "HOLD-FRAUD").note == "FRAUD hold moot: the order was cancelled"
    assert shell.cases["o.SO-1.SLA-ACCEPTANCE"].note == "ACCEPTANCE withdrawn: the order was cancelled"
    assert all(c.state == CaseState.RESOLVED for c in shell.cases.values())


def test_a_breach_case_resolves_when_the_milestone_is_reached_late():
    shell = new_shell({"10": 0}, False)
    shell.event(shell.ev.accepted())
    accepted = T0 + 2 * 60_000
    shell.settle()  # line 10 backordered: not allocated
    shell.check(accepted + 3 * HOUR)
    case = shell.cases["o.SO-1.SLA-ALLOCATION"]
    assert (case.due_at, case.opened_at, case.state) == (accepted + 2 * HOUR, accepted + 3 * HOUR, "OPEN")
    assert case.detail == f"ALLOCATION due at {accepted + 2 * HOUR} not reached (detected at {accepted + 3 * HOUR})"
    shell.h.inv.restock("SO-1", "10", 4, shell.now + HOUR)
    shell.settle()
    done = shell.cases[case.case_id]
    assert done.state == CaseState.RESOLVED and done.resolution == Resolution.AUTO
    assert done.note == f"ALLOCATION reached late at {shell.now + HOUR}"


def test_an_orphan_is_one_case_that_order_placed_resolves():
    shell = Shell()
    shell.event(shell.ev.payment("P1", 100))  # before OrderPlaced: buffered
    shell.check(T0 + 2 * HOUR)
    assert [c.code for c in shell.cases.values()] == ["SLA-ORPHAN"]  # no ORPHAN_EVENT case
    case = shell.cases["o.SO-1.SLA-ORPHAN"]
    assert (case.severity, case.region, case.due_at) == ("HIGH", None, T0 + 60_000 + HOUR)
    shell.event(shell.ev.placed([("10", "SKU-A", 1, 100)]))
    assert shell.cases[case.case_id].state == CaseState.RESOLVED
    assert shell.cases[case.case_id].note.startswith("ORPHAN reached late at ")


def test_a_delivery_before_its_dispatch_resolves_when_the_dispatch_arrives():
    shell = new_shell({}, False)
    shell.event(shell.ev.accepted())
    shell.settle()
    shell.event(shell.ev.delivered("S1"))
    case = only(shell, Code.UNKNOWN_SHIPMENT)
    assert (case.ref, case.severity, case.state) == ("S1", "LOW", "OPEN")
    shell.event(shell.ev.dispatched("S1", {"10": 4}))
    assert shell.cases[case.case_id].note == f"shipment S1 dispatched at {T0 + 4 * 60_000}: its delivery is applied"


def test_cash_before_its_invoice_and_a_refund_before_its_payment_resolve_when_they_arrive():
    shell = new_shell({}, False)
    shell.event(shell.ev.payment("P1", 100, "I7"))
    shell.event(shell.ev.refund("P5", 30))
    unknown_invoice = only(shell, Code.UNKNOWN_INVOICE)
    unknown_payment = only(shell, Code.UNKNOWN_PAYMENT)
    assert (unknown_invoice.ref, unknown_payment.ref) == ("I7", "P5")
    shell.event(shell.ev.invoice("I7", {"10": (0, 100)}))
    assert shell.cases[unknown_invoice.case_id].state == CaseState.RESOLVED
    assert shell.cases[unknown_payment.case_id].state == CaseState.OPEN
    shell.event(shell.ev.payment("P5", 30))
    assert shell.cases[unknown_payment.case_id].note.startswith("payment P5 received at ")


def test_an_invoice_ahead_of_shipment_resolves_when_the_goods_ship():
    shell = new_shell({}, False)
    shell.event(shell.ev.accepted())
    shell.settle()
    shell.event(shell.ev.invoice("I1", {"10": (4, 400)}))
    case = only(shell, Code.INVOICE_EXCEEDS_SHIPPED)
    assert (case.ref, case.sku, case.warehouse_id, case.severity) == ("10", "SKU-A", "W1", "HIGH")
    shell.event(shell.ev.dispatched("S1", {"10": 3}))
    assert shell.cases[case.case_id].state == CaseState.OPEN  # one unit still waits
    shell.event(shell.ev.dispatched("S2", {"10": 1}))
    assert shell.cases[case.case_id].note == "line 10: every invoiced unit is shipped"


def test_an_overpaid_order_resolves_when_the_credit_is_refunded_and_an_unknown_line_never_does():
    shell = new_shell({}, False)
    shell.event(shell.ev.accepted())
    shell.settle()
    shell.event(shell.ev.dispatched("S1", {"10": 4, "20": 3, "30": 5, "99": 1}))
    shell.event(shell.ev.invoice("I1", {"10": (4, 400), "20": (3, 750), "30": (5, 200)}))
    shell.event(shell.ev.payment("P1", 1500))
    case = only(shell, Code.OVERPAYMENT)
    shell.event(shell.ev.refund("P1", 100))
    assert shell.cases[case.case_id].state == CaseState.OPEN  # 50 still in credit
    shell.event(shell.ev.refund("P1", 50))
    assert shell.cases[case.case_id].state == CaseState.RESOLVED
    assert only(shell, Code.UNKNOWN_LINE).state == CaseState.OPEN


def test_an_invoice_paid_beyond_its_total_never_resolves_by_itself():
    shell = new_shell({}, False)
    shell.event(shell.ev.accepted())
    shell.settle()
    shell.event(shell.ev.dispatched("S1", {"10": 4}))
    shell.event(shell.ev.invoice("I1", {"10": (4, 400)}))
    shell.event(shell.ev.payment("P1", 500, "I1"))
    shell.event(shell.ev.refund("P1", 500))
    assert only(shell, Code.OVERPAYMENT).state == CaseState.OPEN


def test_inventory_exceptions_open_sku_cases_that_never_auto_resolve():
    exc = BusinessException(InventoryCode.NEGATIVE_ATP, None, "InventoryAdjusted at W1: atp -3", "inv-7", 500,
                            "SKU 9")
    [case] = cs.sku_cases([exc])
    assert case.case_id == f"s.SKU~209.NEGATIVE_ATP.inv-7.{cs.exception_digest(exc)}"
    assert (case.key, case.kind, case.severity, case.opened_at) == ("SKU 9", "s", "HIGH", 500)
    shell = new_shell({}, False)
    assert cs.cases_auto_resolved([case], shell.state, 1) == []


@given(CAPS, st.booleans(), story_ops())
@PROPS
def test_ids_do_not_depend_on_replays_or_on_where_the_exceptions_are_read(caps, promised, ops):
    first = new_shell(caps, promised)
    run_story(first, ops)
    again = new_shell(caps, promised, read_raised_from_state=True)
    run_story(again, ops)
    if len(first.h.raised) <= 20:  # the state keeps the last 20 exceptions
        assert again.cases == first.cases
    for case_id, case in first.cases.items():
        assert URL_SAFE.fullmatch(case_id) and cs.parse_case_id(case_id).key == "SO-1"
        assert Case.from_bytes(case.to_bytes()) == case
        assert cs.clears(case, first.state) is None  # nothing clearable left open
    for b in first.state.open_breaches:
        assert first.cases[cs.breach_case_id("SO-1", b["milestone"])].state == CaseState.OPEN
    for hold_type, (_, since) in first.state.holds.items():
        assert first.cases[cs.hold_case_id("SO-1", hold_type, since)].state == CaseState.OPEN


# -- people's actions ----------------------------------------------------------------------
def a_case(**kw) -> Case:
    base = dict(case_id="o.SO-1.SLA-SHIPMENT", code="SLA-SHIPMENT", severity="HIGH", opened_at=1_000,
                order_id="SO-1", sku=None, warehouse_id="W1", region="EU", channel="EDI", customer_id="C-1",
                detail="late", milestone="SHIPMENT", due_at=900, updated_at=1_000)
    return Case(**{**base, **kw})


def test_acknowledge_assign_resolve():
    case = a_case()
    ack = cs.acknowledge(case, "ann", "looking", 2_000)
    assert (ack.state, ack.acknowledged_by, ack.acknowledged_at, ack.note, ack.version) == (
        "ACKNOWLEDGED", "ann", 2_000, "looking", 2)
    assigned = cs.assign(ack, "ann", None, 3_000, "bob")
    assert (assigned.assignee, assigned.note, assigned.updated_by, assigned.version) == ("bob", "looking", "ann", 3)
    done = cs.resolve(assigned, "bob", "carrier rebooked", 4_000)
    assert (done.state, done.resolution, done.resolved_by, done.resolved_at) == ("RESOLVED", "MANUAL", "bob", 4_000)
    assert done.age_ms(10_000) == 3_000  # open from 1,000 to 4,000
    assert cs.acknowledge(case, "ann", None, 2_000).age_ms(5_000) == 4_000


def test_assigning_an_open_case_acknowledges_it():
    case = cs.assign(a_case(), "lead", None, 2_000, "bob")
    assert (case.state, case.acknowledged_by, case.assignee) == ("ACKNOWLEDGED", "lead", "bob")


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        (["ack", "ack"], "ALREADY_ACKNOWLEDGED"),
        (["resolve", "resolve"], "ALREADY_RESOLVED"),
        (["resolve", "ack"], "CASE_RESOLVED"),
        (["resolve", "assign"], "CASE_RESOLVED"),
        (["assign", "assign"], "ALREADY_ASSIGNED"),
    ],
)
def test_illegal_transitions_are_409(steps, code):
    case = a_case()
    do = {
        "ack": lambda c: cs.acknowledge(c, "ann", None, 5),
        "resolve": lambda c: cs.resolve(c, "ann", None, 5),
        "assign": lambda c: cs.assign(c, "ann", None, 5, "bob"),
    }
    for step in steps[:-1]:
        case = do[step](case)
    with pytest.raises(CaseTransitionError) as err:
        do[steps[-1]](case)
    assert (err.value.code, err.value.http_status) == (code, 409)
    assert err.value.to_dict()["error"] == code


def test_malformed_actions_are_400_and_unknown_ids_404():
    with pytest.raises(CaseTransitionError) as err:
        cs.acknowledge(a_case(), " ", None, 5)
    assert (err.value.code, err.value.http_status) == ("INVALID_ACTION", 400)
    with pytest.raises(CaseTransitionError):
        cs.resolve(a_case(), "ann", "x" * 2001, 5)
    with pytest.raises(CaseTransitionError) as err:
        cs.action_from_request("o.SO-1.SLA-SHIPMENT", "assign", {"who": "ann"}, "a1", 5)
    assert str(err.value) == "assignee is required"
    with pytest.raises(CaseTransitionError) as err:
        cs.action_from_request("o.SO-1.SLA-SHIPMENT", "close", {"who": "ann"}, "a1", 5)
    assert err.value.code == "UNKNOWN_ACTION"
    with pytest.raises(CaseTransitionError) as err:
        cs.action_from_request("o.SO-1.SLA-SHIPMENT", "resolve", {"who": "ann", "assignee": "x"}, "a1", 5)
    assert str(err.value) == "unknown field(s) assignee for resolve"
    with pytest.raises(CaseTransitionError):
        cs.action_from_request("o.SO-1.SLA-SHIPMENT", "resolve", ["ann"], "a1", 5)
    with pytest.raises(CaseQueryError) as qerr:
        cs.action_from_request("nonsense", "resolve", {"who": "ann"}, "a1", 5)
    assert qerr.value.http_status == 404


def test_an_action_applies_once():
    case = a_case()
    action = cs.action_from_request(case.case_id, "assign", {"who": "ann", "assignee": "bob", "note": "n"}, "a1", 7)
    assert cs.CaseAction.from_dict(action.to_dict()) == action
    once = cs.apply_action(case, action)
    assert (once.assignee, once.action_ids, once.version) == ("bob", ("a1",), 2)
    assert cs.apply_action(once, action) is once  # redelivered: no change, no error
    retry = cs.CaseAction("a2", case.case_id, "assign", "ann", 8, None, "bob")
    with pytest.raises(CaseTransitionError):  # the same request under a new id is a conflict
        cs.apply_action(once, retry)
    with pytest.raises(CaseTransitionError) as err:
        cs.apply_action(once, cs.CaseAction("a3", "o.SO-2.SLA-SHIPMENT", "resolve", "ann", 9))
    assert err.value.code == "WRONG_CASE"


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("acknowledge"), st.sampled_from(["ann", "bob"])),
        st.tuples(st.just("assign"), st.sampled_from(["ann", "bob", "cy"])),
        st.tuples(st.just("resolve"), st.sampled_from(["ann", "bob"])),
        st.tuples(st.just("auto"), st.just("")),
        st.tuples(st.just("repeat"), st.integers(0, 30)),
    ),
    max_size=25,
)


@given(ACTIONS)
@settings(max_examples=200, deadline=None)
def test_the_state_machine_never_leaves_resolved(steps):
    case = a_case()
    applied: list[cs.CaseAction] = []
    for n, (kind, arg) in enumerate(steps):
        before = case
        try:
            if kind == "auto":
                case = cs.auto_resolve(case, "cleared", n)
            elif kind == "repeat":
                if not applied:
                    continue
                action = applied[arg % len(applied)]
                if action.action_id in case.action_ids:
                    assert cs.apply_action(case, action) is case
                continue
            else:
                body = {"who": "ann", "assignee": arg} if kind == "assign" else {"who": arg}
                action = cs.action_from_request(case.case_id, kind, body, f"a{n}", n)
                case = cs.apply_action(case, action)
                applied.append(action)
        except CaseTransitionError as err:
            assert err.http_status == 409
            assert case is before
            continue
        if before.is_resolved:
            assert case is before  # nothing changes a resolved case
        else:
            assert case.version == before.version + 1
        assert case.state in cs.CASE_STATES
        if case.state == CaseState.RESOLVED:
            assert case.resolution in (Resolution.MANUAL, Resolution.AUTO) and case.resolved_at is not None
        assert len(case.action_ids) <= cs.MAX_ACTION_IDS
        assert Case.from_list(case.to_list()) == case


# -- listing and paging --------------------------------------------------------------------
def test_query_parameters_are_validated():
    q = cs.parse_query({"state": "OPEN,ACKNOWLEDGED", "severity": "HIGH", "region": "EU", "limit": "10"})
    assert q.states == frozenset({"OPEN", "ACKNOWLEDGED"}) and q.limit == 10 and q.region == "EU"
    assert cs.parse_query(q.to_params()) == q
    for params, message in [
        ({"stat": "OPEN"}, "unknown parameter(s): stat"),
        ({"state": "CLOSED"}, "state='CLOSED': expected one of OPEN, ACKNOWLEDGED, RESOLVED"),
        ({"severity": ""}, "severity is empty"),
        ({"code": "late shipment"}, "code='late shipment' is not a code"),
        ({"limit": "0"}, "limit must be between 1 and 500"),
        ({"limit": "ten"}, "limit='ten' is not a number"),
        ({"cursor": "!!"}, "cursor is not one this API returned"),
    ]:
        with pytest.raises(CaseQueryError) as err:
            cs.parse_query(params)
        assert (str(err.value), err.value.http_status) == (message, 400)


def test_a_cursor_only_continues_the_listing_it_came_from():
    q = cs.parse_query({"state": "OPEN", "limit": "1"})
    cursor = cs.encode_cursor((5, "o.SO-1.SLA-SHIPMENT"), q)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    assert cs.parse_query({"state": "OPEN", "limit": "7", "cursor": cursor}).after == (5, "o.SO-1.SLA-SHIPMENT")
    with pytest.raises(CaseQueryError) as err:
        cs.parse_query({"state": "RESOLVED", "cursor": cursor})
    assert err.value.code == "BAD_CURSOR"


def test_filters_match_exactly_and_pages_are_oldest_first():
    cases = [
        a_case(case_id="o.A.SLA-SHIPMENT", opened_at=30),
        a_case(case_id="o.B.SLA-SHIPMENT", opened_at=10, order_id="B", region="US"),
        a_case(case_id="o.C.SLA-SHIPMENT", opened_at=10, order_id="C", state="RESOLVED"),
        a_case(case_id="o.D.SLA-DELIVERY", opened_at=20, code="SLA-DELIVERY", severity="MEDIUM"),
    ]
    ids = lambda page: [c.case_id for c in page.cases]  # noqa: E731
    everything = cs.page_of(cases, cs.CaseQuery())
    assert ids(everything) == ["o.B.SLA-SHIPMENT", "o.C.SLA-SHIPMENT", "o.D.SLA-DELIVERY", "o.A.SLA-SHIPMENT"]
    assert (everything.more, everything.next_cursor) == (False, None)
    assert ids(cs.page_of(cases, cs.parse_query({"state": "OPEN", "region": "EU"}))) == [
        "o.D.SLA-DELIVERY", "o.A.SLA-SHIPMENT"]
    assert ids(cs.page_of(cases, cs.parse_query({"severity": "MEDIUM,LOW"}))) == ["o.D.SLA-DELIVERY"]
    assert ids(cs.page_of(cases, cs.parse_query({"order_id": "C"}))) == ["o.C.SLA-SHIPMENT"]
    first = cs.page_of(cases, cs.parse_query({"limit": "2"}))
    assert ids(first) == ["o.B.SLA-SHIPMENT", "o.C.SLA-SHIPMENT"] and first.more
    rest = cs.page_of(cases, cs.parse_query({"limit": "2", "cursor": first.next_cursor}))
    assert ids(rest) == ["o.D.SLA-DELIVERY", "o.A.SLA-SHIPMENT"] and rest.next_cursor is None
    view = rest.view(now=100)
    assert view["count"] == 2 and view["cases"][0]["age_ms"] == 80 and view["next_cursor"] is None


def test_merging_keeps_the_newest_copy_of_a_case_two_workers_returned():
    q = cs.CaseQuery()
    old = a_case()
    new = cs.acknowledge(old, "ann", None, 2_000)
    merged = cs.merge_pages([cs.CasePage((old,), False), cs.CasePage((new,), False)], q)
    assert merged.cases == (new,)


def a_population() -> st.SearchStrategy[list[Case]]:
    one = st.tuples(
        st.integers(0, 6),
        st.sampled_from(cs.CASE_STATES),
        st.sampled_from(["SLA-SHIPMENT", "UNKNOWN_LINE", "HOLD-CREDIT"]),
        st.sampled_from(cs.SEVERITIES),
        st.sampled_from(["EU", "US"]),
        st.integers(0, 3),
        st.sampled_from([None, "SKU-A", "SKU-B"]),
    )
    return st.lists(one, max_size=40).map(
        lambda rows: [
            a_case(case_id=f"o.SO-{o}.SLA-{i}", order_id=f"SO-{o}", opened_at=t, state=s, code=c,
                   severity=sev, region=r, sku=sku)
            for i, (t, s, c, sev, r, o, sku) in enumerate(rows)
        ]
    )


QUERY_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "state": st.sampled_from(["OPEN", "OPEN,ACKNOWLEDGED", "RESOLVED"]),
        "code": st.sampled_from(["SLA-SHIPMENT", "UNKNOWN_LINE,HOLD-CREDIT"]),
        "severity": st.sampled_from(["HIGH", "LOW,MEDIUM"]),
        "region": st.sampled_from(["EU", "US"]),
        "order_id": st.sampled_from(["SO-0", "SO-2", "SO-9"]),
        "sku": st.sampled_from(["SKU-A", "SKU-C"]),
    },
)


@given(a_population(), st.integers(1, 4), st.data(), QUERY_PARAMS, st.integers(1, 7))
@settings(max_examples=150, deadline=None)
def test_paging_over_merged_worker_pages_returns_every_case_once_in_order(cases, workers, data, params, limit):
    owner = [data.draw(st.integers(0, workers - 1)) for _ in cases]
    local = [[c for c, w in zip(cases, owner) if w == k] for k in range(workers)]
    query = cs.parse_query({**params, "limit": str(limit)})
    expected = sorted((c for c in cases if cs.matches(c, query)), key=cs.sort_key)
    seen: list[Case] = []
    cursor = None
    for _ in range(len(cases) + 2):
        q = cs.parse_query({**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})})
        pages = [cs.CasePage.from_json(cs.page_of(mine, q).to_json()) for mine in local]  # over the wire
        page = cs.merge_pages(pages, q)
        assert len(page.cases) <= limit
        seen.extend(page.cases)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected


def test_the_facets_of_a_stored_case_are_those_of_the_case():
    case = a_case(case_id="o.SO-3.SLA-SHIPMENT", order_id="SO-3", sku="SKU-9", warehouse_id="W2", region="EU",
                  channel="EDI", customer_id="C-7", state=cs.CaseState.ACKNOWLEDGED)
    assert cs.Facets.of_stored(case.to_list()) == cs.Facets.of(case)
