//! The operator's command line and environment, parsed once into a validated [`Config`].

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand};
use koru_telemetry::{DEFAULT_LOG_FILTER, TelemetryArgs, TelemetryConfig};
use rand::distr::Alphanumeric;
use rand::{RngExt, rng};

use crate::leader::LeaseConfig;

/// The operator's `service.name` in exported traces.
pub const SERVICE_NAME: &str = "koru-operator";

/// Default address of the `/healthz`, `/readyz` and `/metrics` server.
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:8080";
/// Default name of the leader-election Lease.
pub const DEFAULT_LEASE_NAME: &str = "koru-operator";
/// Default namespace of the Lease when `POD_NAMESPACE` is not set.
pub const DEFAULT_LEASE_NAMESPACE: &str = "default";
/// Default lease duration in seconds (client-go's default too).
pub const DEFAULT_LEASE_DURATION_SECS: u64 = 15;
/// Default seconds a KoruBackup may keep retrying (or wait for its cluster) before it fails.
pub const DEFAULT_BACKUP_DEADLINE_SECS: u64 = crate::backup::DEFAULT_DEADLINE.as_secs();
/// Default seconds between two reads of a cluster's backups (window and last restore drill).
pub const DEFAULT_BACKUP_STATUS_INTERVAL_SECS: u64 = crate::recovery::DEFAULT_REFRESH.as_secs();
/// Default of `--region-status-interval-secs`.
pub const DEFAULT_REGION_STATUS_INTERVAL_SECS: u64 = crate::regions::DEFAULT_REFRESH.as_secs();

/// Default seconds between two samples of an autoscaled cluster's members.
pub const DEFAULT_AUTOSCALE_INTERVAL_SECS: u64 = 30;
/// Default seconds after a change of CPU or memory before another move up.
pub const DEFAULT_COMPUTE_UP_COOLDOWN_SECS: u64 = 60;
/// Default seconds after a change of CPU or memory before a move down, and of low load a move
/// down needs.
pub const DEFAULT_COMPUTE_DOWN_COOLDOWN_SECS: u64 = 300;
/// Default labels of the gateway's pods (the control plane chart's).
pub const DEFAULT_GATEWAY_SELECTOR: &str = "app.kubernetes.io/name=koru-gateway";
/// Default labels of the control plane's pods (its chart's).
pub const DEFAULT_CONTROLPLANE_SELECTOR: &str = "app.kubernetes.io/name=koru-controlplane";
/// Default labels of the operator's own pods (its chart's).
pub const DEFAULT_OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=koru-operator";

/// Who may reach a cluster's API port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiIngress {
    /// The cluster's own pods, the gateway, the control plane and the operator only.
    Restricted,
    /// Anyone (clusters whose applications call them directly).
    Open,
}

/// The KoruDelta Kubernetes operator.
#[derive(Debug, Parser)]
#[command(name = "koru-operator", version, about)]
pub struct Cli {
    /// What to do instead of running the controller.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How to run the controller.
    #[command(flatten)]
    pub run: RunArgs,
}

/// What to do besides running the controller.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
}

/// Flags (with environment fallbacks) of the controller process.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Address of the /healthz, /readyz and /metrics server; port 0 picks a free port.
    #[arg(long, env = "KORU_OPERATOR_METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR)]
    pub metrics_addr: SocketAddr,
    /// Reconcile only the KoruClusters of this namespace [default: all namespaces].
    #[arg(long, env = "KORU_OPERATOR_WATCH_NAMESPACE", value_parser = parse_namespace)]
    pub watch_namespace: Option<String>,
    /// Reconcile only while holding the Lease, so several replicas can run.
    #[arg(
        long,
        env = "KORU_OPERATOR_LEADER_ELECTION",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    pub leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "KORU_OPERATOR_LEASE_NAME", default_value = DEFAULT_LEASE_NAME, value_parser = parse_lease_name)]
    pub lease_name: String,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = DEFAULT_LEASE_NAMESPACE, value_parser = parse_namespace)]
    pub lease_namespace: String,
    /// This replica's identity in the Lease [default: the hostname and a random suffix].
    #[arg(long, env = "POD_NAME", value_parser = parse_identity)]
    pub identity: Option<String>,
    /// Seconds a Lease stays valid without renewal; renewal is tried every sixth of it and the
    /// leader steps down when it has not renewed within two thirds of it.
    #[arg(long, env = "KORU_OPERATOR_LEASE_DURATION_SECS", default_value_t = DEFAULT_LEASE_DURATION_SECS,
          value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_duration_secs: u64,
    /// Seconds a KoruBackup may keep retrying an unreachable or failing data plane (counted from
    /// its start, or from its creation while it waits for its cluster) before it fails.
    #[arg(long, env = "KORU_OPERATOR_BACKUP_DEADLINE_SECS", default_value_t = DEFAULT_BACKUP_DEADLINE_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub backup_deadline_secs: u64,
    /// Seconds between two reads of a serving cluster's backups through its data plane (the
    /// recoverable window in `status.backup` and the last restore drill in its BackupVerified
    /// condition); each such cluster is reconciled this often.
    #[arg(long, env = "KORU_OPERATOR_BACKUP_STATUS_INTERVAL_SECS", default_value_t = DEFAULT_BACKUP_STATUS_INTERVAL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub backup_status_interval_secs: u64,
    /// Seconds between two reads of a serving regional cluster's peer-region streams through its
    /// data plane (`status.regions` and its RegionsHealthy condition); each such cluster is
    /// reconciled this often.
    #[arg(long, env = "KORU_OPERATOR_REGION_STATUS_INTERVAL_SECS", default_value_t = DEFAULT_REGION_STATUS_INTERVAL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub region_status_interval_secs: u64,
    /// Seconds between two samples of the members of a cluster with storage or compute
    /// autoscaling (their `/metrics`); each such cluster is reconciled this often.
    #[arg(long, env = "KORU_OPERATOR_AUTOSCALE_INTERVAL_SECS", default_value_t = DEFAULT_AUTOSCALE_INTERVAL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub autoscale_interval_secs: u64,
    /// Seconds after a change of a cluster's CPU or memory before another move up.
    #[arg(long, env = "KORU_OPERATOR_COMPUTE_UP_COOLDOWN_SECS", default_value_t = DEFAULT_COMPUTE_UP_COOLDOWN_SECS,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub compute_up_cooldown_secs: u64,
    /// Seconds after a change of a cluster's CPU or memory before a move down; a move down also
    /// needs this long of low load.
    #[arg(long, env = "KORU_OPERATOR_COMPUTE_DOWN_COOLDOWN_SECS", default_value_t = DEFAULT_COMPUTE_DOWN_COOLDOWN_SECS,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub compute_down_cooldown_secs: u64,
    /// Who may reach a cluster's API port (its NetworkPolicy).
    #[arg(long, env = "KORU_OPERATOR_API_INGRESS", value_enum, default_value_t = ApiIngress::Restricted)]
    pub api_ingress: ApiIngress,
    /// Labels of the gateway's pods (`key=value,...`), admitted to the API port.
    #[arg(long, env = "KORU_OPERATOR_GATEWAY_SELECTOR", default_value = DEFAULT_GATEWAY_SELECTOR, value_parser = parse_selector)]
    pub gateway_selector: Selector,
    /// Labels of the control plane's pods (`key=value,...`), admitted to the API port.
    #[arg(long, env = "KORU_OPERATOR_CONTROLPLANE_SELECTOR", default_value = DEFAULT_CONTROLPLANE_SELECTOR, value_parser = parse_selector)]
    pub controlplane_selector: Selector,
    /// The namespace of the control plane and its gateway [default: any namespace].
    #[arg(long, env = "KORU_OPERATOR_CONTROLPLANE_NAMESPACE", value_parser = parse_optional_namespace)]
    pub controlplane_namespace: Option<String>,
    /// Labels of the operator's own pods (`key=value,...`, in the namespace of `POD_NAMESPACE`),
    /// admitted to the API port.
    #[arg(long, env = "KORU_OPERATOR_SELECTOR", default_value = DEFAULT_OPERATOR_SELECTOR, value_parser = parse_selector)]
    pub operator_selector: Selector,
    /// Logs and traces.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// Pod labels to match, parsed from `key=value,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(pub std::collections::BTreeMap<String, String>);

/// Reads `key=value,...` (at least one pair, no empty keys).
fn parse_selector(s: &str) -> Result<Selector, String> {
    let mut labels = std::collections::BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                labels.insert(k.trim().to_string(), v.trim().to_string());
            }
            _ => return Err(format!("{pair:?} is not key=value")),
        }
    }
    if labels.is_empty() {
        return Err("must name at least one label, key=value".into());
    }
    Ok(Selector(labels))
}

/// A namespace, or empty for none.
fn parse_optional_namespace(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Ok(String::new())
    } else {
        parse_namespace(s)
    }
}

/// How autoscaling runs.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleConfig {
    /// How often an autoscaled cluster's members are sampled.
    pub interval: Duration,
    /// The compute decision's tuning.
    pub policy: crate::autoscale::compute::Policy,
}

/// The validated configuration of a controller process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub metrics_addr: SocketAddr,
    /// The one namespace whose KoruClusters are reconciled, or None for all.
    pub watch_namespace: Option<String>,
    /// The Lease to hold before reconciling, or None to reconcile at once.
    pub leader_election: Option<LeaseConfig>,
    /// How long a KoruBackup may keep retrying before it fails.
    pub backup_deadline: Duration,
    /// How often a serving cluster's backups are read through its data plane.
    pub backup_status_interval: Duration,
    /// How often a serving regional cluster's peer-region streams are read.
    pub region_status_interval: Duration,
    /// How autoscaling runs.
    pub autoscale: AutoscaleConfig,
    /// Who may reach a cluster's API port.
    pub api_access: crate::desired::ApiAccess,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
}

/// Why a command line cannot become a [`Config`]: never, today — clap's value parsers check
/// every flag and no combination is invalid — but every binary's `into_config` has this shape.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {}

impl RunArgs {
    /// The validated configuration; picks this replica's identity when none was given.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let identity = self
            .identity
            .filter(|i| !i.is_empty())
            .unwrap_or_else(default_identity);
        let controlplane_namespace = self.controlplane_namespace.filter(|n| !n.is_empty());
        let api_access = crate::desired::ApiAccess {
            restricted: self.api_ingress == ApiIngress::Restricted,
            clients: vec![
                crate::desired::ApiClient {
                    namespace: controlplane_namespace.clone(),
                    labels: self.gateway_selector.0,
                },
                crate::desired::ApiClient {
                    namespace: controlplane_namespace,
                    labels: self.controlplane_selector.0,
                },
                crate::desired::ApiClient {
                    namespace: Some(self.lease_namespace.clone()),
                    labels: self.operator_selector.0,
                },
            ],
        };
        let policy = crate::autoscale::compute::Policy {
            up_cooldown: self.compute_up_cooldown_secs as f64,
            down_cooldown: self.compute_down_cooldown_secs as f64,
            down_window: self.compute_down_cooldown_secs as f64,
            ..crate::autoscale::compute::DEFAULT_POLICY
        };
        let autoscale = AutoscaleConfig {
            interval: Duration::from_secs(self.autoscale_interval_secs),
            policy,
        };
        let leader_election = self.leader_election.then(|| {
            LeaseConfig::new(
                self.lease_name,
                self.lease_namespace,
                identity,
                Duration::from_secs(self.lease_duration_secs),
            )
        });
        Ok(Config {
            metrics_addr: self.metrics_addr,
            watch_namespace: self.watch_namespace,
            leader_election,
            backup_deadline: Duration::from_secs(self.backup_deadline_secs),
            backup_status_interval: Duration::from_secs(self.backup_status_interval_secs),
            region_status_interval: Duration::from_secs(self.region_status_interval_secs),
            autoscale,
            api_access,
            telemetry: self.telemetry.config(SERVICE_NAME, DEFAULT_LOG_FILTER),
        })
    }
}

/// The hostname plus a random suffix, so two processes on one host never share an identity.
fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "koru-operator".to_string());
    let suffix: String = rng()
        .sample_iter(&Alphanumeric)
        .take(6)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    format!("{host}-{suffix}")
}

/// Whether `s` is a DNS-1123 label: lowercase alphanumerics and '-', alphanumeric at both ends.
fn is_dns_label(s: &str, max: usize) -> bool {
    let ok_end = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && ok_end(s.chars().next())
        && ok_end(s.chars().last())
}

/// A Lease name: a DNS-1123 subdomain (dot-separated labels, at most 253 characters).
fn parse_lease_name(s: &str) -> Result<String, String> {
    if s.len() <= 253 && s.split('.').all(|label| is_dns_label(label, 63)) {
        Ok(s.to_string())
    } else {
        Err("must be a DNS subdomain: lowercase letters, digits, '-' and '.'".into())
    }
}

/// A namespace name: a DNS-1123 label of at most 63 characters.
fn parse_namespace(s: &str) -> Result<String, String> {
    if is_dns_label(s, 63) {
        Ok(s.to_string())
    } else {
        Err("must be a DNS label: lowercase letters, digits and '-', at most 63".into())
    }
}

/// An identity without surrounding whitespace; empty (an empty `POD_NAME`) means unset.
fn parse_identity(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() > 253 {
        Err("must be at most 253 characters".into())
    } else {
        Ok(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koru_telemetry::LogFormat;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("koru-operator").chain(args.iter().copied()))
    }

    #[test]
    fn flags_parse_into_a_config_with_derived_lease_timings() {
        let cli = parse(&[
            "--metrics-addr",
            "127.0.0.1:0",
            "--leader-election",
            "--lease-name",
            "ops.koru",
            "--lease-namespace",
            "koru-system",
            "--identity",
            "pod-a",
            "--lease-duration-secs",
            "6",
            "--otlp-endpoint",
            "http://127.0.0.1:4318/",
            "--log-format",
            "json",
            "--watch-namespace",
            "team-a",
            "--backup-deadline-secs",
            "30",
            "--backup-status-interval-secs",
            "5",
            "--region-status-interval-secs",
            "7",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        let config = cli.run.into_config().unwrap();
        assert_eq!(config.metrics_addr.port(), 0);
        assert_eq!(config.watch_namespace.as_deref(), Some("team-a"));
        assert_eq!(config.backup_deadline, Duration::from_secs(30));
        assert_eq!(config.backup_status_interval, Duration::from_secs(5));
        assert_eq!(config.region_status_interval, Duration::from_secs(7));
        let lease = config.leader_election.unwrap();
        assert_eq!(
            (
                lease.name.as_str(),
                lease.namespace.as_str(),
                lease.identity.as_str()
            ),
            ("ops.koru", "koru-system", "pod-a")
        );
        assert_eq!(lease.duration, Duration::from_secs(6));
        assert_eq!(lease.renew_deadline, Duration::from_secs(4));
        assert_eq!(lease.retry_period, Duration::from_secs(1));
        assert_eq!(config.telemetry.log_format, LogFormat::Json);
        assert_eq!(
            config.telemetry.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4318")
        );
    }

    #[test]
    fn api_access_defaults_to_our_charts_labels_and_can_be_opened() {
        let config = parse(&["--lease-namespace", "koru-system"])
            .unwrap()
            .run
            .into_config()
            .unwrap();
        let access = &config.api_access;
        assert!(access.restricted);
        let names: Vec<(&Option<String>, &str)> = access
            .clients
            .iter()
            .map(|c| (&c.namespace, c.labels["app.kubernetes.io/name"].as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (&None, "koru-gateway"),
                (&None, "koru-controlplane"),
                (&Some("koru-system".to_string()), "koru-operator")
            ]
        );
        assert_eq!(config.autoscale.interval, Duration::from_secs(30));
        let config = parse(&[
            "--api-ingress",
            "open",
            "--controlplane-namespace",
            "koru-cloud",
            "--gateway-selector",
            "app=gw, tier=edge",
            "--autoscale-interval-secs",
            "5",
            "--compute-up-cooldown-secs",
            "10",
        ])
        .unwrap()
        .run
        .into_config()
        .unwrap();
        assert!(!config.api_access.restricted);
        let gateway = &config.api_access.clients[0];
        assert_eq!(gateway.namespace.as_deref(), Some("koru-cloud"));
        assert_eq!(gateway.labels.len(), 2);
        assert_eq!(gateway.labels["tier"], "edge");
        assert_eq!(config.autoscale.policy.up_cooldown, 10.0);
    }

    #[test]
    fn the_crd_subcommand_still_parses() {
        let cli = parse(&["crd"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Crd)));
    }

    #[test]
    fn bad_values_are_refused_with_a_message() {
        for args in [
            &["--metrics-addr", "nonsense"][..],
            &["--log-format", "xml"],
            &["--lease-duration-secs", "1"],
            &["--lease-name", "Not_A_Name"],
            &["--lease-namespace=bad-"],
            &["--watch-namespace", "Team_A"],
            &["--otlp-endpoint", "collector:4318"],
            &["--log-filter", "koru=notalevel"],
            &["--backup-deadline-secs", "0"],
            &["--backup-status-interval-secs", "0"],
            &["--backup-status-interval-secs", "3601"],
            &["--region-status-interval-secs", "0"],
            &["--autoscale-interval-secs", "0"],
            &["--api-ingress", "sometimes"],
            &["--gateway-selector", "novalue"],
            &["--controlplane-selector", ""],
            &["--controlplane-namespace", "Bad_NS"],
        ] {
            let err = parse(args).unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue
                ),
                "{args:?}: {err}"
            );
        }
    }

    #[test]
    fn empty_values_mean_unset() {
        let config = parse(&["--identity", "", "--otlp-endpoint", "", "--leader-election"])
            .unwrap()
            .run
            .into_config()
            .unwrap();
        assert!(config.telemetry.otlp_endpoint.is_none());
        assert!(!config.leader_election.unwrap().identity.is_empty());
    }

    #[test]
    fn a_generated_identity_has_a_random_suffix() {
        let (a, b) = (default_identity(), default_identity());
        assert_ne!(a, b);
        assert!(a.len() > 7, "{a}");
    }
}
