//! The unique check at apply: decided against the store as of the entry's LSN only, so a member
//! applying entries again after a crash (the store already past them, the index since dropped)
//! decides exactly as it did the first time.

use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

use super::StateMachine;
use crate::indexes::{IndexDef, IndexType};
use crate::metrics::StoreMetrics;
use crate::raft::log::LogStore;
use crate::raft::network::{Blocked, Network};
use crate::raft::{Applied, Command, CommandOp, Request, TypeConfig};
use crate::store::{Store, StoreConfig};

fn op(namespace: &str, key: &str, value: Option<String>) -> CommandOp {
    CommandOp {
        delete: value.is_none(),
        namespace: namespace.into(),
        key: key.into(),
        value,
    }
}

fn write(index: u64, op: CommandOp) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Request::Write(Command {
            proposed_micros: 1_000_000 + index as i64,
            ops: vec![op],
            guard: None,
            meta: Default::default(),
        })),
    }
}

fn email(e: &str) -> Option<String> {
    Some(format!("{{\"email\":\"{e}\"}}"))
}

#[tokio::test]
async fn unique_refusals_are_decided_alike_when_entries_are_applied_again() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(
        StoreConfig::new(tmp.path().join("data")),
        Arc::new(StoreMetrics::default()),
    )
    .unwrap();
    let raft_dir = tmp.path().join("raft");
    let log = LogStore::open(
        Arc::clone(&store.config().storage),
        &raft_dir,
        crate::store::FsyncMode::Always,
    )
    .unwrap();
    let directory = crate::raft::directory::Directory::new("1=127.0.0.1:1".parse().unwrap(), None);
    let network = Network::new(1, None, Blocked::default(), directory);
    let mut sm =
        StateMachine::open(store.clone(), log, network, &raft_dir, Arc::default()).unwrap();
    let def = IndexDef::new("users", "email", IndexType::Unique);
    let def_text = serde_json::to_string(&def).unwrap();
    let entries = vec![
        write(1, op("users", "a", email("x@"))),
        write(2, op("_koru_indexes", &def.key(), Some(def_text))),
        write(3, op("users", "b", email("x@"))),
        write(4, op("users", "c", email("y@"))),
        // Dropped afterwards: applied again, entry 3 must still be refused.
        write(5, op("_koru_indexes", &def.key(), None)),
    ];
    let before = sm.meta.clone();
    let answers = sm.apply(entries.clone()).await.unwrap();
    assert!(
        matches!(&answers[2], Applied::UniqueViolation(v) if v.existing == "a"),
        "{answers:?}"
    );
    assert!(
        matches!(answers[3], Applied::Written { lsn: 3, .. }),
        "{answers:?}"
    );
    let records = store.changes_since(0, 100).unwrap();
    assert_eq!(records.len(), 4);
    sm.meta = before;
    let again = sm.apply(entries).await.unwrap();
    assert!(matches!(again[2], Applied::UniqueViolation(_)), "{again:?}");
    assert_eq!(store.changes_since(0, 100).unwrap(), records);
    assert_eq!(sm.meta.next_lsn, 5);
}
