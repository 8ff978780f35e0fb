/**
 * Loads the native addon (a CommonJS file in both builds, so it can `require` a `.node` file):
 * `KORU_DELTA_NATIVE` if set, else `koru-delta.<platform>-<arch>[-gnu|-musl].node` at the package
 * root (a checkout's `npm run build` puts it there), else the per-platform npm package
 * `koru-delta-<platform>-<arch>[-gnu|-musl]` a published release would ship it in.
 */

import * as path from "node:path";

/** What an embedded call resolves to: the answer's JSON text, or a failure. */
export type NativeOutcome = string | { code: string; message: string };

/** The addon's database handle (bindings/node/native/lib.rs `NativeDb`). */
export interface NativeDb {
  put(namespace: string, key: string, value: string, ifMatch?: string | null): Promise<NativeOutcome>;
  delete(namespace: string, key: string, ifMatch?: string | null): Promise<NativeOutcome>;
  get(namespace: string, key: string): Promise<NativeOutcome>;
  getAt(namespace: string, key: string, at: string): Promise<NativeOutcome>;
  history(namespace: string, key: string, cursor?: string | null, limit?: number | null): Promise<NativeOutcome>;
  query(namespace: string, query: string): Promise<NativeOutcome>;
  batchPut(writes: string): Promise<NativeOutcome>;
  batchGet(keys: string): Promise<NativeOutcome>;
  changes(since: number, limit?: number | null): Promise<NativeOutcome>;
  keys(namespace: string, prefix?: string | null, cursor?: string | null, limit?: number | null): Promise<NativeOutcome>;
  namespaces(): Promise<NativeOutcome>;
  close(): Promise<NativeOutcome>;
}

/** The addon's exports. */
export interface NativeModule {
  open(path: string): Promise<NativeDb | { code: string; message: string }>;
}

/** `<platform>-<arch>` with the C library on Linux, as napi-rs names its prebuilt packages. */
export function platformTriple(): string {
  let triple = `${process.platform}-${process.arch}`;
  if (process.platform === "linux") {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    triple += report?.header?.glibcVersionRuntime ? "-gnu" : "-musl";
  }
  return triple;
}

let loaded: NativeModule | undefined;

/** The addon, loaded once; throws naming every place looked in. */
export function loadNative(): NativeModule {
  if (loaded) return loaded;
  const triple = platformTriple();
  const candidates = [
    process.env.KORU_DELTA_NATIVE,
    path.join(__dirname, "..", "..", `koru-delta.${triple}.node`),
    `koru-delta-${triple}`,
  ].filter((c): c is string => typeof c === "string" && c !== "");
  const failures: string[] = [];
  for (const candidate of candidates) {
    try {
      loaded = require(candidate) as NativeModule;
      return loaded;
    } catch (e) {
      failures.push(`${candidate}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  throw new Error(
    `koru-delta: no native addon for ${triple} (the embedded database needs it; the HTTP client ` +
      `does not: import "koru-delta/client"). Looked in:\n  ${failures.join("\n  ")}`,
  );
}
