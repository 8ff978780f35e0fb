//! The end-to-end journeys on real pods that can share the test Kubernetes's two nodes: each has
//! its own namespace, operator release and clusters, so they run side by side (the node-loss
//! journey, which takes a node away, is a test binary of its own and runs alone).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod autoscaling;
mod backups;
mod controlplane_cluster;
mod dashboard;
mod production_cluster;
mod storage;
