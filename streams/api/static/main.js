// The console's shell: hash routes, the refresh loop, the token prompt and the header forms.
// Pages (overview.js, cases.js, order.js, sku.js) export mount(root, {args, query}) and
// return {refresh}: refresh() fetches and redraws the page's data and throws on API errors.
import { Forbidden, NeedToken, setToken, token, whenTokenNeeded } from "./api.js";
import * as cases from "./cases.js";
import { h } from "./dom.js";
import * as order from "./order.js";
import * as overview from "./overview.js";
import * as sku from "./sku.js";

const REFRESH_MS = 5000;

const ROUTES = [
  [/^\/?$/, "overview", overview.mount],
  [/^\/cases$/, "cases", cases.mountQueue],
  [/^\/cases\/([^/]+)$/, "case", cases.mountCase],
  [/^\/orders\/([^/]+)$/, "order", order.mount],
  [/^\/skus\/([^/]+)(?:\/([^/]+))?$/, "sku", sku.mount],
];

const view = document.getElementById("view");
const status = document.getElementById("refresh-status");
const prompt = document.getElementById("token-prompt");
const forget = document.getElementById("forget-token");

let current = null; // {name, refresh, generation}
let generation = 0;
let lastUpdate = null;

function route() {
  const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
  for (const [pattern, name, mount] of ROUTES) {
    const found = pattern.exec(path || "/");
    if (found) return { name, mount, args: found.slice(1).map((a) => a && decodeURIComponent(a)), query: new URLSearchParams(search) };
  }
  return null;
}

/** Show the page the hash names; its first data drawn marks it loaded (data-loaded, data-load-ms). */
async function show() {
  const started = performance.now(); // on a fresh load: since navigation start
  const found = route();
  const mine = ++generation;
  for (const a of document.querySelectorAll(".top nav a")) {
    const here = a.getAttribute("href") === "#/" ? found?.name === "overview" : found?.name.startsWith("case");
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  view.removeAttribute("data-loaded");
  const alert = h("div", { class: "alert", role: "alert", hidden: true });
  const root = h("div");
  view.replaceChildren(alert, root);
  if (!found) {
    current = null;
    root.append(h("p", {}, "No such page. ", h("a", { href: "#/" }, "Overview")));
    return;
  }
  const page = found.mount(root, { args: found.args, query: found.query });
  // The first page of a tab is timed from navigation start (performance.now()'s origin).
  current = { name: found.name, refresh: page.refresh, alert, generation: mine, started: mine === 1 ? 0 : started };
  await refresh(current);
}

/** One refresh of a page at a time: a call while one runs waits for that one. */
function refresh(page) {
  if (!page.running) page.running = load(page).finally(() => { page.running = null; });
  return page.running;
}

async function load(page) {
  try {
    await page.refresh();
    page.alert.hidden = true;
    lastUpdate = new Date();
    if (!page.loaded && page.generation === generation) { // its first data: the page is loaded
      page.loaded = true;
      view.dataset.loaded = page.name;
      view.dataset.loadMs = String(Math.round(performance.now() - page.started));
    }
  } catch (err) {
    if (page.generation === generation) showError(page.alert, err);
  } finally {
    showStatus();
  }
}

function showError(alert, err) {
  alert.hidden = false;
  if (err instanceof NeedToken) alert.textContent = "The API needs a bearer token: enter it in the form above.";
  else if (err instanceof Forbidden) alert.textContent = "Your role cannot do this.";
  else if (err.status === 503) alert.textContent = `Data is moving between workers; retrying (${err.message}).`;
  else if (err.status) alert.textContent = `${err.message} (HTTP ${err.status})`;
  else alert.textContent = err.message;
  if (!err.status && !(err instanceof NeedToken)) console.error(err);
}

function showStatus() {
  const when = lastUpdate ? `last update ${lastUpdate.toLocaleTimeString()}` : "no data yet";
  status.textContent = document.hidden
    ? `Auto-refresh paused while the tab is hidden; ${when}.`
    : `Auto-refresh every ${REFRESH_MS / 1000} s; ${when}.`;
}

// Poll the shown page; nothing while the tab is hidden, at once when it shows again.
setInterval(() => {
  if (!document.hidden && current && prompt.hidden) refresh(current);
}, REFRESH_MS);
document.addEventListener("visibilitychange", () => {
  showStatus();
  if (!document.hidden && current) refresh(current);
});

// The token prompt: shown on a 401; the token is kept for this tab (sessionStorage).
whenTokenNeeded(() => {
  if (!prompt.hidden) return;
  prompt.hidden = false;
  document.getElementById("token-input").focus();
});
document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token-input");
  setToken(input.value.trim());
  input.value = "";
  prompt.hidden = true;
  forget.hidden = !token();
  show();
});
forget.hidden = !token();
forget.addEventListener("click", () => {
  setToken(null);
  forget.hidden = true;
  show();
});

// "Open an order / a SKU" in the header.
for (const [formId, prefix] of [["goto-order", "#/orders/"], ["goto-sku", "#/skus/"]]) {
  document.getElementById(formId).addEventListener("submit", (event) => {
    event.preventDefault();
    const input = event.target.elements.id;
    location.hash = prefix + encodeURIComponent(input.value.trim());
    input.value = "";
  });
}

window.addEventListener("hashchange", show);
show();
