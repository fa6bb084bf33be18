"""Property tests of the SLA engine over random event streams (event clock).

Two orders get the random events of tests/test_order_properties.chaos_scenario (anything
goes: impossible events, duplicates, orphans, cancels), interleaved with inventory answers
and with business times spread over hours to weeks, sometimes out of order. After every
step:
- the due index holds exactly each order's pending deadlines;
- nothing is overdue and undetected: no order has a pending deadline before the stream time
  (the index found everything a full scan would);
- cancelled orders have no deadlines, closed ones at most DELIVERY;
- each (order, milestone) breached at most once, due_at < detected_at == the stream time;
- a closed breach was published before, `late` says whether it was met after its due time;
- status seqs stay contiguous, open and closed breaches never share a milestone.
And the whole run is deterministic: the same stream gives the same records.
"""

from __future__ import annotations

import tempfile
from collections import deque
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables.sla import DAY_MS, HOUR_MS, Milestone, pending_deadlines
from tables.status import is_cancelled
from tests.unit.test_order_properties import chaos_scenario
from tests.unit.test_order_support import T0, FakeInventory
from tests.unit.test_sla_support import TICKER, SlaPipeline

GAPS = st.sampled_from(
    [0, 1, 60_000, 30 * 60_000, HOUR_MS, 3 * HOUR_MS, 5 * HOUR_MS, DAY_MS, 2 * DAY_MS, 6 * DAY_MS,
     -HOUR_MS, -3 * DAY_MS]
)


def for_order(sources: dict[str, list[dict[str, Any]]], order_id: str) -> list[deque]:
    return [
        deque({**ev, "order_id": order_id, "event_id": f"{order_id}/{ev['event_id']}"} for ev in evs)
        for evs in sources.values()
    ]


@st.composite
def sla_streams(draw) -> list[tuple]:
    """A list of steps: ("event", ev) with its business time set, ("settle",), ("tick", t)."""
    queues: list[deque] = []
    caps: dict[str, int] = {}
    for order_id in ("SO-1", "SO-2"):
        sources, order_caps, _restocks, _bogus = draw(chaos_scenario())
        queues += for_order(sources, order_id)
        caps.update(order_caps)
    steps: list[tuple] = [("caps", caps)]
    t = T0
    while any(queues):
        t = max(T0, t + draw(GAPS))
        kind = draw(st.integers(0, 9))
        if kind == 0:
            steps.append(("settle",))
        elif kind == 1:
            steps.append(("tick", t))
        else:
            live = [q for q in queues if q]
            q = live[draw(st.integers(0, len(live) - 1))]
            steps.append(("event", {**q.popleft(), "occurred_at": t}))
    steps.append(("settle",))
    steps.append(("tick", t + 60 * DAY_MS))
    return steps


def run(steps: list[tuple], path: Path, *, check: bool) -> SlaPipeline:
    pipe = SlaPipeline(path, inventory=FakeInventory(caps=steps[0][1]))
    published: set[tuple[str, str]] = set()
    for step in steps[1:]:
        if step[0] == "event":
            pipe.event(step[1])
        elif step[0] == "settle":
            pipe.settle()
        else:
            pipe.tick(step[1])
        if check:
            check_step(pipe, published)
    pipe.close()
    return pipe


def check_step(pipe: SlaPipeline, published: set[tuple[str, str]]) -> None:
    now = pipe.now()
    for b in pipe.breaches:
        key = (b["order_id"], b["milestone"])
        if key in published:
            continue
        published.add(key)
        assert b["due_at"] < b["detected_at"] == now  # found as soon as the stream time passed it
    assert len(published) == len(pipe.breaches), "a milestone breached twice"
    for order_id, state in pipe.states.items():
        pending = pending_deadlines(state, pipe.policy, "event")
        assert pipe.index.deadlines(order_id) == pending
        assert all(due >= now for due in pending.values()), (order_id, pending, now)
        if state.placed_at is not None and is_cancelled(state):
            assert pending == {}
        if state.closed_at is not None:
            assert set(pending) <= {Milestone.DELIVERY}
        open_ms = [b["milestone"] for b in state.open_breaches]
        closed_ms = [b["milestone"] for b in state.closed_breaches]
        assert len(set(open_ms + closed_ms)) == len(open_ms) + len(closed_ms)
        assert {(order_id, m) for m in open_ms + closed_ms} <= published
        for c in state.closed_breaches:
            if c["met_at"] is not None:
                assert c["late"] == (c["milestone"] == Milestone.ORPHAN or c["met_at"] > c["due_at"])
            else:
                assert not c["late"] and c["milestone"] != Milestone.ORPHAN
    for order_id in pipe.states:
        if order_id == TICKER:
            continue
        seqs = [s["seq"] for s in pipe.statuses_of(order_id)]
        assert seqs == list(range(1, len(seqs) + 1))


@settings(
    max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)
@given(sla_streams())
def test_sla_engine_properties_hold_on_random_streams(steps: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first = run(steps, Path(tmp) / "a", check=True)
        again = run(steps, Path(tmp) / "b", check=False)
    assert again.breaches == first.breaches
    assert again.statuses == first.statuses
    assert {k: s.to_bytes() for k, s in again.states.items()} == {
        k: s.to_bytes() for k, s in first.states.items()
    }
