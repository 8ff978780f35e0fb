//! Replicated clusters of real `koru-dataplane` processes on loopback: the leader killed with
//! SIGKILL under concurrent writes (3 and 5 members), a partitioned leader (an injected fault in
//! the members' transport, see `common::cluster`), and a linearizability check of single-key
//! read/write/compare-and-set histories recorded while members are killed and partitioned.
//! One module per topic; `support` holds what they share.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

#[path = "../common/mod.rs"]
mod common;

mod failover;
mod formation;
mod indexes;
mod linearizability;
mod membership;
mod snapshots;
mod support;
mod writes;
