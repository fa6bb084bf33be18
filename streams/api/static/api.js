// The one way the console talks to the worker: its public HTTP API, same origin, JSON.
// A bearer token, once given, goes with every call; it lives in sessionStorage (this tab only).

const TOKEN_KEY = "o2c.token";

export class ApiError extends Error {
  /** status: HTTP status (0: no answer); body: the API's JSON error ({error, reason?, ...}). */
  constructor(status, body, path) {
    super(body?.error || `HTTP ${status} on ${path}`);
    this.status = status;
    this.body = body || {};
    this.reason = this.body.reason || null;
  }
}

/** 401: no token, or one the API does not know. The console asks for one. */
export class NeedToken extends ApiError {}

/** 403: the token's role is too low for this call. */
export class Forbidden extends ApiError {}

let onNeedToken = () => {};

/** Called (once per 401) so the page can show the token prompt. */
export function whenTokenNeeded(callback) {
  onNeedToken = callback;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

async function call(method, path, { body, headers = {} } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (token()) sent.Authorization = `Bearer ${token()}`;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, { error: `the worker did not answer (${err.message})` }, path);
  }
  const text = await response.text();
  const isJson = (response.headers.get("Content-Type") || "").includes("json");
  let data = text;
  if (isJson) {
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { error: `unreadable JSON answer from ${path}` };
    }
  }
  if (response.status === 401) {
    onNeedToken();
    throw new NeedToken(401, data, path);
  }
  if (response.status === 403) throw new Forbidden(403, data, path);
  if (!response.ok) throw new ApiError(response.status, isJson ? data : { error: text }, path);
  return { status: response.status, data };
}

/** GET a JSON answer. */
export async function get(path) {
  return (await call("GET", path)).data;
}

/** GET a text answer (/metrics). */
export async function getText(path) {
  return (await call("GET", path, { headers: { Accept: "text/plain" } })).data;
}

/** POST JSON; answers {status, data} (a case action answers 200 or 202). */
export function post(path, body, headers = {}) {
  return call("POST", path, { body, headers });
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const text = q.toString();
  return text ? "?" + text : "";
}
