/**
 * `koru-delta/client`: the HTTP client alone, for browsers (and any runtime with `fetch`). It has
 * no Node imports and no native addon; its methods and errors are those of `koru-delta`.
 */

import { KoruDeltaApi } from "../api.js";
import { type ConnectOptions, HttpBackend } from "./http.js";

export type { ChangesOptions, KeysOptions, PageOptions, WriteOptions } from "../api.js";
export { KoruDeltaApi } from "../api.js";
export { KoruDeltaError } from "../errors.js";
export type { ConnectOptions, RetryOptions } from "./http.js";
export * from "../wire.js";

/** A client of a KoruDelta server or hosted cluster. */
export class KoruDeltaClient extends KoruDeltaApi {
  /** Connects to `url` (`http://host:port`; a token in its userinfo is sent as Basic). */
  static connect(url: string | URL, options: ConnectOptions = {}): KoruDeltaClient {
    return new KoruDeltaClient(new HttpBackend(url, options));
  }
}

/** Connects to `url`: the same as {@link KoruDeltaClient.connect}. */
export function connect(url: string | URL, options: ConnectOptions = {}): KoruDeltaClient {
  return KoruDeltaClient.connect(url, options);
}
