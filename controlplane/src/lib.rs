//! The KoruDelta Cloud control plane: tenants, identity, tiers and quotas, audit, provisioning.

#![warn(missing_docs)]

pub mod accounts;
pub mod admin;
pub mod allow_lists;
pub mod api_tokens;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod cluster_keys;
pub mod clusters;
pub mod config;
pub mod dashboard;
pub mod data_tokens;
pub mod db;
pub mod device;
pub mod error;
pub mod gateway;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod operations;
pub mod orgs;
pub mod pagination;
pub mod provisioner;
pub mod regions;
pub mod restores;
pub mod server;
pub mod sso;
pub mod state;
pub mod storage_ceiling;
pub mod tiers;
pub mod usage;
