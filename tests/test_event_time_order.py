"""The order agent applies a batch per partition in event-time order, never reordering a topic."""

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from streams.orders import in_event_time_order


def ev(topic, partition, at, n):
    return (SimpleNamespace(topic=topic, partition=partition), {"occurred_at": at, "n": n})


def test_invoice_waits_for_the_earlier_shipment_of_the_same_partition():
    batch = [ev("payments", 0, 300, "invoice"), ev("shipments", 0, 200, "dispatch"), ev("orders", 1, 50, "other")]
    order = [flat["n"] for _, flat in in_event_time_order(batch)]
    assert order.index("dispatch") < order.index("invoice")
    assert sorted(order) == ["dispatch", "invoice", "other"]


@given(st.lists(st.tuples(st.sampled_from(["orders", "shipments", "payments"]), st.integers(0, 2), st.integers(0, 50))))
def test_each_topic_keeps_its_own_order_and_nothing_is_lost(items):
    batch = [ev(t, p, at, i) for i, (t, p, at) in enumerate(items)]
    out = list(in_event_time_order(batch))
    assert sorted(flat["n"] for _, flat in out) == list(range(len(items)))
    for topic in ("orders", "shipments", "payments"):
        for partition in range(3):
            sub = [flat["n"] for e, flat in out if e.topic == topic and e.partition == partition]
            assert sub == sorted(sub)
