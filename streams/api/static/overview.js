// Overview: orders by status/region/channel (/stats), throughput and sync latency by source
// system (/kpis sync_latency, /metrics), SLA adherence and risk by milestone (/kpis,
// /stats sla), open cases by severity (/stats cases, the oldest from /cases) and the business
// KPIs (/kpis). Counts come from /stats, never from listing every row.
import { get, getText } from "./api.js";
import { histogram, meter, sparkline } from "./charts.js";
import { h, section, table } from "./dom.js";
import { duration, money, num, pct, time, value } from "./format.js";
import { counterTotals, parseMetrics } from "./metrics.js";

const STATUSES = ["SUBMITTED", "ACCEPTED", "BACKORDERED", "PARTIALLY_ALLOCATED", "ALLOCATED",
  "PARTIALLY_SHIPPED", "SHIPPED", "DELIVERED", "INVOICED", "PARTIALLY_PAID", "CLOSED", "ON_HOLD", "CANCELLED"];
const MILESTONES = ["ACCEPTANCE", "ALLOCATION", "SHIPMENT", "DELIVERY", "INVOICE", "PAYMENT", "ORPHAN"];
export const SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];
const LEVELS = ["MEDIUM", "HIGH", "CRITICAL"];

// Counters seen at each refresh, kept across visits of the page: rates are their differences.
const history = { sources: new Map(), roles: new Map() };
const KEPT = 30;

export function mount(root) {
  root.append(h("h1", {}, "Overview"));
  const body = h("div", { class: "grid" });
  root.append(body);
  return {
    async refresh() {
      const [stats, kpis, oldest, metrics] = await Promise.all([
        get("/stats"),
        get("/kpis"),
        Promise.all(SEVERITIES.map((sev) => get(`/cases?state=OPEN,ACKNOWLEDGED&severity=${sev}&limit=1`))),
        getText("/metrics").then(parseMetrics, (err) => ({ error: err })),
      ]);
      const now = Date.now();
      body.replaceChildren(
        tiles(stats, kpis),
        ordersPanel(stats),
        casesPanel(stats, oldest),
        slaPanel(kpis, stats),
        sourcesPanel(kpis, now),
        pipelinePanel(metrics, now),
        kpiPanel(kpis),
      );
    },
  };
}

/** Sum of the numbers of a nested {name: count} map. */
function total(counts) {
  return Object.values(counts || {}).reduce((n, v) => n + (typeof v === "number" ? v : total(v)), 0);
}

/** Unresolved cases (open or acknowledged) of one severity, or of all. */
function unresolved(stats, severity) {
  const by = stats.cases.by_state_severity;
  const of = (state) => (severity ? by[state]?.[severity] || 0 : total(by[state]));
  return of("OPEN") + of("ACKNOWLEDGED");
}

function tiles(stats, kpis) {
  const open = unresolved(stats);
  const more = stats.cases.indexing > 0 ? "+" : ""; // a worker is still counting its cases
  const breaches = total(stats.sla.open_breaches);
  const atRisk = total(stats.sla.at_risk);
  const tile = (label, figure) => h("div", { class: "tile" }, h("div", { class: "tile-label" }, label), figure);
  return h("section", { class: "tiles wide", "aria-label": "Key figures" },
    tile("Orders", value("stats.orders", stats.orders)),
    tile("Open cases", value("cases.open", open, num(open) + more)),
    tile("Open SLA breaches", value("sla.breaches", breaches)),
    tile("Milestones at risk", value("sla.at_risk", atRisk)),
    tile("On time in full", value("kpis.otif.rate", kpis.otif.all.rate, pct(kpis.otif.all.rate))),
    tile("Line fill rate (first allocation)", value("kpis.fill.line_fill_rate",
      kpis.fill_rate_first_allocation.all.line_fill_rate, pct(kpis.fill_rate_first_allocation.all.line_fill_rate))),
    tile("Backordered quantity", value("kpis.backorders.quantity", kpis.backorders.all.quantity)),
    tile("Mean sync latency", value("kpis.sync.mean_ms", kpis.sync_latency.all.mean_ms, duration(kpis.sync_latency.all.mean_ms))),
  );
}

/** Rows of a {name: count} map with a bar each; `order` puts known names first. */
function countRows(counts, field, order = []) {
  const names = [...order.filter((n) => n in counts), ...Object.keys(counts).filter((n) => !order.includes(n)).sort()];
  const max = Math.max(0, ...Object.values(counts));
  return names.map((name) => [name, [value(`${field}.${name}`, counts[name]), { class: "num" }], meter(counts[name], max)]);
}

function ordersPanel(stats) {
  return section("Orders",
    h("p", {}, "Across ", value("stats.workers", stats.workers), " worker(s)",
      stats.unreachable_workers ? h("strong", {}, `; unreachable: ${stats.unreachable_workers.join(", ")}`) : ""),
    h("div", { class: "columns" },
      table("By status", ["status", "orders", ""], countRows(stats.by_status, "stats.by_status", STATUSES)),
      table("By region", ["region", "orders", ""], countRows(stats.by_region, "stats.by_region")),
      table("By channel", ["channel", "orders", ""], countRows(stats.by_channel, "stats.by_channel"))));
}

function casesPanel(stats, oldest) {
  const by = stats.cases.by_state_severity;
  const more = stats.cases.indexing > 0 ? "+" : "";
  const rows = SEVERITIES.map((sev, i) => {
    const count = (state) => by[state]?.[sev] || 0;
    const link = (state, n) => h("a", { href: `#/cases?severity=${sev}&state=${state}` }, num(n) + more);
    const first = oldest[i].cases[0];
    return [h("span", { class: `sev sev-${sev}` }, sev),
      [value(`cases.${sev}.OPEN`, count("OPEN"), link("OPEN", count("OPEN"))), { class: "num" }],
      [value(`cases.${sev}.ACKNOWLEDGED`, count("ACKNOWLEDGED"), link("ACKNOWLEDGED", count("ACKNOWLEDGED"))), { class: "num" }],
      first ? h("span", {}, "oldest opened ", time(first.opened_at)) : "–"];
  });
  return section("Open cases by severity",
    table(null, ["severity", "open", "acknowledged", "oldest"], rows),
    h("p", { class: "note" }, "Counts from /stats (every worker's cases); the oldest from /cases",
      more ? "; a worker is still counting its cases (\"+\")" : "", "."));
}

function slaPanel(kpis, stats) {
  const adherence = kpis.sla_adherence.by_milestone;
  const risk = stats.sla.at_risk;
  const open = stats.sla.open_breaches;
  const rows = MILESTONES.filter((m) => adherence[m] || risk[m] || open[m]).map((m) => {
    const a = adherence[m] || {};
    return [m,
      [[value(`kpis.sla.${m}.adherence`, a.adherence ?? null, pct(a.adherence)), " ", meter((a.adherence ?? 0) * 100, 100, { cls: "short" })],
        { class: "num" }],
      [value(`kpis.sla.${m}.on_time`, a.on_time ?? 0), { class: "num" }],
      [value(`kpis.sla.${m}.late`, a.late ?? 0), { class: "num" }],
      [value(`sla.breaches.${m}`, open[m] || 0), { class: "num" }],
      ...LEVELS.map((level) => [value(`sla.at_risk.${m}.${level}`, risk[m]?.[level] || 0), { class: risk[m]?.[level] ? `num risk-${level}` : "num" }]),
    ];
  });
  return section("SLA adherence and risk by milestone",
    table(null, ["milestone", "adherence", "on time", "late", "open breaches", "at risk: medium", "high", "critical"], rows),
    h("p", { class: "note" }, "Adherence = on time / (on time + late + open), from /kpis. Open breaches and ",
      "risk levels from /stats."));
}

/** Events per second between the last two refreshes, per key of `counts`. */
function rates(store, counts, now) {
  const out = {};
  for (const [key, count] of Object.entries(counts)) {
    const seen = store.get(key) || [];
    const last = seen[seen.length - 1];
    if (last && now > last.t && count >= last.count) {
      seen.push({ t: now, count, rate: ((count - last.count) * 1000) / (now - last.t) });
    } else if (!last || now > last.t) {
      seen.push({ t: now, count, rate: null });
    }
    store.set(key, seen.slice(-KEPT));
    out[key] = store.get(key);
  }
  return out;
}

function trend(points, key) {
  const values = points.filter((p) => p.rate !== null).map((p) => p.rate);
  const lastRate = values.length ? values[values.length - 1] : null;
  return [[value(`rate.${key}`, lastRate, lastRate === null ? "–" : num(lastRate)), { class: "num" }],
    values.length > 1 ? sparkline(values, { title: `events per second of ${key}` }) : ""];
}

function latencyLabel(ms) {
  return ms === null ? "more" : duration(ms).replace(" ", "");
}

function sourcesPanel(kpis, now) {
  const by = kpis.sync_latency.by;
  const seen = rates(history.sources, Object.fromEntries(by.map((row) => [row.source, row.count])), now);
  const rows = by.map((row) => [row.source,
    [value(`kpis.sync.${row.source}.count`, row.count), { class: "num" }],
    ...trend(seen[row.source], row.source),
    [value(`kpis.sync.${row.source}.mean_ms`, row.mean_ms, duration(row.mean_ms)), { class: "num" }],
    histogram(row.buckets, { title: `sync latency of ${row.source}`, label: latencyLabel, compact: true })]);
  return section("Throughput and sync latency by source system",
    table(null, ["source", "events applied", "events/s", "trend", "mean latency", "latency (≤100 ms … more)"], rows),
    h("p", { class: "note" }, "Sync latency is processed − occurred per applied input event (/kpis). ",
      "Events per second are the change of the count between refreshes, measured here: ",
      "the API keeps no rates. Early events (clock skew): ", value("kpis.sync.early", kpis.sync_latency.all.early), "."));
}

function pipelinePanel(metrics, now) {
  if (metrics.error) return section("This worker's pipeline (/metrics)", h("p", {}, `Not available: ${metrics.error.message}`));
  const byRole = counterTotals(metrics, "o2c_events_in_total", "role");
  const seen = rates(history.roles, byRole, now);
  const dead = counterTotals(metrics, "o2c_dead_letters_total", "role");
  const rows = Object.keys(byRole).sort().map((role) => [role, [value(`metrics.events_in.${role}`, byRole[role]), { class: "num" }],
    ...trend(seen[role], role), [num(dead[role] || 0), { class: "num" }]]);
  const commit = metrics.get("o2c_record_to_commit_seconds_sum")?.[0];
  const count = metrics.get("o2c_record_to_commit_seconds_count")?.[0];
  const mean = commit && count && count.value ? (commit.value / count.value) * 1000 : null;
  return section("This worker's pipeline (/metrics)",
    table(null, ["input topic", "events in", "events/s", "trend", "dead letters"], rows),
    h("p", {}, "Mean input record → commit: ", value("metrics.record_to_commit_ms", mean, duration(mean))),
    h("p", { class: "note" }, "/metrics counts this worker only; with several workers each must be scraped."));
}

function kpiPanel(kpis) {
  const cycle = (name, label) => {
    const all = kpis.cycle_time[name].all;
    return h("figure", {},
      h("figcaption", {}, `${label}: `, value(`kpis.cycle.${name}.count`, all.count), " orders, mean ",
        value(`kpis.cycle.${name}.mean_ms`, all.mean_ms, duration(all.mean_ms))),
      histogram(all.buckets, { title: `${label} histogram`, label: latencyLabel }));
  };
  const back = kpis.backorders.all;
  const fill = kpis.fill_rate_first_allocation.all;
  const money_rows = Object.entries(kpis.receivables.by_currency).map(([cur, r]) => [cur,
    [value(`kpis.receivables.${cur}.open_minor`, r.open_minor, money(r.open_minor, cur)), { class: "num" }],
    [value(`kpis.receivables.${cur}.overdue_minor`, r.overdue_minor, money(r.overdue_minor, cur)), { class: "num" }],
    [num(r.dso_days), { class: "num" }], [num(r.mean_days_to_pay), { class: "num" }],
    [money(kpis.invoice_readiness.all.value_minor[cur] ?? 0, cur), { class: "num" }]]);
  return section("Business KPIs",
    h("p", {}, "As of ", time(kpis.as_of), "."),
    h("div", { class: "columns" },
      h("dl", { class: "facts" },
        h("dt", {}, "On time in full"), h("dd", {}, value("kpis.otif.on_time_in_full", kpis.otif.all.on_time_in_full),
          " of ", value("kpis.otif.eligible", kpis.otif.all.eligible), " eligible orders"),
        h("dt", {}, "First allocation"), h("dd", {}, value("kpis.fill.complete_lines", fill.complete_lines), " of ",
          value("kpis.fill.lines", fill.lines), " lines complete; quantity fill ", pct(fill.quantity_fill_rate)),
        h("dt", {}, "Backorders"), h("dd", {}, value("kpis.backorders.lines", back.lines), " lines, ",
          num(back.quantity), " units, mean age ", back.mean_age_days === null ? "–" : `${num(back.mean_age_days)} days`),
        h("dt", {}, "Ready to invoice"), h("dd", {}, value("kpis.invoice_readiness.quantity", kpis.invoice_readiness.all.quantity), " units shipped, not invoiced")),
      table("Backorder age", ["age", "lines", ""], Object.entries(back.age).map(([band, n]) =>
        [band, [num(n), { class: "num" }], meter(n, Math.max(...Object.values(back.age)))]))),
    table("Receivables by currency", ["currency", "open", "overdue", "DSO (days)", "mean days to pay", "ready to invoice"], money_rows),
    h("div", { class: "columns" }, cycle("placed_to_shipped", "Placed → shipped"), cycle("placed_to_closed", "Placed → closed")));
}
