//! The command line and environment, parsed once into a validated [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use koru_telemetry::TelemetryArgs;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default address of the gateway `dev` runs.
pub const DEFAULT_GATEWAY_LISTEN: &str = "127.0.0.1:8081";
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
        /// Address of the gateway `dev` runs in front of the clusters (port 0: any free port).
        #[arg(long, env = "KORU_GATEWAY_LISTEN", default_value = DEFAULT_GATEWAY_LISTEN)]
        gateway_listen: SocketAddr,
        /// Run no gateway: clusters are shown at their data planes' own endpoints.
        #[arg(long)]
        no_gateway: bool,
        /// The `koru-gateway` binary [default: next to this binary].
        #[arg(long, env = "KORU_GATEWAY_BIN")]
        gateway_bin: Option<PathBuf>,
        /// Scale to zero.
        #[command(flatten)]
        lifecycle: LifecycleArgs,
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
    /// File holding the secret the gateway presents on the internal API [default: the
    /// environment's KORU_GATEWAY_SECRET; neither: the internal API is off].
    #[arg(long, env = "KORU_GATEWAY_SECRET_FILE")]
    pub gateway_secret_file: Option<PathBuf>,
    /// The gateway's secret itself (environment only, never a flag: command lines are visible).
    #[arg(long, env = koru_gateway_api::SECRET_ENV, hide = true, hide_env_values = true, conflicts_with = "gateway_secret_file")]
    pub gateway_secret: Option<String>,
    /// Base URL of a gateway routing by path: clusters are shown at `<URL>/c/<org>/<cluster>`.
    #[arg(long, env = "KORU_GATEWAY_URL", conflicts_with = "gateway_domain")]
    pub gateway_url: Option<String>,
    /// Domain of a gateway routing by host name: clusters are shown at
    /// `https://<cluster>.<org>.<DOMAIN>`.
    #[arg(long, env = "KORU_GATEWAY_DOMAIN")]
    pub gateway_domain: Option<String>,
    /// Scale to zero.
    #[command(flatten)]
    pub lifecycle: LifecycleArgs,
}

/// Flags of scale to zero, shared by `dev` and `serve`.
#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// Idle time before a tier's clusters are suspended, replacing the tier table's
    /// (`free=5m`, `pro=2h`, `free=off`, `free=30s`); repeatable.
    #[arg(long = "suspend-after", value_parser = crate::lifecycle::policy::parse_suspend_after)]
    pub suspend_after: Vec<crate::lifecycle::SuspendAfter>,
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

/// Where the gateway's shared secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewaySecret {
    /// No gateway: the internal API is off.
    None,
    /// Given (from the environment).
    Value(String),
    /// Read from this file.
    File(PathBuf),
    /// Generated into this file when missing (dev only).
    Generated(PathBuf),
}

/// The gateway `dev` runs as a child process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayChild {
    /// The `koru-gateway` binary.
    pub bin: PathBuf,
    /// Its public address.
    pub listen: SocketAddr,
}

/// The gateway settings of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// Its secret.
    pub secret: GatewaySecret,
    /// How users reach clusters (for `dev`, set once the child listens).
    pub routing: crate::gateway::Routing,
    /// The child `dev` runs, if any.
    pub child: Option<GatewayChild>,
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
    /// The gateway.
    pub gateway: GatewaySettings,
    /// Per-tier overrides of the idle time before suspension.
    pub suspend_after: Vec<crate::lifecycle::SuspendAfter>,
}

/// The data-plane binary next to the running one.
fn sibling_dataplane() -> PathBuf {
    sibling("koru-dataplane")
}

/// The binary `name` next to the running one (or the bare name, looked up in `PATH`).
fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
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
                gateway_listen,
                no_gateway,
                gateway_bin,
                lifecycle,
            } => Config {
                gateway: GatewaySettings {
                    secret: if no_gateway {
                        GatewaySecret::None
                    } else {
                        GatewaySecret::Generated(data_dir.join("keys").join("gateway.secret"))
                    },
                    routing: crate::gateway::Routing::Direct,
                    child: (!no_gateway).then(|| GatewayChild {
                        bin: gateway_bin.unwrap_or_else(|| sibling("koru-gateway")),
                        listen: gateway_listen,
                    }),
                },
                suspend_after: lifecycle.suspend_after,
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
                    gateway: GatewaySettings {
                        secret: match (a.gateway_secret, a.gateway_secret_file) {
                            (Some(v), _) if !v.is_empty() => GatewaySecret::Value(v),
                            (_, Some(f)) => GatewaySecret::File(f),
                            _ => GatewaySecret::None,
                        },
                        routing: match (a.gateway_url, a.gateway_domain) {
                            (Some(url), _) => crate::gateway::Routing::Path(url),
                            (_, Some(domain)) => crate::gateway::Routing::Host(domain),
                            _ => crate::gateway::Routing::Direct,
                        },
                        child: None,
                    },
                    suspend_after: a.lifecycle.suspend_after,
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
