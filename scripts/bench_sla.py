"""Benchmark of one SLA check: the due index against a naive scan of every open order.

    python -m scripts.bench_sla [--orders 200000] [--due 1000] [--reps 200]

Builds `--orders` open orders through the real order model (a quarter each: placed;
accepted; dispatched; dispatched and invoiced), stores their bytes in a RocksDB (the orders
table of the naive baseline) and their deadlines in a `DueIndex`, then times, with nothing
due and with `--due` deadlines due:
- the index scan (`DueIndex.due`), median of `--reps` calls;
- a whole check: the scan, then for each due entry read and decode the order, recompute its
  deadlines and record the breach (`tables.sla.breach_due`), median of `--reps` calls on
  fresh copies (nothing written back, so every call does the same work);
- the baseline in the same run: read and decode every order state and compute its pending
  deadlines (what a check costs without an index), median of 3 scans;
then one run of the check that also reschedules the breached orders (index writes), and the
scan after it. And the one-off cost of rebuilding the index from the states (what partition
assignment pays, docs/sla.md). Prints each figure with this command and the ratio
baseline / check.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rocksdict import Options, Rdict, WriteBatch

from streams.processors.due_index import DueIndex
from tables.order import apply_event
from tables.order_state import OrderState
from tables.sla import HOUR_MS, SlaPolicy, breach_due, pending_deadlines

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SPACING_MS = 1_000  # order i is placed at T0 + i s: deadlines spread over days
CLOCK = "wall"


def build_state(i: int) -> OrderState:
    """Order i: placed, then (by i % 4) accepted, dispatched, invoiced."""
    oid = f"SO-{i:07d}"
    t = T0 + i * SPACING_MS
    s = OrderState(oid)
    n = 0

    def ev(event_type: str, at: int, **fields) -> None:
        nonlocal n
        n += 1
        apply_event(s, {"event_id": f"{oid}-{n}", "event_type": event_type, "occurred_at": at,
                        "source": "bench", "correlation_id": None, "order_id": oid, **fields})

    ev("OrderPlaced", t, customer_id="C-1", channel=("EDI", "ECOM", "SALES")[i % 3],
       region="EU", currency="EUR", payment_terms_days=30, promised_ship_at=None,
       lines=[{"line_id": "1", "sku": f"SKU-{i % 50}", "quantity": 5, "unit_price_minor": 1250,
               "warehouse_id": None},
              {"line_id": "2", "sku": f"SKU-{i % 7}", "quantity": 2, "unit_price_minor": 990,
               "warehouse_id": None}])
    stage = i % 4
    if stage >= 1:
        ev("OrderAccepted", t + HOUR_MS)
    if stage >= 2:
        ev("ShipmentDispatched", t + 20 * HOUR_MS, shipment_id=f"SH-{i}", warehouse_id="DC1",
           carrier="DHL", tracking_number="1Z", lines=[{"line_id": "1", "quantity": 5},
                                                       {"line_id": "2", "quantity": 2}])
    if stage >= 3:
        ev("InvoicePosted", t + 22 * HOUR_MS, invoice_id=f"INV-{i}", total_minor=8230,
           due_at=None, lines=[{"line_id": "1", "quantity": 5, "amount_minor": 6250},
                               {"line_id": "2", "quantity": 2, "amount_minor": 1980}])
    return s


def median_ms(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_sla")
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args(argv)
    policy = SlaPolicy()

    with tempfile.TemporaryDirectory(prefix="bench-sla-") as tmp:
        orders = Rdict(str(Path(tmp) / "orders"), Options(raw_mode=True))
        index = DueIndex(Path(tmp) / "due")
        t = time.perf_counter()
        batch = WriteBatch(raw_mode=True)
        all_dues: list[int] = []
        for i in range(args.orders):
            s = build_state(i)
            batch.put(s.order_id.encode(), s.to_bytes())
            all_dues.extend(pending_deadlines(s, policy, CLOCK).values())
            if i % 10_000 == 9_999:
                orders.write(batch)
                batch = WriteBatch(raw_mode=True)
        orders.write(batch)
        built = time.perf_counter() - t

        def deadlines_of_all():
            for key, raw in orders.items():
                yield key.decode(), pending_deadlines(OrderState.from_bytes(raw), policy, CLOCK)

        t = time.perf_counter()
        scheduled = index.rebuild(deadlines_of_all())
        rebuild_s = time.perf_counter() - t

        all_dues.sort()
        now_none = all_dues[0]  # due < now: nothing has passed yet
        now_due = all_dues[args.due]
        n_due = sum(1 for d in all_dues if d < now_due)

        def naive(now: int) -> int:
            hits = 0
            for _key, raw in orders.items():
                for due in pending_deadlines(OrderState.from_bytes(raw), policy, CLOCK).values():
                    hits += due < now
            return hits

        def check(now: int) -> int:
            breaches = 0
            for order_id, _m, _due in index.due(now):
                state = OrderState.from_bytes(orders[order_id.encode()])
                breaches += len(breach_due(state, policy, CLOCK, now)[0])
            return breaches

        assert naive(now_none) == 0 and check(now_none) == 0
        assert naive(now_due) == n_due == check(now_due)
        scan_none = median_ms(lambda: index.due(now_none), args.reps)
        reads_none = index.last_scan_reads
        scan_due = median_ms(lambda: index.due(now_due), args.reps)
        reads_due = index.last_scan_reads
        check_none = median_ms(lambda: check(now_none), args.reps)
        check_due = median_ms(lambda: check(now_due), max(10, args.reps // 10))
        base_none = median_ms(lambda: naive(now_none), 3)
        base_due = median_ms(lambda: naive(now_due), 3)

        def check_and_reschedule(now: int) -> int:
            breaches = 0
            for order_id, _m, _due in index.due(now):
                state = OrderState.from_bytes(orders[order_id.encode()])
                breaches += len(breach_due(state, policy, CLOCK, now)[0])
                index.schedule(order_id, pending_deadlines(state, policy, CLOCK))
            return breaches

        recorded = median_ms(lambda: check_and_reschedule(now_due), 1)  # one run: it writes
        after = median_ms(lambda: index.due(now_due), args.reps)
        assert index.due(now_due) == []
        index.close()
        orders.close()

    cmd = f"python -m scripts.bench_sla --orders {args.orders} --due {args.due} --reps {args.reps}"
    print(f"$ {cmd}")
    print(f"  {args.orders:,} open orders ({len(all_dues):,} pending deadlines, {scheduled:,} "
          f"orders indexed); built through the order model in {built:.1f} s")
    print(f"  rebuild of the index from the stored states (partition assignment): {rebuild_s:.2f} s")
    print("  one check                          nothing due        "
          f"{n_due:,} due")
    print(f"    index scan (DueIndex.due)        {scan_none:9.4f} ms ({reads_none} read)"
          f"  {scan_due:8.2f} ms ({reads_due:,} reads)")
    print(f"    whole check (scan+load+breach)   {check_none:9.4f} ms"
          f"             {check_due:8.2f} ms")
    print(f"    baseline: naive scan of all      {base_none:9.1f} ms"
          f"             {base_due:8.1f} ms")
    print(f"  ratio baseline / whole check: {base_none / check_none:,.0f}x with nothing due, "
          f"{base_due / check_due:,.0f}x with {n_due:,} due")
    print(f"  the {n_due:,}-due check also rescheduling each order (one run): {recorded:.2f} ms; "
          f"the next checks, nothing due: {after:.4f} ms")


if __name__ == "__main__":
    main()
