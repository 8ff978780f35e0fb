//! The command line, parsed once into a validated [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser};
use ipnet::IpNet;
use koru_telemetry::TelemetryArgs;

/// How long a request to a suspended or waking cluster is held by default.
pub const DEFAULT_WAKE_DEADLINE: &str = "30s";
/// How often the route table is synced with the control plane by default.
pub const DEFAULT_SYNC_INTERVAL: &str = "1s";
/// How often a held request's cluster is re-synced while it wakes.
pub const FAST_SYNC_INTERVAL: Duration = Duration::from_millis(200);
/// How often each member's `/readyz` is polled.
pub const MEMBER_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The public endpoint of every hosted KoruDelta cluster.
#[derive(Debug, Parser)]
#[command(name = "koru-gateway", version, about, long_about = None)]
#[command(group(ArgGroup::new("source").required(true).args(["controlplane_url", "routes_file"])))]
pub struct Cli {
    /// Address of the public listener (clients' requests).
    #[arg(long, env = "KORU_GATEWAY_LISTEN")]
    pub listen: SocketAddr,
    /// Address of the admin listener: /healthz, /readyz, /metrics (never served publicly).
    #[arg(long, env = "KORU_GATEWAY_ADMIN_LISTEN")]
    pub admin_listen: SocketAddr,
    /// The control plane's base URL; the route table is synced from it (needs KORU_GATEWAY_SECRET).
    #[arg(long, env = "KORU_GATEWAY_CONTROLPLANE_URL")]
    pub controlplane_url: Option<String>,
    /// Standalone mode: a RouteTable JSON file, re-read when it changes (no control plane).
    #[arg(long, env = "KORU_GATEWAY_ROUTES_FILE")]
    pub routes_file: Option<PathBuf>,
    /// Host-name routing: `<cluster>.<org>.<domain>` reaches that cluster (path routing always works).
    #[arg(long, env = "KORU_GATEWAY_DOMAIN")]
    pub domain: Option<String>,
    /// PEM certificate chain for TLS on the public listener (re-read when the file changes).
    #[arg(long, env = "KORU_GATEWAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (re-read when the file changes).
    #[arg(long, env = "KORU_GATEWAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// This replica's id in its reports to the control plane [default: a random id].
    #[arg(long, env = "KORU_GATEWAY_ID")]
    pub gateway_id: Option<String>,
    /// How long a request to a suspended or waking cluster is held before 503 `waking`.
    #[arg(long, env = "KORU_GATEWAY_WAKE_DEADLINE", default_value = DEFAULT_WAKE_DEADLINE, value_parser = humantime::parse_duration)]
    pub wake_deadline: Duration,
    /// How often the route table is synced with the control plane (activity reported each time).
    #[arg(long, env = "KORU_GATEWAY_SYNC_INTERVAL", default_value = DEFAULT_SYNC_INTERVAL, value_parser = humantime::parse_duration)]
    pub sync_interval: Duration,
    /// A proxy (CIDR) in front of the gateway whose X-Forwarded-For is believed; repeatable.
    /// Without one, the client address is the connection's peer and X-Forwarded-For is ignored.
    #[arg(long, env = "KORU_GATEWAY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxy: Vec<IpNet>,
    /// Stop when the process that started this one exits, however it exits (`koru-controlplane
    /// dev` passes it, so a killed `dev` leaves no gateway behind).
    #[arg(long)]
    pub exit_with_parent: bool,
    /// Log and trace flags.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// Where the route table comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Synced from the control plane with the shared secret.
    ControlPlane {
        /// Base URL, without a trailing slash.
        url: String,
        /// The shared gateway secret (bearer).
        secret: String,
    },
    /// Read from a file, re-read when it changes.
    File(PathBuf),
}

/// TLS certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Public listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Route table source.
    pub source: Source,
    /// Host-name routing domain, lower case, without a leading dot.
    pub domain: Option<String>,
    /// TLS on the public listener.
    pub tls: Option<TlsFiles>,
    /// This replica's id.
    pub gateway_id: String,
    /// How long requests are held for a waking cluster.
    pub wake_deadline: Duration,
    /// Sync period.
    pub sync_interval: Duration,
    /// Proxies whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Stop when the parent process exits.
    pub exit_with_parent: bool,
}

/// Why the command line cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// --controlplane-url without the secret.
    #[error("--controlplane-url needs the shared secret in {0}")]
    MissingSecret(&'static str),
    /// A URL that is not http(s).
    #[error("--controlplane-url must be an http:// or https:// URL, not {0:?}")]
    BadUrl(String),
    /// A zero duration.
    #[error("{0} must be longer than zero")]
    ZeroDuration(&'static str),
}

impl Cli {
    /// Validates the command line (and reads the secret from the environment).
    pub fn config(&self) -> Result<Config, ConfigError> {
        let secret = std::env::var(koru_gateway_api::SECRET_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty());
        self.config_with_secret(secret)
    }

    /// [`Cli::config`] with the secret given.
    pub fn config_with_secret(&self, secret: Option<String>) -> Result<Config, ConfigError> {
        let source = match (&self.controlplane_url, &self.routes_file) {
            (Some(url), _) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::BadUrl(url.clone()));
                }
                let secret =
                    secret.ok_or(ConfigError::MissingSecret(koru_gateway_api::SECRET_ENV))?;
                Source::ControlPlane {
                    url: url.trim_end_matches('/').to_string(),
                    secret: secret.trim().to_string(),
                }
            }
            (None, Some(file)) => Source::File(file.clone()),
            // clap's group requires one of them.
            (None, None) => Source::File(PathBuf::from("routes.json")),
        };
        if self.wake_deadline.is_zero() {
            return Err(ConfigError::ZeroDuration("--wake-deadline"));
        }
        if self.sync_interval.is_zero() {
            return Err(ConfigError::ZeroDuration("--sync-interval"));
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        Ok(Config {
            listen: self.listen,
            admin_listen: self.admin_listen,
            source,
            domain: self
                .domain
                .as_deref()
                .map(|d| d.trim_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty()),
            tls,
            gateway_id: self
                .gateway_id
                .clone()
                .unwrap_or_else(|| format!("gateway-{}", uuid::Uuid::new_v4().simple())),
            wake_deadline: self.wake_deadline,
            sync_interval: self.sync_interval,
            trusted_proxies: self.trusted_proxy.clone(),
            exit_with_parent: self.exit_with_parent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("koru-gateway").chain(args.iter().copied()))
    }

    #[test]
    fn the_control_plane_needs_the_secret_and_one_source_is_required() {
        let base = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];
        assert!(parse(&base).is_err(), "no route source");
        let cli = parse(&[&base[..], &["--controlplane-url", "http://cp:8080/"]].concat())
            .expect("parses");
        assert!(matches!(
            cli.config_with_secret(None),
            Err(ConfigError::MissingSecret(_))
        ));
        let config = cli
            .config_with_secret(Some("s3cret\n".into()))
            .expect("valid");
        assert_eq!(
            config.source,
            Source::ControlPlane {
                url: "http://cp:8080".into(),
                secret: "s3cret".into()
            }
        );
        assert_eq!(config.wake_deadline, Duration::from_secs(30));
        assert_eq!(config.sync_interval, Duration::from_secs(1));
    }

    #[test]
    fn durations_domains_and_proxies_parse() {
        let cli = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--routes-file",
            "r.json",
            "--domain",
            ".Koru.Example.",
            "--wake-deadline",
            "1500ms",
            "--trusted-proxy",
            "10.0.0.0/8,192.168.1.1/32",
        ])
        .expect("parses");
        let config = cli.config_with_secret(None).expect("valid");
        assert_eq!(config.domain.as_deref(), Some("koru.example"));
        assert_eq!(config.wake_deadline, Duration::from_millis(1500));
        assert_eq!(config.trusted_proxies.len(), 2);
        assert!(
            parse(&[
                "--listen",
                "x",
                "--admin-listen",
                "127.0.0.1:0",
                "--routes-file",
                "r"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--routes-file",
                "r",
                "--tls-cert",
                "c"
            ])
            .is_err(),
            "a certificate needs its key"
        );
    }
}
