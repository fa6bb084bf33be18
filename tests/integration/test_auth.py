"""HTTP API access end to end (issue 17 point 2, docs/security.md): real workers with auth on and
a token per role, against the real broker. A request without the right token reaches no view, a
request routed to the key's owner or fanned out to other workers is checked there with the
caller's token, and no token or hash ever shows in a log, in /metrics or in an answer."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from streams.api.auth import Role, new_token
from streams.runtime.partitioner import partition_of
from tables.cases import Case
from tests.harness import Worker

pytestmark = pytest.mark.kafka

T0 = 1793610000000  # 2026-11-02T09:00:00Z
MINUTE = 60_000
ROUTED = {"X-O2C-Routed": "1"}


class Tokens:
    """One fresh token per role (plus extra viewers), their config entries, and every answer
    body and header seen, for the leak check."""

    def __init__(self, *extra_viewers: str) -> None:
        self.secret: dict[str, str] = {}
        self.entry: dict[str, str] = {}
        for name, role in [*((r.label, r) for r in Role), *((n, Role.VIEWER) for n in extra_viewers)]:
            token, entry = new_token(role, name)
            self.secret[name], self.entry[name] = token, entry.entry()
        self.seen: list[str] = []

    def config(self, *names: str) -> str:
        return ",".join(self.entry[n] for n in names)

    def call(self, method: str, worker: Worker, path: str, who: str | None, *, raw: str | None = None,
             headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(headers or {})
        if who is not None or raw is not None:
            headers["Authorization"] = f"Bearer {raw if raw is not None else self.secret[who]}"
        reply = requests.request(method, f"{worker.url}{path}", headers=headers, timeout=30, **kwargs)
        self.seen.append(reply.text + json.dumps(dict(reply.headers)))
        return reply

    def assert_never_leaked(self, *texts: str) -> None:
        hashes = [e.rsplit(":", 1)[1] for e in self.entry.values()]
        for text in [*texts, *self.seen]:
            for secret in [*self.secret.values(), *hashes, WRONG]:
                assert secret not in text


WRONG = "o2c_not-a-configured-token-0123456789abcdef"


def ev(n: int, event_type: str, minute: int, **fields: Any) -> dict:
    return {"event_id": f"a{n}", "event_type": event_type, "occurred_at": T0 + minute * MINUTE, "source": "erp-eu",
            **fields}


def held_orders(kafka_env, order_ids: list[str]) -> None:
    """Each order placed and put on credit hold: one HOLD-CREDIT case per order."""
    events = []
    for i, order_id in enumerate(order_ids):
        events += [
            ev(10 * i, "OrderPlaced", 0, order_id=order_id, customer_id="CU-1", channel="EDI", region="EU",
               currency="EUR", lines=[{"line_id": "1", "sku": "SKU-A", "quantity": 1, "unit_price_minor": 500}]),
            ev(10 * i + 1, "OrderHoldApplied", 1, order_id=order_id, hold_type="CREDIT", reason="limit"),
        ]
    done = kafka_env.o2c("produce", "orders", "-", input="".join(json.dumps(e) + "\n" for e in events))
    assert done.returncode == 0, done.stderr


def until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.2)


def one_order_per_partition(partitions: int) -> list[str]:
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        n += 1
        found.setdefault(partition_of(f"AU-{n}".encode(), partitions), f"AU-{n}")
    return [found[p] for p in range(partitions)]


def auth_env(tokens: Tokens, *names: str, **extra: str) -> dict[str, str]:
    return {"O2C_AUTH_ENABLED": "true", "O2C_API_TOKENS": tokens.config(*names), "O2C_SLA_CLOCK": "event",
            **extra}


def test_roles_on_one_worker_and_no_secret_leaks(kafka_env, workers) -> None:
    tokens = Tokens()
    w1 = workers("w1", **auth_env(tokens, "viewer", "operator", "admin", O2C_METRICS_PUBLIC="false"))
    w1.start().wait_ready()  # /ready needs no token
    [order_id] = one_order_per_partition(1)
    held_orders(kafka_env, [order_id])

    # open: probes and the API description
    for path in ("/health", "/ready", "/openapi.json"):
        assert tokens.call("GET", w1, path, None).status_code == 200, path
    # no token, a malformed header, an unknown token: 401 with a Bearer challenge, JSON body
    for who, raw in ((None, None), (None, ""), (None, WRONG)):
        reply = tokens.call("GET", w1, f"/orders/{order_id}", who, raw=raw)
        assert reply.status_code == 401 and reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert set(reply.json()) == {"error"}
    assert tokens.call("GET", w1, "/no/such/path", None).status_code == 401  # nothing about routes either
    # /metrics protected by O2C_METRICS_PUBLIC=false
    assert tokens.call("GET", w1, "/metrics", None).status_code == 401
    metrics = tokens.call("GET", w1, "/metrics", "viewer")
    assert metrics.status_code == 200 and "o2c_events_in_total" in metrics.text

    # the viewer reads the order and the work queue
    order = until(lambda: (r := tokens.call("GET", w1, f"/orders/{order_id}", "viewer")).status_code == 200 and r,
                  what="order placed")
    assert order.json()["order_id"] == order_id
    queue = until(lambda: (r := tokens.call("GET", w1, "/cases", "viewer")).status_code == 200
                  and r.json()["count"] == 1 and r, what="hold case open")
    [case] = queue.json()["cases"]
    assert (case["code"], case["state"], case["order_id"]) == ("HOLD-CREDIT", "OPEN", order_id)
    assert tokens.call("GET", w1, f"/cases/{case['case_id']}", "viewer").status_code == 200

    # ... but may not act on it; the operator may; an admin is an operator too
    resolve = f"/cases/{case['case_id']}/resolve"
    refused = tokens.call("POST", w1, resolve, "viewer", json={"who": "vic", "note": "ok"})
    assert refused.status_code == 403
    assert refused.json()["role"] == "viewer" and refused.json()["required_role"] == "operator"
    assert tokens.call("GET", w1, f"/cases/{case['case_id']}", "viewer").json()["state"] == "OPEN"
    assert tokens.call("POST", w1, resolve, None, json={"who": "x"}).status_code == 401
    done = tokens.call("POST", w1, resolve, "operator", json={"who": "olga", "note": "credit ok"})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "RESOLVED"
    assert tokens.call("POST", w1, resolve, "admin", json={"who": "ada"}).status_code == 409  # already resolved
    # writes nobody defined are administrative: 403 for an operator, past auth (405) for an admin
    assert tokens.call("POST", w1, f"/orders/{order_id}", "operator", json={}).status_code == 403
    assert tokens.call("POST", w1, f"/orders/{order_id}", "admin", json={}).status_code == 405

    # the refusals are logged, by token name, and no secret is anywhere
    metrics_after = tokens.call("GET", w1, "/metrics", "admin").text
    log = w1.log_path.read_text(errors="replace")
    assert "HTTP 403 for POST" in log and "'viewer'" in log and "HTTP 401" in log
    assert "authentication is OFF" not in log
    tokens.assert_never_leaked(log, metrics_after)
    assert w1.errors() == []


def test_routed_and_fanned_out_requests_carry_the_callers_token(kafka_env, workers) -> None:
    tokens = Tokens("only-w1")
    everyone = ("viewer", "operator", "admin")
    w1 = workers("w1", **auth_env(tokens, *everyone, "only-w1")).start().wait_ready()
    w2 = workers("w2", **auth_env(tokens, *everyone)).start()
    orders = one_order_per_partition(2)
    held_orders(kafka_env, orders)
    w2.wait_ready()

    def local_cases(worker: Worker) -> list[dict] | None:
        """The worker's own cases, in the public form (`/cases/local` is the merge form)."""
        reply = tokens.call("GET", worker, "/cases/local", "viewer")
        if reply.status_code != 200:
            return None
        return [Case.from_list(c).view(0) for c in reply.json()["cases"]]

    # settled: each worker owns one partition, so one of the two cases
    until(lambda: w1.get("/ready").status_code == 200 and w2.get("/ready").status_code == 200
          and len(local_cases(w1) or []) == 1 and len(local_cases(w2) or []) == 1, timeout=60,
          what="one case on each worker")
    [theirs] = local_cases(w2)
    [mine] = local_cases(w1)
    assert theirs["order_id"] != mine["order_id"]

    # a read of a key w2 owns, asked of w1, is forwarded with the caller's token
    reply = tokens.call("GET", w1, f"/orders/{theirs['order_id']}", "viewer")
    assert reply.status_code == 200 and "X-O2C-Stale" not in reply.headers
    assert reply.json()["order_id"] == theirs["order_id"]
    # w2 checks that token itself: one w2 does not know is refused there, and the 401 comes back
    assert tokens.call("GET", w1, f"/orders/{mine['order_id']}", "only-w1").status_code == 200
    assert tokens.call("GET", w1, f"/orders/{theirs['order_id']}", "only-w1").status_code == 401
    # the fan-out to /local endpoints carries the token too: both workers answer the viewer...
    listing = tokens.call("GET", w1, "/cases", "viewer").json()
    assert listing["workers"] == 2 and listing["count"] == 2 and "unreachable_workers" not in listing
    assert tokens.call("GET", w1, "/kpis", "viewer").json()["workers"] == 2
    # ... and w2 refuses the token it does not know, reported rather than skipped in silence
    partial = tokens.call("GET", w1, "/cases", "only-w1").json()
    assert partial["count"] == 1 and partial["unreachable_workers"] == [w2.url]
    # a request claiming to be routed is authenticated like any other
    direct = tokens.call("GET", w2, f"/orders/{theirs['order_id']}", None, headers=ROUTED)
    assert direct.status_code == 401
    action = {"who": "vic", "note": "credit ok"}
    resolve = f"/cases/{theirs['case_id']}/resolve"
    assert tokens.call("POST", w2, resolve, None, headers=ROUTED, json=action).status_code == 401
    assert tokens.call("POST", w2, resolve, "viewer", headers=ROUTED, json=action).status_code == 403

    # a case action on w2's case through w1: a viewer is refused, an operator's is forwarded and applied
    assert tokens.call("POST", w1, resolve, "viewer", json=action).status_code == 403
    done = tokens.call("POST", w1, resolve, "operator", json={"who": "olga", "note": "credit ok"})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "RESOLVED"
    assert tokens.call("GET", w2, f"/cases/{theirs['case_id']}", "viewer").json()["state"] == "RESOLVED"

    logs = [w.log_path.read_text(errors="replace") for w in (w1, w2)]
    assert "(token 'only-w1')" not in logs[1] and "HTTP 401 for GET /orders/" in logs[1]
    metrics = [tokens.call("GET", w, "/metrics", None).text for w in (w1, w2)]  # public by default
    assert all("o2c_events_in_total" in m for m in metrics)
    tokens.assert_never_leaked(*logs, *metrics)
    assert w1.errors() == [] and w2.errors() == []
