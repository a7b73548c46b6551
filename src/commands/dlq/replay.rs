//! `dlq replay`: sends selected dead letters back to their source topic (or `--to`), each
//! with its original key, value, headers and timestamp plus a `royalty.replay.of` header,
//! so `run` books it like any record and resolves the dead letter in the same transaction.
//! Replaying twice cannot pay a line twice: the ledger's identity key absorbs the copy, and
//! the restored timestamp keeps an old version stale against a newer restatement.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use clap::builder::BoolishValueParser;
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use sqlx::PgPool;

use super::letter::Letter;
use super::store::{self, SentItem, Status};
use super::{DlqSource, Filters, select};
use crate::commands::progress::Progress;
use crate::config::{KafkaArgs, checked_topic_name};
use crate::kafka::{Client, idempotent_producer_config, missing_topics, refuse_unsafe_properties};
use crate::record::{NotRead, REPORT_TIME_HEADER};

/// Most sends in flight at once.
const WINDOW: usize = 500;

/// Settings of `royalty-ingest dlq replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub source: DlqSource,

    #[command(flatten)]
    pub filters: Filters,

    /// Dead-letter ids to replay (with filters too, both must match).
    pub ids: Vec<String>,

    /// Send to this topic instead of each dead letter's source topic (never the
    /// dead-letter topic itself).
    #[arg(long, env = "ROYALTY_DLQ_REPLAY_TO")]
    pub to: Option<String>,

    /// Print what would be sent and change nothing (no record, no database row).
    #[arg(long, env = "ROYALTY_DLQ_DRY_RUN", value_parser = BoolishValueParser::new())]
    pub dry_run: bool,

    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, short = 'y', env = "ROYALTY_DLQ_YES", value_parser = BoolishValueParser::new())]
    pub yes: bool,

    /// At most this many records per second (default: as fast as the broker takes them).
    #[arg(long, env = "ROYALTY_DLQ_MAX_PER_SEC")]
    pub max_per_sec: Option<u32>,

    /// Why this replay is done (kept in `dlq_replays`), e.g. "v4 schema deployed".
    #[arg(long, env = "ROYALTY_DLQ_NOTE")]
    pub note: Option<String>,

    /// Also resend dead letters whose replay was already booked, or refused again, or
    /// whose line a newer version superseded (those are skipped by default: the ledger
    /// would absorb the copy, or journal it as stale; the newer dead letter is the one to
    /// replay).
    #[arg(long, env = "ROYALTY_DLQ_INCLUDE_RESOLVED", value_parser = BoolishValueParser::new())]
    pub include_resolved: bool,
}

/// One dead letter to send and where.
pub struct Send<'a> {
    /// The dead letter.
    pub letter: &'a Letter,
    /// Where it goes.
    pub topic: String,
    /// The source partition when replaying to the source topic (keeps per-partition order
    /// as the producer chose it); the partitioner decides for `--to`.
    pub partition: Option<i32>,
}

/// Counts for the summary.
#[derive(Debug, Default)]
pub struct Summary {
    /// Dead letters selected.
    pub selected: usize,
    /// Of them, to be sent.
    pub to_send: usize,
    already_booked: usize,
    superseded: usize,
    no_source: usize,
    /// Too large to be read: nothing was stored to send (the original stays on its topic).
    not_stored: usize,
    replayed_before: usize,
}

impl Summary {
    /// Dead letters selected but not sent.
    pub fn skipped(&self) -> usize {
        self.already_booked + self.superseded + self.no_source + self.not_stored
    }

    /// One sentence: selected, `verb` `replayed`, skipped and why.
    pub fn line(&self, verb: &str, replayed: usize) -> String {
        format!(
            "selected {}, {verb} {replayed}, skipped {} ({} already booked, {} superseded by a newer \
             dead letter or a newer version of the line, {} without a source topic, {} too large \
             to have been stored), {} of them replayed before",
            self.selected,
            self.skipped(),
            self.already_booked,
            self.superseded,
            self.no_source,
            self.not_stored,
            self.replayed_before
        )
    }
}

/// What a replay would send, decided by the rules every replay follows (the command's and
/// the console's): resolved and superseded letters are skipped unless `include_resolved`,
/// letters too large to have been stored and letters without a source topic always.
pub struct Plan<'a> {
    /// Counts.
    pub summary: Summary,
    /// The sends, in selection order.
    pub sends: Vec<Send<'a>>,
}

impl Plan<'_> {
    /// The topics the sends go to, each once, sorted.
    pub fn targets(&self) -> Vec<&str> {
        let targets: BTreeSet<&str> = self.sends.iter().map(|s| s.topic.as_str()).collect();
        targets.into_iter().collect()
    }
}

/// Plans a replay of `letters` (see [`Plan`]); `to` replaces each source topic.
pub fn plan<'a>(
    letters: &'a [Letter],
    status: impl Fn(&str) -> Status,
    to: Option<&str>,
    dlq_topic: &str,
    include_resolved: bool,
) -> Plan<'a> {
    let mut summary = Summary {
        selected: letters.len(),
        ..Summary::default()
    };
    let mut sends: Vec<Send<'_>> = Vec::new();
    for letter in letters {
        let status = status(&letter.id);
        if status.is_resolved() && !include_resolved {
            summary.already_booked += 1;
            continue;
        }
        // Its replay was refused again: the newer dead letter is the one to replay (sending
        // both would only make the ledger absorb a copy). Or a newer version of its line
        // is booked: replayed, it would only be journaled as stale.
        if status.superseded_by.is_some() && !include_resolved {
            summary.superseded += 1;
            continue;
        }
        // Its bytes were never read: resending would send an empty record.
        if letter.class == NotRead::TOO_LARGE_CLASS {
            summary.not_stored += 1;
            continue;
        }
        let (topic, partition) = match (to, &letter.source_topic) {
            (Some(to), _) => (to.to_string(), None),
            (None, Some(source)) if source != dlq_topic => {
                (source.clone(), letter.source_partition)
            }
            _ => {
                summary.no_source += 1;
                continue;
            }
        };
        summary.replayed_before += usize::from(status.replays > 0);
        sends.push(Send {
            letter,
            topic,
            partition,
        });
    }
    summary.to_send = sends.len();
    Plan { summary, sends }
}

/// What sending a plan did.
pub struct Sent {
    /// The `dlq_replays` row.
    pub replay_id: i64,
    /// Dead letters the broker took.
    pub replayed: usize,
    /// `id: error` of each the broker did not take (sending them again is safe).
    pub failures: Vec<String>,
}

/// Sends a plan and records it in `dlq_replays` / `dlq_replay_items` (`selection` and
/// `note` describe it for the audit trail). The target topics must exist.
pub async fn send_plan(
    kafka: &KafkaArgs,
    pool: &PgPool,
    plan: &Plan<'_>,
    to: Option<&str>,
    note: Option<&str>,
    selection: &str,
    max_per_sec: Option<u32>,
) -> anyhow::Result<Sent> {
    let replay_id = store::begin_replay(pool, note, to, selection, plan.summary.selected).await?;
    let producer: FutureProducer = idempotent_producer_config(kafka)
        .create()
        .context("failed to create the replay producer")?;
    let window = max_per_sec.map_or(WINDOW, |rate| (rate as usize).clamp(1, WINDOW));
    let mut progress = Progress::new("replaying", plan.sends.len() as u64);
    let mut replayed = 0;
    let mut failures: Vec<String> = Vec::new();
    let started = Instant::now();
    for chunk in plan.sends.chunks(window) {
        let results = join_all(chunk.iter().map(|send| send_one(&producer, send))).await;
        let mut items = Vec::with_capacity(chunk.len());
        for (send, result) in chunk.iter().zip(results) {
            match result {
                Ok((partition, offset)) => items.push(SentItem {
                    dead_letter_id: send.letter.id.clone(),
                    topic: send.topic.clone(),
                    partition,
                    offset,
                }),
                Err(err) => failures.push(format!("{}: {err:#}", send.letter.id)),
            }
        }
        store::record_items(pool, replay_id, &items).await?;
        replayed += items.len();
        progress.advance(chunk.len() as u64);
        if let Some(rate) = max_per_sec {
            // Pace by the total so far: the average rate never exceeds the limit.
            let due = Duration::from_secs_f64((replayed + failures.len()) as f64 / f64::from(rate));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    progress.finish();
    store::finish_replay(pool, replay_id, replayed, plan.summary.skipped()).await?;
    Ok(Sent {
        replay_id,
        replayed,
        failures,
    })
}

/// Replays the selection (see the module docs).
pub async fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let dlq_topic = checked_topic_name("--dlq-topic", &args.source.dlq_topic)?;
    refuse_unsafe_properties(&args.source.kafka, &[Client::Producer])?;
    let to = args
        .to
        .as_deref()
        .map(|t| checked_topic_name("--to", t))
        .transpose()?;
    anyhow::ensure!(
        to.as_deref() != Some(dlq_topic.as_str()),
        "--to {dlq_topic:?} is the dead-letter topic; replay sends records back to be ingested"
    );
    if let Some(rate) = args.max_per_sec {
        anyhow::ensure!(rate > 0, "--max-per-sec must be at least 1");
    }
    let ids: Vec<String> = args.ids.iter().map(|i| i.trim().to_string()).collect();
    let selected = select(&args.source, &args.filters, &ids, true).await?;
    let plan = plan(
        &selected.letters,
        |id| selected.status(id),
        to.as_deref(),
        &dlq_topic,
        args.include_resolved,
    );
    let (summary, sends) = (&plan.summary, &plan.sends);

    if args.dry_run {
        for send in sends {
            println!(
                "would replay {} ({}, {}) to {}{} with timestamp {}",
                send.letter.id,
                send.letter.class,
                send.letter.source(),
                send.topic,
                send.partition.map(|p| format!("[{p}]")).unwrap_or_default(),
                send.letter
                    .original_timestamp
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "now (none recorded)".into())
            );
        }
        println!(
            "dry run, nothing sent: {}",
            summary.line("would replay", sends.len())
        );
        return Ok(());
    }
    if sends.is_empty() {
        println!("nothing to replay: {}", summary.line("replayed", 0));
        return Ok(());
    }
    let target_list = plan.targets();
    let missing = missing_topics(&args.source.kafka, &target_list).await?;
    anyhow::ensure!(
        missing.is_empty(),
        "the target topic(s) {} do not exist; create them or choose another with --to",
        missing.join(", ")
    );
    if !args.yes && !confirm(sends.len(), &target_list)? {
        println!("nothing sent");
        return Ok(());
    }

    let selection = args.filters.describe(&ids);
    let sent = send_plan(
        &args.source.kafka,
        &selected.pool,
        &plan,
        to.as_deref(),
        args.note.as_deref(),
        &selection,
        args.max_per_sec,
    )
    .await?;
    println!(
        "replay #{} to {}: {}",
        sent.replay_id,
        target_list.join(", "),
        summary.line("replayed", sent.replayed)
    );
    if let Some(first) = sent.failures.first() {
        anyhow::bail!(
            "{} dead letter(s) could not be sent (first: {first}); run the same command again to retry them",
            sent.failures.len()
        );
    }
    println!(
        "`run` books them as it reads them; `royalty-ingest dlq list --open` shows what is still open"
    );
    Ok(())
}

/// Sends one replayed record; returns where the broker put it.
async fn send_one(producer: &FutureProducer, send: &Send<'_>) -> anyhow::Result<(i32, i64)> {
    let letter = send.letter;
    let header_list = letter.replay_headers();
    let mut headers = OwnedHeaders::new_with_capacity(header_list.len());
    for (name, value) in &header_list {
        headers = headers.insert(Header {
            key: name,
            value: value.as_deref(),
        });
    }
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&send.topic).headers(headers);
    if let Some(partition) = send.partition {
        record = record.partition(partition);
    }
    if let Some(key) = &letter.key {
        record = record.key(key.as_slice());
    }
    if let Some(value) = &letter.value {
        record = record.payload(value.as_slice());
    }
    // A record versioned by its `royalty.report.time` header keeps the header and is
    // stamped with the time it is replayed, so the topic's retention counts from now; one
    // versioned by its timestamp needs that timestamp back.
    let versioned_by_header = header_list
        .iter()
        .any(|(name, _)| name.as_str() == REPORT_TIME_HEADER);
    if let Some(ts) = letter.original_timestamp.filter(|_| !versioned_by_header) {
        record = record.timestamp(ts.timestamp_millis());
    }
    let delivery = producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(err, _)| anyhow::Error::new(err))
        .with_context(|| format!("the broker did not take the replay to {}", send.topic))?;
    Ok((delivery.partition, delivery.offset))
}

/// Asks on the terminal; refuses when nobody can answer.
fn confirm(count: usize, targets: &[&str]) -> anyhow::Result<bool> {
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "about to replay {count} dead letter(s) with no terminal to confirm on: add --yes, \
         or --dry-run to see what would be sent"
    );
    eprint!(
        "Replay {count} dead letter(s) to {}? [y/N] ",
        targets.join(", ")
    );
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    tokio::task::block_in_place(|| std::io::stdin().lock().read_line(&mut answer))
        .context("cannot read the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
