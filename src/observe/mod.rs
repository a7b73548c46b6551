//! Observability: Prometheus metrics (each recorded together with its log line, so logs and
//! metrics never disagree), the `/metrics` + `/healthz` endpoint, and tracing setup.

pub mod metrics;
pub mod readiness;
pub mod server;

pub use metrics::Metrics;
pub use readiness::Readiness;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable text (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line (for `jq`, Loki, Elasticsearch...).
    Json,
}

/// Installs the tracing subscriber with readable text: `RUST_LOG` filters (default
/// `info`). For the tests and examples; the binary uses [`init_tracing_as`].
pub fn init_tracing() {
    init_tracing_as(LogFormat::Text);
}

/// Installs the tracing subscriber: `RUST_LOG` filters (default `info`), `format` says
/// text or JSON. A second call keeps the first subscriber.
pub fn init_tracing_as(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    let _ = result;
}
