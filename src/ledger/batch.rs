//! The batch transaction: offsets compare-and-set, ledger rows and revisions, quarantine
//! and outbox, committed together or not at all.

use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};

use super::LineToPost;
use super::dead_letter::{self, BookedReplay, DeadLetter};
use super::offsets::{self, OffsetAdvance};
use super::post::{self, KeyPlan, PostStats};
use crate::db::{DbFailure, describe};
use crate::drift::detect::ALL_KINDS;
use crate::drift::store::ApplyStats;
use crate::drift::{self, CatalogEntry, Drift, DriftSettings};
use crate::record::{SourceRecord, TopicPartition};
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

/// Everything one transaction writes.
#[derive(Debug, Default)]
pub struct Batch {
    /// Catalog entries from the catalog topic, applied before the lines.
    pub catalog: Vec<(CatalogEntry, String)>,
    /// Report control totals from the summaries topic, and where each was read.
    pub summaries: Vec<(ReportSummary, SourceRecord)>,
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
    /// Of those, lines PostgreSQL itself refused (isolated by bisecting).
    pub poisoned: u64,
    /// What the catalog entries did.
    pub catalog: ApplyStats,
    /// Drift alerts raised (distinct drifts seen for the first time).
    pub drift_alerts: u64,
    /// The same, per kind (indexed like `drift::detect::ALL_KINDS`).
    pub drift_alerts_by_kind: [u64; ALL_KINDS.len()],
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
    let (catalog, mut drifts) = drift::store::apply_entries(&mut tx, &batch.catalog).await?;
    report::store(&mut tx, &batch.summaries).await?;
    let plans = post::plan(&mut tx, group_by_key(&batch.lines), target.drift).await?;
    let posted = write_isolating(&mut tx, &plans).await?;
    dead_letter::resolve(&mut tx, &booked_replays(&batch.lines, &posted.refused)).await?;
    drifts.extend(posted.drifts);
    let raised = drift::store::record_drifts(&mut tx, &drifts, target.drift).await?;
    let mut drift_alerts_by_kind = [0u64; ALL_KINDS.len()];
    for id in &raised {
        if let Some(drift) = drifts.iter().find(|d| d.id() == *id) {
            drift_alerts_by_kind[drift.kind.index()] += 1;
        }
    }
    let drift_alerts = raised.len() as u64;
    let poisoned_count = posted.refused.len() as u64;
    if posted.refused.is_empty() {
        dead_letter::record(&mut tx, target.group, target.dlq_topic, &batch.dead_letters).await?;
    } else {
        let mut letters = batch.dead_letters.clone();
        letters.extend(posted.refused);
        dead_letter::record(&mut tx, target.group, target.dlq_topic, &letters).await?;
    }
    tx.commit().await?;
    Ok(CommitOutcome::Committed(BatchStats {
        post: posted.stats,
        dead_letters: batch.dead_letters.len() as u64 + poisoned_count,
        poisoned: poisoned_count,
        catalog,
        drift_alerts,
        drift_alerts_by_kind,
    }))
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

/// What posting a set of key groups did.
#[derive(Debug, Default)]
struct Posted {
    stats: PostStats,
    drifts: Vec<Drift>,
    refused: Vec<DeadLetter>,
}

impl Posted {
    fn merge(&mut self, other: Posted) {
        self.stats.add(other.stats);
        self.drifts.extend(other.drifts);
        self.refused.extend(other.refused);
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

/// Writes the planned lines under a savepoint; when PostgreSQL refuses the data, splits
/// the plans in halves until the refused line is alone, and returns it as a dead letter
/// (its counts and drift are dropped with it).
fn write_isolating<'a>(
    conn: &'a mut PgConnection,
    plans: &'a [KeyPlan<'a>],
) -> BoxFuture<'a, Result<Posted, DbFailure>> {
    Box::pin(async move {
        if plans.is_empty() {
            return Ok(Posted::default());
        }
        sqlx::raw_sql("SAVEPOINT post_lines")
            .execute(&mut *conn)
            .await?;
        match post::write(conn, plans).await {
            Ok(()) => {
                sqlx::raw_sql("RELEASE SAVEPOINT post_lines")
                    .execute(&mut *conn)
                    .await?;
                let mut posted = Posted::default();
                for plan in plans {
                    posted.stats.add(plan.folded.stats);
                    posted.drifts.extend(plan.drifts.iter().cloned());
                }
                Ok(posted)
            }
            Err(DbFailure::Poison(error)) => {
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT post_lines; RELEASE SAVEPOINT post_lines")
                    .execute(&mut *conn)
                    .await?;
                if let [plan] = plans {
                    let reason = describe(&error);
                    tracing::warn!(reason = %reason, lines = plan.versions.len(), "ledger refused a line; dead-lettering it");
                    return Ok(Posted {
                        refused: plan.versions.iter().map(|l| refused(l, &reason)).collect(),
                        ..Posted::default()
                    });
                }
                let (left, right) = plans.split_at(plans.len() / 2);
                let mut posted = write_isolating(conn, left).await?;
                posted.merge(write_isolating(conn, right).await?);
                Ok(posted)
            }
            Err(other) => Err(other),
        }
    })
}

/// A dead letter for a line the database refused.
fn refused(line: &LineToPost, reason: &str) -> DeadLetter {
    DeadLetter {
        source: line.source.clone(),
        record: line.record.clone(),
        stage: "ledger",
        class: "database_rejected".to_string(),
        reason: format!("the ledger database refused the line: {reason}"),
        schema_ref: None,
    }
}
