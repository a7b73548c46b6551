//! `royalty-ingest run`: Kafka → decode → validate → key → one PostgreSQL transaction per
//! batch (ledger + offsets) → outbox relay.
//!
//! The exactly-once contract (ARCHITECTURE.md): offsets live in PostgreSQL and move only in the
//! transaction that wrote the data below them; every assignment starts from them; a
//! compare-and-set fences zombies; side effects leave through the outbox.

pub mod positions;
pub mod process;
pub mod run;
pub mod source;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::avro::LineDecoder;
use crate::config::RunArgs;
use crate::db;
use crate::drift::DriftSettings;
use crate::drift::alert::DRIFT_ALERT;
use crate::kafka::{self, ensure_topics, missing_topics};
use crate::observe::{Metrics, Readiness, server};
use crate::publish::Relay;
use crate::retry::Backoff;

pub use run::RunTotals;

/// How long a stopping run keeps publishing pending outbox rows before it leaves them to
/// the next run.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// How long a stopping run waits for the Kafka consumer to leave its group and close.
pub const CONSUMER_CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// Runs the ingestion pipeline until `shutdown` (or idle exit, or a fatal error).
pub async fn run(mut args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<RunTotals> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    args.check_topics()?;
    // Before anything connects: a pass-through property must not undo what exactly-once
    // rests on (the consumer's offsets policy, the relay's idempotence).
    kafka::refuse_unsafe_properties(
        &args.kafka,
        &[kafka::Client::Ingest, kafka::Client::Producer],
    )?;
    let database_url = args.database.url()?;
    let Some(pool) = connect_ledger(&args, &database_url, &shutdown).await? else {
        return Ok(RunTotals::default());
    };
    let store = args.schemas.store()?;
    if !prepare_topics(&args, &shutdown).await? {
        return Ok(RunTotals::default());
    }
    let registry = args.schemas.registry()?;
    let drift = DriftSettings {
        alerts_topic: args.alerts_topic.clone(),
        alert_unknown_isrc: !args.no_unknown_isrc_alerts,
        alert_schema: store
            .latest(DRIFT_ALERT)
            .context("the schemas have no DriftAlert record (drift_alert.v1.avsc)")?,
    };
    let decoder = LineDecoder::new(Arc::new(store), registry);
    let metrics = Arc::new(Metrics::new()?);
    let readiness = Arc::new(Readiness::new(pool.clone()));

    let background = CancellationToken::new();
    if let Some(addr) = args.metrics_socket()? {
        let bound =
            server::serve(addr, metrics.clone(), readiness.clone(), background.clone()).await?;
        tracing::info!(%bound, "metrics on http://{bound}/metrics");
    }
    let relay = Arc::new(Relay::new(&args.kafka, pool.clone(), metrics.clone())?);
    let wake = Arc::new(Notify::new());
    let relay_task = {
        let (relay, wake, stop) = (relay.clone(), wake.clone(), background.clone());
        tokio::spawn(async move { relay.run(wake, stop).await })
    };

    let (source, events) = source::Source::start(
        &args,
        pool.clone(),
        args.batch_size.max(1024) * 2,
        source::ReadBudget::new(args.read_ahead_mib),
    )?;
    tracing::info!(
        topics = ?args.topics,
        group = %args.group,
        database = %db::redact(&database_url),
        batch_size = args.batch_size,
        "royalty-ingest running"
    );
    let batch_loop = run::BatchLoop {
        args: &args,
        pool: pool.clone(),
        decoder: &decoder,
        metrics: &metrics,
        readiness: &readiness,
        outbox: &wake,
        drift: &drift,
        mirror: source.offset_mirror(),
        shutdown: shutdown.clone(),
    };
    let result = batch_loop.run(events).await;
    // Close the consumer off the async workers, within a deadline: leaving the group (and
    // librdkafka's destroy) can block for minutes when the broker is slow or gone.
    let closed = tokio::task::spawn_blocking(move || source.stop_within(CONSUMER_CLOSE_DEADLINE))
        .await
        .unwrap_or(false);
    if !closed {
        tracing::warn!(
            deadline_s = CONSUMER_CLOSE_DEADLINE.as_secs(),
            "the Kafka consumer did not close in time; leaving without the group leave (safe: nothing unwritten was acknowledged)"
        );
    }

    background.cancel();
    let _ = relay_task.await;
    let undrained = match tokio::time::timeout(DRAIN_DEADLINE, relay.drain()).await {
        Ok(Ok(n)) => {
            if n > 0 {
                tracing::info!(published = n, "outbox drained");
            }
            None
        }
        Ok(Err(err)) => Some(format!("{err:#}")),
        Err(_) => Some(format!(
            "not all published within {} s",
            DRAIN_DEADLINE.as_secs()
        )),
    };
    if undrained.is_some() {
        // The next run (or another instance) takes the rows at once, not after the lease.
        if let Err(err) = relay.release_claims().await {
            tracing::warn!(error = %format!("{err:#}"), "outbox claims not given back; they are taken again when their lease runs out");
        }
    }
    let totals = result?;
    if let Some(reason) = undrained {
        // A batch job must not report success while refused lines or alerts are stuck:
        // nobody would look for them. A daemon's next start publishes them.
        let unpublished = relay.unpublished().await.unwrap_or(0);
        if args.exit_when_idle_ms.is_some() && unpublished > 0 {
            anyhow::bail!(
                "the ledger is written, but {unpublished} dead letters / drift alerts are not published ({reason}); \
                 they wait in the outbox table (last_error says why) and the next `royalty-ingest run` publishes them"
            );
        }
        tracing::warn!(unpublished, reason = %reason, "outbox not drained; the next run publishes the rest");
    }
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

/// Connects to the ledger and applies pending migrations. A daemon waits, saying so once,
/// while PostgreSQL is down, starting up or refusing sessions to its database, as it waits
/// for the broker; a batch job stops, and so does a refusal waiting cannot fix (a wrong
/// password, no such database, an untrusted certificate). None: stopped while waiting.
async fn connect_ledger(
    args: &RunArgs,
    database_url: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<PgPool>> {
    let batch_job = args.exit_when_idle_ms.is_some();
    let mut backoff = Backoff::default();
    let mut said = false;
    loop {
        let attempt = async {
            // A connection per lane, the relay's, and room for the rebalance callbacks' reads.
            let pool = db::connect(database_url, 6 + u32::from(args.lanes)).await?;
            db::migrate(&pool).await?;
            // A crash between a batch's commit and its settling leaves summaries pending.
            if let Err(err) = crate::report::settle_replacements(&pool, None).await {
                tracing::warn!(error = %err, "could not settle report replacements at start");
            }
            anyhow::Ok(pool)
        }
        .await;
        match attempt {
            Ok(pool) => {
                if said {
                    tracing::info!(database = %db::redact(database_url), "PostgreSQL answers");
                }
                return Ok(Some(pool));
            }
            Err(err) if batch_job || !db::error::is_retryable(&err) => return Err(err),
            Err(err) => {
                if !said {
                    tracing::warn!(error = %format!("{err:#}"), "waiting for PostgreSQL (said once; retrying quietly)");
                    said = true;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}

/// Waits for the broker and makes sure the topics exist, creating the missing ones unless
/// `--no-create-topics`. A batch job (`--exit-when-idle-ms`) gives up after one bounded
/// probe; a daemon says once what it waits for and keeps waiting. False: stopped while
/// waiting.
async fn prepare_topics(args: &RunArgs, shutdown: &CancellationToken) -> anyhow::Result<bool> {
    let mut all = args.subscribed_topics();
    all.push(&args.dlq_topic);
    all.push(&args.alerts_topic);
    let batch_job = args.exit_when_idle_ms.is_some();
    tracing::info!(brokers = %args.kafka.brokers, "connecting to Kafka");
    let mut backoff = Backoff::default();
    let mut said = false;
    let missing = loop {
        match missing_topics(&args.kafka, &all).await {
            Ok(missing) => break missing,
            Err(err) if batch_job => return Err(err),
            Err(err) => {
                if !said {
                    tracing::warn!(error = %format!("{err:#}"), "waiting for the Kafka broker (said once; retrying quietly)");
                    said = true;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(false),
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    };
    if said {
        tracing::info!(brokers = %args.kafka.brokers, "the Kafka broker answers");
    }
    if missing.is_empty() {
        return Ok(true);
    }
    if !args.no_create_topics {
        let names: Vec<&str> = missing.iter().map(String::as_str).collect();
        ensure_topics(&args.kafka, &names, args.topic_partitions).await?;
        tracing::info!(topics = ?missing, partitions = args.topic_partitions, "created missing topics");
        return Ok(true);
    }
    let outputs: Vec<&String> = missing
        .iter()
        .filter(|t| **t == args.dlq_topic || **t == args.alerts_topic)
        .collect();
    anyhow::ensure!(
        outputs.is_empty(),
        "topic(s) {outputs:?} do not exist and --no-create-topics is set: refused lines and drift alerts \
         would have nowhere to go. Create them, or drop --no-create-topics"
    );
    let inputs: Vec<&String> = missing.iter().filter(|t| args.topics.contains(t)).collect();
    if !inputs.is_empty() {
        anyhow::ensure!(
            !batch_job,
            "input topic(s) {inputs:?} do not exist and --no-create-topics is set: nothing to ingest. \
             Check --topics, create the topics, or drop --no-create-topics"
        );
        tracing::warn!(topics = ?inputs, "input topics do not exist yet; waiting for them to be created");
    }
    if let Some(catalog) = args.catalog_topic()
        && missing.iter().any(|t| t == catalog)
    {
        tracing::warn!(
            topic = catalog,
            "the catalog topic does not exist; catalog updates are read once it is created"
        );
    }
    if let Some(summaries) = args.summaries_topic()
        && missing.iter().any(|t| t == summaries)
    {
        tracing::warn!(
            topic = summaries,
            "the report summaries topic does not exist; summaries are read once it is created"
        );
    }
    Ok(true)
}
