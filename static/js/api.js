// JSON API access: CSRF header, JSON bodies, and one error type with a plain sentence.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/**
 * The server's clock, learned from the Date header of API answers: the live timers count from the
 * server's start instant, and a client clock that is minutes off would show nonsense. The skew is
 * only trusted when clearly larger than the header's one-second resolution.
 */
export class ServerClock {
  constructor() {
    this.skewMs = 0;
  }

  now() {
    return Date.now() + this.skewMs;
  }

  learn(response) {
    const header = response.headers.get("Date");
    const server = header ? Date.parse(header) : NaN;
    if (Number.isNaN(server)) return;
    const skew = server - Date.now();
    this.skewMs = Math.abs(skew) > 2000 ? skew : 0;
  }
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") return body.error;
  } catch {
    // not JSON: fall through to a generic sentence
  }
  if (response.status === 401 || response.status === 403) {
    return "Your session has ended. Reload the page and sign in again.";
  }
  return `The server answered with an error (${response.status}). Try again in a moment.`;
}

/**
 * Call the JSON API. Resolves to the parsed body (or null for empty answers);
 * rejects with ApiError (status 0 when the server could not be reached). A `clock` (ServerClock)
 * learns the server's time from the answer.
 */
export async function api(url, { method = "GET", body, signal, headers = {}, clock } = {}) {
  const init = { method, signal, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "Could not reach the server. Check your connection and try again.");
  }
  if (clock) clock.learn(response);
  if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}
