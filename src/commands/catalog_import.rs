//! `royalty-ingest catalog import FILE`: loads a master catalog CSV into the versioned
//! catalog in one transaction (bad rows reported with their line numbers, good rows loaded,
//! a re-import of the same file changes nothing), then publishes the drift alerts that
//! changed entries raised.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use clap::builder::BoolishValueParser;

use crate::avro::SchemaStore;
use crate::config::{DEFAULT_TOPIC_PARTITIONS, DatabaseArgs, KafkaArgs, checked_topic_name};
use crate::db;
use crate::kafka::{ensure_topics, missing_topics};
use crate::observe::Metrics;
use crate::publish::Relay;

use crate::drift::alert::DRIFT_ALERT;
use crate::drift::catalog::read_csv;
use crate::drift::store::{self, DriftSettings};

/// Settings of `royalty-ingest catalog import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// CSV file with a header: isrc,upc,title,display_artist,label,iswc,valid_from (upc may
    /// hold several codes separated by `|`; valid_from is the ISO business date the entry
    /// takes effect).
    pub file: PathBuf,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Topic receiving drift alerts.
    #[arg(
        long,
        env = "ROYALTY_ALERTS_TOPIC",
        default_value = "catalog.drift.alerts"
    )]
    pub alerts_topic: String,

    /// Load only; leave the alerts in the outbox for the next `run` to publish.
    #[arg(long, env = "ROYALTY_CATALOG_NO_PUBLISH", value_parser = BoolishValueParser::new())]
    pub no_publish: bool,

    /// Load the good rows and exit 0 even though up to this many rows are bad (they are
    /// listed and skipped). Past it, nothing is loaded and the command exits 1, as
    /// `produce --max-refused` does for report lines.
    #[arg(long, env = "ROYALTY_CATALOG_MAX_SKIPPED", default_value_t = 0)]
    pub max_skipped: u64,

    /// Partitions of the alerts topic if this command has to create it (as `run` does).
    #[arg(long, env = "ROYALTY_TOPIC_PARTITIONS", default_value_t = DEFAULT_TOPIC_PARTITIONS)]
    pub topic_partitions: i32,
}

/// Imports the file and prints what it did. Fails (non-zero exit) when more rows are bad
/// than `--max-skipped` (then nothing is loaded), or when the alerts it raised could not
/// be published (the import is committed; the alerts wait in the outbox for `run`).
pub async fn import_catalog(args: &ImportArgs) -> anyhow::Result<()> {
    checked_topic_name("--alerts-topic", &args.alerts_topic)?;
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let (good, bad) = read_csv(std::io::BufReader::new(file))
        .map_err(|err| anyhow::anyhow!("{}: {err}; nothing was loaded", args.file.display()))?;
    for row in &bad {
        eprintln!(
            "{}:{}: {} (row not loaded)",
            args.file.display(),
            row.line,
            row.reason
        );
    }
    // A bad row is a catalog entry the ledger will not know: loading the rest in silence
    // (exit 0) would let a cron job report success with entries missing.
    let skipped = u64::try_from(bad.len()).unwrap_or(u64::MAX);
    anyhow::ensure!(
        skipped <= args.max_skipped,
        "{}: {skipped} bad row(s) (listed above); nothing was loaded (fix them, or allow them with --max-skipped {skipped})",
        args.file.display()
    );
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| args.file.display().to_string());
    let entries: Vec<_> = good
        .into_iter()
        .map(|(line, entry)| (entry, format!("import:{name}:{line}")))
        .collect();

    let store = SchemaStore::builtin().context("the built-in schemas do not load")?;
    let settings = DriftSettings {
        alerts_topic: args.alerts_topic.clone(),
        alert_unknown_isrc: true,
        alert_schema: store.latest(DRIFT_ALERT).context("no DriftAlert schema")?,
    };
    let pool = db::connect(&args.database.url()?, 2).await?;
    db::migrate(&pool).await?;
    let mut tx = pool
        .begin()
        .await
        .context("cannot begin the import transaction")?;
    let (stats, drifts) =
        store::apply_entries(&mut tx, entries.iter().map(|(e, s)| (e, s.as_str())))
            .await
            .map_err(anyhow::Error::new)
            .context("loading the catalog failed; nothing was loaded")?;
    let alerts = store::record_drifts(&mut tx, &drifts, &settings)
        .await
        .map_err(anyhow::Error::new)
        .context("recording catalog drift failed; nothing was loaded")?;
    tx.commit().await.context("cannot commit the import")?;
    println!(
        "{}: {} rows read, {} new versions, {} superseded, {} unchanged, {} bad rows; {} drift alerts",
        args.file.display(),
        entries.len() + bad.len(),
        stats.created,
        stats.superseded,
        stats.unchanged,
        bad.len(),
        alerts.ids.len()
    );
    if !alerts.ids.is_empty() && !args.no_publish {
        publish_alerts(args, pool, &alerts.ids).await?;
    }
    Ok(())
}

/// Publishes the alerts this import raised (other pending outbox rows are `run`'s). When
/// the broker does not take them, they stay in the outbox and the error says so: an exit 0
/// would tell a cron job that subscribers have heard of the changes when they have not.
async fn publish_alerts(
    args: &ImportArgs,
    pool: sqlx::PgPool,
    alert_ids: &[String],
) -> anyhow::Result<()> {
    let relay = Relay::new(&args.kafka, pool, Arc::new(Metrics::new()?))?;
    let published = async {
        // A bounded first question, so an unreachable broker is named within seconds.
        missing_topics(&args.kafka, &[&args.alerts_topic]).await?;
        ensure_topics(&args.kafka, &[&args.alerts_topic], args.topic_partitions).await?;
        relay.drain_messages(alert_ids).await
    };
    let why = match tokio::time::timeout(std::time::Duration::from_secs(60), published).await {
        Ok(Ok(n)) => {
            println!("published {n} alerts to {}", args.alerts_topic);
            return Ok(());
        }
        Ok(Err(err)) => format!("{err:#}"),
        Err(_) => "the broker did not take them within 60 s".to_string(),
    };
    // Cut short while sending: `run` takes them at once, not when this claim's lease ends.
    if let Err(err) = relay.release_claims().await {
        tracing::warn!(error = %format!("{err:#}"), "outbox claims not given back; `run` takes them when their lease runs out");
    }
    // A re-import would not send them (it changes nothing, so raises nothing): only the
    // relay of `run` publishes what is left in the outbox.
    anyhow::bail!(
        "the catalog is loaded, but its {} drift alert(s) were not published to {}: {why}. \
         They wait in the outbox; start `royalty-ingest run` (or `run --exit-when-idle-ms 1000` \
         as a one-off) once the broker is reachable and it publishes them",
        alert_ids.len(),
        args.alerts_topic
    )
}
