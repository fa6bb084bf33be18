// One order: header and amounts, lines with their quantity buckets (/orders/{id}), holds,
// shipments and invoices, open and closed SLA breaches, the timeline (/orders/{id}/timeline)
// and its cases (/cases?order_id=).
import { get } from "./api.js";
import { meter, stacked } from "./charts.js";
import { h, link, section, table } from "./dom.js";
import { money, num, time, value } from "./format.js";

/** The quantity buckets of a line, in the order a line moves through them. */
const BUCKETS = ["ordered", "cancelled", "open", "pending_allocation", "backordered", "allocated",
  "shipped", "delivered", "invoiced", "invoiced_unmatched"];

export function mount(root, { args: [orderId] }) {
  const body = h("div");
  root.append(h("h1", {}, "Order ", h("code", {}, orderId)), body);
  const path = `/orders/${encodeURIComponent(orderId)}`;
  return {
    async refresh() {
      const [order, timeline, cases] = await Promise.all([
        get(path), get(`${path}/timeline`), get(`/cases?order_id=${encodeURIComponent(orderId)}&limit=100`)]);
      body.replaceChildren(header(order), linesPanel(order), breachesPanel(order), casesPanel(cases),
        timelinePanel(timeline, order.currency), shipmentsPanel(order));
    },
  };
}

function header(o) {
  const row = (label, content) => [h("dt", {}, label), h("dd", {}, content ?? "–")];
  const amount = (name) => value(`order.${name}`, o[name], money(o[name], o.currency));
  const holds = o.holds.map((hold) => h("li", {}, h("strong", {}, hold.hold_type), `: ${hold.reason} since `, time(hold.since)));
  return h("div", { class: "grid" },
    section("Order",
      h("dl", { class: "facts" },
        row("Status", h("strong", { class: "status", dataset: { field: "order.status" } }, o.status)),
        row("Customer", o.customer_id), row("Channel", o.channel), row("Region", o.region),
        row("Currency", o.currency), row("Payment terms", o.payment_terms_days === null ? null : `${o.payment_terms_days} days`),
        row("Promised ship", time(o.promised_ship_at)), row("Changes", String(o.seq)),
        o.placed ? [] : row("Note", "not placed yet: only early events have arrived"),
        o.orphan_since ? row("Orphan since", time(o.orphan_since)) : [])),
    section("Amounts",
      h("dl", { class: "facts" },
        row("Invoiced", amount("invoiced_minor")), row("Paid", amount("paid_minor")),
        row("Refunded", amount("refunded_minor")), row("Open balance", amount("open_balance_minor")))),
    section("Milestones",
      h("dl", { class: "facts" }, Object.entries(o.milestones).map(([name, at]) => row(name.replace(/_at$/, ""), time(at))))),
    section("Holds", holds.length ? h("ul", {}, holds) : h("p", {}, "No active hold.")));
}

function linesPanel(o) {
  const lines = o.lines.map((ln) => {
    const rows = BUCKETS.map((b) => h("tr", {},
      h("th", { scope: "row" }, b.replace("_", " ")),
      h("td", { class: "num" }, value(`line.${ln.line_id}.${b}`, ln[b])),
      h("td", {}, meter(ln[b], ln.ordered, { cls: `b-${b}` }))));
    const split = stacked([
      { value: ln.cancelled, cls: "b-cancelled", label: "cancelled" },
      { value: Math.min(ln.delivered, ln.shipped), cls: "b-delivered", label: "delivered" },
      { value: Math.max(ln.shipped - ln.delivered, 0), cls: "b-shipped", label: "shipped, not delivered" },
      { value: ln.allocated, cls: "b-allocated", label: "allocated" },
      { value: ln.backordered, cls: "b-backordered", label: "backordered" },
      { value: ln.pending_allocation, cls: "b-pending_allocation", label: "pending allocation" },
    ], ln.ordered, { title: `line ${ln.line_id}: where its quantity is` });
    return h("article", { class: "line", dataset: { line: ln.line_id } },
      h("h3", {}, `Line ${ln.line_id}: `, link("#/skus/", ln.sku), ln.warehouse_id ? " at " : "",
        ln.warehouse_id ? link(`#/skus/${encodeURIComponent(ln.sku)}/`, ln.warehouse_id) : "",
        ` · ${money(ln.unit_price_minor, o.currency)} each`, ln.promised_at ? [" · promised ", time(ln.promised_at)] : ""),
      split,
      h("table", { class: "buckets" }, h("caption", { class: "visually-hidden" }, `Quantity buckets of line ${ln.line_id}`), rows));
  });
  return section("Lines", h("div", { class: "lines" }, lines),
    h("p", { class: "note" }, "Bars are out of the ordered quantity. Strip: cancelled, delivered, shipped, allocated, backordered, pending."));
}

function breachesPanel(o) {
  return section("SLA breaches",
    table("Open", ["milestone", "due", "detected"], o.open_breaches.map((b) => [b.milestone, time(b.due_at), time(b.detected_at)])),
    table("Closed", ["milestone", "due", "detected", "met", "late"],
      o.closed_breaches.map((b) => [b.milestone, time(b.due_at), time(b.detected_at), time(b.met_at), b.late ? "late" : "on time"])));
}

function casesPanel(page) {
  return section("Cases",
    table(null, ["case", "severity", "state", "opened"], page.cases.map((c) => [
      link("#/cases/", c.case_id, c.code), h("span", { class: `sev sev-${c.severity}` }, c.severity), c.state, time(c.opened_at)])),
    page.next_cursor ? h("p", {}, h("a", { href: `#/cases?order_id=${encodeURIComponent(page.cases[0].order_id)}&state=` }, "All cases of this order")) : "");
}

/** A timeline entry's changes in a few words: line deltas, holds, amounts, milestones, breaches. */
function changes(c, currency) {
  const parts = [];
  for (const ln of c.lines || []) {
    const deltas = Object.entries(ln).filter(([k]) => k !== "line_id").map(([k, v]) => {
      if (typeof v === "number") return `${k} ${v > 0 ? "+" : ""}${num(v)}`;
      // {from, to}: the line's warehouse, or its promise (epoch ms: the API renders only *_at keys)
      const show = (x) => (x === null ? "none" : typeof x === "number" ? new Date(x).toISOString() : x);
      return `${k} ${show(v.from)} → ${show(v.to)}`;
    });
    parts.push(`line ${ln.line_id}: ${deltas.join(", ")}`);
  }
  if (c.holds_added?.length) parts.push(`hold ${c.holds_added.join(", ")}`);
  if (c.holds_removed?.length) parts.push(`released ${c.holds_removed.join(", ")}`);
  for (const [k, v] of Object.entries(c.amounts || {})) parts.push(`${k.replace(/_minor$/, "")} ${money(v, currency)}`);
  if (c.milestones_reached?.length) parts.push(`reached ${c.milestones_reached.map((m) => m.replace(/_at$/, "")).join(", ")}`);
  if (c.breaches_opened?.length) parts.push(`breached ${c.breaches_opened.join(", ")}`);
  if (c.breaches_closed?.length) {
    parts.push(`breach closed ${c.breaches_closed.map((b) => `${b.milestone} (${b.outcome.toLowerCase().replace("_", " ")})`).join(", ")}`);
  }
  if (c.exceptions?.length) parts.push(`exceptions ${c.exceptions.join(", ")}`);
  return parts.map((p) => h("div", {}, p));
}

/** The summary of the changes older than the kept entries. */
function earlier(e) {
  const causes = Object.entries(e.by_cause_type).map(([type, n]) => `${type} ×${num(n)}`).join(", ");
  return h("p", {}, `Changes ${e.first_seq}–${e.last_seq} (${num(e.entries)}) are summarised: ${causes}; `,
    `${num(e.exceptions)} exception(s); business time `, time(e.first_occurred_at), " to ", time(e.last_occurred_at), ".");
}

function timelinePanel(t, currency) {
  const rows = t.entries.map((e) => [[String(e.seq), { class: "num" }],
    h("span", {}, e.status_before || "–", " → ", h("strong", {}, e.status_after)),
    h("span", {}, e.cause_event_type, h("br"), h("small", {}, e.cause_event_id || "")),
    e.source || "–", time(e.occurred_at), time(e.processed_at), [changes(e.changes || {}, currency), { class: "detail" }]]);
  return section("Timeline",
    t.earlier ? earlier(t.earlier) : "",
    table(null, ["seq", "status", "cause", "source", "business time", "processed", "what changed"], rows, { class: "timeline" }));
}

function shipmentsPanel(o) {
  return section("Shipments, invoices and payments",
    table("Shipments", ["shipment", "warehouse", "carrier", "lines", "dispatched", "delivered"], o.shipments.map((s) => [
      s.shipment_id, s.warehouse_id, `${s.carrier || ""} ${s.tracking_number || ""}`,
      s.lines.map((l) => `${l.line_id}×${num(l.quantity)}`).join(", "), time(s.dispatched_at), time(s.delivered_at)])),
    table("Invoices", ["invoice", "total", "posted", "due"], o.invoices.map((i) => [
      i.invoice_id, [money(i.total_minor, o.currency), { class: "num" }], time(i.posted_at), time(i.due_at)])),
    table("Payments", ["payment", "amount", "received"], o.payments.map((p) => [
      p.payment_id, [money(p.amount_minor, o.currency), { class: "num" }], time(p.received_at)])));
}
