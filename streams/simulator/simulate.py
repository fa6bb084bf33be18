"""Deterministic order-to-cash traffic generator behind `o2c simulate`.

The model, briefly
------------------
A small distributor: a few warehouses (`DC1`..), a catalogue of SKUs with a skewed (Zipf-like)
popularity, and a pool of customers, each with a region (hence currency and home warehouse), a
sales channel and payment terms. Business time starts at `SimulationConfig.start_at`.

* **Inventory.** Opening balances (`SafetyStockSet` + `InventoryReceived`) for every
  warehouse x SKU, one hour before the first order. Afterwards a simple (s, S) replenishment
  planner watches the simulator's own projection of free stock: when it falls below a reorder
  point derived from observed demand (with deliberate forecast error) it announces a
  `SupplyExpected` and books an `InventoryReceived` on arrival (sometimes late, sometimes short,
  `source_doc` = the supply id). Stock adjustments (mostly negative: damage, shrink), physical
  counts (`InventorySnapshot`) and safety-stock revisions are sprinkled in as orders arrive. The
  lag between demand and supply makes ATP run short now and then, so backorders happen.
* **Orders.** Orders arrive as a Poisson process (`mean_order_gap_s`), at most `concurrency`
  in flight; when the cap is reached, the next order waits until one finishes. Each order's whole
  lifecycle is planned when it is placed, as timestamped events on the four topics:
  `OrderPlaced` -> (hold applied/released) -> `OrderAccepted` -> (line changes and cancels) ->
  per warehouse `ShipmentPicked` -> `ShipmentDispatched` -> `ShipmentDelivered` -> one
  `InvoicePosted` per shipment -> `PaymentReceived` (sometimes in two instalments, sometimes
  without invoice reference; rarely a duplicate payment that is later `PaymentRefunded`).
  Lines that the projected stock cannot cover wait for the pending supply (or ship from another
  warehouse, or are cancelled by the customer). Some orders are cancelled, some never reach a
  milestone (`lapse_share`: never accepted, shipped, delivered, invoiced or paid).
* **Emission.** The planned events of all orders in flight are merged by emission time into
  one stream (a heap holding one cursor per order: memory grows with the orders in flight, not
  with the length of the run). Emission time equals `occurred_at`, except for the deliberately
  out-of-order orders (an `OrderPlaced` that arrives after its `OrderAccepted` or after its first
  `ShipmentPicked`, an `InvoicePosted` that arrives after its payment) and the duplicates (an
  exact copy of an already emitted event, re-sent a little later).

* **Intents.** `generate(config, intents=[])` also says which business exceptions the
  simulator causes on purpose: an `Intent(code, key, event_id, kind)` is appended to the list
  as its event is emitted, for every deliberate irregularity (duplicates, out-of-order events,
  payments without an invoice reference, a duplicate payment, short or late receipts, a loss
  that certainly takes ATP below zero). `code` is the exception that SPEC and `tables/` make
  certain for that key whatever the order in which the topics are read, or None when the app
  must absorb the irregularity silently. Recording them draws no random number: the stream is
  the same with or without the list.

Everything is drawn from one `random.Random(seed)`, so a seed determines the stream exactly:
ids included (`event_id` = `ev-<seed>-<counter>`, `order_id` = `SO-<seed>-<n>`, ...).
Replaying the same seed into the same topics is therefore a no-op for the app (same event ids),
and different seeds never collide on order ids.

Events are flat dicts (envelope and payload fields side by side, timestamps as epoch-millis
ints) exactly as described in `docs/contract-fields.md`; see `docs/simulator.md` for the knobs.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from bisect import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "DEFAULT_START_AT",
    "INPUT_ROLES",
    "INTENT_KINDS",
    "KEY_FIELDS",
    "Intent",
    "SimEvent",
    "SimulationConfig",
    "Sources",
    "Summary",
    "generate",
    "live",
    "rate_limited",
    "summary",
]

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

DEFAULT_START_AT = 1_767_600_000_000
"""2026-01-05T08:00:00Z, a Monday morning: the default start of business time."""

INPUT_ROLES = ("orders", "shipments", "payments", "inventory")
KEY_FIELDS = {"orders": "order_id", "shipments": "order_id", "payments": "order_id", "inventory": "sku"}

LAPSE_MILESTONES = ("ACCEPTANCE", "SHIPMENT", "DELIVERY", "INVOICE", "PAYMENT")
DISORDER_KINDS = ("placed_after_accepted", "shipment_before_placed", "payment_before_invoice")

# Minor-unit prices are defined in EUR and converted with these rough rates.
_FX = {"EUR": 1.0, "USD": 1.08, "GBP": 0.86, "SGD": 1.45, "AUD": 1.65, "CHF": 0.95}
_CARD_CHANNELS = frozenset({"ECOM", "MARKETPLACE"})
_LINE_COUNT_CUM = (0.35, 0.60, 0.80, 0.92, 1.0)  # 1..5 lines per order
_MEAN_EXTRA_QTY = {"EDI": 10.0, "SALES": 6.0, "ECOM": 0.6, "MARKETPLACE": 1.2}
_MAX_QTY = {"EDI": 80, "SALES": 50, "ECOM": 5, "MARKETPLACE": 8}
_HOLD_REASONS = {
    "CREDIT": "credit limit exceeded",
    "FRAUD": "fraud screening",
    "COMPLIANCE": "export control screening",
    "MANUAL": "customer service review",
}
_CANCEL_REASONS = ("customer request", "duplicate order", "price dispute", "no longer needed")


@dataclass(frozen=True)
class Sources:
    """Names of the emitting systems (the envelope's `source`).

    `{region}` and `{warehouse}` are replaced by the lower-cased region or warehouse id.
    """

    erp: str = "erp-{region}"  # acceptance, holds, changes, cancels, invoices
    edi: str = "edi-gw"  # OrderPlaced of EDI orders
    ecom: str = "ecom-web"  # OrderPlaced of ECOM orders
    marketplace: str = "mkt-gw"  # OrderPlaced of MARKETPLACE orders (SALES orders come from the ERP)
    wms: str = "wms-{warehouse}"  # picks, dispatches, receipts, adjustments, counts
    tms: str = "tms-x"  # deliveries
    card: str = "pay-stripe"  # payments and refunds of ECOM and MARKETPLACE orders
    bank: str = "bank-{region}"  # payments and refunds of EDI and SALES orders
    planning: str = "mrp-plan"  # SafetyStockSet
    purchasing: str = "erp-purchasing"  # SupplyExpected


@dataclass(frozen=True)
class SimulationConfig:
    """Every knob of the simulator. Shares are probabilities in [0, 1]."""

    orders: int = 1000
    seed: int = 1
    start_at: int = DEFAULT_START_AT
    warehouses: tuple[str, ...] = ("DC1", "DC2", "DC3")
    skus: int = 50
    customers: int = 400
    # (region, currency, weight); region i's home warehouse is warehouses[i % len(warehouses)].
    regions: tuple[tuple[str, str, float], ...] = (
        ("EU", "EUR", 0.5),
        ("NA", "USD", 0.35),
        ("APAC", "SGD", 0.15),
    )
    # (channel, weight); channels must be values of the contract's Channel enum.
    channels: tuple[tuple[str, float], ...] = (
        ("EDI", 0.35),
        ("ECOM", 0.3),
        ("SALES", 0.2),
        ("MARKETPLACE", 0.15),
    )
    carriers: tuple[str, ...] = ("DHL", "UPS", "DPD", "FEDEX")
    sources: Sources = field(default_factory=Sources)
    mean_order_gap_s: float = 600.0  # mean time between two order arrivals (business time)
    concurrency: int = 5000  # orders in flight at most (arrivals wait when reached)
    duplicate_share: float = 0.02  # events re-sent as exact copies
    out_of_order_share: float = 0.02  # orders with an event emitted before one it logically follows
    cancel_share: float = 0.03  # orders cancelled (before or after acceptance, never after shipping)
    line_change_share: float = 0.04  # lines whose quantity is changed after acceptance
    line_cancel_share: float = 0.02  # lines (partly) cancelled after acceptance
    backorder_cancel_share: float = 0.2  # short lines the customer cancels instead of waiting
    hold_share: float = 0.05  # orders put on hold, then released
    hold_decline_share: float = 0.15  # credit holds never released: the order is cancelled instead
    no_warehouse_share: float = 0.2  # order lines without warehouse_id (the app picks one)
    reroute_share: float = 0.02  # lines shipped from another warehouse than their own
    split_share: float = 0.08  # shipments split into two partial shipments
    promised_share: float = 0.3  # orders with a promised_ship_at
    slow_share: float = 0.04  # orders whose acceptance or picking is slow (SLA breach material)
    partial_payment_share: float = 0.08  # invoices paid in two instalments
    unapplied_payment_share: float = 0.05  # bank payments without invoice_id
    late_payment_share: float = 0.06  # bank payments after the due date
    refund_share: float = 0.01  # orders paid twice, the duplicate payment refunded
    lapse_share: float = 0.01  # orders that never reach some milestone
    adjustment_share: float = 0.15  # stock adjustments per order placed
    snapshot_share: float = 0.02  # physical counts per order placed

    def __post_init__(self) -> None:
        if self.orders < 0:
            raise ValueError("orders must be >= 0")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if not self.warehouses or len(set(self.warehouses)) != len(self.warehouses):
            raise ValueError("warehouses must be non-empty and distinct")
        if self.skus < 1 or self.customers < 1:
            raise ValueError("skus and customers must be >= 1")
        if not self.regions or not self.channels or not self.carriers:
            raise ValueError("regions, channels and carriers must be non-empty")
        if self.mean_order_gap_s <= 0:
            raise ValueError("mean_order_gap_s must be > 0")
        for name, value in vars(self).items():
            if name.endswith("_share") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")


class Intent(NamedTuple):
    """A deliberate irregularity of the stream, and the business exception it must raise.

    `code`: the `BusinessException` code (tables/exceptions.py, tables/ledger.py) that SPEC §4-§5
    and the model make certain for `key` (the exceptions topic's key: `order_id`, or `sku` for a
    ledger event) whatever the order in which the app reads its input topics; None when the app
    must absorb it without any exception (a repeated event id, an event buffered until its
    `OrderPlaced`, ...). `event_id`: the event that causes it (the exception's
    `cause_event_id`). `kind`: which deliberate behaviour (INTENT_KINDS, docs/simulator.md).
    """

    code: str | None
    key: str
    event_id: str
    kind: str


INTENT_KINDS: dict[str, str | None] = {
    "duplicate": None,  # an exact copy (same event_id) re-sent later: a no-op
    "placed_after_accepted": None,  # OrderPlaced emitted after its OrderAccepted: buffered
    "shipment_before_placed": None,  # the ERP's events emitted after the first ShipmentPicked
    "payment_before_invoice": "UNKNOWN_INVOICE",  # a payment naming an invoice not posted yet
    "payment_before_invoice_unapplied": None,  # the same, the payment naming no invoice
    "unapplied_payment": None,  # a bank payment without invoice_id: cash applied to the order
    "duplicate_payment": "OVERPAYMENT",  # the last invoice paid again (new payment id)
    "cancel_after_lines_cancelled": "EVENT_AFTER_CANCEL",  # OrderCancelled, every line cancelled
    "short_receipt": None,  # a supply received short: closes the expected supply
    "late_receipt": None,  # a supply received after its expected_at
    "loss_below_safety_stock": "NEGATIVE_ATP",  # a loss that leaves on-hand below safety stock
}
"""Every intent kind and its code (None: no exception may follow)."""


class SimEvent(NamedTuple):
    """One simulated record: the topic role and the flat event."""

    role: str
    event: dict[str, Any]

    @property
    def key(self) -> str:
        """The Kafka key: `order_id`, or `sku` on the inventory topic."""
        return self.event[KEY_FIELDS[self.role]]


def generate(
    config: SimulationConfig | None = None, intents: list[Intent] | None = None
) -> Iterator[SimEvent]:
    """The simulated stream, lazily: deterministic for a given config (seed included).

    With `intents` (a list), each `Intent` is appended to it when its causing event is emitted,
    before that event is yielded (a duplicate's intent with the copy). The stream is the same
    with or without it."""
    return _Simulator(config or SimulationConfig(), intents).run()


# --------------------------------------------------------------------------- internals

# A planned event: [emit_at, seq, role, event, effect]. `effect` (or None) runs right before the
# event is emitted: it keeps the simulator's physical stock in step and may fill in fields
# that depend on it (a count's on_hand).
_Item = list
_ORDER, _SIDE, _COPY = 0, 1, 2  # what a heap cursor walks: an order's plan, a side event, a duplicate


class _Plan:
    """The events of one order (or one side activity), in the order they were planned."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[_Item] = []

    def add(
        self, at: int, role: str, event: dict[str, Any], effect: Callable[[], None] | None = None
    ) -> _Item:
        item = [at, len(self.items), role, event, effect]
        self.items.append(item)
        return item

    def in_emission_order(self) -> list[_Item]:
        self.items.sort(key=lambda item: (item[0], item[1]))
        return self.items


class _Customer(NamedTuple):
    customer_id: str
    region: str
    currency: str
    channel: str
    terms_days: int
    discount: float
    home_warehouse: str
    placed_source: str
    erp_source: str
    pay_source: str


class _Line:
    __slots__ = ("line_id", "sku", "quantity", "unit_price", "warehouse_id", "cancelled")

    def __init__(
        self, line_id: str, sku: str, quantity: int, unit_price: int, warehouse_id: str | None
    ) -> None:
        self.line_id = line_id
        self.sku = sku
        self.quantity = quantity  # current ordered quantity (after changes)
        self.unit_price = unit_price
        self.warehouse_id = warehouse_id
        self.cancelled = 0

    @property
    def open(self) -> int:
        return self.quantity - self.cancelled


class _Order:
    __slots__ = ("order_id", "customer", "placed_at", "correlation_id", "lines", "plan")

    def __init__(
        self, order_id: str, customer: _Customer, placed_at: int, correlation_id: str | None
    ) -> None:
        self.order_id = order_id
        self.customer = customer
        self.placed_at = placed_at
        self.correlation_id = correlation_id
        self.lines: list[_Line] = []
        self.plan = _Plan()


class _Shipment(NamedTuple):
    shipment_id: str
    warehouse_id: str
    dispatched_at: int
    lines: list[tuple[_Line, int]]


class _Stock:
    """The simulator's view of one warehouse x SKU (not the app's ledger, an approximation)."""

    __slots__ = ("on_hand", "free", "safety", "on_order", "arrives_at", "demand", "ledger")

    def __init__(self, on_hand: int, safety: int) -> None:
        self.on_hand = on_hand  # physical, moved when receipts/adjustments/dispatches are emitted
        # on-hand from the inventory topic alone (receipts, adjustments, counts; no dispatch):
        # the most the app's on-hand can be, whatever it has read of the shipments
        self.ledger = on_hand
        self.free = on_hand  # on hand minus quantities committed to planned shipments
        self.safety = safety
        self.on_order = 0  # quantity of the pending supply (at most one per warehouse x SKU)
        self.arrives_at = 0  # when the pending supply is received
        self.demand = 0  # quantity committed so far (for the reorder point)


class _Simulator:
    def __init__(self, config: SimulationConfig, intents: list[Intent] | None = None) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        # Intent bookkeeping (draws no random number): `intents` receives them at emission;
        # `_pending` holds the ones planned ahead, by the event_id that will cause them.
        self.intents = intents
        self._pending: dict[str, list[Intent]] = {}
        self.tag = str(config.seed)
        self._event_ids = itertools.count(1)
        self._shipment_ids = itertools.count(1)
        self._invoice_ids = itertools.count(1)
        self._payment_ids = itertools.count(1)
        self._supply_ids = itertools.count(1)
        self._side: list[_Item] = []  # side activity (inventory) planned while planning orders
        self._build_catalogue()
        self._build_customers()
        self._build_sources()
        self._stock: dict[tuple[str, str], _Stock] = {}

    # ------------------------------------------------------------------ master data

    def _build_catalogue(self) -> None:
        r = self.rng.random
        cfg = self.cfg
        self.skus = [f"SKU-{i:04d}" for i in range(1, cfg.skus + 1)]
        weights = [1.0 / (i**0.9) for i in range(1, cfg.skus + 1)]
        self.rng.shuffle(weights)
        total = sum(weights)
        self.sku_share = [w / total for w in weights]
        self.sku_cum = list(itertools.accumulate(self.sku_share))
        self.sku_cum[-1] = 1.0
        self.base_price = [int(10 ** (2.3 + 2.4 * r())) for _ in self.skus]  # EUR cents, 2 .. 500

    def _build_customers(self) -> None:
        cfg, r = self.cfg, self.rng.random
        region_cum = _cumulative([w for _, _, w in cfg.regions])
        channel_cum = _cumulative([w for _, w in cfg.channels])
        src = cfg.sources
        customers = []
        for i in range(1, cfg.customers + 1):
            ri = bisect(region_cum, r())
            region, currency, _ = cfg.regions[ri]
            channel = cfg.channels[bisect(channel_cum, r())][0]
            reg = region.lower()
            if channel in _CARD_CHANNELS:
                terms, discount, pay_source = 7, 0.0, src.card.format(region=reg)
            else:
                terms = (14, 30, 30, 30, 45, 60)[int(r() * 6)]
                discount = round(0.15 * r(), 2)
                pay_source = src.bank.format(region=reg)
            placed_source = {
                "EDI": src.edi,
                "ECOM": src.ecom,
                "MARKETPLACE": src.marketplace,
            }.get(channel, src.erp).format(region=reg)
            customers.append(
                _Customer(
                    customer_id=f"C-{i:05d}",
                    region=region,
                    currency=currency,
                    channel=channel,
                    terms_days=terms,
                    discount=discount,
                    home_warehouse=cfg.warehouses[ri % len(cfg.warehouses)],
                    placed_source=placed_source,
                    erp_source=src.erp.format(region=reg),
                    pay_source=pay_source,
                )
            )
        self.customers = customers

    def _build_sources(self) -> None:
        src = self.cfg.sources
        self.wms_source = {wh: src.wms.format(warehouse=wh.lower()) for wh in self.cfg.warehouses}

    # ------------------------------------------------------------------ small helpers

    def _between(self, low: int, high: int) -> int:
        """A uniform integer duration/quantity in [low, high)."""
        return low + int((high - low) * self.rng.random())

    def _event(
        self, event_type: str, at: int, source: str, correlation_id: str | None, key_field: str, key: str
    ) -> dict[str, Any]:
        return {
            "event_id": f"ev-{self.tag}-{next(self._event_ids):08d}",
            "event_type": event_type,
            "occurred_at": at,
            "source": source,
            "correlation_id": correlation_id,
            key_field: key,
        }

    def _order_event(self, o: _Order, event_type: str, at: int, source: str | None = None) -> dict[str, Any]:
        return self._event(
            event_type, at, source or o.customer.erp_source, o.correlation_id, "order_id", o.order_id
        )

    def _intend(self, kind: str, key: str, event: dict[str, Any]) -> None:
        """Plan an intent, emitted along with `event` (only when intents are recorded)."""
        if self.intents is not None:
            self._pending.setdefault(event["event_id"], []).append(
                Intent(INTENT_KINDS[kind], key, event["event_id"], kind)
            )

    # ------------------------------------------------------------------ the stream

    def run(self) -> Iterator[SimEvent]:
        cfg = self.cfg
        r = self.rng.random
        # (emit_at, tie, items, index, kind): one cursor per order in flight, plus side events
        heap: list[tuple[int, int, list[_Item], int, int]] = []
        ties = itertools.count()
        push, pop = heapq.heappush, heapq.heappop
        dup_share = cfg.duplicate_share
        mean_gap = cfg.mean_order_gap_s * SECOND
        intents, pending = self.intents, self._pending

        for item in self._opening_inventory():
            push(heap, (item[0], next(ties), [item], 0, _SIDE))

        placed = in_flight = 0
        next_arrival = cfg.start_at
        while True:
            # Admit the orders that arrive before the next planned event, while there is room.
            while (
                placed < cfg.orders
                and in_flight < cfg.concurrency
                and (not heap or next_arrival <= heap[0][0])
            ):
                items = self._plan_order(placed + 1, next_arrival)
                placed += 1
                in_flight += 1
                push(heap, (items[0][0], next(ties), items, 0, _ORDER))
                for item in self._side:
                    push(heap, (item[0], next(ties), [item], 0, _SIDE))
                self._side.clear()
                next_arrival += 1 + int(-mean_gap * math.log(1.0 - r()))
            if not heap:
                return
            at, _, items, i, kind = pop(heap)
            item = items[i]
            items[i] = None  # emitted: let it go (memory follows what is still planned)
            effect = item[4]
            if effect is not None:
                effect()
            role, event = item[2], item[3]
            if intents is not None:
                if kind == _COPY:
                    key = event[KEY_FIELDS[role]]
                    intents.append(Intent(None, key, event["event_id"], "duplicate"))
                elif pending:
                    planned = pending.pop(event["event_id"], None)
                    if planned is not None:
                        intents.extend(planned)
            if kind != _COPY and dup_share and r() < dup_share:  # the source re-sends it later
                copy = _copy_event(event)
                push(
                    heap,
                    (
                        at + self._between(SECOND, 10 * MINUTE),
                        next(ties),
                        [[at, 0, role, copy, None]],
                        0,
                        _COPY,
                    ),
                )
            yield SimEvent(role, event)
            if i + 1 < len(items):
                push(heap, (items[i + 1][0], next(ties), items, i + 1, kind))
            elif kind == _ORDER:
                in_flight -= 1
                if next_arrival < at:  # the order waited for a free slot
                    next_arrival = at

    # ------------------------------------------------------------------ inventory

    def _opening_inventory(self) -> list[_Item]:
        """Safety stock and an opening receipt for every warehouse x SKU, before the first order."""
        cfg = self.cfg
        plan = _Plan()
        at = cfg.start_at - HOUR
        warehouses = len(cfg.warehouses)
        # Expected units one order asks of a given warehouse x SKU, roughly.
        units_per_order = 2.4 * 6.0
        # Cover about a week of arrivals (at most the whole run) with the opening stock.
        cover_orders = max(20, min(cfg.orders, cfg.concurrency, 7 * DAY / (cfg.mean_order_gap_s * SECOND)))
        for wh in cfg.warehouses:
            for s, sku in enumerate(self.skus):
                expected = units_per_order * self.sku_share[s] / warehouses * cover_orders
                on_hand = max(10, int(expected * (0.5 + self.rng.random())))
                safety = max(2, int(on_hand * (0.05 + 0.1 * self.rng.random())))
                self._stock[wh, sku] = _Stock(on_hand, safety)
                ev = self._event("SafetyStockSet", at, cfg.sources.planning, None, "sku", sku)
                ev["warehouse_id"] = wh
                ev["quantity"] = safety
                plan.add(at, "inventory", ev)
                ev = self._event("InventoryReceived", at, self.wms_source[wh], None, "sku", sku)
                ev["warehouse_id"] = wh
                ev["quantity"] = on_hand
                ev["source_doc"] = f"OPENING-{wh}"
                plan.add(at, "inventory", ev)
        return plan.items

    def _best_warehouse(self, sku: str, exclude: str | None = None) -> str | None:
        """Most free stock above safety (ties: lowest id), as the app allocates lines without one."""
        best, best_atp = None, None
        for wh in sorted(self.cfg.warehouses):
            if wh == exclude:
                continue
            st = self._stock[wh, sku]
            atp = st.free - st.safety
            if best_atp is None or atp > best_atp:
                best, best_atp = wh, atp
        return best

    def _commit(self, wh: str, sku: str, quantity: int, now: int) -> None:
        st = self._stock[wh, sku]
        st.free -= quantity
        st.demand += quantity
        if not st.on_order:
            self._maybe_replenish(wh, sku, st, now)

    def _maybe_replenish(self, wh: str, sku: str, st: _Stock, now: int, force: bool = False) -> None:
        """(s, S) policy on projected free stock, with a noisy demand forecast."""
        r = self.rng.random
        daily = st.demand * DAY / max(now - self.cfg.start_at, 2 * DAY)
        reorder_point = st.safety + daily * (1.5 + 3.0 * r())
        if not force and st.free >= reorder_point:
            return
        quantity = max(10, int(reorder_point - st.free + daily * (5 + 7 * r())))
        self._plan_supply(wh, sku, st, quantity, now, daily)

    def _plan_supply(self, wh: str, sku: str, st: _Stock, quantity: int, now: int, daily: float) -> None:
        r = self.rng.random
        supply_id = f"PO-{self.tag}-{next(self._supply_ids):06d}"
        announced = now + self._between(MINUTE, 30 * MINUTE)
        expected_at = _hour_floor(announced + self._between(DAY, 5 * DAY))
        x = r()
        if x < 0.15:  # late
            arrives = expected_at + self._between(6 * HOUR, 3 * DAY)
        elif x < 0.3:  # a little early
            arrives = expected_at - self._between(0, 12 * HOUR)
        else:
            arrives = expected_at + self._between(0, 4 * HOUR)
        received = quantity if r() >= 0.1 else max(1, int(quantity * (0.6 + 0.35 * r())))
        st.on_order = quantity
        st.arrives_at = arrives

        plan = _Plan()
        ev = self._event("SupplyExpected", announced, self.cfg.sources.purchasing, supply_id, "sku", sku)
        ev["warehouse_id"] = wh
        ev["supply_id"] = supply_id
        ev["quantity"] = quantity
        ev["expected_at"] = expected_at
        plan.add(announced, "inventory", ev)

        ev = self._event("InventoryReceived", arrives, self.wms_source[wh], supply_id, "sku", sku)
        ev["warehouse_id"] = wh
        ev["quantity"] = received
        ev["source_doc"] = supply_id
        if received < quantity:
            self._intend("short_receipt", sku, ev)
        if x < 0.15:
            self._intend("late_receipt", sku, ev)

        def receive() -> None:
            st.on_hand += received
            st.free += received
            st.on_order = 0
            st.ledger += received

        plan.add(arrives, "inventory", ev, receive)

        if r() < 0.15:  # the planner revises safety stock along with the order
            new_safety = max(1, int(daily * (0.5 + r())))
            ev = self._event("SafetyStockSet", announced, self.cfg.sources.planning, None, "sku", sku)
            ev["warehouse_id"] = wh
            ev["quantity"] = new_safety

            def revise() -> None:
                st.safety = new_safety

            plan.add(announced, "inventory", ev, revise)
        self._side.extend(plan.items)

    def _plan_stock_noise(self, now: int) -> None:
        """Adjustments and physical counts, drawn as orders arrive (so volume follows orders)."""
        cfg, r = self.cfg, self.rng.random
        if r() < cfg.adjustment_share:
            self._side.append(self._adjustment(now + self._between(MINUTE, 4 * HOUR)))
        if r() < cfg.snapshot_share:
            self._side.append(self._snapshot(now + self._between(MINUTE, 4 * HOUR)))

    def _random_stock(self) -> tuple[str, str, _Stock]:
        r = self.rng.random
        wh = self.cfg.warehouses[int(r() * len(self.cfg.warehouses))]
        sku = self.skus[bisect(self.sku_cum, r())]
        return wh, sku, self._stock[wh, sku]

    def _adjustment(self, at: int) -> _Item:
        r = self.rng.random
        wh, sku, st = self._random_stock()
        x = r()
        if x < 0.35:
            reason, delta = "DAMAGE", -self._between(1, 4)
        elif x < 0.6:
            reason, delta = "SHRINK", -self._between(1, 6)
        elif x < 0.8:
            reason, delta = "COUNT_CORRECTION", self._between(-5, 6) or 1
        elif x < 0.95:
            reason, delta = "RETURN_TO_STOCK", self._between(1, 4)
        else:
            reason, delta = "OTHER", -self._between(1, 3)
        ev = self._event("InventoryAdjusted", at, self.wms_source[wh], None, "sku", sku)
        ev["warehouse_id"] = wh
        ev["delta"] = delta
        ev["reason"] = reason

        def apply() -> None:
            # Nothing physical can go below zero: a loss larger than the stock becomes a recount.
            if st.on_hand + ev["delta"] < 0:
                ev["delta"] = max(1, -ev["delta"])
                ev["reason"] = "COUNT_CORRECTION"
            st.on_hand += ev["delta"]
            st.free += ev["delta"]
            st.ledger += ev["delta"]
            # A loss leaving even the ledger's on-hand (the most the app can hold: receipts,
            # adjustments and counts, no dispatch) below safety stock: ATP negative and lower.
            if self.intents is not None and ev["delta"] < 0 and st.ledger < st.safety:
                self.intents.append(Intent("NEGATIVE_ATP", sku, ev["event_id"], "loss_below_safety_stock"))

        return [at, 0, "inventory", ev, apply]

    def _snapshot(self, at: int) -> _Item:
        wh, sku, st = self._random_stock()
        ev = self._event("InventorySnapshot", at, self.wms_source[wh], None, "sku", sku)
        ev["warehouse_id"] = wh
        ev["on_hand"] = 0  # filled in at emission: the count sees the stock of that moment
        ev["as_of"] = at
        noise = 0 if self.rng.random() < 0.7 else self._between(-3, 4)

        def count() -> None:
            counted = max(0, st.on_hand + noise)
            st.free += counted - st.on_hand
            st.on_hand = counted
            st.ledger = counted
            ev["on_hand"] = counted

        return [at, 0, "inventory", ev, count]

    # ------------------------------------------------------------------ one order's lifecycle

    def _plan_order(self, n: int, placed_at: int) -> list[_Item]:
        cfg, r = self.cfg, self.rng.random
        customer = self.customers[int(r() * len(self.customers))]
        order_id = f"SO-{self.tag}-{n:06d}"
        o = _Order(order_id, customer, placed_at, _correlation_id(customer.channel, n, self.tag))

        disorder = DISORDER_KINDS[int(r() * 3)] if r() < cfg.out_of_order_share else None
        lapse = None
        cancel = None
        if disorder is None:
            if r() < cfg.lapse_share:
                lapse = LAPSE_MILESTONES[int(r() * len(LAPSE_MILESTONES))]
            if r() < cfg.cancel_share:
                cancel = "before_acceptance" if r() < 0.3 else "after_acceptance"
        fast = disorder == "shipment_before_placed"

        self._place(o)
        self._plan_stock_noise(placed_at)
        ready = self._accept(o, lapse, cancel, disorder)
        if ready is not None and not fast:
            ready = self._amend(o, ready, cancel)
        if ready is not None:
            shipments = self._fulfil(o, ready, lapse, fast)
            self._bill(o, shipments, lapse, disorder == "payment_before_invoice")
        if disorder is not None:
            self._disorder(o, disorder)
        return o.plan.in_emission_order()

    def _place(self, o: _Order) -> None:
        cfg, r = self.cfg, self.rng.random
        c = o.customer
        n_lines = bisect(_LINE_COUNT_CUM, r()) + 1
        fx = _FX.get(c.currency, 1.0)
        mean_extra, max_qty = _MEAN_EXTRA_QTY.get(c.channel, 3.0), _MAX_QTY.get(c.channel, 20)
        skus: set[int] = set()
        for i in range(min(n_lines, cfg.skus)):
            s = bisect(self.sku_cum, r())
            while s in skus:
                s = bisect(self.sku_cum, r())
            skus.add(s)
            quantity = min(max_qty, 1 + int(-mean_extra * math.log(1.0 - r())))
            unit_price = max(1, round(self.base_price[s] * fx * (1.0 - c.discount)))
            warehouse = None if r() < cfg.no_warehouse_share else c.home_warehouse
            o.lines.append(_Line(str(10 * (i + 1)), self.skus[s], quantity, unit_price, warehouse))

        ev = self._order_event(o, "OrderPlaced", o.placed_at, c.placed_source)
        ev["customer_id"] = c.customer_id
        ev["channel"] = c.channel
        ev["region"] = c.region
        ev["currency"] = c.currency
        ev["payment_terms_days"] = c.terms_days
        ev["promised_ship_at"] = (
            _hour_floor(o.placed_at + self._between(2 * DAY, 5 * DAY)) if r() < cfg.promised_share else None
        )
        ev["lines"] = [
            {
                "line_id": line.line_id,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price,
                "warehouse_id": line.warehouse_id,
            }
            for line in o.lines
        ]
        o.plan.add(o.placed_at, "orders", ev)

    def _accept(self, o: _Order, lapse: str | None, cancel: str | None, disorder: str | None) -> int | None:
        """Holds around acceptance and the acceptance itself. Returns when fulfilment may start,
        or None when the order stops here (cancelled, declined, never accepted)."""
        cfg, r = self.cfg, self.rng.random
        t = o.placed_at
        hold_type = None
        if disorder is None and r() < cfg.hold_share:
            hold_type = "CREDIT" if r() < 0.5 else ("FRAUD", "COMPLIANCE", "MANUAL")[int(r() * 3)]

        if hold_type == "CREDIT":  # credit check before booking
            t += self._between(MINUTE, 15 * MINUTE)
            self._hold(o, t, hold_type)
            if r() < cfg.hold_decline_share:  # declined: never released, the order is cancelled
                self._cancel_order(o, t + self._between(4 * HOUR, 2 * DAY), "credit declined")
                return None
            t += self._between(30 * MINUTE, 12 * HOUR)
            self._release(o, t, hold_type)
        if cancel == "before_acceptance":
            self._cancel_order(o, t + self._between(10 * MINUTE, 3 * HOUR), self._cancel_reason())
            return None
        if lapse == "ACCEPTANCE":
            return None

        if disorder == "shipment_before_placed":
            t += self._between(2 * MINUTE, 10 * MINUTE)
        elif r() < cfg.slow_share:
            t += self._between(4 * HOUR, 8 * HOUR)  # past the 4 h acceptance SLA
        else:
            t += self._between(2 * MINUTE, 60 * MINUTE)
        o.plan.add(t, "orders", self._order_event(o, "OrderAccepted", t))

        if hold_type is not None and hold_type != "CREDIT":  # screening after booking
            t += self._between(5 * MINUTE, 90 * MINUTE)
            self._hold(o, t, hold_type)
            t += self._between(HOUR, 24 * HOUR)
            self._release(o, t, hold_type)
        return t

    def _hold(self, o: _Order, at: int, hold_type: str) -> None:
        ev = self._order_event(o, "OrderHoldApplied", at)
        ev["hold_type"] = hold_type
        ev["reason"] = _HOLD_REASONS[hold_type]
        o.plan.add(at, "orders", ev)

    def _release(self, o: _Order, at: int, hold_type: str) -> None:
        ev = self._order_event(o, "OrderHoldReleased", at)
        ev["hold_type"] = hold_type
        o.plan.add(at, "orders", ev)

    def _cancel_reason(self) -> str:
        return _CANCEL_REASONS[int(self.rng.random() * len(_CANCEL_REASONS))]

    def _cancel_order(self, o: _Order, at: int, reason: str) -> None:
        ev = self._order_event(o, "OrderCancelled", at)
        ev["reason"] = reason
        if o.lines and all(line.open <= 0 for line in o.lines):  # each line cancelled already
            self._intend("cancel_after_lines_cancelled", o.order_id, ev)
        o.plan.add(at, "orders", ev)
        for line in o.lines:
            line.cancelled = line.quantity

    def _cancel_line(self, o: _Order, line: _Line, at: int, quantity: int | None, reason: str) -> None:
        ev = self._order_event(o, "OrderLineCancelled", at)
        ev["line_id"] = line.line_id
        ev["quantity"] = quantity
        ev["reason"] = reason
        o.plan.add(at, "orders", ev)
        line.cancelled += line.open if quantity is None else quantity

    def _amend(self, o: _Order, t: int, cancel: str | None) -> int | None:
        """Line changes and cancels after acceptance (at most one per line); the order cancel.
        Returns when the last amendment is done, or None when the order is cancelled."""
        cfg, r = self.cfg, self.rng.random
        last = t
        for line in o.lines:
            x = r()
            if x < cfg.line_change_share:
                at = t + self._between(10 * MINUTE, 6 * HOUR)
                if line.quantity > 1 and r() < 0.5:
                    new = max(1, line.quantity - self._between(1, line.quantity // 2 + 1))
                else:
                    new = line.quantity + self._between(1, 6)
                ev = self._order_event(o, "OrderLineChanged", at)
                ev["line_id"] = line.line_id
                ev["quantity"] = new
                o.plan.add(at, "orders", ev)
                line.quantity = new
                last = max(last, at)
            elif x < cfg.line_change_share + cfg.line_cancel_share:
                at = t + self._between(10 * MINUTE, 6 * HOUR)
                partial = self._between(1, line.quantity) if line.quantity > 1 and r() < 0.5 else None
                self._cancel_line(o, line, at, partial, self._cancel_reason())
                last = max(last, at)
        if cancel == "after_acceptance":
            self._cancel_order(o, last + self._between(20 * MINUTE, 12 * HOUR), self._cancel_reason())
            return None
        return last

    def _fulfil(self, o: _Order, t: int, lapse: str | None, fast: bool) -> list[_Shipment]:
        """Source every open line, then pick, dispatch and deliver per warehouse and ready time."""
        cfg, r = self.cfg, self.rng.random
        if fast:
            ready = t + self._between(15 * MINUTE, 40 * MINUTE)
        elif r() < cfg.slow_share:
            ready = t + self._between(50 * HOUR, 80 * HOUR)  # past the 48 h shipment SLA
        else:
            ready = t + self._between(2 * HOUR, 30 * HOUR)

        groups: dict[tuple[str, int], list[tuple[_Line, int]]] = {}
        for line in o.lines:
            if line.open <= 0:
                continue
            sourced = self._source_line(o, line, t, ready)
            if sourced is not None:
                groups.setdefault(sourced, []).append((line, line.open))
        if lapse == "SHIPMENT" or not groups:
            return []

        shipments: list[_Shipment] = []
        for (wh, at), lines in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if r() < cfg.split_share and any(q > 1 for _, q in lines):
                first = [(line, q - q // 2 if q > 1 else q) for line, q in lines]
                rest = [(line, q // 2) for line, q in lines if q > 1]
                shipments.append(self._ship(o, wh, at, first))
                shipments.append(self._ship(o, wh, at + self._between(DAY, 3 * DAY), rest))
            else:
                shipments.append(self._ship(o, wh, at, lines))
        shipments.sort(key=lambda s: s.dispatched_at)
        self._deliver(o, shipments, lapse)
        return shipments

    def _source_line(self, o: _Order, line: _Line, t: int, ready: int) -> tuple[str, int] | None:
        """Where and when a line ships; commits the quantity in the projected stock.
        Returns None when the customer cancels the line rather than wait for stock."""
        cfg, r = self.cfg, self.rng.random
        quantity = line.open
        wh = line.warehouse_id or self._best_warehouse(line.sku)
        assert wh is not None
        st = self._stock[wh, line.sku]
        if st.free - st.safety < quantity:  # short here
            other = self._best_warehouse(line.sku, exclude=wh)
            if other is not None and r() < 0.5:  # ship from another warehouse if it has the stock
                ost = self._stock[other, line.sku]
                if ost.free - ost.safety >= quantity:
                    self._commit(other, line.sku, quantity, o.placed_at)
                    return other, ready
            if not st.on_order:
                self._maybe_replenish(wh, line.sku, st, o.placed_at, force=True)
            line_ready = max(ready, st.arrives_at + self._between(2 * HOUR, 12 * HOUR))
            if r() < cfg.backorder_cancel_share:
                at = t + self._between(30 * MINUTE, max(HOUR, (line_ready - t) // 2))
                self._cancel_line(o, line, at, None, "backorder: customer cancelled")
                return None
            self._commit(wh, line.sku, quantity, o.placed_at)
            return wh, line_ready
        if line.warehouse_id is not None and r() < cfg.reroute_share:
            other = self._best_warehouse(line.sku, exclude=wh)
            if other is not None:
                wh = other
        self._commit(wh, line.sku, quantity, o.placed_at)
        return wh, ready

    def _ship(self, o: _Order, wh: str, ready: int, lines: list[tuple[_Line, int]]) -> _Shipment:
        r = self.rng.random
        shipment_id = f"SH-{self.tag}-{next(self._shipment_ids):07d}"
        source = self.wms_source[wh]
        ev = self._order_event(o, "ShipmentPicked", ready, source)
        ev["shipment_id"] = shipment_id
        ev["warehouse_id"] = wh
        ev["lines"] = [{"line_id": line.line_id, "quantity": q} for line, q in lines]
        o.plan.add(ready, "shipments", ev)

        dispatched = ready + self._between(20 * MINUTE, 4 * HOUR)
        carrier = self.cfg.carriers[int(r() * len(self.cfg.carriers))]
        ev = self._order_event(o, "ShipmentDispatched", dispatched, source)
        ev["shipment_id"] = shipment_id
        ev["warehouse_id"] = wh
        ev["carrier"] = carrier
        ev["tracking_number"] = f"{carrier}{self.rng.getrandbits(40):013d}"
        ev["lines"] = [{"line_id": line.line_id, "quantity": q} for line, q in lines]
        stock = [(self._stock[wh, line.sku], q) for line, q in lines]

        def take() -> None:
            for st, q in stock:
                st.on_hand -= q

        o.plan.add(dispatched, "shipments", ev, take)
        return _Shipment(shipment_id, wh, dispatched, lines)

    def _deliver(self, o: _Order, shipments: list[_Shipment], lapse: str | None) -> None:
        r = self.rng.random
        for i, s in enumerate(shipments):
            if lapse == "DELIVERY" and i == len(shipments) - 1:
                return  # lost in transit: never delivered
            if r() < 0.02:
                at = s.dispatched_at + self._between(5 * DAY, 8 * DAY)  # past the delivery SLA
            else:
                at = s.dispatched_at + self._between(16 * HOUR, 4 * DAY)
            ev = self._order_event(o, "ShipmentDelivered", at, self.cfg.sources.tms)
            ev["shipment_id"] = s.shipment_id
            o.plan.add(at, "shipments", ev)

    def _bill(self, o: _Order, shipments: list[_Shipment], lapse: str | None, quick_first: bool) -> None:
        """One invoice per shipment (billing run a few hours after dispatch), then collection."""
        if lapse == "INVOICE" or not shipments:
            return
        r = self.rng.random
        c = o.customer
        invoices = []
        for s in shipments:
            at = s.dispatched_at + self._between(HOUR, 10 * HOUR)
            invoice_id = f"INV-{self.tag}-{next(self._invoice_ids):07d}"
            lines = [
                {"line_id": line.line_id, "quantity": q, "amount_minor": q * line.unit_price}
                for line, q in s.lines
            ]
            total = sum(line["amount_minor"] for line in lines)
            ev = self._order_event(o, "InvoicePosted", at)
            ev["invoice_id"] = invoice_id
            ev["lines"] = lines
            ev["total_minor"] = total
            ev["due_at"] = at + c.terms_days * DAY if r() < 0.3 else None
            invoices.append((o.plan.add(at, "payments", ev), invoice_id, at, total))
        if lapse == "PAYMENT":
            return

        last_payment = None
        paid: list[dict[str, Any]] = []
        for k, (invoice_item, invoice_id, at, total) in enumerate(invoices):
            payments = self._collect(o, invoice_id, at, total, quick=quick_first and k == 0)
            if quick_first and k == 0:  # the invoice reaches the topic after its payment
                invoice_item[0] = payments[0][0] + self._between(SECOND, 15 * MINUTE)
            last_payment = payments[-1]
            paid.extend(item[3] for item in payments)
        duplicate = None
        if last_payment is not None and r() < self.cfg.refund_share:
            duplicate = self._refund_duplicate_payment(o, last_payment)
        if self.intents is not None:
            self._payment_intents(o, paid, quick_first, duplicate)

    def _payment_intents(
        self, o: _Order, paid: list[dict[str, Any]], quick_first: bool, duplicate: dict[str, Any] | None
    ) -> None:
        """Every payment follows its invoice on the payments topic (so the net paid never exceeds
        the invoiced amount), except the quick first one and the duplicate."""
        if quick_first and paid:  # emitted before its invoice, on the same topic
            first = paid[0]
            if first["invoice_id"] is not None:
                self._intend("payment_before_invoice", o.order_id, first)
            elif duplicate is None:
                self._intend("payment_before_invoice_unapplied", o.order_id, first)
        if duplicate is not None:
            if duplicate["invoice_id"] is not None:
                # Its invoice (posted earlier on the same topic) has its total applied already.
                self._intend("duplicate_payment", o.order_id, duplicate)
            # A duplicate naming no invoice is an overpayment only once the order reads fully
            # invoiced (which depends on the shipments read by then), and it can make any later
            # payment of the order one: nothing is claimed for them.
            return
        for k, ev in enumerate(paid):
            if ev["invoice_id"] is None and not (quick_first and k == 0):
                self._intend("unapplied_payment", o.order_id, ev)

    def _collect(self, o: _Order, invoice_id: str, invoiced_at: int, total: int, quick: bool) -> list[_Item]:
        cfg, r = self.cfg, self.rng.random
        c = o.customer
        terms = c.terms_days * DAY
        if quick:
            at = invoiced_at + self._between(2 * MINUTE, 30 * MINUTE)
        elif c.channel in _CARD_CHANNELS:
            at = invoiced_at + self._between(5 * MINUTE, 2 * DAY)
        elif r() < cfg.late_payment_share:
            at = invoiced_at + terms + self._between(HOUR, terms // 2 + DAY)
        else:
            at = invoiced_at + self._between(terms // 4, terms)
        applied = invoice_id if c.channel in _CARD_CHANNELS or r() >= cfg.unapplied_payment_share else None
        if total > 1 and not quick and r() < cfg.partial_payment_share:
            first = max(1, int(total * (0.3 + 0.4 * r())))
            return [
                self._payment(o, at, applied, first),
                self._payment(o, at + self._between(3 * DAY, 20 * DAY), applied, total - first),
            ]
        return [self._payment(o, at, applied, total)]

    def _payment(self, o: _Order, at: int, invoice_id: str | None, amount: int) -> _Item:
        ev = self._order_event(o, "PaymentReceived", at, o.customer.pay_source)
        ev["payment_id"] = f"PAY-{self.tag}-{next(self._payment_ids):07d}"
        ev["invoice_id"] = invoice_id
        ev["amount_minor"] = amount
        return o.plan.add(at, "payments", ev)

    def _refund_duplicate_payment(self, o: _Order, paid: _Item) -> dict[str, Any]:
        """The customer pays the same amount twice; the duplicate is refunded days later."""
        original = paid[3]
        again = self._payment(
            o, paid[0] + self._between(DAY, 5 * DAY), original["invoice_id"], original["amount_minor"]
        )
        at = again[0] + self._between(2 * DAY, 10 * DAY)
        ev = self._order_event(o, "PaymentRefunded", at, o.customer.pay_source)
        ev["payment_id"] = again[3]["payment_id"]
        ev["amount_minor"] = original["amount_minor"]
        ev["reason"] = "duplicate payment"
        o.plan.add(at, "payments", ev)
        return again[3]

    def _disorder(self, o: _Order, kind: str) -> None:
        """Delay emission (not occurred_at) of events so they reach the topics out of order,
        always by less than an hour (the orphan SLA)."""
        items = o.plan.items
        if kind == "payment_before_invoice" and any(
            item[3]["event_type"] == "InvoicePosted" for item in items
        ):
            return  # done in _bill
        placed = items[0]
        if kind == "shipment_before_placed":
            picks = [item for item in items if item[3]["event_type"] == "ShipmentPicked"]
            if picks:
                pick_at = min(item[0] for item in picks)
                if pick_at - o.placed_at <= 90 * MINUTE:
                    release = pick_at + self._between(SECOND, 20 * MINUTE)
                    for item in items:  # the ERP's outbox was stuck until after the pick
                        if item[2] == "orders" and item[0] <= pick_at:
                            item[0] = release
                    self._intend("shipment_before_placed", o.order_id, placed[3])
                    return
        accepted = [item for item in items if item[3]["event_type"] == "OrderAccepted"]
        if accepted:  # fallback and "placed_after_accepted": OrderPlaced overtaken by OrderAccepted
            placed[0] = accepted[0][0] + self._between(SECOND, 20 * MINUTE)
            self._intend("placed_after_accepted", o.order_id, placed[3])


# --------------------------------------------------------------------------- helpers


def _cumulative(weights: list[float]) -> list[float]:
    total = sum(weights)
    if total <= 0:
        raise ValueError("weights must sum to a positive number")
    cum = list(itertools.accumulate(w / total for w in weights))
    cum[-1] = 1.0
    return cum


def _hour_floor(at: int) -> int:
    return at - at % HOUR


def _correlation_id(channel: str, n: int, tag: str) -> str | None:
    """The customer's reference, carried by every event of the order (None for SALES orders)."""
    prefix = {"EDI": "PO", "ECOM": "WEB", "MARKETPLACE": "MKT"}.get(channel)
    return None if prefix is None else f"{prefix}-{tag}-{n:06d}"


def _copy_event(event: dict[str, Any]) -> dict[str, Any]:
    """A structural copy (lines included), so a duplicate never aliases the original."""
    copy = dict(event)
    lines = copy.get("lines")
    if lines is not None:
        copy["lines"] = [dict(line) for line in lines]
    return copy


# --------------------------------------------------------------------------- pacing


def rate_limited(
    events: Iterable[SimEvent],
    rate: float | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    burst: float | None = None,
) -> Iterator[SimEvent]:
    """Yield `events` at most `rate` per second (token bucket); `rate` None or 0: unlimited.

    The bucket holds `burst` tokens (default: 50 ms worth of events, at least 1), so over any
    interval of T seconds at most `rate * T + burst` events pass. The clock is only read when
    the bucket runs dry, which keeps the limiter cheap at high rates.
    """
    if not rate:
        yield from events
        return
    if rate < 0:
        raise ValueError("rate must be positive")
    capacity = max(1.0, rate * 0.05 if burst is None else float(burst))
    refill_to = max(1.0, capacity / 2)  # sleep until half full, not for every single token
    tokens = capacity
    last = clock()
    for event in events:
        if tokens < 1.0:
            now = clock()
            tokens = min(capacity, tokens + (now - last) * rate)
            last = now
            while tokens < 1.0:
                sleep((refill_to - tokens) / rate)
                now = clock()
                tokens = min(capacity, tokens + (now - last) * rate)
                last = now
        tokens -= 1.0
        yield event


TIME_FIELDS = ("occurred_at", "promised_ship_at", "expected_at", "due_at", "as_of")
"""The absolute business times of the input events (contract-fields.md), shifted by `live`."""


def live(
    events: Iterable[SimEvent],
    speedup: float,
    start_at: int = DEFAULT_START_AT,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[SimEvent]:
    """Replay `events` on the wall clock: business time `start_at` becomes now, and runs
    `speedup` times as fast (1440: a business day per minute). Every absolute time of an
    event (TIME_FIELDS) is mapped the same way, and each event is yielded once the wall clock
    reaches its `occurred_at` (at once if that has passed: events emitted out of order).

    For demos of wall-clock SLAs (`make run`): with SLAs divided by the same factor
    (scripts/demo-sla-policy.toml), breaches come at the simulated business rate. Durations
    given in days (`payment_terms_days`) are not scaled.
    """
    if speedup <= 0:
        raise ValueError("speedup must be positive")
    origin = wall() * 1000

    def mapped(at: int) -> int:
        return int(origin + (at - start_at) / speedup)

    for sim in events:
        event = dict(sim.event)
        for name in TIME_FIELDS:
            if event.get(name) is not None:
                event[name] = mapped(event[name])
        wait = event["occurred_at"] / 1000 - wall()
        if wait > 0:
            sleep(wait)
        yield SimEvent(sim.role, event)


# --------------------------------------------------------------------------- summary


@dataclass
class Summary:
    """Event counts by role and event type. Iterating gives printable lines."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, sim_event: SimEvent) -> None:
        self.counts[sim_event.role, sim_event.event["event_type"]] += 1

    def tap(self, events: Iterable[SimEvent]) -> Iterator[SimEvent]:
        """Pass `events` through, counting them (for counting while streaming)."""
        counts = self.counts
        for sim_event in events:
            counts[sim_event.role, sim_event.event["event_type"]] += 1
            yield sim_event

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def by_role(self) -> dict[str, int]:
        roles: Counter[str] = Counter()
        for (role, _), n in self.counts.items():
            roles[role] += n
        return {role: roles[role] for role in sorted(roles, key=_role_order)}

    @property
    def by_type(self) -> dict[str, dict[str, int]]:
        """{role: {event_type: count}}, roles in topic order, types alphabetical."""
        out: dict[str, dict[str, int]] = {}
        for role, event_type in sorted(self.counts, key=lambda k: (_role_order(k[0]), k[1])):
            out.setdefault(role, {})[event_type] = self.counts[role, event_type]
        return out

    def lines(self) -> list[str]:
        out = []
        for role, types in self.by_type.items():
            out.append(f"{role:<10} {sum(types.values()):>9,}")
            out.extend(f"  {event_type:<20} {n:>9,}" for event_type, n in types.items())
        out.append(f"{'total':<10} {self.total:>9,}")
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines())

    def __str__(self) -> str:
        return "\n".join(self.lines())


def summary(events: Iterable[SimEvent]) -> Summary:
    """Count `events` (consumed) by role and event type."""
    result = Summary()
    for _ in result.tap(events):
        pass
    return result


def _role_order(role: str) -> tuple[int, str]:
    return (INPUT_ROLES.index(role) if role in INPUT_ROLES else len(INPUT_ROLES), role)
