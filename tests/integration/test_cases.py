"""The exception work queue (issue 16 point 1, docs/operations-api.md): business exceptions,
holds (and SLA breaches) become cases owned by the case agent; people act on them over HTTP,
their actions are events applied exactly once; the queue survives a restart and a handover."""

import json
import time

import pytest
import requests

from tests.harness import read_topic

pytestmark = pytest.mark.kafka

T0 = 1793610000000  # 2026-11-02T09:00:00Z
MINUTE = 60_000
HOUR = 60 * MINUTE


def ev(n: int, event_type: str, minute: int, source: str = "erp-eu", **fields) -> dict:
    return {"event_id": f"c{n}", "event_type": event_type, "occurred_at": T0 + minute * MINUTE, "source": source,
            **fields}


def produce(kafka_env, role: str, events: list[dict]) -> None:
    done = kafka_env.o2c("produce", role, "-", input="".join(json.dumps(e) + "\n" for e in events))
    assert done.returncode == 0, done.stderr


def post(worker, case_id: str, verb: str, body, **headers) -> requests.Response:
    return requests.post(f"{worker.url}/cases/{case_id}/{verb}", json=body, headers=headers, timeout=30)


def until(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_the_work_queue(kafka_env, workers) -> None:
    w1 = workers("w1", O2C_SLA_CLOCK="event").start().wait_ready()
    produce(kafka_env, "inventory", [ev(1, "InventoryReceived", -60, "wms-1", sku="SKU-C", warehouse_id="WH-1",
                                        quantity=5, source_doc="ASN-1")])
    produce(kafka_env, "orders", [
        ev(2, "OrderPlaced", 0, order_id="C-1", customer_id="CU-1", channel="EDI", region="EU", currency="EUR",
           lines=[{"line_id": "1", "sku": "SKU-C", "quantity": 2, "unit_price_minor": 1000, "warehouse_id": "WH-1"}]),
        ev(3, "OrderAccepted", 1, order_id="C-1"),
    ])
    read_topic(kafka_env.settings, "order-status", expect=3)  # SUBMITTED, ACCEPTED, ALLOCATED
    produce(kafka_env, "payments", [ev(4, "InvoicePosted", 2, "fin-1", order_id="C-1", invoice_id="INV-1",
                                       lines=[{"line_id": "1", "quantity": 2, "amount_minor": 2000}],
                                       total_minor=2000, due_at=T0 + 30 * 24 * HOUR)])
    produce(kafka_env, "orders", [ev(5, "OrderHoldApplied", 3, order_id="C-1", hold_type="CREDIT", reason="limit")])
    produce(kafka_env, "inventory", [ev(6, "InventoryAdjusted", 4, "wms-1", sku="SKU-C", warehouse_id="WH-1",
                                        delta=-10, reason="DAMAGE")])

    def listing(worker, query: str = "") -> dict:
        reply = until(lambda: (r := worker.get(f"/cases{query}")).status_code != 503 and r)  # 503: rebalancing
        assert reply.status_code == 200, reply.text
        return reply.json()

    body = until(lambda: (b := listing(w1)) and b["count"] == 3 and b)
    cases = body["cases"]
    assert [(c["code"], c["state"], c["order_id"], c["sku"]) for c in cases] == [
        ("INVOICE_EXCEEDS_SHIPPED", "OPEN", "C-1", "SKU-C"),
        ("HOLD-CREDIT", "OPEN", "C-1", None),
        ("NEGATIVE_ATP", "OPEN", None, "SKU-C"),
    ]
    invoice, hold, negative = cases
    assert invoice["opened_at"] == "2026-11-02T09:02:00.000Z"
    assert (invoice["severity"], invoice["region"], invoice["channel"], invoice["customer_id"],
            invoice["warehouse_id"]) == ("HIGH", "EU", "EDI", "CU-1", "WH-1")
    assert hold["case_id"].startswith("o.C-1.HOLD-CREDIT.") and negative["case_id"].startswith("s.SKU-C.NEGATIVE_ATP.")
    assert invoice["age_ms"] > 0 and body["next_cursor"] is None

    # filters and paging
    assert [c["code"] for c in listing(w1, "?code=HOLD-CREDIT,NEGATIVE_ATP")["cases"]] == ["HOLD-CREDIT", "NEGATIVE_ATP"]
    assert [c["code"] for c in listing(w1, "?severity=HIGH&order_id=C-1")["cases"]] == ["INVOICE_EXCEEDS_SHIPPED"]
    first = listing(w1, "?limit=2")
    second = listing(w1, f"?limit=2&cursor={first['next_cursor']}")
    assert [c["case_id"] for c in first["cases"] + second["cases"]] == [c["case_id"] for c in cases]
    assert second["next_cursor"] is None
    for bad in ("?state=DONE", "?limit=0", "?colour=red", "?cursor=garbage"):
        assert w1.get(f"/cases{bad}").status_code == 400, bad
    assert w1.get(f"/cases/{invoice['case_id']}").json()["case_id"] == invoice["case_id"]
    assert w1.get("/cases/o.NOPE.CODE.x.00000000").status_code == 404
    assert w1.get("/cases/not-a-case-id").status_code == 404

    # people's actions: each an event, applied once
    case_id = invoice["case_id"]
    acked = post(w1, case_id, "acknowledge", {"who": "ana", "note": "looking"})
    assert acked.status_code == 200, acked.text
    assert (acked.json()["state"], acked.json()["acknowledged_by"]) == ("ACKNOWLEDGED", "ana")
    assigned = post(w1, case_id, "assign", {"who": "ana", "assignee": "ben"}, **{"Idempotency-Key": "k-1"})
    assert (assigned.status_code, assigned.json()["assignee"]) == (200, "ben")
    again = post(w1, case_id, "assign", {"who": "ana", "assignee": "ben"}, **{"Idempotency-Key": "k-1"})
    assert (again.status_code, again.json()["version"]) == (200, assigned.json()["version"])  # the same action
    resolved = post(w1, case_id, "resolve", {"who": "ben", "note": "credit note issued"})
    assert (resolved.json()["state"], resolved.json()["resolution"], resolved.json()["note"]) == (
        "RESOLVED", "MANUAL", "credit note issued")
    twice = post(w1, case_id, "resolve", {"who": "ben"})
    assert twice.status_code == 409 and twice.json()["reason"] == "ALREADY_RESOLVED"
    assert post(w1, case_id, "close", {"who": "ben"}).status_code == 400
    assert post(w1, case_id, "resolve", {"note": "no who"}).status_code == 400
    assert post(w1, "o.NOPE.CODE.x.00000000", "resolve", {"who": "ben"}).status_code == 404

    # the cause goes away: the hold's case resolves itself
    produce(kafka_env, "orders", [ev(7, "OrderHoldReleased", 10, order_id="C-1", hold_type="CREDIT")])
    auto = until(lambda: (c := w1.get(f"/cases/{hold['case_id']}").json())["state"] == "RESOLVED" and c)
    assert (auto["resolution"], auto["resolved_by"], auto["note"]) == ("AUTO", "system", "CREDIT hold released")

    # a second worker joins: the queue is the same from either, actions are routed to the owner
    w2 = workers("w2", O2C_SLA_CLOCK="event").start().wait_ready()
    until(lambda: w1.get("/ready").status_code == 200 and w2.get("/ready").status_code == 200)
    states = [(c["case_id"], c["state"]) for c in listing(w1)["cases"]]
    assert states == [(invoice["case_id"], "RESOLVED"), (hold["case_id"], "RESOLVED"), (negative["case_id"], "OPEN")]
    assert [(c["case_id"], c["state"]) for c in listing(w2)["cases"]] == states
    via_w2 = post(w2, negative["case_id"], "acknowledge", {"who": "cy"})
    assert (via_w2.status_code, via_w2.json()["state"]) == (200, "ACKNOWLEDGED")

    # the first worker leaves: the second holds every case, with every change
    w1.stop()
    assert until(lambda: (b := listing(w2))["workers"] == 1 and b["count"] == 3)
    final = {c["case_id"]: (c["state"], c["version"]) for c in listing(w2)["cases"]}
    assert final == {invoice["case_id"]: ("RESOLVED", 4), hold["case_id"]: ("RESOLVED", 2),
                     negative["case_id"]: ("ACKNOWLEDGED", 2)}
    changes = read_topic(kafka_env.settings, "cases", expect=8, idle=2)
    assert sorted((c["case_id"], c["version"]) for c in changes) == sorted(
        (case, v) for case, (_, last) in final.items() for v in range(1, last + 1))
    assert w2.errors() == []
