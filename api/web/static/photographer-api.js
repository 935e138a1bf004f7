// Calls to the photographer API with the stored key; errors carry the server's message and status.
import { state } from "./photographer-state.js";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onUnauthorized = () => {};

// What to do when the server rejects the key (main.js: sign out).
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

export function unauthorized(message) {
  onUnauthorized(message);
}

export async function detail(res) {
  try {
    const body = await res.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  } catch (_) {
    /* not JSON */
  }
  return `${res.status} ${res.statusText}`;
}

export async function api(path, { method = "GET", json } = {}) {
  const headers = { Authorization: `Bearer ${state.apiKey}` };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  const res = await fetch(path, { method, headers, body });
  if (res.status === 401) {
    unauthorized("Your API key was not accepted. Sign in again.");
  }
  if (!res.ok) throw new ApiError(res.status, await detail(res));
  return res;
}
