// The exception work queue: /cases with filters, oldest first, paged by cursor; one case
// (/cases/{id}) with the acknowledge / assign / resolve form (POST /cases/{id}/{verb}).
import { Forbidden, NeedToken, get, post, query } from "./api.js";
import { h, link, section, table } from "./dom.js";
import { duration, time } from "./format.js";
import { SEVERITIES } from "./overview.js";

const UNRESOLVED = "OPEN,ACKNOWLEDGED";
const STATES = [[UNRESOLVED, "open or acknowledged"], ["OPEN", "open"], ["ACKNOWLEDGED", "acknowledged"],
  ["RESOLVED", "resolved"], ["", "any state"]];
const TEXT_FILTERS = [["code", "Code", "SLA-SHIPMENT, HOLD-CREDIT"], ["order_id", "Order", ""], ["sku", "SKU", ""],
  ["warehouse_id", "Warehouse", ""], ["region", "Region", ""], ["channel", "Channel", ""], ["customer_id", "Customer", ""]];
const WHO_KEY = "o2c.who";

/** The queue's filters from the hash's query (the state defaults to the unresolved cases). */
function filtersOf(q) {
  const filters = { state: q.has("state") ? q.get("state") : UNRESOLVED };
  for (const name of ["severity", "limit", "cursor", ...TEXT_FILTERS.map(([n]) => n)]) filters[name] = q.get(name) || "";
  return filters;
}

/** The queue's hash for these filters. The state is always there: empty means any state, and
 * leaving it out means the default (unresolved). */
function queueHash(filters) {
  const params = new URLSearchParams();
  for (const [name, v] of Object.entries(filters)) if (v || name === "state") params.set(name, v);
  return "#/cases?" + params;
}

export function mountQueue(root, { query: q }) {
  const filters = filtersOf(q);
  const list = h("div");
  root.append(h("h1", {}, "Exception work queue"), filterForm(filters), list);
  return {
    async refresh() {
      const page = await get("/cases" + query({ ...filters, limit: filters.limit || 50 }));
      const { cursor, ...rest } = filters;
      const rows = page.cases.map((c) => [
        link("#/cases/", c.case_id, c.code),
        h("span", { class: `sev sev-${c.severity}` }, c.severity),
        c.state,
        c.order_id ? link("#/orders/", c.order_id) : c.sku ? link("#/skus/", c.sku) : "–",
        [c.region || "–"], [c.channel || "–"],
        time(c.opened_at),
        [duration(c.age_ms), { class: "num" }],
        c.assignee || "–",
        [c.detail || "", { class: "detail" }],
      ]);
      list.replaceChildren(
        table(`${page.count} case(s), oldest first${cursor ? " (a later page)" : ""}`,
          ["case", "severity", "state", "order / SKU", "region", "channel", "opened", "age", "assignee", "detail"],
          rows, { class: "cases" }),
        h("nav", { class: "pager", "aria-label": "Pages of cases" },
          cursor ? h("a", { href: queueHash(rest) }, "← First page") : "",
          page.next_cursor ? h("a", { href: queueHash({ ...rest, cursor: page.next_cursor }), rel: "next" }, "Next page →") : ""),
        page.unreachable_workers ? h("p", { role: "alert" }, `Unreachable workers: ${page.unreachable_workers.join(", ")}`) : "");
    },
  };
}

function filterForm(filters) {
  const select = (name, label, options) => h("label", {}, label,
    h("select", { name }, options.map(([v, text]) => h("option", { value: v, selected: filters[name] === v }, text))));
  const form = h("form", { class: "filters", "aria-label": "Filter cases" },
    select("state", "State", STATES),
    select("severity", "Severity", [["", "any"], ...SEVERITIES.map((s) => [s, s])]),
    TEXT_FILTERS.map(([name, label, hint]) => h("label", {}, label,
      h("input", { name, value: filters[name], placeholder: hint, size: name === "code" ? 22 : 12 }))),
    select("limit", "Per page", [["", "50"], ["25", "25"], ["100", "100"], ["500", "500"]]),
    h("button", {}, "Filter"),
    h("a", { href: "#/cases" }, "Reset"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = queueHash(Object.fromEntries(new FormData(form)));
  });
  return form;
}

export function mountCase(root, { args: [caseId] }) {
  const facts = h("div");
  const result = h("div", { class: "result", role: "status" });
  root.append(h("p", {}, h("a", { href: "#/cases" }, "← Exception work queue")),
    h("h1", {}, "Case ", h("code", {}, caseId)), facts, actionForm(caseId, result, () => page.refresh()));
  const page = {
    async refresh() {
      const c = await get(`/cases/${encodeURIComponent(caseId)}`);
      const row = (label, content) => [h("dt", {}, label), h("dd", {}, content ?? "–")];
      facts.replaceChildren(section("What happened",
        h("dl", { class: "facts", dataset: { state: c.state } },
          row("State", h("strong", { class: `state state-${c.state}`, dataset: { field: "case.state" } }, c.state)),
          row("Severity", h("span", { class: `sev sev-${c.severity}` }, c.severity)),
          row("Code", c.code),
          row("Detail", c.detail),
          row("Order", c.order_id ? link("#/orders/", c.order_id) : null),
          row("SKU", c.sku ? link("#/skus/", c.sku) : null),
          row("Warehouse", c.warehouse_id), row("Region", c.region), row("Channel", c.channel),
          row("Customer", c.customer_id),
          c.milestone ? row("Milestone", h("span", {}, c.milestone, ", due ", time(c.due_at))) : [],
          row("Opened", time(c.opened_at)), row("Age", duration(c.age_ms)),
          row("Assignee", c.assignee),
          row("Acknowledged", c.acknowledged_at ? h("span", {}, time(c.acknowledged_at), ` by ${c.acknowledged_by}`) : null),
          row("Resolved", c.resolved_at ? h("span", {}, time(c.resolved_at), ` by ${c.resolved_by} (${c.resolution})`) : null),
          row("Last note", c.note),
          row("Updated", c.updated_at ? h("span", {}, time(c.updated_at), c.updated_by ? ` by ${c.updated_by}` : "") : null),
          row("Version", String(c.version)))));
    },
  };
  return page;
}

/** who / note / assignee and a button per action; the API's refusal is shown as it says it. */
function actionForm(caseId, result, reload) {
  const who = h("input", { id: "action-who", name: "who", required: true, autocomplete: "username", value: localStorage.getItem(WHO_KEY) || "" });
  const note = h("textarea", { id: "action-note", name: "note", rows: 2, cols: 40 });
  const assignee = h("input", { id: "action-assignee", name: "assignee" });
  let last = null; // {signature, key}: a retry of the same action after no answer keeps its key
  const form = h("form", { class: "actions", "aria-label": "Work on this case" },
    h("label", { for: "action-who" }, "Who"), who,
    h("label", { for: "action-note" }, "Note"), note,
    h("label", { for: "action-assignee" }, "Assignee (for assign)"), assignee,
    h("div", { class: "buttons" },
      h("button", { name: "verb", value: "acknowledge" }, "Acknowledge"),
      h("button", { name: "verb", value: "assign" }, "Assign"),
      h("button", { name: "verb", value: "resolve" }, "Resolve")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const verb = event.submitter?.value || "acknowledge";
    const body = { who: who.value.trim() };
    if (note.value.trim()) body.note = note.value.trim();
    if (verb === "assign") body.assignee = assignee.value.trim();
    localStorage.setItem(WHO_KEY, body.who);
    const signature = verb + JSON.stringify(body);
    const key = last?.signature === signature ? last.key : newKey();
    last = { signature, key };
    result.className = "result";
    result.textContent = `Sending ${verb}…`;
    try {
      const answer = await post(`/cases/${encodeURIComponent(caseId)}/${verb}`, body, { "Idempotency-Key": key });
      if (answer.status === 202) {
        result.textContent = `Accepted (action ${answer.data.action_id}); not applied yet: the page shows it when it is.`;
      } else {
        last = null;
        result.textContent = `Done: the case is ${answer.data.state}.`;
        note.value = "";
      }
      await reload().catch(() => {}); // a failed reload is the next refresh's to show
    } catch (err) {
      if (err.status !== 0) last = null; // refused: a new attempt is a new action
      result.className = "result error";
      result.setAttribute("role", "alert");
      if (err instanceof Forbidden) result.textContent = "Your role cannot do this.";
      else if (err instanceof NeedToken) result.textContent = "The API needs a bearer token: enter it in the form above.";
      else result.textContent = `Refused (HTTP ${err.status}${err.reason ? ", " + err.reason : ""}): ${err.message}`;
    }
  });
  return section("Work on this case", form, result);
}

/** An Idempotency-Key: 32 random hex digits (crypto.randomUUID needs a secure context). */
function newKey() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
