//! The command line and environment, parsed once into a validated [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use koru_telemetry::TelemetryArgs;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory of `dev`.
pub const DEFAULT_DATA_DIR: &str = "./koru-cloud";

/// The KoruDelta Cloud control plane.
#[derive(Debug, Parser)]
#[command(name = "koru-controlplane", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// Logs and traces.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything on embedded defaults: SQLite, local provisioner, keys generated into the data
    /// directory. For trying the product and for development; not for production.
    Dev {
        /// Where the database, keys and local clusters live.
        #[arg(long, env = "KORU_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "KORU_LISTEN", default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// The data-plane binary the local provisioner runs [default: next to this binary].
        #[arg(long, env = "KORU_DATAPLANE_BIN")]
        dataplane_bin: Option<PathBuf>,
        /// Single sign-on settings.
        #[command(flatten)]
        sso: SsoArgs,
    },
    /// The production server: database URL, keys and provisioner from flags or environment.
    Serve(Box<ServeArgs>),
    /// Audit log tools: verify the chain in a database, or an exported organization log.
    Audit {
        /// The tool.
        #[command(subcommand)]
        command: crate::audit::cli::AuditCommand,
    },
    /// Staff tools: list organizations, set a tier or custom limits, suspend; each audited.
    Admin {
        /// The tool.
        #[command(subcommand)]
        command: crate::admin::cli::AdminCommand,
    },
}

/// Which provisioner makes clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProvisionerKind {
    /// `koru-dataplane` child processes on this machine.
    Local,
    /// `KoruCluster` objects for the operator, from the in-cluster or current kubeconfig.
    Kubernetes,
}

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// `postgres://...` (production) or `sqlite://<path>`.
    #[arg(long, env = "KORU_DATABASE_URL")]
    pub database_url: String,
    /// Address to listen on.
    #[arg(long, env = "KORU_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// PKCS#8 PEM Ed25519 key that signs session tokens.
    #[arg(long, env = "KORU_SESSION_KEY")]
    pub session_key: PathBuf,
    /// PKCS#8 PEM Ed25519 key that signs data-plane tokens.
    #[arg(long, env = "KORU_DATAPLANE_KEY")]
    pub dataplane_key: PathBuf,
    /// The provisioner.
    #[arg(long, env = "KORU_PROVISIONER", value_enum, default_value_t = ProvisionerKind::Kubernetes)]
    pub provisioner: ProvisionerKind,
    /// Working directory of the local provisioner.
    #[arg(long, env = "KORU_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The data-plane binary the local provisioner runs [default: next to this binary].
    #[arg(long, env = "KORU_DATAPLANE_BIN")]
    pub dataplane_bin: Option<PathBuf>,
    /// The URL users reach this server at [default: http://<listen>].
    #[arg(long, env = "KORU_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Prefix of each organization's namespace (Kubernetes provisioner).
    #[arg(long, env = "KORU_NAMESPACE_PREFIX", default_value = "koru-")]
    pub namespace_prefix: String,
    /// Data-plane image repository of every cluster [default: the operator's].
    #[arg(long, env = "KORU_DATAPLANE_IMAGE")]
    pub dataplane_image: Option<String>,
    /// Storage class of the clusters' volumes [default: the Kubernetes default class].
    #[arg(long, env = "KORU_STORAGE_CLASS")]
    pub storage_class: Option<String>,
    /// Object store every cluster archives to, each under `<org id>/<cluster id>`
    /// (`s3://bucket/prefix`; Kubernetes provisioner) [default: no backups, no restores].
    #[arg(long, env = "KORU_BACKUP_DESTINATION", value_parser = parse_destination)]
    pub backup_destination: Option<String>,
    /// `namespace/name` of the Secret with the object store's `AWS_*` credentials, copied into each
    /// organization's namespace (Kubernetes provisioner).
    #[arg(long, env = "KORU_BACKUP_CREDENTIALS_SECRET", value_parser = parse_secret_ref, requires = "backup_destination")]
    pub backup_credentials_secret: Option<(String, String)>,
    /// Single sign-on settings.
    #[command(flatten)]
    pub sso: SsoArgs,
}

/// Flags of single sign-on, shared by `dev` and `serve`.
#[derive(Debug, Args)]
pub struct SsoArgs {
    /// DNS server (`ip:port`) that verified-domain TXT lookups go to [default: the system's
    /// resolvers, from /etc/resolv.conf].
    #[arg(long, env = "KORU_DNS_RESOLVER")]
    pub dns_resolver: Option<SocketAddr>,
}

/// Checks `--backup-destination` as the data plane will parse it.
fn parse_destination(s: &str) -> Result<String, String> {
    s.parse::<koru_dataplane_api::backup::BackupUrl>()
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// Parses `namespace/name`.
fn parse_secret_ref(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("{s:?} is not namespace/name")),
    }
}

/// Where keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// Read from these files.
    Files {
        /// Session signing key.
        session: PathBuf,
        /// Data-plane signing key.
        dataplane: PathBuf,
    },
    /// Generated into this directory when missing (dev only).
    Generated(PathBuf),
}

/// The validated configuration of a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database URL.
    pub database_url: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// Signing keys.
    pub keys: Keys,
    /// The provisioner.
    pub provisioner: ProvisionerKind,
    /// Working directory (local clusters).
    pub data_dir: PathBuf,
    /// The data-plane binary for the local provisioner.
    pub dataplane_bin: PathBuf,
    /// Public URL.
    pub public_url: String,
    /// Settings of the Kubernetes provisioner.
    pub kubernetes: crate::provisioner::kubernetes::KubeProvisionerConfig,
    /// Whether this is the insecure development mode.
    pub dev: bool,
    /// Where verified-domain TXT lookups go (`None`: the system's resolvers).
    pub dns_resolver: Option<SocketAddr>,
}

/// The data-plane binary next to the running one.
fn sibling_dataplane() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("koru-dataplane")))
        .unwrap_or_else(|| PathBuf::from("koru-dataplane"))
}

/// Why a command line cannot become a server's [`Config`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `audit` and `admin` are tools: they run no server.
    #[error("`{0}` is a tool and runs no server")]
    NotAServer(&'static str),
}

impl Command {
    /// The configuration of the server this command runs (`dev`, `serve`).
    pub fn into_config(self) -> Result<Config, ConfigError> {
        Ok(match self {
            Command::Audit { .. } => return Err(ConfigError::NotAServer("audit")),
            Command::Admin { .. } => return Err(ConfigError::NotAServer("admin")),
            Command::Dev {
                data_dir,
                listen,
                dataplane_bin,
                sso,
            } => Config {
                database_url: crate::db::sqlite_url(&data_dir),
                listen,
                keys: Keys::Generated(data_dir.join("keys")),
                provisioner: ProvisionerKind::Local,
                dataplane_bin: dataplane_bin.unwrap_or_else(sibling_dataplane),
                public_url: format!("http://{listen}"),
                data_dir,
                kubernetes: Default::default(),
                dev: true,
                dns_resolver: sso.dns_resolver,
            },
            Command::Serve(a) => {
                let a = *a;
                Config {
                    public_url: a
                        .public_url
                        .unwrap_or_else(|| format!("http://{}", a.listen)),
                    database_url: a.database_url,
                    listen: a.listen,
                    keys: Keys::Files {
                        session: a.session_key,
                        dataplane: a.dataplane_key,
                    },
                    provisioner: a.provisioner,
                    dataplane_bin: a.dataplane_bin.unwrap_or_else(sibling_dataplane),
                    data_dir: a.data_dir,
                    kubernetes: crate::provisioner::kubernetes::KubeProvisionerConfig {
                        namespace_prefix: a.namespace_prefix,
                        image: a.dataplane_image,
                        storage_class: a.storage_class,
                        backup_destination: a.backup_destination,
                        backup_credentials: a.backup_credentials_secret,
                    },
                    dev: false,
                    dns_resolver: a.sso.dns_resolver,
                }
            }
        })
    }
}
