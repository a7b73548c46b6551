//! Observability: Prometheus metrics (each recorded together with its log line, so logs and
//! metrics never disagree), the `/metrics` + `/healthz` endpoint, and tracing setup.

pub mod metrics;
mod otlp;
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
    let _ = init_tracing_as(LogFormat::Text, None);
}

/// Keeps the OpenTelemetry exporter alive; dropping it flushes the spans not yet sent.
#[must_use = "spans are flushed when the guard is dropped"]
#[derive(Default)]
pub struct TracingGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Waits for the export thread to send what it holds (bounded by its timeout).
            let _ = std::thread::spawn(move || provider.shutdown()).join();
        }
    }
}

/// Installs the tracing subscriber: `RUST_LOG` filters the log lines (default `info`),
/// `format` says text or JSON; with `otlp`, the service's spans (one per batch) are also
/// exported to that OpenTelemetry collector over OTLP/HTTP (JSON). A second call keeps the
/// first subscriber.
pub fn init_tracing_as(format: LogFormat, otlp: Option<&str>) -> anyhow::Result<TracingGuard> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn,sqlx=warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let mut layers: Vec<Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>> =
        vec![match format {
            LogFormat::Json => fmt.json().flatten_event(true).with_filter(filter).boxed(),
            LogFormat::Text => fmt.with_filter(filter).boxed(),
        }];
    let mut guard = TracingGuard::default();
    if let Some(endpoint) = otlp.map(str::trim).filter(|e| !e.is_empty()) {
        let provider = otlp_provider(endpoint)?;
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "royalty-ingest");
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(tracing_subscriber::EnvFilter::new("royalty_ingest=info"))
                .boxed(),
        );
        guard.provider = Some(provider);
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(guard)
}

/// An OTLP/HTTP (JSON) span exporter to `endpoint` (`http://host:4318`; `/v1/traces` is
/// added when the URL has no path), sending every second.
fn otlp_provider(endpoint: &str) -> anyhow::Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor};

    let mut url = url::Url::parse(endpoint)
        .map_err(|e| anyhow::anyhow!("--otlp-endpoint {endpoint:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        // Said before any span is lost: the exporter speaks HTTP only.
        anyhow::bail!(
            "--otlp-endpoint must be http:// or https://, got {}://",
            url.scheme()
        );
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/v1/traces");
    }
    let url = url.to_string();
    // The blocking HTTP client may not be built on an async worker: build it on a thread
    // of its own (the export thread uses it from then on).
    let exporter = std::thread::spawn(move || {
        otlp::HttpJsonExporter::new(url, std::time::Duration::from_secs(5))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("building the OTLP exporter panicked"))?
    .map_err(|e| anyhow::anyhow!("cannot set up the OTLP exporter: {e}"))?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(std::time::Duration::from_secs(1))
                .build(),
        )
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("royalty-ingest")
                .build(),
        )
        .build())
}
