/** Embedded mode: the {@link Backend} over the native addon, every call on the libuv pool. */

import type { Backend } from "./api.js";
import { KoruDeltaError } from "./errors.js";
import { type NativeDb, type NativeOutcome, loadNative } from "./native.cjs";
import type {
  QueryAnswer,
  WireBatchFound,
  WireBatchWritten,
  WireChanges,
  WireEntry,
  WireHistory,
  WireKeys,
  WireWritten,
} from "./wire.js";

/** Parses an answer's JSON text, or throws the failure as a {@link KoruDeltaError}. */
async function answer<T>(call: Promise<NativeOutcome>): Promise<T> {
  const outcome = await call;
  if (typeof outcome === "string") return JSON.parse(outcome) as T;
  throw new KoruDeltaError(outcome.code, outcome.message);
}

/** Opens (or creates) the database in `path`. */
export async function openEmbedded(path: string): Promise<EmbeddedBackend> {
  const opened = await loadNative().open(path);
  if ("code" in opened && typeof opened.code === "string") {
    throw new KoruDeltaError(opened.code, (opened as { message: string }).message);
  }
  return new EmbeddedBackend(opened as NativeDb);
}

/** The embedded database as a {@link Backend}. */
export class EmbeddedBackend implements Backend {
  readonly #open: NativeDb;
  #closed = false;

  constructor(db: NativeDb) {
    this.#open = db;
  }

  /** The handle, or `shutting_down` once closed (the store itself would still answer reads). */
  get #db(): NativeDb {
    if (this.#closed) throw new KoruDeltaError("shutting_down", "the database is closed");
    return this.#open;
  }

  put(namespace: string, key: string, value: string, ifMatch?: string): Promise<WireWritten> {
    return answer(this.#db.put(namespace, key, value, ifMatch ?? null));
  }

  delete(namespace: string, key: string, ifMatch?: string): Promise<WireWritten> {
    return answer(this.#db.delete(namespace, key, ifMatch ?? null));
  }

  get(namespace: string, key: string): Promise<WireEntry> {
    return answer(this.#db.get(namespace, key));
  }

  getAt(namespace: string, key: string, at: string): Promise<WireEntry> {
    return answer(this.#db.getAt(namespace, key, at));
  }

  history(namespace: string, key: string, cursor?: string, limit?: number): Promise<WireHistory> {
    return answer(this.#db.history(namespace, key, cursor ?? null, limitArg(limit)));
  }

  query(namespace: string, query: string): Promise<QueryAnswer> {
    return answer(this.#db.query(namespace, query));
  }

  batchPut(writes: string): Promise<WireBatchWritten> {
    return answer(this.#db.batchPut(writes));
  }

  batchGet(keys: string): Promise<WireBatchFound> {
    return answer(this.#db.batchGet(keys));
  }

  changes(since: number, limit?: number): Promise<WireChanges> {
    if (!Number.isSafeInteger(since)) {
      return Promise.reject(new KoruDeltaError("bad_request", "since must be a whole number"));
    }
    return answer(this.#db.changes(since, limitArg(limit)));
  }

  keys(namespace: string, prefix?: string, cursor?: string, limit?: number): Promise<WireKeys> {
    return answer(this.#db.keys(namespace, prefix ?? null, cursor ?? null, limitArg(limit)));
  }

  namespaces(): Promise<{ namespaces: string[] }> {
    return answer(this.#db.namespaces());
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await answer(this.#open.close());
  }
}

/** A page limit as the addon takes it (u32); out-of-range values become 0, which the database
 * refuses with `bad_request` as the HTTP API does. */
function limitArg(limit?: number): number | null {
  if (limit === undefined) return null;
  return Number.isInteger(limit) && limit >= 0 && limit <= 0xffffffff ? limit : 0;
}
