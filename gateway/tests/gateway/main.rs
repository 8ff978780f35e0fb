//! The real `koru-gateway` binary in front of real `koru-dataplane` processes (and, where a test
//! must see what a member received, a small echo member): routing, every refusal at the edge,
//! leader-aware forwarding on a 3-member Raft cluster, holding requests while a cluster wakes,
//! TLS with HTTP/2 and certificate reload, one trace across gateway and data plane, the kdelta CLI through the path prefix, and the sync
//! with a control plane.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap fails the test

mod chart;
mod edge;
mod forwarding;
mod hosted;
mod kdelta;
mod raft;
mod support;
mod sync;
mod tls;
mod trace;
mod wake;
