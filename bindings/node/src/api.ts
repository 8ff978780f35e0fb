/**
 * The API both modes share: {@link KoruDeltaApi} turns a {@link Backend}'s wire answers (the
 * HTTP API's bodies) into this package's objects, so embedded and client mode answer alike.
 * Browser-safe: no Node imports.
 */

import { toJsonText } from "./errors.js";
import {
  type BatchFound,
  type BatchKey,
  type BatchWrite,
  type BatchWritten,
  type ChangesPage,
  type HistoryPage,
  type KeysPage,
  type Moment,
  type QueryAnswer,
  type WireBatchFound,
  type WireBatchWritten,
  type WireChanges,
  type WireEntry,
  type WireHistory,
  type WireKeys,
  type WireWritten,
  Versioned,
  Written,
  batchFound,
  batchWritten,
  changesPage,
  historyPage,
  keysPage,
  momentText,
} from "./wire.js";

/** What one mode implements: each call resolves to the HTTP API's body for it. */
export interface Backend {
  put(namespace: string, key: string, value: string, ifMatch?: string): Promise<WireWritten>;
  delete(namespace: string, key: string, ifMatch?: string): Promise<WireWritten>;
  get(namespace: string, key: string): Promise<WireEntry>;
  getAt(namespace: string, key: string, at: string): Promise<WireEntry>;
  history(namespace: string, key: string, cursor?: string, limit?: number): Promise<WireHistory>;
  query(namespace: string, query: string): Promise<QueryAnswer>;
  batchPut(writes: string): Promise<WireBatchWritten>;
  batchGet(keys: string): Promise<WireBatchFound>;
  changes(since: number, limit?: number): Promise<WireChanges>;
  keys(namespace: string, prefix?: string, cursor?: string, limit?: number): Promise<WireKeys>;
  namespaces(): Promise<{ namespaces: string[] }>;
  close(): Promise<void>;
}

/** Options of a write: compare-and-set against the version read. */
export interface WriteOptions {
  /** Write only if this is still the key's latest version (else `version_mismatch`). */
  ifMatch?: string;
}

/** Options of a paged read. */
export interface PageOptions {
  /** The previous page's `nextCursor`. */
  cursor?: string;
  /** At most this many items (1–100,000). */
  limit?: number;
}

/** Options of a keys listing. */
export interface KeysOptions extends PageOptions {
  /** Only keys starting with this. */
  prefix?: string;
}

/** Options of a change-feed read. */
export interface ChangesOptions {
  /** Records after this LSN (default 0: from the start). */
  since?: number;
  /** At most this many records (1–10,000, default 1,000). */
  limit?: number;
}

/** The database's methods, the same in embedded and client mode. */
export class KoruDeltaApi {
  readonly #backend: Backend;

  /** Wraps a mode's backend. */
  constructor(backend: Backend) {
    this.#backend = backend;
  }

  /** Writes `value` (any JSON data) as the key's new version. */
  async put(namespace: string, key: string, value: unknown, options: WriteOptions = {}): Promise<Written> {
    return new Written(await this.#backend.put(namespace, key, toJsonText(value), options.ifMatch));
  }

  /** Writes a delete version; `not_found` when the key is not live. */
  async delete(namespace: string, key: string, options: WriteOptions = {}): Promise<Written> {
    return new Written(await this.#backend.delete(namespace, key, options.ifMatch));
  }

  /** The key's latest version; `not_found` when it never existed or was deleted. */
  async get<T = unknown>(namespace: string, key: string): Promise<Versioned<T>> {
    return new Versioned<T>(await this.#backend.get(namespace, key));
  }

  /** The version current at `at`; `not_found` when the key was absent or deleted then. */
  async getAt<T = unknown>(namespace: string, key: string, at: Moment): Promise<Versioned<T>> {
    return new Versioned<T>(await this.#backend.getAt(namespace, key, momentText(at)));
  }

  /** A page of the key's versions, oldest first, deletes included. */
  async history(namespace: string, key: string, options: PageOptions = {}): Promise<HistoryPage> {
    return historyPage(await this.#backend.history(namespace, key, options.cursor, options.limit));
  }

  /** Runs a query (the HTTP API's query body: filter, sort, limit, aggregate, at, ...). */
  async query(namespace: string, query: object = {}): Promise<QueryAnswer> {
    return this.#backend.query(namespace, toJsonText(query, "query"));
  }

  /** Writes every entry as one record: all become durable or none does. */
  async batchPut(writes: BatchWrite[]): Promise<BatchWritten> {
    return batchWritten(await this.#backend.batchPut(toJsonText(writes, "writes")));
  }

  /** Reads many keys, each now or as of its own moment. */
  async batchGet(keys: BatchKey[]): Promise<BatchFound[]> {
    const wire = keys.map((k) =>
      k.at === undefined
        ? { namespace: k.namespace, key: k.key }
        : { namespace: k.namespace, key: k.key, at: momentText(k.at) },
    );
    return batchFound(await this.#backend.batchGet(toJsonText(wire, "keys")));
  }

  /** Committed records after `since`, in order. */
  async changes(options: ChangesOptions = {}): Promise<ChangesPage> {
    return changesPage(await this.#backend.changes(options.since ?? 0, options.limit));
  }

  /** A page of live keys in byte order. */
  async keys(namespace: string, options: KeysOptions = {}): Promise<KeysPage> {
    return keysPage(await this.#backend.keys(namespace, options.prefix, options.cursor, options.limit));
  }

  /** Namespaces with at least one live key, sorted. */
  async namespaces(): Promise<string[]> {
    return (await this.#backend.namespaces()).namespaces;
  }

  /** Embedded: flushes, fsyncs and closes the store. Client: stops further calls. Later calls
   * fail with `shutting_down`. */
  async close(): Promise<void> {
    await this.#backend.close();
  }
}
