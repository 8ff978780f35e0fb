//! The command line and environment of `koru-dataplane`, parsed once into a validated [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::backup::{BackupUrl, Schedule, Target};

use crate::query::limits::{
    DEFAULT_MAX_GROUPS, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_SCAN,
    QueryLimits,
};
use crate::store::{
    DEFAULT_MAX_BATCH_OPS, DEFAULT_MAX_READ_BYTES, DEFAULT_MAX_VALUE_BYTES, DEFAULT_SEGMENT_SIZE,
    FsyncMode, StoreConfig,
};

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./koru-data";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The data plane's `service.name` in exported traces.
pub const SERVICE_NAME: &str = "koru-dataplane";
/// Log filter when `KORU_LOG` / `--log-filter` is not given: openraft's per-message chatter at
/// `warn`.
pub const DEFAULT_LOG_FILTER: &str = "info,openraft=warn";

/// KoruDelta data plane: a versioned, time-travelling key-value store speaking the KoruDelta HTTP API v1.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "koru-dataplane",
    version,
    about,
    long_about = None,
    after_help = "Restore a data directory from backups: koru-dataplane restore --help"
)]
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

    /// Most bytes of values one paged read answer holds (a page of a key's history or of the
    /// change feed); longer answers come in pages.
    #[arg(long, env = "KORU_MAX_READ_BYTES", default_value_t = DEFAULT_MAX_READ_BYTES)]
    pub max_read_bytes: usize,

    /// Most documents one query reads (scanned, or fetched as index candidates); a query that
    /// would scan more with no usable index answers 400 `no_plan`.
    #[arg(long, env = "KORU_QUERY_MAX_SCAN", default_value_t = DEFAULT_MAX_SCAN)]
    pub query_max_scan: usize,

    /// Most bytes of one query's answer (413 `result_too_large` past it).
    #[arg(long, env = "KORU_QUERY_MAX_RESULT_BYTES", default_value_t = DEFAULT_MAX_RESULT_BYTES)]
    pub query_max_result_bytes: usize,

    /// Most groups of one aggregation (422 `query_limit_exceeded` past it).
    #[arg(long, env = "KORU_QUERY_MAX_GROUPS", default_value_t = DEFAULT_MAX_GROUPS)]
    pub query_max_groups: usize,

    /// Most bytes of documents one query holds at once (rows awaiting sort, joined documents,
    /// groups; 422 `query_limit_exceeded` past it).
    #[arg(long, env = "KORU_QUERY_MEMORY", default_value_t = DEFAULT_MAX_MEMORY_BYTES)]
    pub query_memory: usize,

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

    /// File holding the static admin token: a request with `Authorization: Bearer <its contents>`
    /// gets admin scope (for the operator, which cannot sign tokens). At least 32 characters;
    /// surrounding whitespace is ignored.
    #[arg(long, env = "KORU_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// URL of this cluster's revoked-token list, signed with the token key (the control plane
    /// serves it at `/api/v1/clusters/<cluster id>/revocations`); polled every
    /// --revocations-interval. Revoked tokens get 401.
    #[arg(
        long,
        env = "KORU_REVOCATIONS_URL",
        requires = "auth_public_key",
        conflicts_with = "revocations_file"
    )]
    pub revocations_url: Option<String>,

    /// File holding the signed revoked-token list (the document --revocations-url serves), read
    /// again every --revocations-interval.
    #[arg(long, env = "KORU_REVOCATIONS_FILE", requires = "auth_public_key")]
    pub revocations_file: Option<PathBuf>,

    /// How often the revoked-token list is fetched (e.g. `5s`).
    #[arg(long, env = "KORU_REVOCATIONS_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub revocations_interval: Duration,

    /// Address to serve the member-to-member routes (`/raft/*`) on, apart from the API: a
    /// replicated member needs it, and --peers names these addresses. Only the member
    /// credential opens it (see --peer-token-file), never a data-plane token.
    #[arg(long, env = "KORU_PEER_LISTEN")]
    pub peer_listen: Option<SocketAddr>,

    /// File holding the secret members present to each other on the peer listener (same rules
    /// as --admin-token-file); the admin token when unset.
    #[arg(long, env = "KORU_PEER_TOKEN_FILE")]
    pub peer_token_file: Option<PathBuf>,

    /// Logs and traces (`--log-format`, `--log-filter`, `--otlp-endpoint`).
    #[command(flatten)]
    pub telemetry: koru_telemetry::TelemetryArgs,

    /// Archive sealed log segments to this store and allow base backups: `file:///path` or
    /// `s3://bucket/prefix` (S3 endpoint, region and credentials from AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; an AWS_ENDPOINT_URL such as a
    /// MinIO server is addressed path-style, and plain http is accepted on loopback only). Off when
    /// unset.
    #[arg(long, env = "KORU_BACKUP_STORE")]
    pub backup_store: Option<String>,

    /// With --backup-store: seal the active segment once its oldest write is this old, bounding the
    /// writes at risk (e.g. `60s`, `500ms`, `5m`).
    #[arg(long, env = "KORU_ARCHIVE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub archive_timeout: Duration,

    /// With --backup-store: take a base backup at every tick of this five-field cron expression,
    /// in UTC (e.g. `0 3 * * *` for 03:00 daily, `@hourly`).
    #[arg(long, env = "KORU_BACKUP_SCHEDULE")]
    pub backup_schedule: Option<String>,

    /// With --backup-store: after every base backup, delete base backups older than this window
    /// (e.g. `7d`, `24h`), keeping the newest one before it so every moment inside stays restorable.
    #[arg(long, env = "KORU_BACKUP_RETENTION", value_parser = parse_duration)]
    pub backup_retention: Option<Duration>,

    /// With --backup-store: at every tick of this five-field cron expression (UTC), restore the
    /// newest base backup into a scratch directory beside --data-dir and check it (a restore
    /// drill; the result is in GET /admin/backups and /metrics). Needs free disk for one copy.
    #[arg(long, env = "KORU_VERIFY_SCHEDULE")]
    pub verify_schedule: Option<String>,

    /// This member's id in a replicated cluster (a whole number listed in --peers; on
    /// Kubernetes the StatefulSet ordinal).
    #[arg(long, env = "KORU_NODE_ID", requires = "peers")]
    pub node_id: Option<u64>,

    /// The members of a replicated cluster, this one included: `1=host:port,2=host:port,…`
    /// (each member's HTTP address). Without it the server is a single node.
    #[arg(long, env = "KORU_PEERS", requires = "node_id")]
    pub peers: Option<String>,

    /// The address of any member from its id, `{id}` standing for it (e.g.
    /// `koru-{id}.koru-peers.ns.svc:8080`): lets --peers list bare ids, and gives the address of
    /// a member added later by id.
    #[arg(long, env = "KORU_PEER_TEMPLATE", requires = "peers")]
    pub peer_template: Option<String>,

    /// What a follower does with a write: `forward` it to the leader and answer with the
    /// leader's reply, or `redirect` the client there (307 with the leader's URL in Location).
    #[arg(long, env = "KORU_FOLLOWER_WRITES", default_value = "forward", value_parser = ["forward", "redirect"])]
    pub follower_writes: String,

    /// Entries applied between two Raft snapshots of a replicated member. A snapshot lets the
    /// member drop older Raft log entries; a follower that lacks them copies the records instead.
    #[arg(long, env = "KORU_RAFT_SNAPSHOT_ENTRIES", default_value_t = crate::raft::DEFAULT_SNAPSHOT_ENTRIES, value_parser = clap::value_parser!(u64).range(10..))]
    pub raft_snapshot_entries: u64,

    /// A web origin whose pages may call the API from a browser (CORS), e.g.
    /// `https://app.example.com`; repeat it, or separate with commas, for several; `*` for any.
    /// Off when unset: browsers then keep other sites' pages from reading answers.
    #[arg(
        long = "cors-allow-origin",
        env = "KORU_CORS_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_allow_origins: Vec<crate::http::cors::Origin>,

    /// This cluster's region in a global database (letters, digits, `-`): the name its writes,
    /// counters and clocks carry. `local` when unset (a single-region database).
    #[arg(long, env = "KORU_REGION", default_value = crate::region::DEFAULT_REGION)]
    pub region: String,

    /// Another region of the global database, `NAME=URL` (its API's base URL), whose writes
    /// this region streams and applies; repeat it, or separate with commas, for several.
    #[arg(long = "region-peer", env = "KORU_REGION_PEERS", value_delimiter = ',')]
    pub region_peers: Vec<String>,

    /// File holding the bearer token this region presents to its peer regions' change feeds
    /// (their admin token, or a token they accept with the admin scope).
    #[arg(long, env = "KORU_REGION_TOKEN_FILE")]
    pub region_token_file: Option<PathBuf>,
}

/// `koru-dataplane restore`: rebuild a data directory from a backup store.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "koru-dataplane restore",
    version,
    about = "Rebuild a data directory from archived log segments, as of a moment or an LSN",
    long_about = None
)]
pub struct RestoreCli {
    /// The backup store: `file:///path` or `s3://bucket/prefix` (S3 settings from the same AWS_*
    /// variables as the server's --backup-store).
    #[arg(long, env = "KORU_RESTORE_FROM")]
    pub from: String,

    /// Base backup id to restore; without a target, restores exactly to its end.
    #[arg(long)]
    pub backup: Option<String>,

    /// Keep writes committed at or before this moment (RFC 3339, e.g. 2026-01-02T03:04:05.123456Z).
    #[arg(long, conflicts_with = "target_lsn")]
    pub target_time: Option<String>,

    /// Keep records with an LSN at or below this.
    #[arg(long)]
    pub target_lsn: Option<u64>,

    /// The data directory to create; must not exist or be empty.
    #[arg(long, env = "KORU_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Do nothing and exit 0 when --data-dir already holds data: for an init container that runs
    /// at every pod start but must restore only into a new volume.
    #[arg(long)]
    pub skip_existing: bool,
}

impl RestoreCli {
    /// Whether `--skip-existing` applies: the data directory exists and holds something.
    pub fn already_restored(&self) -> bool {
        self.skip_existing
            && std::fs::read_dir(&self.data_dir).is_ok_and(|mut entries| entries.next().is_some())
    }
}

impl RestoreCli {
    /// Validates the arguments into a restore request.
    pub fn into_request(self) -> Result<crate::backup::restore::RestoreRequest, String> {
        let from: BackupUrl = self.from.parse().map_err(|e| format!("--from: {e}"))?;
        let target = match (self.target_time, self.target_lsn) {
            (Some(t), _) => {
                let at = crate::clock::parse_micros(&t)
                    .map_err(|e| format!("--target-time {t:?} is not an RFC 3339 time: {e}"))?;
                Target::TimeMicros(at)
            }
            (None, Some(lsn)) => Target::Lsn(lsn),
            (None, None) => Target::End,
        };
        Ok(crate::backup::restore::RestoreRequest {
            from,
            backup: self.backup,
            target,
            data_dir: self.data_dir,
        })
    }
}

/// Parses `500ms`, `60s`, `5m`, `1h`, `7d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: use e.g. 500ms, 60s, 5m, 24h, 7d"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => {
            return Err(format!(
                "{s:?} is not a duration: use e.g. 500ms, 60s, 5m, 24h, 7d"
            ));
        }
    };
    if d.is_zero() {
        return Err("a duration must be more than zero".into());
    }
    Ok(d)
}

/// Archiving settings, when `--backup-store` is set.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// Where segments and base backups go.
    pub store: BackupUrl,
    /// Seal the active segment once its oldest write is this old.
    pub timeout: Duration,
    /// When to take scheduled base backups.
    pub schedule: Option<Schedule>,
    /// How far back every moment stays restorable; older backups are deleted.
    pub retention: Option<Duration>,
    /// When to run restore drills.
    pub verify_schedule: Option<Schedule>,
}

/// Replication settings, when `--peers` is set.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// This member's id.
    pub node_id: crate::raft::NodeId,
    /// Every member, this one included.
    pub peers: crate::raft::Peers,
    /// The address of a member from its id, for members added later.
    pub template: Option<String>,
    /// Followers answer writes with a redirect to the leader instead of forwarding them.
    pub redirect_writes: bool,
    /// Entries applied between two snapshots.
    pub snapshot_entries: u64,
    /// When the Raft log (a member's write-ahead log) is fsynced: `--fsync`.
    pub log_fsync: FsyncMode,
    /// Where the member-to-member routes are served (`--peer-listen`).
    pub peer_listen: SocketAddr,
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
    /// The admin token file, if any.
    pub admin_token_file: Option<PathBuf>,
    /// Where the revoked-token list comes from and how often it is fetched, if anywhere.
    pub revocations: Option<(crate::revocations::RevocationSource, Duration)>,
    /// The member credential's file (`--peer-token-file`), if any; else the admin token's.
    pub peer_token_file: Option<PathBuf>,
    /// Logs and traces.
    pub telemetry: koru_telemetry::TelemetryConfig,
    /// Continuous archiving, when configured.
    pub archive: Option<ArchiveConfig>,
    /// Membership of a replicated cluster, when configured.
    pub replication: Option<ReplicationConfig>,
    /// Origins whose pages may call the API from a browser (`--cors-allow-origin`).
    pub cors_allow_origins: Vec<crate::http::cors::Origin>,
    /// This region and the peer regions it streams from (`--region`, `--region-peer`).
    pub region: crate::region::RegionConfig,
}

/// A command line clap accepted whose values or combination are invalid; the message names
/// the flags.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        ConfigError(message)
    }
}

impl From<&str> for ConfigError {
    fn from(message: &str) -> Self {
        ConfigError(message.to_string())
    }
}

impl Cli {
    /// Checks combinations clap cannot and builds the [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        if self.max_batch_ops == 0 || self.max_batch_ops > 65_535 {
            return Err("--max-batch-ops must be between 1 and 65535".into());
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > 64 * 1024 * 1024 {
            return Err("--max-value-bytes must be between 1 and 67108864".into());
        }
        if self.query_max_scan == 0
            || self.query_max_result_bytes < 1024
            || self.query_max_groups == 0
            || self.query_memory < 1024 * 1024
        {
            return Err(
                "--query-max-scan and --query-max-groups must be at least 1, \
                        --query-max-result-bytes at least 1024, --query-memory at least 1048576"
                    .into(),
            );
        }
        if self.max_read_bytes < 1024 {
            return Err("--max-read-bytes must be at least 1024".into());
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
        let schedule = self
            .backup_schedule
            .as_deref()
            .map(str::parse::<Schedule>)
            .transpose()
            .map_err(|e| format!("--backup-schedule: {e}"))?;
        let verify_schedule = self
            .verify_schedule
            .as_deref()
            .map(str::parse::<Schedule>)
            .transpose()
            .map_err(|e| format!("--verify-schedule: {e}"))?;
        let archive = match self.backup_store {
            Some(url) => Some(ArchiveConfig {
                store: url.parse().map_err(|e| format!("--backup-store: {e}"))?,
                timeout: self.archive_timeout,
                schedule,
                retention: self.backup_retention,
                verify_schedule,
            }),
            None if schedule.is_some() => {
                return Err("--backup-schedule needs --backup-store".into());
            }
            None if self.backup_retention.is_some() => {
                return Err("--backup-retention needs --backup-store".into());
            }
            None if verify_schedule.is_some() => {
                return Err("--verify-schedule needs --backup-store".into());
            }
            None => None,
        };
        let replication = match (self.node_id, self.peers) {
            (Some(node_id), Some(peers)) => {
                let template = self.peer_template.clone();
                if let Some(t) = &template
                    && !t.contains("{id}")
                {
                    return Err(format!("--peer-template {t:?} has no {{id}} in it").into());
                }
                let mut peers = crate::raft::Peers::parse(&peers, template.as_deref())
                    .map_err(|e| format!("{e}"))?;
                // A member added later may start before its peers list names it.
                if let Some(t) = &template {
                    peers
                        .0
                        .entry(node_id)
                        .or_insert_with(|| crate::raft::address_from_template(t, node_id));
                }
                if !peers.0.contains_key(&node_id) {
                    return Err(format!("--node-id {node_id} is not among --peers {peers}").into());
                }
                let peer_listen = self.peer_listen.ok_or(
                    "--peers needs --peer-listen: members talk to each other on a listener of \
                     their own, whose addresses --peers lists",
                )?;
                if peer_listen == self.listen {
                    return Err("--peer-listen must differ from --listen".into());
                }
                if auth.is_some()
                    && self.admin_token_file.is_none()
                    && self.peer_token_file.is_none()
                {
                    return Err("a replicated member with --auth-public-key needs \
                                --peer-token-file (or --admin-token-file): members never \
                                accept data-plane tokens from each other"
                        .into());
                }
                Some(ReplicationConfig {
                    peer_listen,
                    node_id,
                    peers,
                    template,
                    redirect_writes: self.follower_writes == "redirect",
                    snapshot_entries: self.raft_snapshot_entries,
                    log_fsync: self.fsync,
                })
            }
            _ if self.peer_listen.is_some() || self.peer_token_file.is_some() => {
                return Err("--peer-listen and --peer-token-file need --peers".into());
            }
            _ => None,
        };
        // A member's write-ahead log is its Raft log, fsynced as --fsync says; its store holds
        // the applied history and is fsynced before a snapshot lets log entries go (see
        // `raft::state`), so fsyncing it on every write as well would only double the cost.
        let fsync = match (&replication, self.fsync) {
            (Some(_), FsyncMode::Always) => FsyncMode::default(),
            (_, mode) => mode,
        };
        let region = crate::region::RegionConfig::parse(
            &self.region,
            &self.region_peers,
            self.region_token_file.clone(),
        )
        .map_err(|e| e.to_string())?;
        Ok(Config {
            region,
            cors_allow_origins: self.cors_allow_origins,
            replication,
            store: StoreConfig {
                data_dir: self.data_dir,
                fsync,
                segment_size: self.segment_size,
                max_value_bytes: self.max_value_bytes,
                max_batch_ops: self.max_batch_ops,
                max_stored_bytes: self.max_stored_bytes,
                max_read_bytes: self.max_read_bytes,
                faults: None,
                query: QueryLimits {
                    max_scan: self.query_max_scan,
                    max_result_bytes: self.query_max_result_bytes,
                    max_groups: self.query_max_groups,
                    max_memory_bytes: self.query_memory,
                },
                storage: std::sync::Arc::new(crate::wal::storage::FileStorage),
                inline_commit: false,
            },
            listen: self.listen,
            max_ops_per_sec: self.max_ops_per_sec,
            auth,
            admin_token_file: self.admin_token_file,
            revocations: match (self.revocations_url, self.revocations_file) {
                (Some(url), _) => Some(crate::revocations::RevocationSource::Url(url)),
                (None, Some(path)) => Some(crate::revocations::RevocationSource::File(path)),
                (None, None) => None,
            }
            .map(|source| (source, self.revocations_interval)),
            peer_token_file: self.peer_token_file,
            telemetry: self.telemetry.config(SERVICE_NAME, DEFAULT_LOG_FILTER),
            archive,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::DEFAULT_ARCHIVE_TIMEOUT;

    #[test]
    fn query_limits_default_and_come_from_their_flags() {
        let config = Cli::parse_from(["koru-dataplane"]).into_config().unwrap();
        assert_eq!(config.store.query, QueryLimits::default());
        let config = Cli::parse_from([
            "koru-dataplane",
            "--query-max-scan",
            "10",
            "--query-max-result-bytes",
            "2048",
            "--query-max-groups",
            "3",
            "--query-memory",
            "2000000",
        ])
        .into_config()
        .unwrap();
        assert_eq!(
            config.store.query,
            QueryLimits {
                max_scan: 10,
                max_result_bytes: 2048,
                max_groups: 3,
                max_memory_bytes: 2_000_000,
            }
        );
        let zero = Cli::parse_from(["koru-dataplane", "--query-max-scan", "0"]).into_config();
        assert!(zero.is_err());
    }

    #[test]
    fn defaults_match_the_readme() {
        let config = Cli::parse_from(["koru-dataplane"]).into_config().unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.store.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(config.store.fsync, FsyncMode::default());
        assert!(config.archive.is_none());
    }

    #[test]
    fn parses_backup_settings_and_names_bad_urls() {
        let config = Cli::parse_from([
            "koru-dataplane",
            "--backup-store",
            "s3://b/p",
            "--archive-timeout",
            "250ms",
        ])
        .into_config()
        .unwrap();
        let archive = config.archive.unwrap();
        assert_eq!(archive.timeout, Duration::from_millis(250));
        assert_eq!(archive.store.to_string(), "s3://b/p");
        let bad = Cli::parse_from(["koru-dataplane", "--backup-store", "ftp://x"]).into_config();
        assert!(bad.unwrap_err().to_string().contains("--backup-store"));
        assert_eq!(
            Cli::parse_from(["koru-dataplane"]).archive_timeout,
            DEFAULT_ARCHIVE_TIMEOUT
        );
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    }

    #[test]
    fn parses_schedule_and_retention_and_names_bad_ones() {
        let config = Cli::parse_from([
            "koru-dataplane",
            "--backup-store",
            "file:///b",
            "--backup-schedule",
            "0 3 * * *",
            "--backup-retention",
            "7d",
        ])
        .into_config()
        .unwrap();
        let archive = config.archive.unwrap();
        assert_eq!(archive.schedule.unwrap().to_string(), "0 3 * * *");
        assert_eq!(archive.retention, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        let bad = Cli::parse_from([
            "koru-dataplane",
            "--backup-store",
            "file:///b",
            "--backup-schedule",
            "0 3 * *",
        ])
        .into_config()
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("--backup-schedule") && bad.contains("five-field"),
            "{bad}"
        );
        let no_store = Cli::parse_from(["koru-dataplane", "--backup-retention", "1d"])
            .into_config()
            .unwrap_err()
            .to_string();
        assert!(no_store.contains("needs --backup-store"), "{no_store}");
        assert!(Cli::try_parse_from(["koru-dataplane", "--backup-retention", "7w"]).is_err());
    }

    #[test]
    fn skip_existing_applies_only_to_a_directory_holding_data() {
        let dir = tempfile::tempdir().unwrap();
        let cli = |skip: bool, data_dir: &std::path::Path| {
            let mut args = vec!["restore", "--from", "file:///nowhere", "--data-dir"];
            args.push(data_dir.to_str().unwrap());
            if skip {
                args.push("--skip-existing");
            }
            RestoreCli::parse_from(args)
        };
        let missing = dir.path().join("data");
        assert!(
            !cli(true, &missing).already_restored(),
            "a missing directory is restored"
        );
        std::fs::create_dir(&missing).unwrap();
        assert!(!cli(true, &missing).already_restored(), "an empty one too");
        std::fs::write(missing.join("LOCK"), b"").unwrap();
        assert!(cli(true, &missing).already_restored());
        assert!(
            !cli(false, &missing).already_restored(),
            "only with --skip-existing"
        );
    }

    #[test]
    fn restore_targets_parse() {
        let req = RestoreCli::parse_from([
            "restore",
            "--from",
            "file:///b",
            "--target-time",
            "2026-01-02T03:04:05.000006Z",
            "--data-dir",
            "d",
        ])
        .into_request()
        .unwrap();
        assert_eq!(req.target, Target::TimeMicros(1_767_323_045_000_006));
        let both = RestoreCli::try_parse_from([
            "restore",
            "--from",
            "file:///b",
            "--target-time",
            "x",
            "--target-lsn",
            "3",
            "--data-dir",
            "d",
        ]);
        assert!(both.is_err());
        let bad_time = RestoreCli::parse_from([
            "restore",
            "--from",
            "file:///b",
            "--target-time",
            "yesterday",
            "--data-dir",
            "d",
        ])
        .into_request();
        assert!(bad_time.unwrap_err().to_string().contains("RFC 3339"));
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
        assert!(no_cluster.unwrap_err().to_string().contains("--cluster-id"));
        let admin = Cli::parse_from(["koru-dataplane", "--admin-token-file", "/etc/koru/admin"])
            .into_config()
            .unwrap();
        assert_eq!(
            admin.admin_token_file,
            Some(PathBuf::from("/etc/koru/admin"))
        );
    }

    #[test]
    fn members_need_a_peer_listener_and_with_token_auth_a_member_credential() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["koru-dataplane", "--node-id", "1", "--peers", "1=a:1"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).unwrap().into_config()
        };
        let e = parse(&[]).unwrap_err().to_string();
        assert!(e.contains("--peers needs --peer-listen"), "{e}");
        let e = parse(&["--peer-listen", DEFAULT_LISTEN])
            .unwrap_err()
            .to_string();
        assert!(e.contains("must differ from --listen"), "{e}");
        let member = parse(&["--peer-listen", "0.0.0.0:7879"]).unwrap();
        assert_eq!(
            member.replication.unwrap().peer_listen.to_string(),
            "0.0.0.0:7879"
        );
        let e = parse(&[
            "--peer-listen",
            "0.0.0.0:7879",
            "--auth-public-key",
            "k.pem",
            "--cluster-id",
            "c",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs --peer-token-file"), "{e}");
        let with_token = parse(&[
            "--peer-listen",
            "0.0.0.0:7879",
            "--auth-public-key",
            "k.pem",
            "--cluster-id",
            "c",
            "--peer-token-file",
            "/etc/koru/peer",
        ])
        .unwrap();
        assert_eq!(
            with_token.peer_token_file,
            Some(PathBuf::from("/etc/koru/peer"))
        );
        let single = Cli::parse_from(["koru-dataplane", "--peer-listen", "0.0.0.0:7879"]);
        assert!(
            single
                .into_config()
                .unwrap_err()
                .to_string()
                .contains("need --peers")
        );
    }

    #[test]
    fn a_members_fsync_mode_governs_its_raft_log_not_its_store() {
        let member = |fsync: &str| {
            Cli::parse_from([
                "koru-dataplane",
                "--node-id",
                "1",
                "--peers",
                "1=a:1,2=b:1,3=c:1",
                "--peer-listen",
                "127.0.0.1:7879",
                "--fsync",
                fsync,
            ])
            .into_config()
            .unwrap()
        };
        let always = member("always");
        assert_eq!(always.replication.unwrap().log_fsync, FsyncMode::Always);
        assert_eq!(always.store.fsync, FsyncMode::default());
        let off = member("off");
        assert_eq!(off.replication.unwrap().log_fsync, FsyncMode::Off);
        assert_eq!(off.store.fsync, FsyncMode::Off);
        let single = Cli::parse_from(["koru-dataplane", "--fsync", "always"]).into_config();
        assert_eq!(single.unwrap().store.fsync, FsyncMode::Always);
    }
}
