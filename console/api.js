// The one place that calls the HTTP API (/api, openapi/exports-api.json). Same origin: in Azure the
// browser's App Service Authentication session cookie goes with every request and the platform adds
// the caller's identity; the console handles no tokens and no keys.

/** A failed API call: `status` (0 when the app could not be reached) and the RFC 9457 problem, if any. */
export class ApiError extends Error {
  constructor(status, problem, fallback) {
    super(problem?.detail || problem?.title || fallback || `The app answered HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.code = problem?.code || null;
  }

  /** Errors of single fields, by their JSON path in the request body: [{field, message}]. */
  get fieldErrors() {
    return Array.isArray(this.problem?.errors) ? this.problem.errors : [];
  }
}

/**
 * One API call. `path` is relative to /api ("exports/abc/runs"); resolves to {status, data, etag}
 * (data: parsed JSON, a Blob for other content, null for 204); rejects with ApiError.
 */
export async function call(method, path, {body, ifMatch, signal, query} = {}) {
  const headers = {Accept: "application/json, application/problem+json, text/csv"};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch) headers["If-Match"] = ifMatch;
  const search = query ? `?${new URLSearchParams(query)}` : "";
  let response;
  try {
    response = await fetch(`/api/${path}${search}`, {
      method, headers, signal, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, null, "The app cannot be reached: check your network connection and try again.");
  }
  const type = (response.headers.get("Content-Type") || "").toLowerCase();
  if (!response.ok) {
    let problem = null;
    if (type.includes("json")) {
      try {
        problem = await response.json();
      } catch {
        problem = null;
      }
    }
    throw new ApiError(response.status, problem);
  }
  let data = null;
  if (response.status !== 204) data = type.includes("json") ? await response.json() : await response.blob();
  return {status: response.status, data, etag: response.headers.get("ETag")};
}

export const get = (path, options) => call("GET", path, options);
export const post = (path, body, options = {}) => call("POST", path, {...options, body});
export const put = (path, body, options = {}) => call("PUT", path, {...options, body});
export const remove = (path, options) => call("DELETE", path, options);
export const segment = (value) => encodeURIComponent(value);
