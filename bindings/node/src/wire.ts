/**
 * The answers of both modes as the HTTP API's bodies have them (snake_case JSON), and their
 * conversion into this package's objects. Browser-safe: no Node imports.
 */

import { KoruDeltaError } from "./errors.js";

/** One version as the wire has it (GET, as-of reads, history entries). */
export interface WireEntry {
  value: unknown;
  version_id: string;
  timestamp: string;
  previous_version?: string | null;
  deleted?: boolean;
}

/** The answer to a write of one key. */
export interface WireWritten {
  version_id: string;
  timestamp: string;
  previous_version: string | null;
}

/** A history page. */
export interface WireHistory {
  versions: WireEntry[];
  next_cursor?: string | null;
}

/** A keys page. */
export interface WireKeys {
  keys: string[];
  next_cursor?: string | null;
}

/** A batch write's answer. */
export interface WireBatchWritten {
  lsn: number;
  timestamp: string;
  results: { namespace: string; key: string; version_id: string; previous_version: string | null }[];
}

/** A batch read's answer. */
export interface WireBatchFound {
  results: ({ namespace: string; key: string; found: boolean } & Partial<WireEntry>)[];
}

/** A change-feed page. */
export interface WireChanges {
  changes: {
    lsn: number;
    timestamp: string;
    ops: { op: "put" | "delete"; namespace: string; key: string; version_id: string; value?: unknown }[];
  }[];
  next_since: number;
  last_lsn: number;
}

/** One write of {@link KoruDeltaApi.batchPut}: a value, or `delete: true`. */
export type BatchWrite =
  | { namespace: string; key: string; value: unknown; delete?: false }
  | { namespace: string; key: string; delete: true };

/** One read of {@link KoruDeltaApi.batchGet}: now, or as of `at`. */
export interface BatchKey {
  namespace: string;
  key: string;
  at?: Date | string;
}

/** A moment to read as of: a Date, or RFC 3339 text (keeps microseconds). */
export type Moment = Date | string;

/** RFC 3339 text of a moment. */
export function momentText(at: Moment): string {
  if (at instanceof Date) {
    if (Number.isNaN(at.getTime())) throw new KoruDeltaError("bad_request", "invalid Date");
    return at.toISOString();
  }
  return at;
}

/** The outcome of a write: what `put` and `delete` resolve to. */
export class Written {
  /** The new version's id (opaque; pass it back as `ifMatch`). */
  readonly versionId: string;
  /** The commit time (millisecond precision; see {@link timestampText}). */
  readonly timestamp: Date;
  /** The commit time exactly as the server gave it: RFC 3339 UTC with microseconds. */
  readonly timestampText: string;
  /** The version it superseded; null for a new key. */
  readonly previousVersion: string | null;

  constructor(wire: WireWritten) {
    this.versionId = wire.version_id;
    this.timestampText = wire.timestamp;
    this.timestamp = new Date(wire.timestamp);
    this.previousVersion = wire.previous_version ?? null;
  }
}

/** One version of a key: what `get`, `getAt` and history entries resolve to. */
export class Versioned<T = unknown> {
  readonly #value: T;
  /** The version's id. */
  readonly versionId: string;
  /** Its commit time (millisecond precision; see {@link timestampText}). */
  readonly timestamp: Date;
  /** Its commit time exactly as stored: RFC 3339 UTC with microseconds. */
  readonly timestampText: string;
  /** The version it superseded; null for the key's first version. */
  readonly previousVersion: string | null;
  /** True for a delete version (history only). */
  readonly deleted: boolean;

  constructor(wire: WireEntry) {
    this.#value = wire.value as T;
    this.versionId = wire.version_id;
    this.timestampText = wire.timestamp;
    this.timestamp = new Date(wire.timestamp);
    this.previousVersion = wire.previous_version ?? null;
    this.deleted = wire.deleted === true;
  }

  /** The value as plain JSON data (null for a delete version). */
  value(): T {
    return this.#value;
  }

  /** The wire form, for JSON.stringify. */
  toJSON(): WireEntry {
    return {
      value: this.#value,
      version_id: this.versionId,
      timestamp: this.timestampText,
      previous_version: this.previousVersion,
      ...(this.deleted ? { deleted: true } : {}),
    };
  }
}

/** A page of a key's history, oldest first. */
export interface HistoryPage {
  versions: Versioned[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** A page of live keys in byte order. */
export interface KeysPage {
  keys: string[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** One result of a batch write, in the batch's order. */
export interface BatchResult {
  namespace: string;
  key: string;
  versionId: string;
  previousVersion: string | null;
}

/** A batch write's outcome: one record, so one LSN and one commit time. */
export interface BatchWritten {
  lsn: number;
  timestamp: Date;
  timestampText: string;
  results: BatchResult[];
}

/** One answer of a batch read; `entry` is null when the key was absent. */
export interface BatchFound {
  namespace: string;
  key: string;
  found: boolean;
  entry: Versioned | null;
}

/** One operation of a change record. */
export interface ChangeOp {
  op: "put" | "delete";
  namespace: string;
  key: string;
  versionId: string;
  /** The value written; undefined for deletes. */
  value?: unknown;
}

/** One committed record of the change feed. */
export interface Change {
  lsn: number;
  timestamp: Date;
  timestampText: string;
  ops: ChangeOp[];
}

/** A page of the change feed. */
export interface ChangesPage {
  changes: Change[];
  /** Pass back as `since` for the next page. */
  nextSince: number;
  /** The last LSN applied when the page was read. */
  lastLsn: number;
}

/** A query's answer exactly as the HTTP API gives it (`results` or `groups`, and `total`). */
export interface QueryAnswer {
  results?: { key: string; value: unknown; version_id?: string; timestamp?: string; [field: string]: unknown }[];
  groups?: Record<string, unknown>[];
  total: number;
  [field: string]: unknown;
}

/** Converts a history page. */
export function historyPage(wire: WireHistory): HistoryPage {
  return { versions: wire.versions.map((v) => new Versioned(v)), nextCursor: wire.next_cursor ?? null };
}

/** Converts a keys page. */
export function keysPage(wire: WireKeys): KeysPage {
  return { keys: wire.keys, nextCursor: wire.next_cursor ?? null };
}

/** Converts a batch write's answer. */
export function batchWritten(wire: WireBatchWritten): BatchWritten {
  return {
    lsn: wire.lsn,
    timestamp: new Date(wire.timestamp),
    timestampText: wire.timestamp,
    results: wire.results.map((r) => ({
      namespace: r.namespace,
      key: r.key,
      versionId: r.version_id,
      previousVersion: r.previous_version ?? null,
    })),
  };
}

/** Converts a batch read's answer. */
export function batchFound(wire: WireBatchFound): BatchFound[] {
  return wire.results.map((r) => ({
    namespace: r.namespace,
    key: r.key,
    found: r.found,
    entry: r.found ? new Versioned(r as WireEntry) : null,
  }));
}

/** Converts a change-feed page. */
export function changesPage(wire: WireChanges): ChangesPage {
  return {
    changes: wire.changes.map((c) => ({
      lsn: c.lsn,
      timestamp: new Date(c.timestamp),
      timestampText: c.timestamp,
      ops: c.ops.map((o) => {
        const op: ChangeOp = { op: o.op, namespace: o.namespace, key: o.key, versionId: o.version_id };
        if (o.value !== undefined) op.value = o.value;
        return op;
      }),
    })),
    nextSince: wire.next_since,
    lastLsn: wire.last_lsn,
  };
}
