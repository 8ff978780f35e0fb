//! The Terraform and OpenTofu provider of KoruDelta Cloud (source address `koru/koru`): the
//! resources `koru_cluster`, `koru_api_token` and `koru_backup`, and the data sources
//! `koru_cluster` and `koru_tiers`, over the control plane's HTTP API.
//!
//! It speaks the Terraform plugin protocol v6 through the `tf-provider` crate. Checks that need
//! no API run when Terraform validates the configuration ([`rules`]); checks against the tier
//! table run when it plans. Every value of a resource is read back from the API after a change,
//! so the state is what the control plane recorded.

pub mod client;
pub mod data_sources;
pub mod diagnostics;
pub mod provider;
pub mod resources;
pub mod rules;

pub use provider::KoruProvider;

/// The provider's name: resources and data sources are `koru_<name>`.
pub const PROVIDER_NAME: &str = "koru";
