//! Observability: Prometheus metrics (each recorded together with its log line, so logs and
//! metrics never disagree), the `/metrics` + `/healthz` endpoint, and tracing setup.

pub mod metrics;
pub mod server;

pub use metrics::Metrics;

/// Installs the tracing subscriber: `RUST_LOG` filters (default `info`), `ROYALTY_LOG_JSON=1`
/// switches to one JSON object per line.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = if std::env::var("ROYALTY_LOG_JSON").is_ok_and(|v| v == "1") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
