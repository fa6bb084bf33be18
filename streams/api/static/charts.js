// Small inline-SVG charts. Each has role="img" and a text label; the figures they draw are
// also shown as text next to them or in a table, so nothing is only in the picture.
import { s } from "./dom.js";
import { num } from "./format.js";

const WIDTH = 420;

/** A small bar for a table cell: `value` out of `max`. */
export function meter(value, max, { title = "", cls = "" } = {}) {
  const w = max > 0 && value > 0 ? Math.max(1, (value / max) * 120) : 0;
  return s("svg", { class: "chart meter " + cls, viewBox: "0 0 120 10", width: 120, height: 10, "aria-hidden": "true" },
    s("rect", { x: 0, y: 0, width: 120, height: 10, class: "track" }),
    s("rect", { x: 0, y: 0, width: w, height: 10 }, title ? s("title", {}, title) : null));
}

/** Columns of a cumulative histogram (`buckets` [{le_ms, count}], counts cumulative as the API
 * gives them), drawn per bucket. `label(le_ms)` names a bucket's upper bound; `compact` draws a
 * small one for a table cell, without tick labels (each column has its label as a tooltip). */
export function histogram(buckets, { title = "histogram", label = String, compact = false } = {}) {
  const counts = buckets.map((b, i) => b.count - (i ? buckets[i - 1].count : 0));
  const top = Math.max(...counts, 1);
  const width = compact ? 160 : WIDTH;
  const col = width / Math.max(buckets.length, 1);
  const plot = compact ? 22 : 70;
  const svg = s("svg", { class: "chart histogram" + (compact ? " compact" : ""), viewBox: `0 0 ${width} ${plot + (compact ? 2 : 16)}`,
    role: "img", "aria-label": title },
    buckets.map((b, i) => {
      const hgt = counts[i] > 0 ? Math.max(1, (counts[i] / top) * plot) : 0;
      return s("g", {},
        s("title", {}, `≤ ${label(b.le_ms)}: ${num(counts[i])}`),
        s("rect", { x: i * col + 1, y: plot - hgt, width: col - 2, height: hgt, rx: 1 }),
        compact ? null : s("text", { x: i * col + col / 2, y: plot + 12, "text-anchor": "middle", class: "tick" }, label(b.le_ms)));
    }),
    s("line", { x1: 0, y1: plot, x2: width, y2: plot, class: "axis" }));
  if (compact) svg.setAttribute("width", width);
  return svg;
}

/** A line through recent values (oldest first), e.g. throughput per refresh. */
export function sparkline(values, { title = "trend", width = 120, height = 24 } = {}) {
  const top = Math.max(...values, 1);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`);
  return s("svg", { class: "chart spark", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title },
    s("polyline", { points: points.join(" "), fill: "none" }));
}

/** One horizontal bar split in parts [{value, cls, label}] adding up to `total`. */
export function stacked(parts, total, { title = "split" } = {}) {
  let x = 0;
  const sum = Math.max(total, 1);
  return s("svg", { class: "chart stacked", viewBox: `0 0 ${WIDTH} 14`, role: "img", "aria-label": title,
    preserveAspectRatio: "none" },
    parts.map((p) => {
      const w = (p.value / sum) * WIDTH;
      const rect = s("rect", { x, y: 0, width: w, height: 14, class: p.cls }, s("title", {}, `${p.label}: ${num(p.value)}`));
      x += w;
      return rect;
    }));
}
