"""An agent's topics are merged by business time (`occurred_at`), never reordering a topic: the
agent's `event_time` gives the runtime's task the time it merges by (issue 13)."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from streams.contracts.schemas import DecodeError
from streams.runtime.engine import CAUSE_TIME, Record, Task
from streams.runtime.processor import BatchAgent
from tests.runtime_fakes import Msg


class Agent(BatchAgent):
    """Values are `b"<occurred_at>:<name>"`; `b"bad"` does not decode."""

    def __init__(self) -> None:
        super().__init__(SimpleNamespace(), {"orders": "orders", "shipments": "shipments", "payments": "payments"})

    def decode(self, record):
        if record.value == b"bad":
            raise DecodeError("not an event")
        at, name = record.value.decode().split(":")
        return {"occurred_at": int(at), "n": name}


def merged(agent: Agent, batches: list[tuple[str, int, str]], limit: int = 1000) -> list[str]:
    task = Task(agent, 0, list(agent.topics))
    for offset, (topic, at, name) in enumerate(batches):
        record = Record(Msg(topic, offset, 1_000_000 + offset, value=f"{at}:{name}".encode() if name != "bad" else b"bad"))
        record.timestamp = agent.event_time(record)
        task.queues[task.topics.index(topic)].append(record)
    task.at_end = [True] * len(task.topics)
    out = []
    while taken := task.take(limit, now=0.0):
        out += [agent.item_of(r)["n"] if r.value != b"bad" else "bad" for r in taken]
    return out


def test_a_dispatch_produced_first_waits_for_the_line_increase_that_happened_before_it():
    # Produced (and delivered) in this order; business times say the increase came first.
    order = merged(Agent(), [("shipments", 300, "dispatch"), ("orders", 200, "increase"), ("payments", 50, "pay")])
    assert order == ["pay", "increase", "dispatch"]


def test_undecodable_records_keep_their_place_and_reach_process_as_the_error():
    agent = Agent()
    record = Record(Msg("orders", 5, 1_000_005, value=b"bad"))
    assert agent.event_time(record) == record.timestamp  # produce time: it goes where it was sent
    try:
        agent.item_of(record)
    except DecodeError:
        pass
    else:
        raise AssertionError("the decode error must reach process")


def test_internal_records_keep_their_cause_time():
    agent = Agent()
    record = Record(Msg("orders", 0, 1_000_000, [(CAUSE_TIME, b"15")], b"999:result"))
    assert agent.event_time(record) == 15
    assert agent.item_of(record)["n"] == "result"  # decoded once, kept for process


@given(
    st.lists(st.tuples(st.sampled_from(["orders", "shipments", "payments"]), st.integers(0, 50)), max_size=40),
    st.integers(1, 5),
)
def test_each_topic_keeps_its_order_nothing_is_lost_and_batches_do_not_matter(items, limit):
    batch = [(topic, at, str(i)) for i, (topic, at) in enumerate(items)]
    whole = merged(Agent(), batch)
    assert merged(Agent(), batch, limit) == whole
    assert sorted(whole, key=int) == [str(i) for i in range(len(items))]
    for topic in ("orders", "shipments", "payments"):
        sub = [n for n in whole if batch[int(n)][0] == topic]
        assert sub == sorted(sub, key=int)
    # Each record taken is no later than the head of every other topic at that moment.
    for i, n in enumerate(whole):
        for topic in ("orders", "shipments", "payments"):
            rest = [batch[int(m)][1] for m in whole[i:] if batch[int(m)][0] == topic]
            if rest:
                assert batch[int(n)][1] <= rest[0]
