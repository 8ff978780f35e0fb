/**
 * `koru-delta`: KoruDelta for Node. `await KoruDelta.startWithPath('./data')` opens the embedded
 * database (the native addon; calls run on the libuv thread pool), `KoruDelta.connect(url)` a
 * client of a server or hosted cluster; both have the same methods and errors. Browsers import
 * `koru-delta/client`.
 */

import { KoruDeltaApi } from "./api.js";
import { type ConnectOptions, HttpBackend } from "./client/http.js";
import { openEmbedded } from "./embedded.js";

export type { ChangesOptions, KeysOptions, PageOptions, WriteOptions } from "./api.js";
export { KoruDeltaApi } from "./api.js";
export type { ConnectOptions, RetryOptions } from "./client/http.js";
export { KoruDeltaError } from "./errors.js";
export * from "./wire.js";

/** A KoruDelta database: embedded in this process, or a client of a server. */
export class KoruDelta extends KoruDeltaApi {
  /** Opens (or creates) the embedded database in `path`, replaying its log off the event loop. */
  static async startWithPath(path: string): Promise<KoruDelta> {
    return new KoruDelta(await openEmbedded(path));
  }

  /** A client of the server at `url` (`http://host:port`; a token in its userinfo is sent as
   * Basic, `options.token` as Bearer). */
  static connect(url: string | URL, options: ConnectOptions = {}): KoruDelta {
    return new KoruDelta(new HttpBackend(url, options));
  }
}

/** The same as {@link KoruDelta.connect}. */
export function connect(url: string | URL, options: ConnectOptions = {}): KoruDelta {
  return KoruDelta.connect(url, options);
}
