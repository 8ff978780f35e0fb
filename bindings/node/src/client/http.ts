/**
 * Client mode: the {@link Backend} over the HTTP API with the platform's `fetch` (Node ≥ 18 and
 * browsers; Node's keeps connections alive). Retries 503 `no_leader` / `shutting_down` as the
 * server's `Retry-After` says, a bounded number of times. Browser-safe: no Node imports.
 */

import type { Backend } from "../api.js";
import { KoruDeltaError } from "../errors.js";
import type {
  QueryAnswer,
  WireBatchFound,
  WireBatchWritten,
  WireChanges,
  WireEntry,
  WireHistory,
  WireKeys,
  WireWritten,
} from "../wire.js";

/** How client mode retries a server that is electing a leader or stopping. */
export interface RetryOptions {
  /** Tries in all, the first included (default 5; 1 turns retrying off). */
  attempts?: number;
  /** Longest wait between two tries, in milliseconds, whatever `Retry-After` says (default 5,000). */
  maxDelayMs?: number;
  /** Wait when the server gives no `Retry-After`, doubled at each retry (default 100). */
  baseDelayMs?: number;
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** A data-plane token, sent as `Authorization: Bearer <token>`. A token in the URL's
   * userinfo (`http://token:<token>@host`) is sent as Basic instead. */
  token?: string;
  /** Retries of 503 `no_leader` and `shutting_down`. */
  retry?: RetryOptions;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

/** The error codes after which a request is tried again: nothing was done. */
const RETRIED = new Set(["no_leader", "shutting_down"]);

/** Base64 of UTF-8 text, without Node's Buffer. */
function base64(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function path(...segments: string[]): string {
  return segments.map(encodeURIComponent).join("/");
}

function search(params: Record<string, string | number | undefined>): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined) query.set(name, String(value));
  }
  const text = query.toString();
  return text === "" ? "" : `?${text}`;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The HTTP API as a {@link Backend}. */
export class HttpBackend implements Backend {
  readonly #base: string;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof fetch;
  readonly #attempts: number;
  readonly #maxDelayMs: number;
  readonly #baseDelayMs: number;
  #closed = false;

  constructor(url: string | URL, options: ConnectOptions = {}) {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new KoruDeltaError("bad_request", `not an http(s) URL: ${parsed.protocol}`);
    }
    this.#headers = { accept: "application/json", ...options.headers };
    if (options.token !== undefined) {
      this.#headers.authorization = `Bearer ${options.token}`;
    } else if (parsed.username !== "" || parsed.password !== "") {
      // fetch refuses URLs with credentials in them: they go in the header, as curl sends them.
      const user = decodeURIComponent(parsed.username);
      const pass = decodeURIComponent(parsed.password);
      this.#headers.authorization = `Basic ${base64(`${user}:${pass}`)}`;
    }
    parsed.username = "";
    parsed.password = "";
    this.#base = `${parsed.origin}${parsed.pathname.replace(/\/+$/, "")}/api/v1/`;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#attempts = Math.max(1, options.retry?.attempts ?? 5);
    this.#maxDelayMs = Math.max(0, options.retry?.maxDelayMs ?? 5000);
    this.#baseDelayMs = Math.max(0, options.retry?.baseDelayMs ?? 100);
  }

  /** Sends one request (retrying as configured) and parses the JSON answer. */
  async #request<T>(method: string, route: string, body?: string, ifMatch?: string): Promise<T> {
    if (this.#closed) throw new KoruDeltaError("shutting_down", "the client is closed");
    const headers: Record<string, string> = { ...this.#headers };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (ifMatch !== undefined) headers["if-match"] = ifMatch;
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = body;
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      try {
        response = await this.#fetch(this.#base + route, init);
      } catch (e) {
        throw new KoruDeltaError("network_error", `${method} ${route}: ${String(e)}`, { cause: e });
      }
      const text = await response.text();
      if (response.ok) return (text === "" ? null : JSON.parse(text)) as T;
      const error = this.#error(response, text);
      if (!RETRIED.has(error.code) || attempt >= this.#attempts) throw error;
      const wait =
        error.retryAfter !== undefined ? error.retryAfter * 1000 : this.#baseDelayMs * 2 ** (attempt - 1);
      await sleep(Math.min(wait, this.#maxDelayMs));
    }
  }

  #error(response: Response, text: string): KoruDeltaError {
    let code = `http_${response.status}`;
    let message = text || response.statusText;
    try {
      const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
      if (typeof body.error?.code === "string") code = body.error.code;
      if (typeof body.error?.message === "string") message = body.error.message;
    } catch {
      // Not our JSON (a proxy's page): the status names it.
    }
    const header = response.headers.get("retry-after");
    const seconds = header === null ? Number.NaN : Number(header);
    const options = Number.isFinite(seconds) && seconds >= 0 ? { status: response.status, retryAfter: seconds } : { status: response.status };
    return new KoruDeltaError(code, message, options);
  }

  put(namespace: string, key: string, value: string, ifMatch?: string): Promise<WireWritten> {
    return this.#request("PUT", path(namespace, key), `{"value":${value}}`, ifMatch);
  }

  delete(namespace: string, key: string, ifMatch?: string): Promise<WireWritten> {
    return this.#request("DELETE", path(namespace, key), undefined, ifMatch);
  }

  get(namespace: string, key: string): Promise<WireEntry> {
    return this.#request("GET", path(namespace, key));
  }

  getAt(namespace: string, key: string, at: string): Promise<WireEntry> {
    return this.#request("GET", `${path(namespace, key)}/at/${encodeURIComponent(at)}`);
  }

  history(namespace: string, key: string, cursor?: string, limit?: number): Promise<WireHistory> {
    return this.#request("GET", `${path(namespace, key)}/history${search({ cursor, limit })}`);
  }

  query(namespace: string, query: string): Promise<QueryAnswer> {
    return this.#request("POST", `${path(namespace)}/query`, query);
  }

  batchPut(writes: string): Promise<WireBatchWritten> {
    return this.#request("POST", "batch", `{"writes":${writes}}`);
  }

  batchGet(keys: string): Promise<WireBatchFound> {
    return this.#request("POST", "batch/get", `{"keys":${keys}}`);
  }

  changes(since: number, limit?: number): Promise<WireChanges> {
    return this.#request("GET", `changes${search({ since, limit })}`);
  }

  keys(namespace: string, prefix?: string, cursor?: string, limit?: number): Promise<WireKeys> {
    return this.#request("GET", `${path(namespace)}/keys${search({ prefix, cursor, limit })}`);
  }

  namespaces(): Promise<{ namespaces: string[] }> {
    return this.#request("GET", "namespaces");
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
