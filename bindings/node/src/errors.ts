/** The one error type of both modes: `code` is the HTTP API's error code (dataplane/API.md). */

/** Options of a {@link KoruDeltaError} beyond its code and message. */
export interface KoruDeltaErrorOptions {
  /** The HTTP status, in client mode. */
  status?: number;
  /** Seconds the server asked to wait (`Retry-After`), when it did. */
  retryAfter?: number;
  /** The underlying failure (a network error, say). */
  cause?: unknown;
}

/**
 * A refused or failed call. `code` is the same in embedded and client mode (`not_found`,
 * `version_mismatch`, `invalid_name`, `bad_request`, `malformed_json`, `shutting_down`, ...);
 * client mode adds `status`, and `network_error` when the server could not be reached.
 */
export class KoruDeltaError extends Error {
  /** The stable machine-readable code. */
  readonly code: string;
  /** The HTTP status (client mode only). */
  readonly status?: number;
  /** Seconds the server asked to wait before retrying, when it said. */
  readonly retryAfter?: number;

  constructor(code: string, message: string, options: KoruDeltaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KoruDeltaError";
    this.code = code;
    if (options.status !== undefined) this.status = options.status;
    if (options.retryAfter !== undefined) this.retryAfter = options.retryAfter;
  }
}

/** JSON text of a value, or a `malformed_json` error for what JSON cannot hold. */
export function toJsonText(value: unknown, what = "value"): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new KoruDeltaError("malformed_json", `${what} is not JSON: ${String(e)}`, { cause: e });
  }
  if (text === undefined) {
    throw new KoruDeltaError("malformed_json", `${what} is not JSON (${typeof value})`);
  }
  return text;
}
