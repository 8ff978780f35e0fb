//! The KoruDelta operator: the controller that reconciles the custom resources of `koru-crd`.

#![warn(missing_docs)]

pub mod admin;
pub mod autoscale;
pub mod backup;
pub mod config;
pub mod controller;
pub mod desired;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod quantity;
pub mod recovery;
pub mod regions;
pub mod replication;
pub mod resize;
pub mod status;
pub mod upgrade;
