// Every API failure is one ApiError: an HTTP status, a stable machine key (Pi-hole's set where
// one fits) and a message a person can act on. Handlers throw them; the server renders
// {"error":{"key","message","data"}} for each, so clients switch on `key`, never on text.

export class ApiError extends Error {
  readonly status: number;
  readonly key: string;
  readonly data: Record<string, unknown> | null;
  /** Extra response headers (Retry-After, WWW-Authenticate, Allow). */
  readonly headers: Record<string, string>;
  constructor(status: number, key: string, message: string, data: Record<string, unknown> | null = null, headers: Record<string, string> = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.key = key;
    this.data = data;
    this.headers = headers;
  }
}

export const Errors = {
  badRequest: (message: string, data: Record<string, unknown> | null = null) => new ApiError(400, "bad_request", message, data),
  badBody: (message: string, data: Record<string, unknown> | null = null) => new ApiError(400, "body_error", message, data),
  unknownField: (field: string, allowed: readonly string[]) =>
    new ApiError(400, "body_error", `unknown field "${field}" (allowed: ${allowed.join(", ")})`, { field, allowed: [...allowed] }),
  unauthorized: (message: string, scheme: string) =>
    new ApiError(401, "unauthorized", message, null, { "WWW-Authenticate": `${scheme} realm="sluice API" domain="/"` }),
  forbidden: (message: string, data: Record<string, unknown> | null = null) => new ApiError(403, "forbidden", message, data),
  notFound: (message = "Not found.", data: Record<string, unknown> | null = null) => new ApiError(404, "not_found", message, data),
  methodNotAllowed: (method: string, allowed: string[]) =>
    new ApiError(405, "method_not_allowed", `method ${method} is not allowed here (allowed: ${allowed.join(", ") || "none"})`, { allowed }, {
      Allow: allowed.join(", "),
    }),
  conflict: (message: string, data: Record<string, unknown> | null = null) => new ApiError(409, "conflict", message, data),
  tooLarge: (limit: number) => new ApiError(413, "body_too_large", `the request body exceeds ${limit} bytes`, { limit }),
  unsupportedType: (type: string) =>
    new ApiError(415, "unsupported_media_type", `the body must be application/json, not "${type}"`, { contentType: type }),
  rateLimited: (retryAfterS: number) =>
    new ApiError(429, "rate_limiting", `too many failed authentications from this client; retry in ${retryAfterS} s`, { retryAfter: retryAfterS }, {
      "Retry-After": String(retryAfterS),
    }),
  internal: (message = "internal server error") => new ApiError(500, "internal_error", message),
  notAcceptable: (accept: string) => new ApiError(406, "not_acceptable", `cannot produce any of "${accept}" (this endpoint answers application/json)`),
  /** Not ready yet (starting, stopping, or a part that is not running): 503, retry shortly. */
  unavailable: (message: string) => new ApiError(503, "not_ready", message, null, { "Retry-After": "1" }),
};
