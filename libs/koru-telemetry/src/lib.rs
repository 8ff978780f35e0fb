//! Logs (text or JSON on stderr) and, when an OTLP endpoint is configured, traces exported over
//! OTLP/HTTP (protobuf); the flags that configure them; and the signal that stops a server. Every
//! KoruDelta binary sets its telemetry up with this crate, so their flags and log lines agree.

mod args;
pub mod context;
mod signal;

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use args::{
    DEFAULT_LOG_FILTER, LogFormat, TelemetryArgs, parse_log_filter, parse_otlp_endpoint,
};
pub use signal::shutdown_signal;

/// How long shutdown waits for the last spans to reach the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where logs and traces go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The `service.name` of exported traces.
    pub service_name: &'static str,
    /// Text or JSON log lines.
    pub log_format: LogFormat,
    /// The EnvFilter directives (already validated).
    pub log_filter: String,
    /// OTLP/HTTP collector base URL; spans are posted to `<url>/v1/traces`.
    pub otlp_endpoint: Option<String>,
}

/// Why logging or tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter did not parse.
    #[error("invalid log filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// The OTLP exporter could not be built.
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A global subscriber was already installed.
    #[error("cannot install the log subscriber: {0}")]
    Init(#[from] tracing_subscriber::util::TryInitError),
}

/// The installed telemetry; [`Telemetry::shutdown`] flushes the spans not yet exported.
#[must_use = "call shutdown() on exit so the last spans are exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the global subscriber: the log layer, plus an OpenTelemetry layer when an endpoint
/// is configured. Call it outside the async runtime: the exporter uses a blocking HTTP client on
/// its own thread.
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_new(&config.log_filter)?;
    let logs = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = match &config.otlp_endpoint {
        Some(endpoint) => Some(tracer_provider(endpoint, config.service_name)?),
        None => None,
    };
    let traces = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(config.service_name)));
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .with(filter)
        .try_init()?;
    if let Some(endpoint) = &config.otlp_endpoint {
        tracing::info!(%endpoint, "exporting traces over OTLP/HTTP");
    }
    Ok(Telemetry { provider })
}

/// A tracer provider batching spans to `<endpoint>/v1/traces`.
fn tracer_provider(
    endpoint: &str,
    service_name: &'static str,
) -> Result<SdkTracerProvider, TelemetryError> {
    // A programmatic endpoint is used verbatim, while OTEL_EXPORTER_OTLP_ENDPOINT (our flag's
    // fallback) is by the specification a base URL: append the signal path as the SDK would.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service_name).build())
        .build())
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter; call it outside the runtime.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            eprintln!("cannot flush traces: {e}");
        }
    }
}
