//! The batch transaction: offsets compare-and-set, ledger rows and revisions, quarantine
//! and outbox, committed together or not at all.

use std::sync::Arc;

use chrono::NaiveDate;
use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};

use super::LineToPost;
use super::dead_letter::{self, BookedReplay, DeadLetter, RefusedLine};
use super::isolate::{Effects, WriteFn, write_isolating};
use super::offsets::{self, OffsetAdvance};
use super::post::{self, KeyPlan, PostStats};
use crate::db::DbFailure;
use crate::domain::LineKey;
use crate::drift::detect::ALL_KINDS;
use crate::drift::store::ApplyStats;
use crate::drift::{self, CatalogEntry, Drift, DriftSettings};
use crate::record::{RecordBytes, SourceRecord, TopicPartition};
use crate::report::{self, ReportSummary};

/// Where a batch's side effects go.
#[derive(Debug, Clone, Copy)]
pub struct BatchTarget<'a> {
    /// Consumer group: the key of the offsets rows.
    pub group: &'a str,
    /// Dead-letter topic.
    pub dlq_topic: &'a str,
    /// Drift alerts.
    pub drift: &'a DriftSettings,
}

/// An item decoded from one source record, with the record kept to dead-letter it.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    /// The decoded item.
    pub item: T,
    /// Where the record came from.
    pub source: SourceRecord,
    /// Its bytes.
    pub record: Arc<RecordBytes>,
}

/// A catalog entry and where it came from (the sender's `source` and the coordinates).
pub type CatalogUpdate = Sourced<(CatalogEntry, String)>;

/// Everything one transaction writes.
#[derive(Debug, Default)]
pub struct Batch {
    /// Catalog entries from the catalog topic, applied before the lines.
    pub catalog: Vec<CatalogUpdate>,
    /// Report control totals from the summaries topic.
    pub summaries: Vec<Sourced<ReportSummary>>,
    /// Validated lines, in arrival order (several versions of one line allowed).
    pub lines: Vec<LineToPost>,
    /// Records refused by decoding or validation.
    pub dead_letters: Vec<DeadLetter>,
    /// The offset move of every partition the batch covers.
    pub offsets: Vec<OffsetAdvance>,
}

/// What a committed batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    /// Ledger effects.
    pub post: PostStats,
    /// Records dead-lettered (decode, validation and database refusals).
    pub dead_letters: u64,
    /// Of those, lines, catalog entries and summaries PostgreSQL itself refused (isolated
    /// by bisecting).
    pub poisoned: u64,
    /// What the catalog entries did.
    pub catalog: ApplyStats,
    /// Drift alerts raised (distinct drifts seen for the first time; the unknown ISRCs of
    /// one DSP's report count as one).
    pub drift_alerts: u64,
    /// The same, per kind (indexed like `drift::detect::ALL_KINDS`).
    pub drift_alerts_by_kind: [u64; ALL_KINDS.len()],
    /// ISRCs found unknown to the catalog for the first time (announced by the
    /// `unknown_isrc` alerts above).
    pub unknown_tracks: u64,
}

/// The result of trying to commit a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Durable.
    Committed(BatchStats),
    /// Nothing written: these partitions' stored offsets moved (another instance took
    /// them over); reload their offsets before going on.
    Fenced(Vec<TopicPartition>),
}

/// Writes the batch in one transaction (see the module docs of [`crate::ledger`]).
pub async fn commit_batch(
    pool: &PgPool,
    target: BatchTarget<'_>,
    batch: &Batch,
) -> Result<CommitOutcome, DbFailure> {
    let mut tx = pool.begin().await?;
    // First, so the offsets rows are locked before anything else: a competing instance's
    // transaction on the same partition waits here and then fails its compare-and-set.
    let fenced = offsets::compare_and_set(&mut tx, target.group, &batch.offsets).await?;
    if !fenced.is_empty() {
        tx.rollback().await?;
        return Ok(CommitOutcome::Fenced(fenced));
    }
    let (catalog, refused_catalog) =
        write_isolating(&mut tx, &batch.catalog, &write_catalog).await?;
    let (_, refused_summaries) =
        write_isolating(&mut tx, &batch.summaries, &write_summaries).await?;
    let plans = post::plan(&mut tx, group_by_key(&batch.lines), target.drift).await?;
    let (posted, refused_plans) = write_isolating(&mut tx, &plans, &write_plans).await?;
    let mut poisoned: Vec<DeadLetter> = Vec::new();
    for (update, reason) in refused_catalog {
        poisoned.push(database_rejected(
            &update.source,
            &update.record,
            "catalog entry",
            &reason,
            None,
        ));
    }
    for (summary, reason) in refused_summaries {
        poisoned.push(database_rejected(
            &summary.source,
            &summary.record,
            "report summary",
            &reason,
            None,
        ));
    }
    for (plan, reason) in refused_plans {
        for line in &plan.versions {
            poisoned.push(database_rejected(
                &line.source,
                &line.record,
                "line",
                &reason,
                Some(RefusedLine {
                    key: line.line.key,
                    report_id: line.line.report_id.clone(),
                    dsp_name: line.line.dsp_name.clone(),
                    report_period: line.line.report_period,
                }),
            ));
        }
    }
    dead_letter::resolve(&mut tx, &booked_replays(&batch.lines, &poisoned)).await?;
    let mut drifts = catalog.drifts;
    drifts.extend(posted.drifts);
    let raised = drift::store::record_drifts(&mut tx, &drifts, target.drift).await?;
    let poisoned_count = poisoned.len() as u64;
    if poisoned.is_empty() {
        record_dead_letters(&mut tx, target, &batch.dead_letters).await?;
    } else {
        let mut letters = batch.dead_letters.clone();
        letters.extend(poisoned.iter().cloned());
        record_dead_letters(&mut tx, target, &letters).await?;
    }
    // Last: the lines booked and the letters written above both count.
    let (booked, refused) = superseding_keys(batch, &poisoned);
    dead_letter::supersede(&mut tx, &booked, &refused).await?;
    tx.commit().await?;
    Ok(CommitOutcome::Committed(BatchStats {
        post: posted.stats,
        dead_letters: batch.dead_letters.len() as u64 + poisoned_count,
        poisoned: poisoned_count,
        catalog: catalog.stats,
        drift_alerts: raised.ids.len() as u64,
        drift_alerts_by_kind: raised.by_kind,
        unknown_tracks: raised.unknown_tracks,
    }))
}

/// Stores the dead letters; one PostgreSQL refuses is stored again without the record's
/// bytes and headers (its coordinates, class and a reason that says so), so a letter that
/// cannot be stored never blocks its partition. If even that is refused, the batch fails.
async fn record_dead_letters(
    conn: &mut PgConnection,
    target: BatchTarget<'_>,
    letters: &[DeadLetter],
) -> Result<(), DbFailure> {
    let write: &WriteFn<'_, DeadLetter, ()> = &|conn, letters| {
        let (group, dlq_topic) = (target.group.to_string(), target.dlq_topic.to_string());
        Box::pin(async move { dead_letter::record(conn, &group, &dlq_topic, letters).await })
    };
    let (_, refused) = write_isolating(conn, letters, write).await?;
    if refused.is_empty() {
        return Ok(());
    }
    let stripped: Vec<DeadLetter> = refused
        .into_iter()
        .map(|(letter, reason)| {
            tracing::warn!(reason = %reason, source = %letter.source, "the database refused a dead letter; storing it without the record's bytes");
            DeadLetter {
                source: letter.source.clone(),
                record: Arc::new(RecordBytes::default()),
                stage: letter.stage,
                class: letter.class.clone(),
                reason: format!(
                    "the dead letter could not be stored whole (the database refused it: \
                     {reason}); the record's bytes and headers are left out, the original \
                     stays at {}",
                    letter.source
                ),
                schema_ref: None,
                line: letter.line.clone(),
            }
        })
        .collect();
    dead_letter::record(conn, target.group, target.dlq_topic, &stripped).await
}

/// Applies catalog entries in order (for [`write_isolating`]).
fn write_catalog<'c>(
    conn: &'c mut PgConnection,
    updates: &'c [CatalogUpdate],
) -> BoxFuture<'c, Result<CatalogApplied, DbFailure>> {
    Box::pin(async move {
        let (stats, drifts) =
            drift::store::apply_entries(conn, updates.iter().map(entry_and_origin)).await?;
        Ok(CatalogApplied { stats, drifts })
    })
}

fn entry_and_origin(update: &CatalogUpdate) -> (&CatalogEntry, &str) {
    (&update.item.0, &update.item.1)
}

/// What the catalog entries did.
#[derive(Debug, Default)]
struct CatalogApplied {
    stats: ApplyStats,
    drifts: Vec<Drift>,
}

impl Effects for CatalogApplied {
    fn merge(&mut self, other: Self) {
        self.stats.add(other.stats);
        self.drifts.extend(other.drifts);
    }
}

/// The reports this batch's lines and summaries belong to: only their replacements can
/// have become due when it commits (see [`report::settle_replacements`]).
pub fn touched_reports(batch: &Batch) -> std::collections::HashSet<report::ReportRef> {
    // Thousands of lines name a few reports: deduplicated as written, then spelled as the
    // key spells them.
    let lines = batch.lines.iter().filter_map(|l| {
        let report = l.line.report_id.as_deref()?;
        Some((l.line.dsp_name.as_str(), l.line.report_period, report))
    });
    let summaries = batch.summaries.iter().map(|s| {
        (
            s.item.dsp_name.as_str(),
            s.item.report_period,
            s.item.report_id.as_str(),
        )
    });
    let written: std::collections::HashSet<(&str, chrono::NaiveDate, &str)> =
        lines.chain(summaries).collect();
    written
        .into_iter()
        .map(|(dsp, period, report)| (dsp.trim().to_lowercase(), period, report.to_string()))
        .collect()
}

/// Stores report summaries (for [`write_isolating`]).
fn write_summaries<'c>(
    conn: &'c mut PgConnection,
    summaries: &'c [Sourced<ReportSummary>],
) -> BoxFuture<'c, Result<(), DbFailure>> {
    Box::pin(report::store(
        conn,
        summaries.iter().map(|s| (&s.item, &s.source)),
    ))
}

/// Writes planned lines (for [`write_isolating`]); their counts and drift count only once
/// written.
fn write_plans<'c, 'p>(
    conn: &'c mut PgConnection,
    plans: &'c [KeyPlan<'p>],
) -> BoxFuture<'c, Result<Posted, DbFailure>> {
    Box::pin(async move {
        post::write(conn, plans).await?;
        let mut posted = Posted::default();
        for plan in plans {
            posted.stats.add(plan.folded.stats);
            posted.drifts.extend(plan.drifts.iter().cloned());
        }
        Ok(posted)
    })
}

/// The lines (period and key) whose open dead letters this batch may have made obsolete:
/// its lines (booked, or refused by the database), and apart from them the lines it only
/// refused (a refused copy may be older than what the ledger holds).
type SupersedingKeys = (Vec<(NaiveDate, LineKey)>, Vec<(NaiveDate, LineKey)>);

fn superseding_keys(batch: &Batch, poisoned: &[DeadLetter]) -> SupersedingKeys {
    let booked: std::collections::HashSet<(NaiveDate, LineKey)> = batch
        .lines
        .iter()
        .map(|l| (l.line.report_period, l.line.key))
        .collect();
    let refused: std::collections::HashSet<(NaiveDate, LineKey)> = batch
        .dead_letters
        .iter()
        .chain(poisoned)
        .filter_map(|d| d.line.as_ref().map(|l| (l.report_period, l.key)))
        .filter(|key| !booked.contains(key))
        .collect();
    (booked.into_iter().collect(), refused.into_iter().collect())
}

/// A dead letter for something the database refused (`line`: the line it is, when it is
/// one).
fn database_rejected(
    source: &SourceRecord,
    record: &Arc<RecordBytes>,
    what: &str,
    reason: &str,
    line: Option<RefusedLine>,
) -> DeadLetter {
    tracing::warn!(reason, source = %source, "the database refused a {what}; dead-lettering it");
    DeadLetter {
        source: source.clone(),
        record: record.clone(),
        stage: "ledger",
        class: dead_letter::DATABASE_REJECTED_CLASS.to_string(),
        reason: format!("the ledger database refused the {what}: {reason}"),
        schema_ref: None,
        line,
    }
}

/// The replayed records among the batch's lines that the ledger took (every outcome
/// counts: new, duplicate, restated or stale, the line is accounted for).
fn booked_replays(lines: &[LineToPost], refused: &[DeadLetter]) -> Vec<BookedReplay> {
    lines
        .iter()
        .filter_map(|line| {
            let dead_letter_id = dead_letter::replay_of(&line.record)?;
            let was_refused = refused.iter().any(|r| r.source == line.source);
            (!was_refused).then(|| BookedReplay {
                dead_letter_id,
                source: line.source.clone(),
                line_key: line.line.key.0,
            })
        })
        .collect()
}

/// What writing planned lines did.
#[derive(Debug, Default)]
struct Posted {
    stats: PostStats,
    drifts: Vec<Drift>,
}

impl Effects for Posted {
    fn merge(&mut self, other: Posted) {
        self.stats.add(other.stats);
        self.drifts.extend(other.drifts);
    }
}

/// The lines grouped by key, groups in order of first appearance: a line's versions must
/// stay together when the batch is split.
fn group_by_key(lines: &[LineToPost]) -> Vec<Vec<&LineToPost>> {
    let mut index = std::collections::HashMap::new();
    let mut groups: Vec<Vec<&LineToPost>> = Vec::new();
    for line in lines {
        let slot = *index.entry(line.line.key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[slot].push(line);
    }
    groups
}
