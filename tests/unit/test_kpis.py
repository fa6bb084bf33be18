"""Business KPIs (tables/kpis.py): contributions, deltas, totals, the report."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables import kpis, sla
from tables.kpis import KpiDelta, KpiTotals, Metric
from tables.order_state import Invoice, OrderState
from tests.unit.test_ops_support import CAPS, DAY, HOUR, Shell, finish_lines, new_shell, run_story, story_ops
from tests.unit.test_order_support import T0

MIN = 60_000
D0 = T0 // DAY  # the day of T0 (T0 is midnight UTC)
EU = ("EU", "EDI")
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def story() -> Shell:
    """Lines 10 (4 x 1.00, W1), 20 (3 x 2.50, W2, only 1 in stock) and 30 (5 x 0.40, any
    warehouse); shipped in two parts, the second two days late; two invoices, one paid in part."""
    shell = new_shell({"20": 1}, False)
    shell.event(shell.ev.accepted())  # minute 2
    shell.settle()  # 10 and 30 allocated, 20: 1 allocated, 2 backordered at W2
    shell.event(shell.ev.dispatched("S1", {"10": 4, "30": 5}))  # minute 3
    shell.event(shell.ev.invoice("I1", {"10": (4, 400), "30": (5, 200)}))  # minute 4, due in 30 days
    shell.advance(2 * DAY)
    shell.event(shell.ev.payment("P1", 250, "I1"))  # 2 days 5 min: ALLOCATION and SHIPMENT breach first
    shell.h.inv.restock("SO-1", "20", 2, shell.now)
    shell.settle()  # 20 fully allocated, late
    shell.event(shell.ev.dispatched("S2", {"20": 3}, wh="W2"))  # 2 days 6 min: fully shipped, late
    shell.event(shell.ev.invoice("I2", {"20": (3, 750)}, due_at=T0 + 10 * DAY))  # 2 days 7 min
    return shell


def test_an_orders_contribution_is_its_kpis_now():
    shell = story()
    c = kpis.contribution(shell.state)
    assert dict(c.values) == {
        (Metric.SLA, "ACCEPTANCE", "ON_TIME", *EU): 1,
        (Metric.SLA, "ALLOCATION", "LATE", *EU): 1,
        (Metric.SLA, "SHIPMENT", "LATE", *EU): 1,
        (Metric.SLA, "INVOICE", "ON_TIME", *EU): 1,
        (Metric.CYCLE_SHIPPED, *EU, 5): 1,  # 2 days 5 min: in the (48 h, 72 h] bucket
        (Metric.CYCLE_SHIPPED_MS, *EU): 2 * DAY + 5 * MIN,
        (Metric.OTIF_ELIGIBLE, *EU): 1,  # shipped in full, but late: no OTIF_HIT
        (Metric.RECEIVABLE, *EU, "EUR", D0 + 10): 750,  # I2, due first, nothing applied
        (Metric.RECEIVABLE, *EU, "EUR", D0 + 30): 350,  # I1: 600 - 250
        (Metric.SALES, "EUR", D0): 600,
        (Metric.SALES, "EUR", D0 + 2): 750,
        (Metric.COLLECTED, *EU, "EUR"): 250,
        (Metric.COLLECTED_MS, *EU, "EUR"): 250 * (2 * DAY + MIN),  # paid 2 days 1 min after posting
    }


def test_a_contribution_lists_its_sums_in_a_fixed_order():
    # the KPI sums' stored form follows the order in which an order's contribution lists them
    assert [key[0] for key in kpis.contribution(story().state).values] == [
        Metric.SLA, Metric.SLA, Metric.SLA, Metric.SLA, Metric.CYCLE_SHIPPED, Metric.CYCLE_SHIPPED_MS,
        Metric.OTIF_ELIGIBLE, Metric.RECEIVABLE, Metric.RECEIVABLE, Metric.SALES, Metric.SALES,
        Metric.COLLECTED, Metric.COLLECTED_MS,
    ]
    shell = new_shell({"20": 1}, False)
    shell.event(shell.ev.accepted())
    shell.settle()
    shell.event(shell.ev.dispatched("S1", {"10": 4}))  # in part: lines in their order
    assert [key[0] for key in kpis.contribution(shell.state).values] == [
        Metric.SLA, Metric.READY_QTY, Metric.READY_VALUE, Metric.BACKORDER_LINES, Metric.BACKORDER_QTY,
        Metric.BACKORDER_SINCE,
    ]


def test_totals_are_the_contribution_plus_fill_and_latency_observations():
    shell = story()
    t = shell.totals
    assert t.get(Metric.FILL_LINES, *EU, "W1") == 2 and t.get(Metric.FILL_LINES, *EU, "W2") == 1
    assert t.get(Metric.FILL_COMPLETE, *EU, "W1") == 2 and t.get(Metric.FILL_COMPLETE, *EU, "W2") == 0
    assert (t.get(Metric.FILL_REQUESTED, *EU, "W2"), t.get(Metric.FILL_ALLOCATED, *EU, "W2")) == (3, 1)
    # seven input events, each processed 250 ms after it occurred (allocation answers and SLA
    # timers are not input events)
    assert t.get(Metric.LATENCY, "test", 1) == 7 and t.get(Metric.LATENCY_MS, "test") == 7 * 250
    state_based = {k: v for k, v in t.values.items() if not k[0].startswith(("fill", "latency"))}
    assert state_based == dict(kpis.contribution(shell.state).values)


def test_the_report_at_a_time():
    report = story().totals.report(T0 + 15 * DAY)
    assert report["otif"]["all"] == {"eligible": 1, "on_time_in_full": 0, "rate": 0.0}
    assert report["fill_rate_first_allocation"]["all"] == {
        "lines": 3, "complete_lines": 2, "requested": 12, "allocated": 10, "line_fill_rate": 0.6667,
        "quantity_fill_rate": 0.8333}
    assert report["receivables"]["by_currency"]["EUR"] == {
        "open_minor": 1100, "overdue_minor": 750,
        "aging": {"1-30d": 750, "31-60d": 0, "61-90d": 0, ">90d": 0},
        "sales_in_window_minor": 1350, "dso_days": 73.33,  # 1100 / (1350 / 90 days)
        "collected_minor": 250, "mean_days_to_pay": 2.0,
    }
    assert report["sla_adherence"]["by_milestone"] == {
        "ACCEPTANCE": {"on_time": 1, "late": 0, "open": 0, "withdrawn": 0, "adherence": 1.0},
        "ALLOCATION": {"on_time": 0, "late": 1, "open": 0, "withdrawn": 0, "adherence": 0.0},
        "SHIPMENT": {"on_time": 0, "late": 1, "open": 0, "withdrawn": 0, "adherence": 0.0},
        "INVOICE": {"on_time": 1, "late": 0, "open": 0, "withdrawn": 0, "adherence": 1.0},
    }
    shipped = report["cycle_time"]["placed_to_shipped"]["all"]
    assert (shipped["count"], shipped["sum_ms"], shipped["mean_ms"]) == (1, 2 * DAY + 5 * MIN, 2 * DAY + 5 * MIN)
    assert [b["count"] for b in shipped["buckets"]] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert shipped["buckets"][5]["le_ms"] == 72 * HOUR and shipped["buckets"][-1]["le_ms"] is None
    assert report["cycle_time"]["placed_to_closed"]["all"]["count"] == 0
    latency = report["sync_latency"]["by"]
    assert [(r["source"], r["count"], r["mean_ms"], r["early"]) for r in latency] == [("test", 7, 250, 0)]
    assert report["backorders"]["all"]["lines"] == 0
    assert report["invoice_readiness"]["all"] == {"quantity": 0, "value_minor": {}}
    # a week later I2 is 12 days late, and the 90-day window still holds both invoices
    later = story().totals.report(T0 + 22 * DAY)["receivables"]["by_currency"]["EUR"]
    assert (later["overdue_minor"], later["aging"]["1-30d"]) == (750, 750)
    assert story().totals.report(T0 + 100 * DAY)["receivables"]["by_currency"]["EUR"]["dso_days"] is None


def test_backorders_and_goods_waiting_for_their_invoice():
    shell = new_shell({"20": 1}, False)
    shell.event(shell.ev.accepted())
    shell.settle()
    shell.event(shell.ev.dispatched("S1", {"10": 4, "30": 2}))
    t = shell.totals
    assert (t.get(Metric.BACKORDER_LINES, *EU, "W2"), t.get(Metric.BACKORDER_QTY, *EU, "W2")) == (1, 2)
    assert t.get(Metric.BACKORDER_SINCE, *EU, "W2", D0) == 1
    assert t.get(Metric.READY_QTY, *EU, "W1") == 6 and t.get(Metric.READY_VALUE, *EU, "W1", "EUR") == 4 * 100 + 2 * 40
    report = t.report(T0 + 4 * DAY + HOUR)
    assert report["backorders"]["by"] == [{
        "region": "EU", "channel": "EDI", "warehouse_id": "W2", "lines": 1, "quantity": 2, "mean_age_days": 4.0,
        "age": {"<1d": 0, "1-3d": 0, "3-7d": 1, "7-14d": 0, ">=14d": 0}}]
    assert report["invoice_readiness"]["all"] == {"quantity": 6, "value_minor": {"EUR": 480}}
    shell.event(shell.ev.line_cancelled("20"))  # the backorder is cancelled: the gauge goes back
    shell.settle()
    assert shell.totals.get(Metric.BACKORDER_LINES, *EU, "W2") == 0
    assert not [k for k in shell.totals.values if k[0].startswith("backorder")]


def test_an_order_shipped_by_its_promise_is_on_time_in_full_and_closes():
    shell = new_shell({}, True)  # promised in 2 days
    shell.event(shell.ev.accepted())
    shell.settle()
    shell.event(shell.ev.dispatched("S1", {"10": 4, "20": 3, "30": 5}))
    shell.event(shell.ev.invoice("I1", {"10": (4, 400), "20": (3, 750), "30": (5, 200)}))
    shell.event(shell.ev.payment("P1", 1350, "I1"))
    t = shell.totals
    assert (t.get(Metric.OTIF_ELIGIBLE, *EU), t.get(Metric.OTIF_HIT, *EU)) == (1, 1)
    assert t.get(Metric.CYCLE_CLOSED, *EU, 0) == 1 and t.get(Metric.CYCLE_CLOSED_MS, *EU) == 4 * MIN  # minute 1 to 5
    assert t.get(Metric.SLA, "PAYMENT", "ON_TIME", *EU) == 1
    assert not [k for k in t.values if k[0] == Metric.RECEIVABLE]


def test_a_cancelled_order_leaves_otif():
    shell = new_shell({}, True)
    shell.check(T0 + 3 * DAY)  # not shipped by the promise: a SHIPMENT breach
    assert shell.totals.get(Metric.OTIF_ELIGIBLE, *EU) == 1
    shell.event(shell.ev.cancelled())
    assert shell.totals.get(Metric.OTIF_ELIGIBLE, *EU) == 0
    assert shell.totals.get(Metric.SLA, "SHIPMENT", "WITHDRAWN", *EU) == 1


def test_latency_buckets_and_events_from_the_future():
    d = kpis.latency("wms-dc1", 1_000, 1_000 + 3_000) + kpis.latency("wms-dc1", 5_000, 4_000)
    assert dict(d.values) == {(Metric.LATENCY, "wms-dc1", 5): 1, (Metric.LATENCY_MS, "wms-dc1"): 3_000,
                              (Metric.LATENCY, "wms-dc1", 0): 1, (Metric.LATENCY_EARLY, "wms-dc1"): 1}
    assert dict(kpis.latency(None, 0, 0).values) == {(Metric.LATENCY, "unknown", 0): 1}
    report = KpiTotals().apply(d).report(0)["sync_latency"]["all"]
    assert (report["count"], report["early"], report["mean_ms"]) == (2, 1, 1_500)


def a_state(invoices, paid, refunded) -> OrderState:
    s = OrderState("SO-9", placed_at=0, paid_minor=paid, refunded_minor=refunded)
    for inv_id, total, applied, due in invoices:
        s.invoices[inv_id] = Invoice(inv_id, total, [], 0, due, applied)
        s.invoiced_minor += total
    return s


def test_invoice_balances_allocate_cash_like_the_payment_sla():
    s = a_state([("I1", 100, 0, 10), ("I2", 50, 50, 5)], paid=80, refunded=0)  # 30 not naming an invoice
    assert kpis.invoice_balances(s) == [("I2", 5, 0), ("I1", 10, 70)]
    assert sla._first_unpaid_due(s) == 10
    s = a_state([("I1", 100, 100, 10), ("I2", 60, 0, 20)], paid=100, refunded=40)  # refunded beyond unapplied
    assert kpis.invoice_balances(s) == [("I1", 10, 40), ("I2", 20, 60)]
    assert sla._first_unpaid_due(s) == 10
    assert kpis.invoice_balances(a_state([], 10, 50)) == []


def test_the_forms_round_trip():
    t = story().totals
    assert KpiTotals.from_json(t.to_json()) == t
    assert KpiTotals.from_bytes(t.to_bytes()) == t
    assert t.to_json() == KpiTotals.from_bytes(t.to_bytes()).to_json()
    assert (KpiDelta({("x",): 2}) - KpiDelta({("x",): 2})) == kpis.ZERO and not kpis.ZERO
    assert -KpiDelta({("x",): 2}) == KpiDelta({("x",): -2})


# -- properties -------------------------------------------------------------------------
@given(CAPS, st.booleans(), story_ops(), st.lists(st.integers(0, 60), max_size=4))
@PROPS
def test_totals_of_a_sequence_are_the_merge_of_the_totals_of_any_split(caps, promised, ops, cuts):
    shell = new_shell(caps, promised)
    run_story(shell, ops)
    deltas = [t.delta for t in shell.transitions]
    bounds = sorted({0, len(deltas), *(c % (len(deltas) + 1) for c in cuts)})
    parts = [KpiTotals() for _ in bounds[1:]]
    for part, lo, hi in zip(parts, bounds, bounds[1:]):
        for d in deltas[lo:hi]:
            part.apply(d)
    assert KpiTotals.merged(parts) == shell.totals
    assert KpiTotals.merged(reversed(parts)) == shell.totals
    assert KpiTotals.merged(KpiTotals.from_json(p.to_json()) for p in parts) == shell.totals
    # a fold over the transitions: the state-based sums are the final contribution
    state_based = {k: v for k, v in shell.totals.values.items() if not k[0].startswith(("fill", "latency"))}
    assert state_based == dict(kpis.contribution(shell.state).values)
    assert kpis.totals_of([shell.state]).values == state_based
    assert all(v > 0 for v in shell.totals.values.values())  # sums of non-negative contributions


@given(CAPS, st.booleans(), story_ops(), st.lists(st.booleans(), min_size=1, max_size=3))
@PROPS
def test_the_backorder_gauge_returns_to_zero_when_every_line_leaves_backorder(caps, promised, ops, ship):
    shell = new_shell(caps, promised)
    run_story(shell, ops)
    shell.event(shell.ev.accepted())  # an ALREADY_ACCEPTED exception at worst
    finish_lines(shell, ship)
    assert all(ln.backordered == 0 for ln in shell.state.lines.values())
    assert not [k for k in shell.totals.values if k[0].startswith("backorder")]
    report = shell.totals.report(T0 + 100 * DAY)["backorders"]["all"]
    assert (report["lines"], report["quantity"]) == (0, 0)


@given(CAPS, st.booleans(), story_ops())
@PROPS
def test_invoice_balances_agree_with_the_payment_sla_on_any_story(caps, promised, ops):
    shell = new_shell(caps, promised)
    run_story(shell, ops)
    s = shell.state
    balances = kpis.invoice_balances(s)
    owing = [due for _, due, owed in balances if owed > 0]
    assert (owing[0] if owing else None) == sla._first_unpaid_due(s)
    if all(i.applied_minor <= i.total_minor for i in s.invoices.values()):
        assert sum(owed for _, _, owed in balances) == (max(s.open_balance_minor, 0) if balances else 0)
