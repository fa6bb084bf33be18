// One SKU: available to promise per warehouse and across the network, reservations, the
// backorder queues and expected supply (/atp/{sku}); #/skus/SKU/WH shows one warehouse
// (/atp/{sku}/{warehouse_id}).
import { get } from "./api.js";
import { meter } from "./charts.js";
import { h, link, section, table } from "./dom.js";
import { num, time, value } from "./format.js";

const FIGURES = ["on_hand", "reserved", "backordered", "safety_stock", "atp"];

export function mount(root, { args: [sku, warehouseId] }) {
  const body = h("div");
  root.append(h("h1", {}, "SKU ", h("code", {}, sku), warehouseId ? ` at ${warehouseId}` : ""),
    warehouseId ? h("p", {}, link("#/skus/", sku, `← ${sku} at every warehouse`)) : "", body);
  const path = `/atp/${encodeURIComponent(sku)}` + (warehouseId ? `/${encodeURIComponent(warehouseId)}` : "");
  return {
    async refresh() {
      const answer = await get(path);
      const warehouses = warehouseId ? [answer] : answer.warehouses;
      body.replaceChildren(
        warehouseId ? "" : network(answer),
        positions(sku, warehouses),
        ...warehouses.map((w) => queues(w)),
        warehouseId ? "" : unassigned(answer));
    },
  };
}

function network(a) {
  const tile = (label, field, n) => h("div", { class: "tile" }, h("div", { class: "tile-label" }, label), value(field, n));
  return h("section", { class: "tiles", "aria-label": "Network position" },
    tile("Network ATP", "atp.network_atp", a.network_atp),
    tile("On hand", "atp.on_hand", a.on_hand),
    tile("Reserved", "atp.reserved", a.reserved),
    tile("Backordered", "atp.backordered", a.backordered));
}

function positions(sku, warehouses) {
  const max = Math.max(0, ...warehouses.map((w) => w.on_hand));
  const rows = warehouses.map((w) => [
    link(`#/skus/${encodeURIComponent(sku)}/`, w.warehouse_id),
    ...FIGURES.map((f) => [value(`atp.${w.warehouse_id}.${f}`, w[f]), { class: "num" + (f === "atp" && w.atp < 0 ? " negative" : "") }]),
    h("span", { title: `ATP ${w.atp} of ${w.on_hand} on hand` }, meter(Math.max(w.atp, 0), max)),
    time(w.counted_at)]);
  return section("Position by warehouse",
    table(null, ["warehouse", "on hand", "reserved", "backordered", "safety stock", "ATP", "ATP of on hand (bar)", "last counted"], rows),
    h("p", { class: "note" }, "ATP = on hand − reserved − safety stock. Reservations are totals: ",
      "the API does not list which orders hold them."));
}

function queues(w) {
  return section(`At ${w.warehouse_id}: backorders and expected supply`,
    h("div", { class: "columns" },
      table("Backorder queue (served first in, first out)", ["order", "line", "quantity", "accepted", "promised"],
        w.backorders.map((b) => [link("#/orders/", b.order_id), b.line_id, [num(b.quantity), { class: "num" }],
          time(b.accepted_at), time(b.promised_at)])),
      table("Expected supply", ["supply", "quantity", "expected"],
        w.expected_supply.map((s) => [s.supply_id, [num(s.quantity), { class: "num" }], time(s.expected_at)]))));
}

function unassigned(a) {
  return section("Backorders not assigned to a warehouse",
    table(null, ["order", "line", "quantity", "accepted"], a.unassigned_backorders.map((b) => [
      link("#/orders/", b.order_id), b.line_id, [num(b.quantity), { class: "num" }], time(b.accepted_at)])));
}
