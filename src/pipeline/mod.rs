//! `royalty-ingest run`: Kafka → decode → validate → key → one PostgreSQL transaction per
//! batch (ledger + offsets) → outbox relay.
//!
//! The exactly-once contract (DESIGN.md): offsets live in PostgreSQL and move only in the
//! transaction that wrote the data below them; every assignment starts from them; a
//! compare-and-set fences zombies; side effects leave through the outbox.

pub mod positions;
pub mod process;
pub mod run;
pub mod source;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::avro::{LineDecoder, RegistryClient, SchemaStore};
use crate::config::RunArgs;
use crate::drift::DriftSettings;
use crate::drift::alert::DRIFT_ALERT;
use crate::kafka::ensure_topics;
use crate::ledger::db;
use crate::observe::{Metrics, server};
use crate::publish::Relay;

pub use run::RunTotals;

/// How long a stopping run keeps publishing pending outbox rows before it leaves them to
/// the next run.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Runs the ingestion pipeline until `shutdown` (or idle exit, or a fatal error).
pub async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<RunTotals> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    anyhow::ensure!(!args.topics.is_empty(), "--topics needs at least one topic");
    let pool = db::connect(&args.database.database_url, 8).await?;
    db::migrate(&pool).await?;
    if !args.no_create_topics {
        let mut topics = args.subscribed_topics();
        topics.push(&args.dlq_topic);
        topics.push(&args.alerts_topic);
        ensure_topics(&args.kafka, &topics, args.topic_partitions).await?;
    }
    let store = match &args.schemas_dir {
        Some(dir) => SchemaStore::load_dir(dir)
            .with_context(|| format!("cannot load schemas from {}", dir.display()))?,
        None => SchemaStore::builtin().context("the built-in schemas do not load")?,
    };
    let registry = args
        .registry_url
        .as_deref()
        .map(RegistryClient::new)
        .transpose()?;
    let drift = DriftSettings {
        alerts_topic: args.alerts_topic.clone(),
        alert_unknown_isrc: !args.no_unknown_isrc_alerts,
        alert_schema: store
            .latest(DRIFT_ALERT)
            .context("the schemas have no DriftAlert record (drift_alert.v1.avsc)")?,
    };
    let decoder = LineDecoder::new(Arc::new(store), registry);
    let metrics = Arc::new(Metrics::new()?);

    let background = CancellationToken::new();
    if let Some(addr) = args.metrics_socket()? {
        let bound = server::serve(addr, metrics.clone(), background.clone()).await?;
        tracing::info!(%bound, "metrics on http://{bound}/metrics");
    }
    let relay = Arc::new(Relay::new(&args.kafka, pool.clone(), metrics.clone())?);
    let wake = Arc::new(Notify::new());
    let relay_task = {
        let (relay, wake, stop) = (relay.clone(), wake.clone(), background.clone());
        tokio::spawn(async move { relay.run(wake, stop).await })
    };

    let (source, events) =
        source::Source::start(&args, pool.clone(), args.batch_size.max(1024) * 2)?;
    tracing::info!(
        topics = ?args.topics,
        group = %args.group,
        database = %db::redact(&args.database.database_url),
        batch_size = args.batch_size,
        "royalty-ingest running"
    );
    let batch_loop = run::BatchLoop {
        args: &args,
        pool: pool.clone(),
        decoder: &decoder,
        metrics: &metrics,
        outbox: &wake,
        drift: &drift,
        mirror: source.offset_mirror(),
        shutdown: shutdown.clone(),
    };
    let result = batch_loop.run(events).await;
    // Close the consumer off the async workers: leaving the group can block.
    tokio::task::spawn_blocking(move || source.stop())
        .await
        .ok();

    background.cancel();
    let _ = relay_task.await;
    match tokio::time::timeout(DRAIN_DEADLINE, relay.drain()).await {
        Ok(Ok(n)) if n > 0 => tracing::info!(published = n, "outbox drained"),
        Ok(Ok(_)) => {}
        Ok(Err(err)) => {
            tracing::warn!(error = %format!("{err:#}"), "outbox not drained; the next run publishes the rest")
        }
        Err(_) => tracing::warn!("outbox drain timed out; the next run publishes the rest"),
    }
    let totals = result?;
    tracing::info!(
        records = totals.records,
        batches = totals.batches,
        inserted = totals.stats.post.inserted,
        duplicates = totals.stats.post.duplicates,
        enriched = totals.stats.post.enriched,
        restated = totals.stats.post.restated,
        stale = totals.stats.post.stale,
        drift_alerts = totals.stats.drift_alerts,
        dead_letters = totals.stats.dead_letters,
        "royalty-ingest stopped"
    );
    Ok(totals)
}
