//! The command line and environment of `koru-dataplane`, parsed once into a validated [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::store::{
    DEFAULT_MAX_BATCH_OPS, DEFAULT_MAX_VALUE_BYTES, DEFAULT_SEGMENT_SIZE, FsyncMode, StoreConfig,
};

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./koru-data";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// KoruDelta data plane: a versioned, time-travelling key-value store speaking the KoruDelta HTTP API v1.
#[derive(Debug, Clone, Parser)]
#[command(name = "koru-dataplane", version, about, long_about = None)]
pub struct Cli {
    /// Directory for the write-ahead log; created if missing, locked while the server runs.
    #[arg(long, env = "KORU_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// Address to serve HTTP on.
    #[arg(long, env = "KORU_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Durability: `always` (ack after fsync), `interval=<ms>` (fsync at least that often; a power
    /// failure loses at most that window, a process crash nothing), or `off` (leave it to the OS).
    #[arg(long, env = "KORU_FSYNC", default_value = "interval=100")]
    pub fsync: FsyncMode,

    /// Size in bytes at which a log segment is sealed and a new one started.
    #[arg(long, env = "KORU_SEGMENT_SIZE", default_value_t = DEFAULT_SEGMENT_SIZE)]
    pub segment_size: u64,

    /// Largest value accepted, in bytes of JSON text.
    #[arg(long, env = "KORU_MAX_VALUE_BYTES", default_value_t = DEFAULT_MAX_VALUE_BYTES)]
    pub max_value_bytes: usize,

    /// Most operations in one batch request.
    #[arg(long, env = "KORU_MAX_BATCH_OPS", default_value_t = DEFAULT_MAX_BATCH_OPS)]
    pub max_batch_ops: usize,

    /// Operations per second allowed across all clients (token bucket); unlimited when unset.
    #[arg(long, env = "KORU_MAX_OPS_PER_SEC")]
    pub max_ops_per_sec: Option<u32>,

    /// Storage quota in bytes of log; writes past it get 507. Unlimited when unset.
    #[arg(long, env = "KORU_MAX_STORED_BYTES")]
    pub max_stored_bytes: Option<u64>,

    /// PEM public key (Ed25519 or RSA) that data-plane tokens must be signed with. Without it the
    /// server is open to anyone who can reach it (development only).
    #[arg(long, env = "KORU_AUTH_PUBLIC_KEY")]
    pub auth_public_key: Option<PathBuf>,

    /// Cluster id tokens must name (required with --auth-public-key).
    #[arg(long, env = "KORU_CLUSTER_ID", requires = "auth_public_key")]
    pub cluster_id: Option<String>,

    /// Log format: `text` or `json`.
    #[arg(long, env = "KORU_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Store settings.
    pub store: StoreConfig,
    /// Listen address.
    pub listen: SocketAddr,
    /// Operations per second, if limited.
    pub max_ops_per_sec: Option<u32>,
    /// Token verification key path and cluster id, if auth is on.
    pub auth: Option<(PathBuf, String)>,
    /// Emit JSON logs.
    pub json_logs: bool,
}

impl Cli {
    /// Checks combinations clap cannot and builds the [`Config`].
    pub fn into_config(self) -> Result<Config, String> {
        if self.max_batch_ops == 0 || self.max_batch_ops > 65_535 {
            return Err("--max-batch-ops must be between 1 and 65535".into());
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > 64 * 1024 * 1024 {
            return Err("--max-value-bytes must be between 1 and 67108864".into());
        }
        if self.max_ops_per_sec == Some(0) {
            return Err(
                "--max-ops-per-sec must be at least 1 (leave it unset for no limit)".into(),
            );
        }
        let auth = match (self.auth_public_key, self.cluster_id) {
            (Some(key), Some(cluster)) => Some((key, cluster)),
            (Some(_), None) => {
                return Err("--auth-public-key needs --cluster-id naming this cluster".into());
            }
            (None, _) => None,
        };
        Ok(Config {
            store: StoreConfig {
                data_dir: self.data_dir,
                fsync: self.fsync,
                segment_size: self.segment_size,
                max_value_bytes: self.max_value_bytes,
                max_batch_ops: self.max_batch_ops,
                max_stored_bytes: self.max_stored_bytes,
                faults: None,
            },
            listen: self.listen,
            max_ops_per_sec: self.max_ops_per_sec,
            auth,
            json_logs: self.log_format == "json",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_readme() {
        let config = Cli::parse_from(["koru-dataplane"]).into_config().unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.store.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(config.store.fsync, FsyncMode::default());
    }

    #[test]
    fn parses_fsync_modes_and_refuses_nonsense() {
        let parse =
            |s: &str| Cli::try_parse_from(["koru-dataplane", "--fsync", s]).map(|c| c.fsync);
        assert_eq!(parse("always").unwrap(), FsyncMode::Always);
        assert_eq!(
            parse("interval=5").unwrap(),
            FsyncMode::Interval(std::time::Duration::from_millis(5))
        );
        assert!(parse("sometimes").is_err());
        assert!(parse("interval=0").is_err());
        let no_cluster =
            Cli::parse_from(["koru-dataplane", "--auth-public-key", "k.pem"]).into_config();
        assert!(no_cluster.unwrap_err().contains("--cluster-id"));
    }
}
