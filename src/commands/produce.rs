//! `royalty-ingest produce FILE...`: publishes DSP report files as royalty lines. Each
//! file is read (streamed, `.gz` too) through a profile or as a DDEX DSR flat file,
//! every line is checked with the same rules `run` applies, bad lines are reported as
//! `file:line: field: rule` and not published, and the rest go to the raw topic keyed by
//! line identity, stamped with the report's creation time. Then the report's control
//! totals go to the summaries topic for `reconcile`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use clap::builder::BoolishValueParser;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rust_decimal::Decimal;

use crate::avro::{ROYALTY_LINE, SchemaStore, WriterSchema, encode_single_object};
use crate::commands::progress::Progress;
use crate::config::{DEFAULT_TOPIC_PARTITIONS, KafkaArgs, checked_topic_name};
use crate::domain::validate;
use crate::kafka::{ensure_topics, idempotent_producer_config, missing_topics};
use crate::produce::profile::Profile;
use crate::produce::{
    FileItem, Format, ReportTotals, delimited, detect, dsr, file_report_id, open,
};
use crate::report::ReportSummary;
use crate::sample::record_key;

/// Most records waiting for the broker's acknowledgement at once.
const IN_FLIGHT: usize = 2_000;

/// Settings of `royalty-ingest produce`.
#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Report files (CSV/TSV/semicolon through --profile, or DDEX DSR flat files; `.gz`
    /// read transparently).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Column mapping of delimited files: a built-in profile (generic, distrokid, cdbaby,
    /// believe-eu) or a TOML file (see profiles/ in the repository).
    #[arg(long, env = "ROYALTY_PRODUCE_PROFILE", default_value = "generic")]
    pub profile: String,

    /// File format: auto (a file starting with a HEAD record is DSR), delimited or dsr.
    #[arg(long, env = "ROYALTY_PRODUCE_FORMAT", value_enum, default_value_t = Format::Auto)]
    pub format: Format,

    /// Topic of royalty lines.
    #[arg(long, env = "ROYALTY_TOPIC", default_value = "royalty.events.raw")]
    pub topic: String,

    /// Topic of report control totals (empty: do not publish them).
    #[arg(
        long,
        env = "ROYALTY_SUMMARIES_TOPIC",
        default_value = "royalty.report.summaries"
    )]
    pub summaries_topic: String,

    /// The report's creation time (RFC 3339), the timestamp of every published line:
    /// an older report re-published later does not override a newer restatement. DSR
    /// files carry theirs (MessageCreatedDateTime); a delimited file without this option
    /// uses its modification time.
    #[arg(long, env = "ROYALTY_REPORT_TIME", value_parser = crate::commands::parse_utc_time)]
    pub report_time: Option<DateTime<Utc>>,

    /// Read, check and count everything; publish nothing.
    #[arg(long, env = "ROYALTY_PRODUCE_DRY_RUN", value_parser = BoolishValueParser::new())]
    pub dry_run: bool,

    /// Exit 0 even though up to this many lines were refused (in all files together).
    #[arg(long, env = "ROYALTY_MAX_REFUSED", default_value_t = 0)]
    pub max_refused: u64,

    /// Royalty-line schema version to write (default: the newest built-in one).
    #[arg(long, env = "ROYALTY_SCHEMA_VERSION")]
    pub schema_version: Option<u32>,

    /// Partitions for topics this command creates.
    #[arg(long, env = "ROYALTY_TOPIC_PARTITIONS", default_value_t = DEFAULT_TOPIC_PARTITIONS)]
    pub partitions: i32,
}

/// What one file did.
#[derive(Debug, Default)]
struct FileOutcome {
    lines: u64,
    published: u64,
    refused: u64,
    totals: ReportTotals,
    /// Why the whole file was not published (DSR control totals, unreadable header, ...).
    rejected: Option<String>,
}

/// Where lines go.
struct Sink {
    producer: Option<FutureProducer>,
    topic: String,
    schema: std::sync::Arc<WriterSchema>,
    store: SchemaStore,
}

/// Publishes every file; fails (non-zero exit) when a file was not published or more
/// lines were refused than `--max-refused`.
pub async fn produce(args: &ProduceArgs) -> anyhow::Result<()> {
    checked_topic_name("--topic", &args.topic)?;
    let summaries_topic = Some(args.summaries_topic.trim())
        .filter(|t| !t.is_empty())
        .map(|t| checked_topic_name("--summaries-topic", t))
        .transpose()?;
    let store = SchemaStore::builtin().context("the built-in schemas do not load")?;
    let schema = match args.schema_version {
        Some(v) => store
            .by_name_version(ROYALTY_LINE, v)
            .with_context(|| format!("--schema-version {v}: no such royalty-line schema"))?,
        None => store
            .latest(ROYALTY_LINE)
            .context("no royalty-line schema")?,
    };
    for file in &args.files {
        anyhow::ensure!(file.is_file(), "{} is not a readable file", file.display());
    }
    let producer = if args.dry_run {
        None
    } else {
        let mut topics = vec![args.topic.as_str()];
        topics.extend(summaries_topic.as_deref());
        missing_topics(&args.kafka, &topics).await?;
        ensure_topics(&args.kafka, &topics, args.partitions).await?;
        Some(
            idempotent_producer_config(&args.kafka)
                .create::<FutureProducer>()
                .context("failed to create the producer")?,
        )
    };
    let sink = Sink {
        producer,
        topic: args.topic.clone(),
        schema,
        store,
    };

    let mut refused_total = 0;
    let mut rejected_files = Vec::new();
    for file in &args.files {
        let outcome = produce_file(args, &sink, file).await?;
        print_outcome(file, &outcome, args.dry_run);
        refused_total += outcome.refused;
        if let Some(reason) = &outcome.rejected {
            rejected_files.push(format!("{}: {reason}", file.display()));
            continue;
        }
        if let (Some(topic), Some(producer)) = (&summaries_topic, &sink.producer) {
            publish_summaries(&sink.store, producer, topic, file, &outcome).await?;
        }
    }
    if let Some(producer) = &sink.producer {
        use rdkafka::producer::Producer;
        producer
            .flush(Duration::from_secs(30))
            .context("the broker did not acknowledge every record")?;
    }
    anyhow::ensure!(
        rejected_files.is_empty(),
        "{} file(s) not published:\n  {}",
        rejected_files.len(),
        rejected_files.join("\n  ")
    );
    anyhow::ensure!(
        refused_total <= args.max_refused,
        "{refused_total} line(s) refused (listed above, not published); fix them or allow them with --max-refused"
    );
    Ok(())
}

/// Reads one file on a blocking thread and publishes its lines as they come.
async fn produce_file(args: &ProduceArgs, sink: &Sink, path: &Path) -> anyhow::Result<FileOutcome> {
    let format = match args.format {
        Format::Auto => detect(path)?,
        other => other,
    };
    let (items, mut receiver) = tokio::sync::mpsc::channel::<FileItem>(1024);
    let mut outcome = FileOutcome::default();
    let mut report_time = args.report_time;
    let reader = match format {
        Format::Dsr => {
            let scan = {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || dsr::scan(open(&path)?, Default::default()))
                    .await
                    .context("the DSR reader stopped")??
            };
            for warning in &scan.warnings {
                eprintln!("{}: note: {warning}", path.display());
            }
            if !scan.is_publishable() {
                for problem in &scan.problems {
                    eprintln!("{}: {problem}", path.display());
                }
                outcome.rejected = Some(format!(
                    "the DSR file disagrees with its own control totals or structure ({} problem(s) above); nothing was published",
                    scan.problems.len().max(1)
                ));
                return Ok(outcome);
            }
            report_time = report_time.or(scan.head.as_ref().map(|h| h.created_at));
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || {
                let declared = scan.summary_revenue();
                scan.emit(open(&path)?, |item| {
                    items
                        .blocking_send(item)
                        .map_err(|_| anyhow::anyhow!("publishing stopped"))
                })?;
                Ok::<_, anyhow::Error>(Some(declared))
            })
        }
        Format::Delimited | Format::Auto => {
            let profile = Profile::load(&args.profile)?;
            if report_time.is_none() {
                let modified = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .with_context(|| {
                        format!("cannot read the modification time of {}", path.display())
                    })?;
                report_time = Some(DateTime::<Utc>::from(modified));
            }
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || {
                let fallback = file_report_id(&path)?;
                let notes = delimited::read_rows(open(&path)?, &profile, &fallback, |item| {
                    items
                        .blocking_send(item)
                        .map_err(|_| anyhow::anyhow!("publishing stopped"))
                })?;
                if !notes.is_empty() {
                    eprintln!(
                        "{}: note: the profile's columns {} are not in the file",
                        path.display(),
                        notes.join(", ")
                    );
                }
                Ok::<_, anyhow::Error>(None)
            })
        }
    };
    let timestamp = report_time.unwrap_or_else(Utc::now);
    let mut progress = Progress::new("lines read", 0);
    let mut in_flight = FuturesUnordered::new();
    while let Some(item) = receiver.recv().await {
        outcome.lines += 1;
        progress.advance(1);
        let line = match item.parsed {
            Ok(line) => line,
            Err(reason) => {
                refuse(&mut outcome, path, item.line_no, &reason);
                continue;
            }
        };
        let checked = match validate(&line) {
            Ok(checked) => checked,
            Err(rejection) => {
                refuse(&mut outcome, path, item.line_no, &rejection.to_string());
                continue;
            }
        };
        let value = match encode_single_object(&sink.schema, &line) {
            Ok(value) => value,
            Err(err) => {
                refuse(&mut outcome, path, item.line_no, &err.to_string());
                continue;
            }
        };
        outcome.totals.add(&checked);
        let Some(producer) = &sink.producer else {
            continue;
        };
        let key = record_key(&line);
        let topic = sink.topic.clone();
        in_flight.push(async move {
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key(key.as_bytes())
                        .payload(&value)
                        .timestamp(timestamp.timestamp_millis()),
                    Duration::from_secs(60),
                )
                .await
                .map_err(|(err, _)| anyhow::Error::new(err))
        });
        if in_flight.len() >= IN_FLIGHT
            && let Some(result) = in_flight.next().await
        {
            result.context("the broker refused a line")?;
            outcome.published += 1;
        }
    }
    while let Some(result) = in_flight.next().await {
        result.context("the broker refused a line")?;
        outcome.published += 1;
    }
    progress.finish();
    let declared = reader.await.context("the file reader stopped")??;
    if let Some(declared) = declared {
        outcome.totals.declared = declared;
    }
    outcome.totals.created_at = Some(timestamp);
    Ok(outcome)
}

fn refuse(outcome: &mut FileOutcome, path: &Path, line_no: u64, reason: &str) {
    outcome.refused += 1;
    eprintln!("{}:{line_no}: {reason}", path.display());
}

fn print_outcome(path: &Path, outcome: &FileOutcome, dry_run: bool) {
    let verb = if dry_run {
        "would publish"
    } else {
        "published"
    };
    let published = if dry_run {
        outcome.lines - outcome.refused
    } else {
        outcome.published
    };
    println!(
        "{}: {} lines, {verb} {published}, refused {}",
        path.display(),
        outcome.lines,
        outcome.refused
    );
    for (currency, totals) in outcome.totals.per_currency() {
        println!(
            "  {currency}: {} lines, quantity {}, amount {}",
            totals.lines, totals.quantity, totals.amount
        );
    }
}

/// One `ReportSummary` per report, DSP, period and currency the file published.
async fn publish_summaries(
    store: &SchemaStore,
    producer: &FutureProducer,
    topic: &str,
    path: &Path,
    outcome: &FileOutcome,
) -> anyhow::Result<()> {
    let created_at = outcome.totals.created_at.unwrap_or_else(Utc::now);
    let declared: &BTreeMap<String, Decimal> = &outcome.totals.declared;
    for (key, totals) in &outcome.totals.by_report {
        let summary = ReportSummary {
            report_id: key.report_id.clone(),
            dsp_name: key.dsp_name.clone(),
            report_period: chrono::NaiveDate::parse_from_str(&key.report_period, "%Y-%m-%d")
                .with_context(|| format!("report period {:?}", key.report_period))?,
            currency: key.currency.clone(),
            lines: totals.lines,
            quantity: totals.quantity,
            amount: totals.amount,
            declared_amount: declared.get(&key.currency).copied(),
            source: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            created_at,
        };
        let value = summary.encode(store)?;
        let record_key = summary.record_key();
        producer
            .send(
                FutureRecord::to(topic)
                    .key(record_key.as_bytes())
                    .payload(&value)
                    .timestamp(created_at.timestamp_millis()),
                Duration::from_secs(60),
            )
            .await
            .map_err(|(err, _)| anyhow::Error::new(err))
            .context("the broker refused a report summary")?;
    }
    Ok(())
}
