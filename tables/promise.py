"""Promise dates of backordered lines from expected supply (SPEC §5).

Expected supplies of a warehouse are consumed in `expected_at` order (ties: `supply_id`),
first by the warehouse's ATP deficit (a negative ATP must be made good before anything is
filled), then by its backorders in FCFS order. A backordered line is promised the
`expected_at` of the supply at which the cumulative expected quantity first covers
everything ahead of it plus its own backorder; None when the expected supply does not reach.
"""

from __future__ import annotations

from tables.ledger import Warehouse


def promise_dates(w: Warehouse) -> list[int | None]:
    """The promise date of each line of `w.queue`, in queue order."""
    queue = w.queue
    if not w.supply:
        return [None] * len(queue)
    supplies = sorted((at, sid, q) for sid, (q, at) in w.supply.items())
    atp = w.on_hand - w.reserved - w.safety_stock
    need = -atp if atp < 0 else 0
    covered = 0  # cumulative expected quantity of supplies[:k]
    k = 0
    n = len(supplies)
    at = None
    out: list[int | None] = []
    for rec in queue:
        need += rec.backordered
        while covered < need and k < n:
            at, _, q = supplies[k]
            covered += q
            k += 1
        out.append(at if covered >= need else None)
    return out
