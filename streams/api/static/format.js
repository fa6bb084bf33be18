// Formatting numbers, money, times and durations for people. Values also keep their raw form
// in data-value attributes (value()), so that tests and scripts read them exactly.
import { h } from "./dom.js";

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export function num(n) {
  if (n === null || n === undefined) return "–";
  return Number.isInteger(n) ? integer.format(n) : decimal.format(n);
}

/** A 0..1 rate as a percentage. */
export function pct(rate) {
  return rate === null || rate === undefined ? "–" : decimal.format(rate * 100) + " %";
}

/** An amount in minor units (cents) of `currency`, e.g. 123456 EUR -> "€1,234.56". The
 * currency's own minor digits are used (JPY has none). */
export function money(minor, currency) {
  if (minor === null || minor === undefined) return "–";
  if (!currency) return integer.format(minor) + " (minor units)";
  let fmt;
  try {
    fmt = new Intl.NumberFormat(undefined, { style: "currency", currency });
  } catch {
    return integer.format(minor) + " " + currency + " (minor units)";
  }
  const digits = fmt.resolvedOptions().maximumFractionDigits;
  return fmt.format(minor / 10 ** digits);
}

const local = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** An ISO-8601 time from the API as a <time>: local time shown, the ISO form in the title. */
export function time(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return h("time", { datetime: iso, title: iso }, local.format(date));
}

/** Milliseconds as "350 ms", "4.2 s", "12 min", "3.5 h", "2.1 d". */
export function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  const units = [[86_400_000, "d"], [3_600_000, "h"], [60_000, "min"], [1_000, "s"]];
  for (const [size, unit] of units) if (Math.abs(ms) >= size) return decimal.format(ms / size) + " " + unit;
  return integer.format(ms) + " ms";
}

/** A formatted figure that carries its raw value: <span data-field=name data-value=raw>. */
export function value(field, raw, text = num(raw)) {
  return h("span", { class: "figure", dataset: { field, value: raw === null ? "null" : raw } }, text);
}
