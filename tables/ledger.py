"""The inventory ledger's state for one SKU, its byte form, and the change set of one apply.

One `SkuState` per SKU (the inventory topic's key) holds every warehouse of that SKU, so
network ATP and the best-warehouse choice are local to one key. Plain slotted classes,
mutated in place by `tables.inventory`; no Faust, Kafka or Avro. See docs/inventory-model.md.

- `Warehouse`: `on_hand, reserved, backordered, safety_stock`, expected supply
  (`supply_id -> [quantity, expected_at]`), the time of the last physical count, and the
  FIFO backorder `queue` (the `LineAlloc`s backordered there, by acceptance time, then
  request arrival). `atp = on_hand - reserved - safety_stock`.
- `LineAlloc`: one order line's open allocation record `(order_id, line_id)`: the
  warehouse it is held at, `reserved`, `backordered`, the last order-message `seq` handled,
  its FCFS priority, the promise date last answered.
- `Change`: what one event or message touched (warehouses with their numbers before,
  lines to answer, raised exceptions). The primitives in `tables.stock` and
  `tables.reservations` record into it; `tables.inventory.settle` turns it into outputs.
"""

from __future__ import annotations

import itertools
import json
from bisect import bisect_left, insort
from collections.abc import Iterable
from operator import attrgetter
from typing import Any

from tables.exceptions import BusinessException
from tables.jsontext import encoder

FORMAT_VERSION = 1

MAX_SEEN_EVENT_IDS = 256
"""Ledger event ids remembered per SKU for idempotency (oldest evicted first)."""
MAX_DONE_LINES = 64
"""Line records with nothing reserved or backordered kept per SKU (for `seq` idempotency and
for answering a late message of the line); the oldest are dropped beyond this (see
docs/inventory-model.md, Bounds: what a message for a dropped line does)."""


class InventoryCode:
    """Business-exception codes raised by the inventory side (besides `Code.INVALID_QUANTITY`
    and `Code.UNKNOWN_EVENT_TYPE`, reused from tables.exceptions)."""

    NEGATIVE_ATP = "NEGATIVE_ATP"
    UNKNOWN_WAREHOUSE = "UNKNOWN_WAREHOUSE"
    STALE_SNAPSHOT = "STALE_SNAPSHOT"
    RELEASE_EXCEEDS_ALLOCATION = "RELEASE_EXCEEDS_ALLOCATION"
    UNKNOWN_ALLOCATION = "UNKNOWN_ALLOCATION"


class Warehouse:
    """Stock position of the SKU at one warehouse."""

    __slots__ = ("on_hand", "reserved", "backordered", "safety_stock", "supply", "counted_at",
                 "queue")

    def __init__(self, on_hand: int = 0, reserved: int = 0, backordered: int = 0,
                 safety_stock: int = 0, supply: dict[str, list[int]] | None = None,
                 counted_at: int | None = None) -> None:
        self.on_hand = on_hand
        self.reserved = reserved
        self.backordered = backordered
        self.safety_stock = safety_stock
        self.supply: dict[str, list[int]] = {} if supply is None else supply
        self.counted_at = counted_at  # as_of of the last InventorySnapshot applied
        self.queue: list[LineAlloc] = []  # backordered lines, FIFO (derived, not serialized)

    @property
    def atp(self) -> int:
        return self.on_hand - self.reserved - self.safety_stock

    def numbers(self) -> tuple[int, int, int, int]:
        return (self.on_hand, self.reserved, self.backordered, self.safety_stock)

    def __repr__(self) -> str:
        return (f"Warehouse(on_hand={self.on_hand}, reserved={self.reserved}, "
                f"backordered={self.backordered}, safety_stock={self.safety_stock}, "
                f"supply={self.supply}, queue={[r.key for r in self.queue]})")


class LineAlloc:
    """The inventory side's record of one order line (the allocation contract's record)."""

    __slots__ = ("order_id", "line_id", "warehouse_id", "reserved", "backordered", "seq",
                 "accepted_at", "arrival", "promised_at", "requested")

    def __init__(self, order_id: str, line_id: str, warehouse_id: str | None = None,
                 reserved: int = 0, backordered: int = 0, seq: int = 0, accepted_at: int = 0,
                 arrival: int = 0, promised_at: int | None = None,
                 requested: bool = False) -> None:
        self.order_id = order_id
        self.line_id = line_id
        self.warehouse_id = warehouse_id  # None: never requested, or no warehouse exists yet
        self.reserved = reserved
        self.backordered = backordered
        self.seq = seq  # last order message seq handled for the line
        self.accepted_at = accepted_at  # FCFS priority: the order's acceptance time...
        self.arrival = arrival  # ...then the arrival number of the line's first request
        self.promised_at = promised_at  # last promise date answered (None if not backordered)
        self.requested = requested  # ever requested: its messages are answered

    @property
    def key(self) -> tuple[str, str]:
        return (self.order_id, self.line_id)

    def to_list(self) -> list[Any]:
        return list(_line_fields(self))

    def __repr__(self) -> str:
        return f"LineAlloc{tuple(self.to_list())!r}"


_line_fields = attrgetter(*LineAlloc.__slots__)
"""A line's fields in `to_list` order, as a tuple (JSON encodes it as the same array)."""

priority = attrgetter("accepted_at", "arrival")
"""FCFS order of backorders: acceptance time, then arrival of the line's first request."""


def enqueue(queue: list[LineAlloc], rec: LineAlloc) -> None:
    insort(queue, rec, key=priority)


def dequeue(queue: list[LineAlloc], rec: LineAlloc) -> None:
    i = bisect_left(queue, priority(rec), key=priority)
    while queue[i] is not rec:  # (accepted_at, arrival) is unique; defensive
        i += 1
    del queue[i]


class SkuState:
    """Everything the inventory side knows about one SKU."""

    __slots__ = ("sku", "warehouses", "lines", "done", "unassigned", "seen", "arrivals",
                 "results", "_changed")

    def __init__(self, sku: str) -> None:
        self.sku = sku
        self.warehouses: dict[str, Warehouse] = {}
        self.lines: dict[tuple[str, str], LineAlloc] = {}
        # keys of records with nothing reserved or backordered, oldest first (bounded)
        self.done: dict[tuple[str, str], None] = {}
        # requested lines backordered while the SKU had no warehouse at all (FIFO, derived)
        self.unassigned: list[LineAlloc] = []
        self.seen: dict[str, None] = {}  # ledger event ids (insertion-ordered set)
        self.arrivals = 0  # counter of first requests (FCFS tie-break)
        self.results = 0  # counter of AllocationResults sent (result ids)
        # keys of the lines changed, added or removed since the parts were last taken
        # (`to_parts`, `changed_parts`) or read (`from_parts`); None: not known since when
        self._changed: dict[tuple[str, str], None] | None = None

    def network_atp(self) -> int:
        return sum(w.on_hand - w.reserved - w.safety_stock for w in self.warehouses.values())

    def atp(self, warehouse_id: str) -> int | None:
        w = self.warehouses.get(warehouse_id)
        return None if w is None else w.atp

    # -- bytes ------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """One value holding everything (tests and tools; the agent's store uses `to_parts`)."""
        return self._head([r.to_list() for r in self.lines.values()])

    def to_parts(self) -> tuple[bytes, dict[bytes, bytes]]:
        """The state as a head (everything but the line records) and one part per line, keyed
        `order_id 0x1F line_id`. A hot SKU's open lines grow with the backlog: in one value
        they outgrew Kafka's 1 MB record limit at 100k orders, and every commit rewrote them
        all; stored apart, a commit writes the lines that changed (`changed_parts`, which
        counts from this call: taking the parts is the store's, once per flush)."""
        self._changed = {}
        return self._head([]), {_part_key(k): _encode(_line_fields(r)).encode() for k, r in self.lines.items()}

    def changed_parts(self) -> tuple[bytes, dict[bytes, bytes | None]] | None:
        """The head and the parts of the lines changed since the parts were last taken or
        read (None for a line that left), or None when that is not known (then `to_parts`).

        A commit changes a few of a SKU's ~50-70 open lines; visiting every line to find them
        cost ~2.5 us a line on a large heap's cold memory, once per SKU per commit
        (`python -m scripts.bench_cpu --batch 4 --commit-records 36`, live-sized commits:
        138 us per SKU flushed). The ledger's changes name the lines they touch
        (`Change.lines`, collected by `settle`), so only those are encoded."""
        changed = self._changed
        if changed is None:
            return None
        self._changed = {}
        lines = self.lines
        parts: dict[bytes, bytes | None] = {}
        for key in changed:
            r = lines.get(key)
            parts[_part_key(key)] = None if r is None else _encode(_line_fields(r)).encode()
        return self._head([]), parts

    def note_changed(self, keys: Iterable[tuple[str, str]]) -> None:
        """Record lines changed, added or removed (for `changed_parts`)."""
        if self._changed is not None:
            self._changed.update(dict.fromkeys(keys))

    def _head(self, lines: list[list[Any]]) -> bytes:
        return _encode([
            FORMAT_VERSION, self.sku,
            [[wid, w.on_hand, w.reserved, w.backordered, w.safety_stock, w.supply,
              w.counted_at] for wid, w in self.warehouses.items()],
            lines,
            list(self.done),
            list(self.seen),
            self.arrivals, self.results,
        ]).encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> SkuState:
        return cls.from_parts(data, ())

    @classmethod
    def from_parts(cls, head: bytes | str, parts: Iterable[bytes]) -> SkuState:
        """The state from a head and its line parts (a head written by `to_bytes` holds its
        lines itself)."""
        v = _decode(head)
        if v[0] != FORMAT_VERSION:
            raise ValueError(f"unsupported SkuState format version {v[0]!r}")
        s = cls(v[1])
        whs = s.warehouses
        for x in v[2]:
            whs[x[0]] = Warehouse(*x[1:])
        lines = s.lines
        queued = False
        for x in itertools.chain(v[3], map(_decode, parts)):
            rec = LineAlloc(*x)
            lines[(x[0], x[1])] = rec
            if rec.backordered:
                queued = True
                wid = rec.warehouse_id
                (s.unassigned if wid is None else whs[wid].queue).append(rec)
        if queued:
            s.unassigned.sort(key=priority)
            for w in whs.values():
                w.queue.sort(key=priority)
        s.done = {(k[0], k[1]): None for k in v[4]}
        s.seen = dict.fromkeys(v[5])
        s.arrivals, s.results = v[6], v[7]
        if not v[3]:  # the lines are the parts read: changes are counted from them
            s._changed = {}
        return s

    def __repr__(self) -> str:
        return f"SkuState({self.sku!r}, warehouses={self.warehouses}, lines={len(self.lines)})"


def _part_key(key: tuple[str, str]) -> bytes:
    return f"{key[0]}\x1f{key[1]}".encode()


_encode = encoder(ensure_ascii=False, allow_nan=False)
_decode = json.loads


class Change:
    """What one inventory event or order message did to a `SkuState` (filled by the
    primitives, read by `tables.inventory.settle`)."""

    __slots__ = ("state", "cause", "at", "order_id", "before", "lines", "supply_changed",
                 "exceptions")

    def __init__(self, state: SkuState, cause: str, at: int, order_id: str | None = None) -> None:
        self.state = state
        self.cause = cause  # event_id, or the order message's cause_event_id
        self.at = at  # business time of the cause
        self.order_id = order_id  # the order of an order message (exceptions name it)
        # warehouses touched -> numbers before (None: created by this change)
        self.before: dict[str, tuple[int, int, int, int] | None] = {}
        self.lines: dict[tuple[str, str], LineAlloc] = {}  # lines to answer, in order
        self.supply_changed: set[str] = set()
        self.exceptions: list[BusinessException] = []

    def warehouse(self, wid: str, *, expected: bool = True) -> Warehouse:
        """The warehouse `wid`, created if the SKU has none by that id, its numbers recorded
        before any change. `expected=False` raises UNKNOWN_WAREHOUSE when it is created (an
        order message naming a warehouse no ledger event ever mentioned for the SKU)."""
        state = self.state
        w = state.warehouses.get(wid)
        if w is None:
            w = state.warehouses[wid] = Warehouse()
            self.before[wid] = None
            if not expected:
                self.raise_(InventoryCode.UNKNOWN_WAREHOUSE,
                            f"warehouse {wid} has no stock record for {state.sku}: created empty")
            if state.unassigned:  # the SKU's first warehouse takes the waiting lines
                moved = state.unassigned
                state.unassigned = []
                for rec in moved:
                    rec.warehouse_id = wid
                    w.backordered += rec.backordered
                    self.lines[rec.key] = rec
                w.queue = moved
        elif wid not in self.before:
            self.before[wid] = (w.on_hand, w.reserved, w.backordered, w.safety_stock)
        return w

    def touch(self, rec: LineAlloc) -> None:
        self.lines[(rec.order_id, rec.line_id)] = rec

    def raise_(self, code: str, detail: str, order_id: str | None = None) -> None:
        self.exceptions.append(
            BusinessException(code, order_id if order_id is not None else self.order_id,
                              detail, self.cause, self.at, self.state.sku)
        )

    def check_negative(self, wid: str, w: Warehouse, atp_before: int, what: str) -> None:
        """NEGATIVE_ATP when a physical decrease left the ATP negative and lower than before."""
        atp = w.on_hand - w.reserved - w.safety_stock
        if atp < 0 and atp < atp_before:
            self.raise_(InventoryCode.NEGATIVE_ATP,
                        f"{what} at {wid}: atp {atp} (on_hand {w.on_hand}, reserved "
                        f"{w.reserved}, safety_stock {w.safety_stock}); reservations kept")
