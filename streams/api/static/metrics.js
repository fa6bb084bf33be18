// Reading the Prometheus text format of /metrics: enough for counters and histogram sums.

/** name -> [{labels, value}] for every sample line ("# " comment lines skipped). */
export function parseMetrics(text) {
  const samples = new Map();
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split("\n")) {
    const found = line.exec(raw);
    if (!found || raw.startsWith("#")) continue;
    const labels = {};
    for (const [, k, v] of (found[2] || "").matchAll(label)) labels[k] = v.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    if (!samples.has(found[1])) samples.set(found[1], []);
    samples.get(found[1]).push({ labels, value: Number(found[3]) });
  }
  return samples;
}

/** A counter's values added up per value of one label: {role: total, ...}. */
export function counterTotals(samples, name, byLabel) {
  const out = {};
  for (const { labels, value } of samples.get(name) || []) {
    const key = labels[byLabel] ?? "";
    out[key] = (out[key] || 0) + value;
  }
  return out;
}
