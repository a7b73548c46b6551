//! `royalty-ingest alerts tail`: follows the drift alerts topic for the people who act on
//! drift. One readable line per alert (or one JSON object with `--json`), repeats of a
//! publication dropped by their stable id, filters by DSP and kind, its own consumer group
//! that resumes exactly where it stopped, a clean exit on Ctrl-C.
//!
//! Alerts are taken in batches of what the consumer has at hand (up to
//! [`READ_AHEAD`]): `--dsp` asks `drift_events` once per batch, by primary key and the
//! alert index, so its cost grows with the alerts read, never with alerts × drift events.
//! A message's offset is stored for the group only once it is handled (printed or
//! filtered out), so a session stopped by `--limit`, Ctrl-C or its reader leaving resumes
//! after the last alert it handled, not after what it read ahead.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::builder::BoolishValueParser;
use futures::FutureExt;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::avro::SchemaStore;
use crate::config::{DatabaseArgs, KafkaArgs, checked_topic_name};
use crate::db;
use crate::kafka::{BROKER_PROBE_TIMEOUT, client_config, missing_topics, topic_partitions};
use crate::output;
use crate::retry::Backoff;

use crate::drift::alert::DriftAlert;
use crate::drift::detect::{ALL_KINDS, DriftKind};

/// Most alerts taken (and, with `--dsp`, looked up) at once.
const READ_AHEAD: usize = 500;

/// Settings of `royalty-ingest alerts tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// The ledger database; read only with --dsp (which DSPs showed each drift).
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Topic of the drift alerts.
    #[arg(
        long,
        env = "ROYALTY_ALERTS_TOPIC",
        default_value = "catalog.drift.alerts"
    )]
    pub alerts_topic: String,

    /// Consumer group of this subscriber: the next session resumes exactly where this one
    /// stopped (from its first session on, even if it saw no alert).
    #[arg(
        long,
        env = "ROYALTY_ALERTS_GROUP",
        default_value = "royalty-alerts-tail"
    )]
    pub group: String,

    /// Read every alert still on the topic, not only new ones (does not move the group).
    #[arg(long, env = "ROYALTY_ALERTS_FROM_BEGINNING", value_parser = BoolishValueParser::new())]
    pub from_beginning: bool,

    /// One JSON object per line instead of readable text.
    #[arg(long, env = "ROYALTY_ALERTS_JSON", value_parser = BoolishValueParser::new())]
    pub json: bool,

    /// Only drifts seen at this DSP (case-insensitive): the DSP that raised the alert or
    /// any DSP whose lines showed the same drift (for an alert of several unknown tracks:
    /// any of them) by the time the alert is read (from the ledger's `drift_events`, hence
    /// --database-url; one query per batch of alerts).
    #[arg(long, env = "ROYALTY_ALERTS_DSP")]
    pub dsp: Option<String>,

    /// Only alerts of this kind (repeatable; comma-separated in the variable):
    /// upc_mismatch, label_mismatch, artist_mismatch, unknown_isrc, catalog_upc_changed,
    /// catalog_label_changed, catalog_artist_changed.
    #[arg(long, env = "ROYALTY_ALERTS_KIND", value_delimiter = ',', value_parser = parse_kind)]
    pub kind: Vec<DriftKind>,

    /// Exit after printing this many alerts.
    #[arg(long, env = "ROYALTY_ALERTS_LIMIT")]
    pub limit: Option<usize>,

    /// Exit 0 when no alert arrived for this many milliseconds (a batch job). Then an
    /// unreachable broker or a missing topic ends the command with an error within 10 s;
    /// without it, the command says once what it waits for and keeps waiting.
    #[arg(long, env = "ROYALTY_ALERTS_IDLE_EXIT_MS")]
    pub idle_exit_ms: Option<u64>,
}

fn parse_kind(raw: &str) -> Result<DriftKind, String> {
    DriftKind::parse(raw.trim()).ok_or_else(|| {
        let names: Vec<&str> = ALL_KINDS.iter().map(|k| k.as_str()).collect();
        format!("unknown kind {raw:?}; one of {}", names.join(", "))
    })
}

/// Which alerts to print.
struct AlertFilter<'a> {
    args: &'a TailArgs,
    /// The ledger, when filtering by DSP.
    pool: Option<PgPool>,
}

impl AlertFilter<'_> {
    /// Which of `alerts` to print: of the kinds asked for, and with `--dsp`, raised at
    /// that DSP or showing the same drift there since (for an alert of several unknown
    /// tracks: any of its tracks). One query for all the alerts the DSP that raised them
    /// does not settle.
    async fn wanted(&self, alerts: &[&DriftAlert]) -> anyhow::Result<Vec<bool>> {
        let kinds = &self.args.kind;
        let mut wanted: Vec<bool> = alerts
            .iter()
            .map(|a| kinds.is_empty() || a.kind().is_some_and(|k| kinds.contains(&k)))
            .collect();
        let Some(dsp) = self.args.dsp.as_deref().map(str::trim) else {
            return Ok(wanted);
        };
        let mut ask: Vec<usize> = Vec::new();
        for (i, alert) in alerts.iter().enumerate() {
            if wanted[i] && !dsp.eq_ignore_ascii_case(alert.dsp_name.trim()) {
                wanted[i] = false;
                ask.push(i);
            }
        }
        let Some(pool) = self.pool.as_ref().filter(|_| !ask.is_empty()) else {
            return Ok(wanted);
        };
        let ids: Vec<&str> = ask.iter().map(|&i| alerts[i].alert_id.as_str()).collect();
        // Drift events are counted per DSP as the line key spells it (lower-case,
        // trimmed). An alert for several unknown tracks is not a drift id: its tracks name
        // it (`alert_id`). Each alert is looked up through the primary key and the alert
        // index: scalar subqueries, which PostgreSQL never turns into a hash of every
        // drift_events row of the DSP (what `EXISTS … OR EXISTS` became, read once per
        // alert before, once per query since).
        let seen: HashSet<String> = sqlx::query_scalar(
            "SELECT a.id FROM unnest($1::text[]) AS a(id)
              WHERE coalesce((SELECT true FROM drift_events e
                               WHERE e.drift_id = a.id AND e.dsp_name = $2 LIMIT 1), false)
                 OR coalesce((SELECT true FROM drift_events t
                                JOIN drift_events e
                                  ON e.drift_id = t.drift_id AND e.dsp_name = $2
                               WHERE t.alert_id = a.id LIMIT 1), false)",
        )
        .bind(&ids)
        .bind(dsp.to_lowercase())
        .fetch_all(pool)
        .await
        .context("cannot read drift_events for --dsp")?
        .into_iter()
        .collect();
        for i in ask {
            wanted[i] = seen.contains(&alerts[i].alert_id);
        }
        Ok(wanted)
    }
}

/// Follows the topic until Ctrl-C, the limit or the idle time.
pub async fn tail(args: &TailArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    checked_topic_name("--alerts-topic", &args.alerts_topic)?;
    let store = SchemaStore::builtin().context("the built-in schemas do not load")?;
    let pool = match &args.dsp {
        Some(_) => Some(db::connect(&args.database.url()?, 1).await?),
        None => None,
    };
    let filter = AlertFilter { args, pool };
    if !wait_for_topic(args, &shutdown).await? {
        return Ok(());
    }
    let mut config = client_config(&args.kafka);
    config
        .set("group.id", &args.group)
        .set("auto.offset.reset", "latest")
        .set(
            "enable.auto.commit",
            if args.from_beginning { "false" } else { "true" },
        )
        // Stored once handled (print_alerts), not as read: a batch read ahead must not
        // move the group past alerts this session never showed.
        .set("enable.auto.offset.store", "false");
    if args.from_beginning {
        let consumer: StreamConsumer = config
            .create()
            .context("failed to create the alerts consumer")?;
        let assignment = partitions_from(&consumer, &args.alerts_topic, Offset::Beginning)?;
        consumer.assign(&assignment)?;
        return print_alerts(args, &filter, &store, &consumer, &shutdown).await;
    }
    anchor_group(&config, &args.alerts_topic).await?;
    let consumer: StreamConsumer = config
        .create()
        .context("failed to create the alerts consumer")?;
    consumer
        .subscribe(&[&args.alerts_topic])
        .with_context(|| format!("cannot subscribe to {}", args.alerts_topic))?;
    print_alerts(args, &filter, &store, &consumer, &shutdown).await
}

/// Waits until the broker answers and the alerts topic exists: one bounded probe for a
/// batch job (`--idle-exit-ms`, `--from-beginning`), said once and waited for otherwise.
/// False: stopped while waiting.
async fn wait_for_topic(args: &TailArgs, shutdown: &CancellationToken) -> anyhow::Result<bool> {
    let batch_job = args.idle_exit_ms.is_some() || args.from_beginning;
    let mut backoff = Backoff::default();
    let mut waiting_for: Option<String> = None;
    loop {
        let problem = match missing_topics(&args.kafka, &[&args.alerts_topic]).await {
            Ok(missing) if missing.is_empty() => return Ok(true),
            Ok(_) => format!(
                "topic {} does not exist (no alert was raised yet, or check --alerts-topic)",
                args.alerts_topic
            ),
            Err(err) => format!("{err:#}"),
        };
        anyhow::ensure!(!batch_job, problem);
        if waiting_for.as_deref() != Some(problem.as_str()) {
            eprintln!("waiting: {problem}");
            waiting_for = Some(problem);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(false),
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Every partition of `topic` at `offset`.
fn partitions_from(
    consumer: &StreamConsumer,
    topic: &str,
    offset: Offset,
) -> anyhow::Result<TopicPartitionList> {
    // The metadata calls block (and are retried while the broker lists the topic with an
    // error): keep them off the async workers.
    let partitions =
        tokio::task::block_in_place(|| topic_partitions(consumer, topic, BROKER_PROBE_TIMEOUT))?
            .with_context(|| format!("topic {topic} does not exist"))?;
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment.add_partition_offset(topic, partition, offset)?;
    }
    Ok(assignment)
}

/// Gives the group a stored position on every partition that has none, at the current end:
/// a group whose first session saw no alert would otherwise start its next session at the
/// newest alert and miss what was published in between. Positions already stored are left
/// alone. (A commit refused because other members are active is harmless: they store
/// positions of their own.)
async fn anchor_group(config: &ClientConfig, topic: &str) -> anyhow::Result<()> {
    let consumer: BaseConsumer = config
        .create()
        .context("failed to create the alerts consumer")?;
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let Some(partitions) = topic_partitions(&consumer, &topic, BROKER_PROBE_TIMEOUT)? else {
            return Ok(());
        };
        let mut wanted = TopicPartitionList::new();
        for partition in partitions {
            wanted.add_partition(&topic, partition);
        }
        let committed = consumer
            .committed_offsets(wanted, BROKER_PROBE_TIMEOUT)
            .context("cannot read the group's stored positions")?;
        let mut anchors = TopicPartitionList::new();
        for element in committed.elements() {
            if matches!(element.offset(), Offset::Offset(_)) {
                continue;
            }
            let (_, high) = consumer
                .fetch_watermarks(element.topic(), element.partition(), BROKER_PROBE_TIMEOUT)
                .with_context(|| {
                    format!(
                        "cannot read the end of {}[{}]",
                        element.topic(),
                        element.partition()
                    )
                })?;
            anchors.add_partition_offset(
                element.topic(),
                element.partition(),
                Offset::Offset(high),
            )?;
        }
        if anchors.count() > 0
            && let Err(err) = consumer.commit(&anchors, CommitMode::Sync)
        {
            tracing::debug!(error = %err, "group position not anchored (other members active?)");
        }
        Ok(())
    })
    .await
    .context("anchoring the group position was interrupted")?
}

/// Prints alerts until Ctrl-C, the limit, the idle time or the reader of stdout leaving.
/// Consumer errors are shown once each (librdkafka retries by itself) and never count as
/// activity.
async fn print_alerts(
    args: &TailArgs,
    filter: &AlertFilter<'_>,
    store: &SchemaStore,
    consumer: &StreamConsumer,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut warned: HashSet<String> = HashSet::new();
    let mut printed = 0usize;
    let idle = args.idle_exit_ms.map(Duration::from_millis);
    let mut last_alert = tokio::time::Instant::now();
    loop {
        if args.limit.is_some_and(|limit| printed >= limit) {
            return Ok(());
        }
        let idle_deadline = idle.map(|idle| last_alert + idle);
        let first = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            // Printing is this command's only job: nobody reads it any more (`| head`).
            _ = output::reader_left() => return Ok(()),
            _ = async { match idle_deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                } } => return Ok(()),
            received = consumer.recv() => received,
        };
        // What else the consumer has at hand, without waiting for more.
        let mut received = vec![first];
        while received.len() < READ_AHEAD {
            match consumer.recv().now_or_never() {
                Some(next) => received.push(next),
                None => break,
            }
        }
        let mut batch: Vec<(BorrowedMessage<'_>, Option<DriftAlert>)> =
            Vec::with_capacity(received.len());
        for result in received {
            match result {
                Ok(message) => {
                    last_alert = tokio::time::Instant::now();
                    let alert = decoded(store, &message);
                    batch.push((message, alert));
                }
                Err(err) => {
                    let text = err.to_string();
                    if warned.insert(text.clone()) {
                        eprintln!("warning: {text} (shown once; the client keeps retrying)");
                    }
                }
            }
        }
        // Repeats of a publication (earlier or in this batch) are dropped by id.
        let mut fresh: Vec<usize> = Vec::new();
        let mut in_batch: HashSet<&str> = HashSet::new();
        for (i, (_, alert)) in batch.iter().enumerate() {
            if let Some(alert) = alert
                && !seen.contains(&alert.alert_id)
                && in_batch.insert(alert.alert_id.as_str())
            {
                fresh.push(i);
            }
        }
        let candidates: Vec<&DriftAlert> =
            fresh.iter().filter_map(|&i| batch[i].1.as_ref()).collect();
        let wanted = filter.wanted(&candidates).await?;
        let mut to_print = fresh
            .iter()
            .zip(wanted)
            .filter_map(|(&i, want)| want.then_some(i))
            .peekable();
        for (i, (message, alert)) in batch.iter().enumerate() {
            if to_print.peek() == Some(&i) {
                to_print.next();
                let alert = alert.as_ref().expect("a fresh alert decoded");
                let line = if args.json {
                    serde_json::to_string(alert)?
                } else {
                    readable(alert)
                };
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{line}")?;
                stdout.flush()?;
                printed += 1;
            }
            if let Some(alert) = alert {
                seen.insert(alert.alert_id.clone());
            }
            handled(consumer, message);
            if args.limit.is_some_and(|limit| printed >= limit) {
                return Ok(());
            }
        }
    }
}

/// The alert a message carries, or None after saying it is unreadable.
fn decoded(store: &SchemaStore, message: &BorrowedMessage<'_>) -> Option<DriftAlert> {
    match DriftAlert::decode(store, message.payload().unwrap_or_default()) {
        Ok(alert) => Some(alert),
        Err(err) => {
            eprintln!(
                "warning: skipping an unreadable alert at {}[{}]@{}: {err}",
                message.topic(),
                message.partition(),
                message.offset()
            );
            None
        }
    }
}

/// Stores the message's offset for the group's next commit: it was printed or filtered
/// out. (Refused after a rebalance took the partition away: its next owner reads it.)
fn handled(consumer: &StreamConsumer, message: &BorrowedMessage<'_>) {
    if let Err(err) = consumer.store_offset_from_message(message) {
        tracing::debug!(error = %err, "alert offset not stored");
    }
}

/// One line a person can act on.
fn readable(alert: &DriftAlert) -> String {
    let mut line = if alert.tracks > 1 {
        // The unknown tracks of one DSP's report: how many, a few, and where the rest are.
        let more = alert.tracks.saturating_sub(alert.isrc_sample.len() as u64);
        let mut named = alert.isrc_sample.join(",");
        if more > 0 {
            named.push_str(&format!(",+{more} more"));
        }
        format!(
            "{} {} {} tracks ({named}; all: royalty-ingest alerts unknown-tracks --alert {})",
            alert.detected_at, alert.kind, alert.tracks, alert.alert_id
        )
    } else {
        format!("{} {} {}", alert.detected_at, alert.kind, alert.isrc)
    };
    if let Some(expected) = &alert.expected {
        line.push_str(&format!(" catalog={expected}"));
    }
    if let Some(received) = &alert.received {
        line.push_str(&format!(" received={received}"));
    }
    line.push_str(&format!(" dsp={}", alert.dsp_name));
    if let Some(report) = &alert.report_id {
        line.push_str(&format!(" report={report}"));
    }
    if let Some(period) = &alert.report_period {
        line.push_str(&format!(" period={period}"));
    }
    if let Some(version) = alert.catalog_version_id {
        line.push_str(&format!(" catalog_version={version}"));
    }
    line.push_str(&format!(
        " first_seen={} id={}",
        alert.source, alert.alert_id
    ));
    line
}
