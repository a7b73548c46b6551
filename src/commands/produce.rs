//! `royalty-ingest produce FILE...`: publishes DSP report files as royalty lines. Each
//! file is read (streamed, `.gz` too) through a profile or as a DDEX DSR flat file,
//! every line is checked with the same rules `run` applies, bad lines are reported as
//! `file:line: field: rule` and not published, and the rest go to the raw topic keyed by
//! line identity, stamped with the report's creation time. Then the report's control
//! totals go to the summaries topic for `reconcile`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use clap::builder::BoolishValueParser;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rust_decimal::Decimal;

use crate::avro::{ROYALTY_LINE, SchemaStore, WriterSchema, encode_single_object};
use crate::commands::progress::Progress;
use crate::config::{DEFAULT_TOPIC_PARTITIONS, KafkaArgs, checked_topic_name};
use crate::domain::{RoyaltyLine, validate};
use crate::kafka::{ensure_topics, idempotent_producer_config, missing_topics};
use crate::produce::delimited::IdentityArgs;
use crate::produce::identity::SeenIds;
use crate::produce::profile::Profile;
use crate::produce::{
    FileItem, Format, ReportTotals, content_sha256, delimited, detect, dsr, ensure_text, open,
};
use crate::record::REPORT_TIME_HEADER;
use crate::report::{self, ReportSummary};
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

    /// When the report was made (RFC 3339), for files that do not say: its version, which
    /// every published line carries in its `royalty.report.time` header (the record
    /// timestamp is the publication time). A later version of a report replaces an earlier
    /// one; an older one published later changes nothing. A DSR file's own
    /// MessageCreatedDateTime, or a profile's `report_time` column, comes first; a delimited
    /// file with neither needs this option (a file's modification time is never used: a
    /// copy changes it).
    #[arg(long, env = "ROYALTY_REPORT_TIME", value_parser = crate::commands::parse_utc_time)]
    pub report_time: Option<DateTime<Utc>>,

    /// The report every line of a delimited file belongs to, when the file has no report
    /// id column and the profile no `report_key`.
    #[arg(long, env = "ROYALTY_REPORT_ID")]
    pub report_id: Option<String>,

    /// Tell apart the lines of a delimited file that has no transaction id column and whose
    /// profile has no `line_key` by their line numbers. Use with care: a re-issued file
    /// with a row added or removed then restates the wrong lines.
    #[arg(long, env = "ROYALTY_LINE_NUMBER_IDENTITY", value_parser = BoolishValueParser::new())]
    pub line_number_identity: bool,

    /// Publish a file even when its content (gunzipped) was published before. Without it,
    /// such a file is a no-op: its lines and totals are already on the topics.
    #[arg(long, env = "ROYALTY_REPUBLISH", value_parser = BoolishValueParser::new())]
    pub republish: bool,

    /// Read, check and count everything; publish nothing.
    #[arg(long, env = "ROYALTY_PRODUCE_DRY_RUN", value_parser = BoolishValueParser::new())]
    pub dry_run: bool,

    /// Publish a file's good lines and exit 0 even though up to this many lines were
    /// refused (in all files together). Past it, nothing of a file with a refused line is
    /// published.
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
    /// SHA-256 of the file's content (gunzipped).
    content_sha256: String,
    /// The content was published before: nothing was sent again.
    already_published: bool,
}

/// Where lines go.
struct Sink {
    producer: Option<FutureProducer>,
    topic: String,
    schema: Arc<WriterSchema>,
    store: SchemaStore,
}

/// Publishes every file; fails (non-zero exit) when a file was not published or more
/// lines were refused than `--max-refused`. Every file is checked whole before any of it
/// is published, and a file that cannot be read does not stop the others.
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

    // What was published before, by content: a file published again is a no-op.
    let published = match (&summaries_topic, &sink.producer) {
        (Some(topic), Some(_)) if !args.republish => {
            let (kafka, topic) = (args.kafka.clone(), topic.clone());
            tokio::task::spawn_blocking(move || {
                let store = SchemaStore::builtin().context("the built-in schemas do not load")?;
                report::read_summaries(&kafka, &store, &topic, |_, low| low)
            })
            .await
            .context("reading the summaries topic was interrupted")??
            .into_iter()
            .filter_map(|s| s.content_sha256)
            .collect()
        }
        _ => HashSet::new(),
    };

    let mut refused_total = 0;
    let mut rejected_files = Vec::new();
    for file in &args.files {
        let outcome = match produce_file(args, &sink, file, refused_total, &published).await {
            Ok(outcome) => outcome,
            Err(FileError::Unreadable(err)) => {
                eprintln!("{}: {err:#}", file.display());
                rejected_files.push(format!("{}: {err:#}", file.display()));
                continue;
            }
            Err(FileError::Publish(err)) => return Err(err),
        };
        print_outcome(file, &outcome, args.dry_run);
        refused_total += outcome.refused;
        if let Some(reason) = &outcome.rejected {
            rejected_files.push(format!("{}: {reason}", file.display()));
            continue;
        }
        if outcome.already_published {
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

/// Why a file stopped: its own fault (the next file is still tried) or the broker's.
enum FileError {
    /// The file cannot be read or makes no sense as a report.
    Unreadable(anyhow::Error),
    /// Publishing failed: the broker refused or is gone.
    Publish(anyhow::Error),
}

/// How a file is read: the DSR scan (first pass already done) or a profile.
#[derive(Clone)]
enum Reader {
    Dsr(Arc<dsr::DsrScan>),
    Delimited(Arc<Profile>, IdentityArgs),
}

impl Reader {
    /// Reads the file's items in order (blocking); returns remarks worth telling the user
    /// once (both passes read the same file).
    fn read(
        &self,
        path: &Path,
        out: impl FnMut(FileItem) -> anyhow::Result<()>,
    ) -> anyhow::Result<Option<String>> {
        Ok(match self {
            Reader::Dsr(scan) => match scan.emit(open(path)?, out)? {
                0 => None,
                collisions => Some(format!(
                    "{collisions} usage line(s) share their natural key (release, ISRC, model, use type, territory, service, price) with an earlier line and are told apart by their order among those lines"
                )),
            },
            Reader::Delimited(profile, identity) => {
                let missing = delimited::read_rows(open(path)?, profile, identity, out)?;
                (!missing.is_empty()).then(|| {
                    format!(
                        "the profile's columns {} are not in the file",
                        missing.join(", ")
                    )
                })
            }
        })
    }
}

/// A line ready to publish.
struct Ready {
    checked: RoyaltyLine,
    value: Vec<u8>,
    key: String,
}

/// Turns items into lines to publish with the same rules in both passes, so the publish
/// pass skips exactly what the check pass refused.
struct ItemCheck {
    schema: Arc<WriterSchema>,
    seen: SeenIds,
    /// The report time the rows state (the first one that does).
    row_time: Option<(DateTime<Utc>, u64)>,
}

impl ItemCheck {
    fn new(schema: Arc<WriterSchema>) -> ItemCheck {
        ItemCheck {
            schema,
            seen: SeenIds::default(),
            row_time: None,
        }
    }

    fn check(&mut self, item: FileItem) -> Result<Ready, String> {
        let line = item.parsed?;
        match item.report_time {
            Some(Ok(at)) => match self.row_time {
                None => self.row_time = Some((at, item.line_no)),
                Some((first, first_line)) if first != at => {
                    return Err(format!(
                        "report_time: {} differs from line {first_line}'s {}: one file, one report version",
                        at.to_rfc3339(),
                        first.to_rfc3339()
                    ));
                }
                Some(_) => {}
            },
            Some(Err(e)) => return Err(format!("report_time: {e}")),
            None => {}
        }
        let checked = validate(&line).map_err(|rejection| rejection.to_string())?;
        let value = encode_single_object(&self.schema, &line).map_err(|err| err.to_string())?;
        if let Some(first) = self.seen.claim(&checked.key.to_hex(), item.line_no) {
            return Err(format!(
                "identity: line {first} has the same identity ({} {} {}): the profile's line_key does not tell them apart",
                checked.dsp_name, checked.report_period, checked.transaction_id
            ));
        }
        Ok(Ready {
            key: record_key(&line),
            checked,
            value,
        })
    }
}

/// Checks one file whole, then publishes its lines unless it must not be.
async fn produce_file(
    args: &ProduceArgs,
    sink: &Sink,
    path: &Path,
    refused_before: u64,
    published: &HashSet<String>,
) -> Result<FileOutcome, FileError> {
    let unreadable = FileError::Unreadable;
    let mut outcome = FileOutcome::default();
    ensure_text(path).map_err(unreadable)?;
    outcome.content_sha256 = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || content_sha256(&path))
            .await
            .context("the file reader stopped")
            .and_then(|r| r)
            .map_err(unreadable)?
    };
    let format = match args.format {
        Format::Auto => detect(path).map_err(unreadable)?,
        other => other,
    };
    // The report's own time first (DSR HEAD, or the rows' report_time column), then the option.
    let mut report_time = None;
    let mut declared = None;
    let reader = match format {
        Format::Dsr => {
            let scan = {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || dsr::scan(open(&path)?, Default::default()))
                    .await
                    .context("the DSR reader stopped")
                    .and_then(|r| r)
                    .map_err(unreadable)?
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
            report_time = scan.head.as_ref().map(|h| h.created_at);
            declared = Some(scan.summary_revenue());
            Reader::Dsr(Arc::new(scan))
        }
        Format::Delimited | Format::Auto => Reader::Delimited(
            Arc::new(Profile::load(&args.profile).map_err(unreadable)?),
            IdentityArgs {
                report_id: args.report_id.clone(),
                line_numbers: args.line_number_identity,
            },
        ),
    };
    if args.line_number_identity && matches!(reader, Reader::Delimited(..)) {
        eprintln!(
            "{}: warning: lines without a transaction id are identified by their line numbers (--line-number-identity): re-issue this report only with the same rows in the same order",
            path.display()
        );
    }

    // The check pass: every line read, checked and counted; nothing published.
    let checked = {
        let (reader, path, schema) = (reader.clone(), path.to_path_buf(), sink.schema.clone());
        tokio::task::spawn_blocking(move || {
            let mut check = ItemCheck::new(schema);
            let mut totals = ReportTotals::default();
            let (mut lines, mut refused) = (0u64, 0u64);
            let mut progress = Progress::new("lines checked", 0);
            let remark = reader.read(&path, |item| {
                lines += 1;
                progress.advance(1);
                let line_no = item.line_no;
                match check.check(item) {
                    Ok(ready) => totals.add(&ready.checked),
                    Err(reason) => {
                        refused += 1;
                        eprintln!("{}:{line_no}: {reason}", path.display());
                    }
                }
                Ok(())
            })?;
            progress.finish();
            if let Some(remark) = remark {
                eprintln!("{}: note: {remark}", path.display());
            }
            Ok::<_, anyhow::Error>((lines, refused, totals, check.row_time.map(|(at, _)| at)))
        })
        .await
        .context("the file reader stopped")
        .and_then(|r| r)
        .map_err(unreadable)?
    };
    let (lines, refused, totals, row_time) = checked;
    outcome.lines = lines;
    outcome.refused = refused;
    outcome.totals = totals;
    let Some(timestamp) = report_time.or(row_time).or(args.report_time) else {
        outcome.rejected = Some(
            "the file states no report time: pass --report-time (when the DSP made this version of the report, RFC 3339) or map the profile's report_time column; a file's modification time is not used, because a copy changes it".into(),
        );
        return Ok(outcome);
    };
    if refused > 0 && refused_before + refused > args.max_refused {
        outcome.rejected = Some(format!(
            "{refused} line(s) refused (listed above); nothing of this file was published (fix them, or allow them with --max-refused)"
        ));
        return Ok(outcome);
    }
    if let Some(declared) = declared {
        outcome.totals.declared = declared;
    }
    outcome.totals.created_at = Some(timestamp);
    let Some(producer) = &sink.producer else {
        return Ok(outcome);
    };
    if published.contains(&outcome.content_sha256) {
        outcome.already_published = true;
        return Ok(outcome);
    }

    // The publish pass: the same checks, so exactly the lines counted above go out.
    let (items, mut receiver) = tokio::sync::mpsc::channel::<FileItem>(1024);
    let reading = {
        let (reader, path) = (reader.clone(), path.to_path_buf());
        tokio::task::spawn_blocking(move || {
            reader.read(&path, |item| {
                items
                    .blocking_send(item)
                    .map_err(|_| anyhow::anyhow!("publishing stopped"))
            })
        })
    };
    // The report's time versions its lines; it travels in a header and the records carry
    // the time they are published, so the topic's retention counts from now (a report is
    // weeks old when it is delivered: stamped with its own time, a broker's 7-day
    // retention would delete its lines within minutes).
    let made = timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut check = ItemCheck::new(sink.schema.clone());
    let mut progress = Progress::new("lines published", lines);
    let mut in_flight = FuturesUnordered::new();
    while let Some(item) = receiver.recv().await {
        progress.advance(1);
        let Ok(ready) = check.check(item) else {
            continue;
        };
        let topic = sink.topic.clone();
        let headers = OwnedHeaders::new().insert(Header {
            key: REPORT_TIME_HEADER,
            value: Some(made.as_str()),
        });
        in_flight.push(async move {
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key(ready.key.as_bytes())
                        .payload(&ready.value)
                        .headers(headers),
                    Duration::from_secs(60),
                )
                .await
                .map_err(|(err, _)| anyhow::Error::new(err))
        });
        if in_flight.len() >= IN_FLIGHT
            && let Some(result) = in_flight.next().await
        {
            result
                .context("the broker refused a line")
                .map_err(FileError::Publish)?;
            outcome.published += 1;
        }
    }
    while let Some(result) = in_flight.next().await {
        result
            .context("the broker refused a line")
            .map_err(FileError::Publish)?;
        outcome.published += 1;
    }
    progress.finish();
    // The remark was told in the check pass.
    reading
        .await
        .context("the file reader stopped")
        .and_then(|r| r)
        .map_err(FileError::Publish)?;
    Ok(outcome)
}

fn print_outcome(path: &Path, outcome: &FileOutcome, dry_run: bool) {
    let verb = if dry_run {
        "would publish"
    } else {
        "published"
    };
    let published = if dry_run && outcome.rejected.is_none() {
        outcome.lines - outcome.refused
    } else {
        outcome.published
    };
    if outcome.already_published {
        println!(
            "{}: {} lines, already published (the same content, sha256 {}): nothing sent; --republish sends it again",
            path.display(),
            outcome.lines,
            &outcome.content_sha256[..16.min(outcome.content_sha256.len())]
        );
        return;
    }
    println!(
        "{}: {} lines, {verb} {published}, refused {}",
        path.display(),
        outcome.lines,
        outcome.refused
    );
    for (currency, totals) in outcome.totals.per_currency() {
        println!(
            "  {currency}: {} lines, quantity {}, amount {}",
            totals.lines,
            totals.quantity,
            totals.amount.normalize()
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
            content_sha256: Some(outcome.content_sha256.clone()),
        };
        let value = summary.encode(store)?;
        let record_key = summary.record_key();
        producer
            .send(
                // Versioned by `created_at` inside; stamped with the time it is published.
                FutureRecord::to(topic)
                    .key(record_key.as_bytes())
                    .payload(&value),
                Duration::from_secs(60),
            )
            .await
            .map_err(|(err, _)| anyhow::Error::new(err))
            .context("the broker refused a report summary")?;
    }
    Ok(())
}
