//! The log and trace flags every binary flattens into its command line, with the same names,
//! environment variables and defaults everywhere.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::TelemetryConfig;

/// The log filter of a binary that names no other: everything at `info` and above.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Log and trace flags (global: accepted before or after a subcommand).
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, global = true, env = "KORU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax (e.g. `info,koru_operator=debug`) [default:
    /// `info`; the data plane's quiets openraft: `info,openraft=warn`].
    #[arg(long, global = true, env = "KORU_LOG", value_parser = parse_log_filter)]
    pub log_filter: Option<String>,
    /// OTLP/HTTP collector base URL (e.g. http://otel-collector:4318); traces go to <url>/v1/traces.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = parse_otlp_endpoint)]
    pub otlp_endpoint: Option<String>,
}

impl TelemetryArgs {
    /// The telemetry configuration of service `service_name`, whose log filter is
    /// `default_filter` unless one was given; an empty endpoint means none.
    pub fn config(&self, service_name: &'static str, default_filter: &str) -> TelemetryConfig {
        TelemetryConfig {
            service_name,
            log_format: self.log_format,
            log_filter: self
                .log_filter
                .clone()
                .unwrap_or_else(|| default_filter.to_string()),
            otlp_endpoint: self.otlp_endpoint.clone().filter(|e| !e.is_empty()),
        }
    }
}

/// An http:// or https:// URL with a host; empty means unset, as the OpenTelemetry
/// specification says of an empty `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub fn parse_otlp_endpoint(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Ok(String::new());
    }
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
            Ok(s.trim_end_matches('/').to_string())
        }
        _ => Err("must be an http:// or https:// URL such as http://otel-collector:4318".into()),
    }
}

/// A filter that tracing-subscriber's EnvFilter accepts.
pub fn parse_log_filter(s: &str) -> Result<String, String> {
    EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::{Parser, Subcommand};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Option<Command>,
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }

    #[derive(Debug, Subcommand)]
    enum Command {
        Serve,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("koru").chain(args.iter().copied()))
    }

    #[test]
    fn flags_parse_before_or_after_a_subcommand() {
        let cli = parse(&[
            "--log-format",
            "json",
            "serve",
            "--otlp-endpoint",
            "http://127.0.0.1:4318/",
            "--log-filter",
            "info,koru=debug",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Serve)));
        assert_eq!(
            cli.telemetry.config("koru-test", DEFAULT_LOG_FILTER),
            TelemetryConfig {
                service_name: "koru-test",
                log_format: LogFormat::Json,
                log_filter: "info,koru=debug".into(),
                otlp_endpoint: Some("http://127.0.0.1:4318".into()),
            }
        );
    }

    #[test]
    fn without_flags_each_binary_gets_its_own_default_filter_and_no_export() {
        let config = parse(&["--otlp-endpoint", ""])
            .unwrap()
            .telemetry
            .config("koru-dataplane", "info,openraft=warn");
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.log_filter, "info,openraft=warn");
        assert_eq!(config.otlp_endpoint, None);
    }

    #[test]
    fn bad_values_are_refused_with_a_message() {
        for args in [
            &["--log-format", "xml"][..],
            &["--otlp-endpoint", "collector:4318"],
            &["--otlp-endpoint", "http:///x"],
            &["--log-filter", "koru=notalevel"],
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
}
