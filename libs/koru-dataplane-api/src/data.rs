//! The data API's bodies (`/api/v1/…`): versions with their authors, key and history pages, the
//! change feed, namespace statistics, the status, and rewinds. The data plane writes them and
//! the dashboard's data explorer reads them.
//!
//! Values are `RawValue`s: the JSON text exactly as the client wrote it, never re-serialized.
//! The `meta` fields (`author`, `op`, `cause`) are sent only when asked for (`?meta=true`), so a
//! v1 client's bodies stay exactly as they were.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Longest `X-Koru-Author` a data plane without auth records, in bytes (a token's `sub` is
/// recorded whole: the control plane keeps it short).
pub const MAX_AUTHOR_LEN: usize = 128;

/// The header naming a write's author when auth is off (with auth on, the token's `sub` is the
/// author and the header is ignored).
pub const AUTHOR_HEADER: &str = "x-koru-author";

/// What wrote a version, as a history shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionOp {
    /// A client's write (`PUT`, a batch's put).
    Put,
    /// A client's delete (a delete version).
    Delete,
    /// A rewind (`POST /admin/rewind`) put the key back to an earlier value, or deleted it.
    Rewind,
    /// A CRDT merge: a `PATCH`, or a write another region made, merged in.
    Merge,
}

/// Why a record was written, as the change feed shows it (and as the log stores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// A client's write, delete or batch.
    #[default]
    Write,
    /// A rewind.
    Rewind,
    /// A CRDT merge (a `PATCH`, another region's write).
    Merge,
}

/// One version of a key: the body of `GET /api/v1/{ns}/{key}` and `…/at/{t}`, and an entry of
/// a history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The value's JSON text, exactly as written; `null` for a delete version.
    pub value: Box<RawValue>,
    /// The version's id (`<lsn>.<op>`).
    pub version_id: String,
    /// Its commit time, RFC 3339 UTC with microseconds.
    pub timestamp: String,
    /// The version it superseded; None for the key's first version.
    #[serde(default)]
    pub previous_version: Option<String>,
    /// True for a delete version (history only: reads of deleted keys are `not_found`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Who wrote it (`?meta=true`, and only when known): the token's `sub`, or the
    /// `X-Koru-Author` of a server without auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// What wrote it (`?meta=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<VersionOp>,
}

/// One entry of a history as the data plane writes it: KoruDelta v1's shape (no
/// `previous_version`; the version id also as `versionId`, which the kdelta CLI reads).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The value's JSON text, exactly as written; `null` for a delete version.
    pub value: Box<RawValue>,
    /// The version's id (`<lsn>.<op>`).
    pub version_id: String,
    /// Its commit time, RFC 3339 UTC with microseconds.
    pub timestamp: String,
    /// The same id under the kdelta CLI's name.
    #[serde(rename = "versionId")]
    pub version_id_alias: String,
    /// True for a delete version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Who wrote it (`?meta=true`, and only when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// What wrote it (`?meta=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<VersionOp>,
}

/// `PUT /api/v1/{ns}/{key}`, `DELETE …`: the version written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Written {
    /// The new version's id.
    pub version_id: String,
    /// Its commit time, RFC 3339 UTC with microseconds.
    pub timestamp: String,
    /// The version it superseded; None for a new key.
    #[serde(default)]
    pub previous_version: Option<String>,
}

/// `GET /api/v1/{ns}/{key}/history`: versions oldest first, in pages. Readers take the entries
/// as [`Entry`]s (`previous_version` absent: each entry's is the one before it); the data plane
/// writes [`HistoryEntry`]s, KoruDelta v1's shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History<E = Entry> {
    /// The namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// The versions.
    pub versions: Vec<E>,
    /// The page's last version id when more follow: pass it back as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/{ns}/keys`: live keys in byte order, in pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Keys {
    /// The keys (first: the body's fields are in name order, as v1 servers sent them).
    pub keys: Vec<String>,
    /// The namespace.
    pub namespace: String,
    /// The page's last key when more follow: pass it back as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/namespaces` (`stats` with `?stats=true`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Namespaces {
    /// Namespaces with at least one live key, sorted.
    pub namespaces: Vec<String>,
    /// Per namespace, in the same order (`?stats=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Vec<NamespaceStats>>,
}

/// What a namespace holds now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceStats {
    /// The namespace.
    pub namespace: String,
    /// Its live keys.
    pub keys: u64,
    /// Its versions, deletes included (every version of every key it ever held).
    pub versions: u64,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// Live keys over user namespaces.
    pub key_count: u64,
    /// Versions over user namespaces.
    pub total_versions: u64,
    /// User namespaces with a live key.
    pub namespace_count: u64,
    /// Their names.
    pub namespaces: Vec<String>,
    /// The last LSN applied.
    #[serde(default)]
    pub last_lsn: u64,
    /// Bytes of log on disk.
    #[serde(default)]
    pub stored_bytes: u64,
    /// Commit time of the first record the store holds (the oldest moment its history reaches);
    /// None for an empty store.
    #[serde(default)]
    pub first_timestamp: Option<String>,
    /// Commit time of the last record.
    #[serde(default)]
    pub last_timestamp: Option<String>,
}

/// An operation of a change: put or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A new version holding `value`.
    Put,
    /// A delete version.
    Delete,
}

/// One operation of a change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeOp {
    /// Put or delete.
    pub op: ChangeKind,
    /// The namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// The version it wrote.
    pub version_id: String,
    /// The value's JSON text; absent for deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Box<RawValue>>,
}

/// One committed record of the change feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    /// Its LSN.
    pub lsn: u64,
    /// Its commit time.
    pub timestamp: String,
    /// Its operations, in order.
    pub ops: Vec<ChangeOp>,
    /// Who wrote it (`?meta=true`, and only when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Why (`?meta=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

/// `GET /api/v1/changes`: a page of the change feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Changes {
    /// The records, in LSN order.
    pub changes: Vec<Change>,
    /// Pass back as `since` for the next page.
    pub next_since: u64,
    /// The last LSN applied when the page was read.
    pub last_lsn: u64,
    /// When the page reaches the last record: no later record commits at or before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_time: Option<String>,
}

/// Body of `POST /admin/rewind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewindRequest {
    /// The namespace.
    pub namespace: String,
    /// Only keys starting with it; absent or empty: the whole namespace.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The moment to go back to, RFC 3339.
    pub as_of: String,
    /// Plan only (true) or apply (false); required.
    pub dry_run: bool,
    /// Apply only if no key of the range was written after this LSN (a dry run's `planned_lsn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_unchanged_since: Option<u64>,
}

/// What a rewind does to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewindAction {
    /// Live then and now with different text: written back.
    Restore,
    /// Live now, absent then: deleted.
    Delete,
    /// Live then, deleted since: written back.
    Recreate,
}

/// One change of a rewind's plan; values are the exact stored text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RewindChange {
    /// The key.
    pub key: String,
    /// What happens to it.
    pub action: RewindAction,
    /// Its value now (None for `recreate`).
    #[serde(default)]
    pub from: Option<Box<RawValue>>,
    /// Its value at `as_of` (None for `delete`).
    #[serde(default)]
    pub to: Option<Box<RawValue>>,
}

/// The answer of `POST /admin/rewind`: the plan, and where it was applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RewindOutcome {
    /// The namespace.
    pub namespace: String,
    /// The prefix (empty for the whole namespace).
    pub prefix: String,
    /// The moment, as given.
    pub as_of: String,
    /// Whether it only planned.
    pub dry_run: bool,
    /// The LSN of the state the plan was made from.
    pub planned_lsn: u64,
    /// The changes, in key order (at most 1,000; see `truncated`).
    pub changes: Vec<RewindChange>,
    /// Every change, listed or not.
    pub change_count: usize,
    /// Whether `changes` lists only the first ones.
    pub truncated: bool,
    /// Keys of the range already holding their value at `as_of`.
    pub unchanged: usize,
    /// The record holding the rewind; None for a dry run or when nothing differs.
    #[serde(default)]
    pub applied_lsn: Option<u64>,
    /// Its commit time.
    #[serde(default)]
    pub applied_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_bodies_as_written_read_as_entries() {
        let text = r#"{"namespace":"n","key":"k","versions":[{"value":1,"version_id":"1.0","timestamp":"t","versionId":"1.0","author":"a","op":"merge"},{"value":null,"version_id":"2.0","timestamp":"u","versionId":"2.0","deleted":true}]}"#;
        let written: History<HistoryEntry> = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&written).unwrap(), text);
        let read: History = serde_json::from_str(text).unwrap();
        assert_eq!(read.versions[0].op, Some(VersionOp::Merge));
        assert_eq!(read.versions[0].previous_version, None);
        assert!(read.versions[1].deleted && read.versions[1].author.is_none());
    }

    #[test]
    fn v1_listing_bodies_keep_their_field_order() {
        let keys = Keys {
            keys: vec!["a".into()],
            namespace: "n".into(),
            next_cursor: None,
        };
        assert_eq!(
            serde_json::to_string(&keys).unwrap(),
            r#"{"keys":["a"],"namespace":"n"}"#
        );
    }

    #[test]
    fn meta_fields_are_sent_only_when_known() {
        let plain: Entry = serde_json::from_str(
            r#"{"value":{"a":1},"version_id":"3.0","timestamp":"2026-12-06T00:00:00.000000Z","previous_version":null}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"value":{"a":1},"version_id":"3.0","timestamp":"2026-12-06T00:00:00.000000Z","previous_version":null}"#
        );
        let meta = Entry {
            author: Some("ada@example.com".into()),
            op: Some(VersionOp::Rewind),
            ..plain
        };
        assert_eq!(
            serde_json::to_string(&meta).unwrap(),
            r#"{"value":{"a":1},"version_id":"3.0","timestamp":"2026-12-06T00:00:00.000000Z","previous_version":null,"author":"ada@example.com","op":"rewind"}"#
        );
    }
}
