// Building DOM nodes. Text from the API always goes in as text nodes, never as HTML.

/** h("td", {class: "num"}, "12") -> <td class="num">12</td>. Attributes: `on*` functions are
 * listeners, `dataset` an object of data-* values, false/null/undefined leave the attribute out. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  el.append(...flat(children));
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** The same for SVG elements (charts.js). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttributes(el, attrs);
  el.append(...flat(children));
  return el;
}

function setAttributes(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) el.dataset[k] = String(v);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

function flat(children) {
  return children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
}

/** A table from column headers and rows of cells (each cell a node, text, or [text, attrs]). */
export function table(caption, headers, rows, attrs = {}) {
  return h("table", attrs,
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows.length
      ? rows.map((cells) => h("tr", {}, cells.map(cell)))
      : h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, "none"))));
}

function cell(value) {
  if (Array.isArray(value)) return h("td", value[1], value[0]);
  return h("td", {}, value);
}

/** A titled section of a page. */
export function section(title, ...children) {
  const id = "s-" + title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return h("section", { class: "panel", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

/** Hash link to a console page: link("#/orders/", id) with the id URL-encoded. */
export function link(prefix, id, text = id) {
  return h("a", { href: prefix + encodeURIComponent(id) }, text);
}
