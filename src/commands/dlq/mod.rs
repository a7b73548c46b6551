//! `royalty-ingest dlq list | show | replay`: the dead-letter reviewer's tools. They read
//! the dead-letter topic from its beginning (never committing anything), join what the
//! ledger database knows (quarantine rows, replays, dead letters the broker refused), and
//! send fixed dead letters back to their source topic, where `run` books them like any
//! record: the ledger's identity key absorbs every repeat, so a replay can never pay a
//! line twice.

pub mod letter;
pub mod list;
pub mod reader;
pub mod replay;
pub mod resolve;
pub mod show;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use clap::builder::{BoolishValueParser, PossibleValuesParser};
use sqlx::PgPool;

use crate::avro::LineDecoder;
use crate::commands::progress::Progress;
use crate::config::{DatabaseArgs, KafkaArgs, SchemaArgs, checked_topic_name};
use crate::db;
use crate::kafka::missing_topics;
use crate::ledger::dead_letter;
use letter::Letter;
use reader::TopicReader;
use store::Status;

/// Where the dead letters are: the topic, the ledger database, the writer schemas.
#[derive(Debug, Clone, Args)]
pub struct DlqSource {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// The ledger database (quarantine, replays, dead letters the broker refused).
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The dead-letter topic `run` writes to.
    #[arg(long, env = "ROYALTY_DLQ_TOPIC", default_value = "royalty.events.dlq")]
    pub dlq_topic: String,

    /// Writer schemas, to decode payloads (`dlq show`, `--report-id`).
    #[command(flatten)]
    pub schemas: SchemaArgs,
}

/// Which dead letters a command looks at (all of them by default).
#[derive(Debug, Clone, Default, Args)]
pub struct Filters {
    /// Only this error class, e.g. `unknown_fingerprint`, `gs1_check_digit`,
    /// `database_rejected` (repeatable, or comma-separated). A class no stage gives is
    /// refused with the list of them.
    // Checked against the known classes: a misspelt one would select nothing and read as
    // "no dead letters match", which a reviewer takes for good news.
    #[arg(
        long,
        env = "ROYALTY_DLQ_CLASS",
        value_delimiter = ',',
        value_parser = PossibleValuesParser::new(dead_letter::class_names()),
        hide_possible_values = true
    )]
    pub class: Vec<String>,

    /// Only this stage: `decode`, `validate` or `ledger`.
    #[arg(
        long,
        env = "ROYALTY_DLQ_STAGE",
        value_parser = PossibleValuesParser::new(dead_letter::STAGES),
        hide_possible_values = true
    )]
    pub stage: Option<String>,

    /// Only dead letters refused on this source topic (repeatable, or comma-separated).
    #[arg(long, env = "ROYALTY_DLQ_SOURCE_TOPIC", value_delimiter = ',')]
    pub source_topic: Vec<String>,

    /// Only dead letters refused at or after this time (RFC 3339, or a date: from its
    /// start, UTC).
    #[arg(long, env = "ROYALTY_DLQ_SINCE", value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,

    /// Only dead letters refused before this time (RFC 3339, or a date: through its end,
    /// UTC).
    #[arg(long, env = "ROYALTY_DLQ_UNTIL", value_parser = parse_until)]
    pub until: Option<DateTime<Utc>>,

    /// Only lines of this DSP report (`report_id` in the payload; needs a known schema).
    #[arg(long, env = "ROYALTY_DLQ_REPORT_ID")]
    pub report_id: Option<String>,

    /// Only dead letters still open: quarantined and no replay of them booked yet.
    #[arg(long, env = "ROYALTY_DLQ_OPEN", value_parser = BoolishValueParser::new())]
    pub open: bool,
}

impl Filters {
    /// The filters as flags, for the replay's audit record.
    pub fn describe(&self, ids: &[String]) -> String {
        let mut parts: Vec<String> = Vec::new();
        for class in &self.class {
            parts.push(format!("--class {class}"));
        }
        if let Some(stage) = &self.stage {
            parts.push(format!("--stage {stage}"));
        }
        for topic in &self.source_topic {
            parts.push(format!("--source-topic {topic}"));
        }
        if let Some(since) = self.since {
            parts.push(format!("--since {}", since.to_rfc3339()));
        }
        if let Some(until) = self.until {
            parts.push(format!("--until {}", until.to_rfc3339()));
        }
        if let Some(report) = &self.report_id {
            parts.push(format!("--report-id {report}"));
        }
        if self.open {
            parts.push("--open".to_string());
        }
        parts.extend(ids.iter().cloned());
        if parts.is_empty() {
            "all".to_string()
        } else {
            parts.join(" ")
        }
    }

    /// The filters that need nothing but the dead letter's headers.
    fn matches_headers(&self, letter: &Letter, ids: &[String]) -> bool {
        (ids.is_empty() || ids.contains(&letter.id))
            && (self.class.is_empty() || self.class.iter().any(|c| c.trim() == letter.class))
            && self
                .stage
                .as_deref()
                .is_none_or(|s| s.trim() == letter.stage)
            && (self.source_topic.is_empty()
                || self
                    .source_topic
                    .iter()
                    .any(|t| Some(t.trim()) == letter.source_topic.as_deref()))
            && self
                .since
                .is_none_or(|since| letter.refused_at.is_some_and(|at| at >= since))
            && self
                .until
                .is_none_or(|until| letter.refused_at.is_some_and(|at| at < until))
    }
}

fn parse_since(raw: &str) -> Result<DateTime<Utc>, String> {
    parse_time(raw, false)
}

fn parse_until(raw: &str) -> Result<DateTime<Utc>, String> {
    parse_time(raw, true)
}

/// RFC 3339, or a date meaning its first instant (or, for an end bound, the first instant
/// of the next day).
fn parse_time(raw: &str, end_of_date: bool) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    if let Ok(at) = crate::commands::parse_utc_time(raw) {
        return Ok(at);
    }
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
        format!(
            "{raw:?} is neither a date (2026-11-27) nor an RFC 3339 time (2026-11-27T09:30:00Z)"
        )
    })?;
    let date = if end_of_date {
        date.succ_opt()
            .ok_or_else(|| format!("{raw:?} is the last date there is"))?
    } else {
        date
    };
    Ok(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// The dead letters a command selected, each once, with what the database knows.
pub struct Selected {
    /// The dead letters, topic copies first (in topic order), then the ones only in
    /// quarantine.
    pub letters: Vec<Letter>,
    /// Database state by dead-letter id.
    pub statuses: HashMap<String, Status>,
    /// The ledger database.
    pub pool: PgPool,
    /// The decoder (for payloads).
    pub decoder: LineDecoder,
}

impl Selected {
    /// The status of one dead letter.
    pub fn status(&self, id: &str) -> Status {
        self.statuses.get(id).cloned().unwrap_or_default()
    }
}

/// Reads the dead-letter topic to its end and quarantine, keeps the letters the filters
/// (and `ids`, when given) select. Without `keep_bytes` the record bytes are dropped as
/// soon as the filters ran (a report needs only the headers).
pub async fn select(
    source: &DlqSource,
    filters: &Filters,
    ids: &[String],
    keep_bytes: bool,
) -> anyhow::Result<Selected> {
    let dlq_topic = checked_topic_name("--dlq-topic", &source.dlq_topic)?;
    let pool = db::connect(&source.database.url()?, 2).await?;
    db::migrate(&pool).await?;
    let decoder = LineDecoder::new(
        Arc::new(source.schemas.store()?),
        source.schemas.registry()?,
    );

    let mut seen: HashSet<String> = HashSet::new();
    let mut letters: Vec<Letter> = Vec::new();
    if missing_topics(&source.kafka, &[&dlq_topic])
        .await?
        .is_empty()
    {
        let mut reader = TopicReader::open(&source.kafka, &dlq_topic).await?;
        let mut progress = Progress::new("reading the dead-letter topic", reader.records_total);
        while let Some(letter) = reader.next().await? {
            progress.advance(1);
            // The relay may publish a dead letter twice (a crash between send and stamp):
            // the id says it is the same one.
            if !seen.insert(letter.id.clone()) {
                continue;
            }
            if let Some(letter) = keep_if_selected(letter, filters, ids, &decoder, keep_bytes).await
            {
                letters.push(letter);
            }
        }
        progress.finish();
    } else {
        eprintln!(
            "note: the dead-letter topic {dlq_topic} does not exist; listing what quarantine holds"
        );
    }
    for letter in store::letters_off_topic(&pool, &dlq_topic, &seen).await? {
        if let Some(letter) = keep_if_selected(letter, filters, ids, &decoder, keep_bytes).await {
            letters.push(letter);
        }
    }
    let selected_ids: Vec<String> = letters.iter().map(|l| l.id.clone()).collect();
    let statuses = store::statuses(&pool, &selected_ids).await?;
    if filters.open {
        letters.retain(|l| statuses.get(&l.id).is_some_and(Status::is_open));
    }
    Ok(Selected {
        letters,
        statuses,
        pool,
        decoder,
    })
}

async fn keep_if_selected(
    mut letter: Letter,
    filters: &Filters,
    ids: &[String],
    decoder: &LineDecoder,
    keep_bytes: bool,
) -> Option<Letter> {
    if !filters.matches_headers(&letter, ids) {
        return None;
    }
    if let Some(wanted) = &filters.report_id
        && letter.report_id(decoder).await.as_deref() != Some(wanted.trim())
    {
        return None;
    }
    if !keep_bytes {
        letter.key = None;
        letter.value = None;
        letter.original_headers = Vec::new();
    }
    Some(letter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_bound_covers_the_whole_day() {
        let since = parse_since("2026-11-27").expect("date");
        let until = parse_until("2026-11-27").expect("date");
        assert_eq!(since.to_rfc3339(), "2026-11-27T00:00:00+00:00");
        assert_eq!(until.to_rfc3339(), "2026-11-28T00:00:00+00:00");
        let exact = parse_until("2026-11-27T09:30:00+01:00").expect("time");
        assert_eq!(exact.to_rfc3339(), "2026-11-27T08:30:00+00:00");
        assert!(parse_since("yesterday").is_err());
    }
}
