"""GET /sla/at-risk and the o2c_sla_at_risk gauge (issue 16 point 3, docs/operations-api.md):
open milestones by the share of their allowed time consumed, from the SLA index, on the wall
clock, before anything breaches."""

import json
import time
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import read_topic

pytestmark = pytest.mark.kafka

MINUTE = 60_000
POLICY = """
[default]
acceptance = "1h"
"""


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def placed(order_id: str, at: int, channel: str = "EDI") -> dict:
    return {
        "event_id": f"p-{order_id}", "event_type": "OrderPlaced", "occurred_at": iso(at), "source": "erp-eu",
        "order_id": order_id, "customer_id": "C-1", "channel": channel, "region": "EU", "currency": "EUR",
        "lines": [{"line_id": "1", "sku": "SKU-R", "quantity": 1, "unit_price_minor": 100}],
    }


def produce(kafka_env, events) -> None:
    done = kafka_env.o2c("produce", "orders", "-", input="".join(json.dumps(e) + "\n" for e in events))
    assert done.returncode == 0, done.stderr


def test_orders_at_risk_of_missing_acceptance(kafka_env, workers, tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    worker = workers(O2C_SLA_CLOCK="wall", O2C_SLA_POLICY_PATH=str(policy)).start().wait_ready()
    now = int(time.time() * 1000)
    # Placed 5, 40, 50 and 56 minutes ago, never accepted: ACCEPTANCE is due an hour after
    # placement; MEDIUM from 30 min, HIGH from 45, CRITICAL from 54 (50/75/90 %).
    ages = {"R-LOW": 5, "R-MED": 40, "R-HIGH": 50, "R-CRIT": 56}
    produce(kafka_env, [placed(o, now - m * MINUTE, "SALES" if o == "R-HIGH" else "EDI") for o, m in ages.items()])
    read_topic(kafka_env.settings, "order-status", expect=4)

    def listing(query: str = "") -> dict:
        reply = worker.get(f"/sla/at-risk{query}")
        assert reply.status_code == 200, reply.text
        return reply.json()

    body = listing()  # default: MEDIUM and above, most urgent (earliest due) first
    assert body["level"] == "MEDIUM"
    rows = body["at_risk"]
    assert [(r["order_id"], r["milestone"], r["level"]) for r in rows] == [
        ("R-CRIT", "ACCEPTANCE", "CRITICAL"), ("R-HIGH", "ACCEPTANCE", "HIGH"), ("R-MED", "ACCEPTANCE", "MEDIUM"),
    ]
    crit = rows[0]
    started, due = (datetime.fromisoformat(crit[k].replace("Z", "+00:00")) for k in ("started_at", "due_at"))
    assert (due - started).total_seconds() == 3600 and crit["due_at"].endswith("Z")
    assert 93.0 <= crit["consumed_pct"] < 100
    assert (crit["channel"], crit["region"]) == ("EDI", "EU")
    assert (body["count"], body["truncated"]) == (3, False)

    assert [r["order_id"] for r in listing("?level=high")["at_risk"]] == ["R-CRIT", "R-HIGH"]
    assert [r["order_id"] for r in listing("?level=LOW")["at_risk"]] == ["R-CRIT", "R-HIGH", "R-MED", "R-LOW"]
    assert [r["order_id"] for r in listing("?channel=SALES")["at_risk"]] == ["R-HIGH"]
    assert [r["order_id"] for r in listing("?milestone=SHIPMENT")["at_risk"]] == []
    limited = listing("?limit=1")
    assert ([r["order_id"] for r in limited["at_risk"]], limited["truncated"]) == (["R-CRIT"], True)

    gauge = {
        (s.labels["milestone"], s.labels["level"]): s.value
        for family in text_string_to_metric_families(worker.get("/metrics").text)
        if family.name == "o2c_sla_at_risk"
        for s in family.samples
    }
    assert gauge == {
        ("ACCEPTANCE", "CRITICAL"): 1.0, ("ACCEPTANCE", "HIGH"): 1.0, ("ACCEPTANCE", "MEDIUM"): 1.0,
    }

    # Accepting an order meets ACCEPTANCE: it leaves the listing.
    produce(kafka_env, [{
        "event_id": "a-R-CRIT", "event_type": "OrderAccepted", "occurred_at": iso(now), "source": "erp-eu",
        "order_id": "R-CRIT",
    }])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if [r["order_id"] for r in listing()["at_risk"]] == ["R-HIGH", "R-MED"]:
            break
        time.sleep(0.2)
    assert [r["order_id"] for r in listing()["at_risk"]] == ["R-HIGH", "R-MED"]

    for bad in ("?level=SEVERE", "?milestone=NOPE", "?limit=0", "?colour=red"):
        reply = worker.get(f"/sla/at-risk{bad}")
        assert reply.status_code == 400 and "error" in reply.json(), bad
    assert worker.errors() == []
