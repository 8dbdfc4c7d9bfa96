// Every request to the API goes through here: it carries the API key and turns errors into ApiError.

import { apiKey, signOut } from "./auth.js";

export class ApiError extends Error {
  constructor(status, message, problems = []) {
    super(message);
    this.status = status;
    this.problems = problems;
  }
}

export function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${apiKey() ?? ""}`, ...extra };
}

/** JSON in, JSON out; `body` is sent as JSON when given. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = authHeaders(body === undefined ? {} : { "Content-Type": "application/json" });
  const response = await fetch(path, {
    method,
    headers,
    signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  await ensureOk(response);
  return response.status === 204 ? null : response.json();
}

/** Throws an ApiError for an error answer; a refused key also signs the user out. */
export async function ensureOk(response) {
  if (response.ok) return;
  const error = await errorOf(response);
  if (response.status === 401) signOut(error.message);
  throw error;
}

async function errorOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // not JSON: the status line has to do
  }
  const detail = body.detail ?? body.error ?? `${response.status} ${response.statusText}`;
  if (Array.isArray(detail)) {
    // FastAPI's request validation errors: [{loc, msg}, ...]
    const problems = detail.map((item) => `${item.loc.filter((part) => part !== "body").join(".")}: ${item.msg}`);
    return new ApiError(response.status, "the request is not valid", problems);
  }
  return new ApiError(response.status, String(detail), body.problems ?? []);
}
