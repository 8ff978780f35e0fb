//! The data sources: `koru_cluster` (one cluster, by id or name) and `koru_tiers` (the tiers and
//! their limits).

mod cluster;
mod tiers;

pub use cluster::{ClusterDataSource, ClusterDataState};
pub use tiers::{TierState, TiersDataSource, TiersState};
