//! Posting lines to `royalty_ledger`: new lines inserted, identical redeliveries skipped,
//! restatements applied with their old and new values journaled in `ledger_revisions`.
//!
//! The versions of one line in a batch are folded in arrival order against the stored row
//! (see [`fold`]), so a batch has exactly the effect of posting its records one by one,
//! with three bulk statements instead of one per row.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, Row};

use super::columns::{self, changed_fields, learns_unknown, merge_unknown, values_json};
use super::{LineToPost, SourceRecord};
use crate::db::DbFailure;
use crate::db::copy::{CopyRows, copy_in, copy_unless_taken};
use crate::domain::{LineKey, RoyaltyLine};
use crate::drift::{Drift, DriftSettings, LineToCheck, check_lines};

/// Counts of what posting did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PostStats {
    /// Lines seen for the first time.
    pub inserted: u64,
    /// Redeliveries identical to the stored line (skipped).
    pub duplicates: u64,
    /// Restatements applied to the row.
    pub restated: u64,
    /// Versions older than the stored one: journaled, not applied.
    pub stale: u64,
    /// Redeliveries that only filled in fields the stored version did not know (a v3 copy
    /// of a line first seen in v1): the row learns them; not a restatement.
    pub enriched: u64,
}

impl PostStats {
    /// Adds another batch's counts.
    pub fn add(&mut self, other: PostStats) {
        self.inserted += other.inserted;
        self.duplicates += other.duplicates;
        self.restated += other.restated;
        self.stale += other.stale;
        self.enriched += other.enriched;
    }
}

/// A ledger row: the line, the record that carried its current version, its version number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// Current values.
    pub line: RoyaltyLine,
    /// Record of the version the row holds.
    pub source: SourceRecord,
    /// 1 + applied restatements.
    pub version: i32,
    /// Catalog version the line was checked against when written (None: not in the catalog).
    pub catalog_version_id: Option<i64>,
}

/// One journal entry of `ledger_revisions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Whether the row took the new values (false: the version was older than the row's).
    pub applied: bool,
    /// Names of the fields that differ.
    pub changed_fields: Vec<&'static str>,
    /// Values before.
    pub old: RoyaltyLine,
    /// Values of the incoming version (unknown fields filled from the row).
    pub new: RoyaltyLine,
    /// The record that carried the incoming version.
    pub source: SourceRecord,
}

/// The effect of one line's versions on its row.
#[derive(Debug, Default)]
pub struct Folded {
    /// The row to write, if anything changed (or it is new).
    pub row: Option<LedgerRow>,
    /// Whether the row does not exist yet.
    pub is_new: bool,
    /// Journal entries, in order.
    pub revisions: Vec<Revision>,
    /// What happened.
    pub stats: PostStats,
}

/// Folds the versions of one line (same key, arrival order) into the stored row.
pub fn fold(stored: Option<LedgerRow>, versions: &[&LineToPost]) -> Folded {
    let mut folded = Folded {
        is_new: stored.is_none(),
        ..Folded::default()
    };
    let mut current = stored;
    let mut dirty = false;
    for version in versions {
        let Some(row) = current.as_mut() else {
            current = Some(LedgerRow {
                line: version.line.clone(),
                source: version.source.clone(),
                version: 1,
                catalog_version_id: None,
            });
            folded.stats.inserted += 1;
            dirty = true;
            continue;
        };
        let incoming = merge_unknown(&version.line, &row.line);
        let changed = changed_fields(&row.line, &incoming);
        if changed.is_empty() {
            if learns_unknown(&row.line, &incoming) {
                row.line = incoming;
                folded.stats.enriched += 1;
                dirty = true;
            } else {
                folded.stats.duplicates += 1;
            }
            // A newer version of the report that repeats the line unchanged still has it:
            // the row records that version, so the report's replacement does not reverse it.
            if version.source.timestamp > row.source.timestamp {
                row.source = version.source.clone();
                dirty = true;
            }
            continue;
        }
        let applied = version.source.timestamp >= row.source.timestamp;
        folded.revisions.push(Revision {
            applied,
            changed_fields: changed,
            old: row.line.clone(),
            new: incoming.clone(),
            source: version.source.clone(),
        });
        if applied {
            row.line = incoming;
            row.source = version.source.clone();
            row.version += 1;
            folded.stats.restated += 1;
            dirty = true;
        } else {
            folded.stats.stale += 1;
        }
    }
    if dirty {
        folded.row = current;
    }
    folded
}

/// One line's versions in a batch folded against its stored row and checked against the
/// catalog: what the batch writes for it. A batch is planned once; if PostgreSQL then
/// refuses a line, only the writes are retried around it, never the lookups.
#[derive(Debug)]
pub struct KeyPlan<'a> {
    /// The versions of the line in this batch, in arrival order.
    pub versions: Vec<&'a LineToPost>,
    /// What the fold decided (the row to write, revisions, counts).
    pub folded: Folded,
    /// Where the stored row lies (its `ctid`, locked by the loader), if there is one.
    pub stored_at: Option<String>,
    /// Drift the written row newly shows (none when nothing is written).
    pub drifts: Vec<Drift>,
}

/// Plans a batch inside the caller's transaction: reads and locks the stored rows of its
/// keys (one query), folds each key's versions (`groups`: one non-empty group per key, in
/// order of first appearance), and checks every row to be written against the catalog (one
/// lookup for all).
pub async fn plan<'a>(
    conn: &mut PgConnection,
    groups: Vec<Vec<&'a LineToPost>>,
    drift: &DriftSettings,
) -> Result<Vec<KeyPlan<'a>>, DbFailure> {
    let keys: Vec<(NaiveDate, LineKey)> = groups
        .iter()
        .filter_map(|versions| versions.first().map(|v| (v.line.report_period, v.line.key)))
        .collect();
    let mut stored = load_rows(conn, &keys).await?;
    let mut plans = Vec::with_capacity(groups.len());
    let mut previous_lines = Vec::with_capacity(groups.len());
    for ((_, key), versions) in keys.iter().zip(groups) {
        let (stored_at, previous) = stored.remove(key).unzip();
        previous_lines.push(previous.as_ref().map(|p| p.line.clone()));
        plans.push(KeyPlan {
            folded: fold(previous, &versions),
            stored_at,
            versions,
            drifts: Vec::new(),
        });
    }
    let (written, to_check): (Vec<usize>, Vec<LineToCheck<'_>>) = plans
        .iter()
        .zip(&previous_lines)
        .enumerate()
        .filter_map(|(i, (plan, previous))| {
            let row = plan.folded.row.as_ref()?;
            Some((
                i,
                LineToCheck {
                    line: &row.line,
                    source: &row.source,
                    previous: previous.as_ref(),
                },
            ))
        })
        .unzip();
    let checks = check_lines(conn, &to_check, drift).await?;
    for (i, check) in written.into_iter().zip(checks) {
        let plan = &mut plans[i];
        if let Some(row) = plan.folded.row.as_mut() {
            row.catalog_version_id = check.catalog_version_id;
        }
        plan.drifts = check.drifts;
    }
    Ok(plans)
}

/// Writes planned lines: new rows with one COPY, changed rows with one UPDATE, revisions
/// with one INSERT.
pub async fn write(conn: &mut PgConnection, plans: &[KeyPlan<'_>]) -> Result<(), DbFailure> {
    let new_rows: Vec<&LedgerRow> = plans
        .iter()
        .filter(|p| p.folded.is_new)
        .filter_map(|p| p.folded.row.as_ref())
        .collect();
    let changed_rows: Vec<(&str, &LedgerRow)> = plans
        .iter()
        .filter_map(|p| Some((p.stored_at.as_deref()?, p.folded.row.as_ref()?)))
        .collect();
    let revisions: Vec<(LineKey, &Revision)> = plans
        .iter()
        .flat_map(|p| {
            let key = p.versions.first().map(|v| v.line.key);
            p.folded
                .revisions
                .iter()
                .filter_map(move |r| key.map(|k| (k, r)))
        })
        .collect();
    insert_rows(conn, &new_rows).await?;
    update_rows(conn, &changed_rows).await?;
    write_revisions(conn, &revisions).await
}

/// Reads and locks the stored rows of the given lines (period and key: the primary key),
/// each with where it lies.
async fn load_rows(
    conn: &mut PgConnection,
    keys: &[(NaiveDate, LineKey)],
) -> Result<HashMap<LineKey, (String, LedgerRow)>, DbFailure> {
    let (periods, key_bytes) = super::primary_key_arrays(keys);
    let rows = sqlx::query(columns::LOAD_SQL.as_str())
        .bind(&periods)
        .bind(&key_bytes)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let stored_at: String = row.try_get(columns::STORED_AT)?;
        let row = columns::load_row(&row)?;
        out.insert(row.line.key, (stored_at, row));
    }
    Ok(out)
}

/// Inserts new rows with one binary `COPY` (the bulk of any batch: a new line is the common
/// case, and COPY takes it far faster than a bulk INSERT).
async fn insert_rows(conn: &mut PgConnection, rows: &[&LedgerRow]) -> Result<(), DbFailure> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut copy = CopyRows::new(columns::COLUMN_COUNT);
    for r in rows {
        columns::copy_row(&mut copy, r);
    }
    copy_in(conn, columns::COPY_SQL.as_str(), copy).await?;
    Ok(())
}

/// Overwrites changed rows (each with where the loader found it), one statement for all
/// of them.
async fn update_rows(
    conn: &mut PgConnection,
    rows: &[(&str, &LedgerRow)],
) -> Result<(), DbFailure> {
    if rows.is_empty() {
        return Ok(());
    }
    let updated = columns::bind_update(sqlx::query(columns::UPDATE_SQL.as_str()), rows)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    // The loader's locks keep every row where it was read; if one moved all the same, the
    // batch is planned again from fresh reads rather than written with a row missing.
    if updated != rows.len() as u64 {
        return Err(DbFailure::Retryable(sqlx::Error::Protocol(format!(
            "{updated} of {} ledger rows were where the batch read them; planning it again",
            rows.len()
        ))));
    }
    Ok(())
}

/// Appends journal entries with one `COPY` (a re-read of the same source record, already
/// journaled, sends them through [`insert_revisions`], which absorbs it).
async fn write_revisions(
    conn: &mut PgConnection,
    revisions: &[(LineKey, &Revision)],
) -> Result<(), DbFailure> {
    if revisions.is_empty() {
        return Ok(());
    }
    let mut rows = CopyRows::new(14);
    for (key, r) in revisions {
        rows.row()
            .bytes(&key.0)
            .bool(r.applied)
            .text_array(r.changed_fields.iter().copied())
            .json(&values_json(&r.old))
            .json(&values_json(&r.new))
            .numeric(r.old.royalty_amount)
            .numeric(r.new.royalty_amount)
            .int8(r.old.stream_count)
            .int8(r.new.stream_count)
            .text(&r.source.topic)
            .int4(r.source.partition)
            .int8(r.source.offset)
            .timestamptz(r.source.timestamp)
            .date(r.new.report_period);
    }
    if !copy_unless_taken(conn, REVISIONS_COPY_SQL, rows).await? {
        insert_revisions(conn, revisions).await?;
    }
    Ok(())
}

const REVISIONS_COPY_SQL: &str = "COPY ledger_revisions (line_key, applied, changed_fields,
                old_values, new_values, old_royalty_amount, new_royalty_amount, old_stream_count,
                new_stream_count, source_topic, source_partition, source_offset,
                source_timestamp, report_period)
         FROM STDIN (FORMAT binary)";

/// The same entries as one `INSERT … ON CONFLICT DO NOTHING`.
async fn insert_revisions(
    conn: &mut PgConnection,
    revisions: &[(LineKey, &Revision)],
) -> Result<(), DbFailure> {
    let keys: Vec<&[u8]> = revisions.iter().map(|(k, _)| &k.0[..]).collect();
    let periods: Vec<NaiveDate> = revisions.iter().map(|(_, r)| r.new.report_period).collect();
    let applied: Vec<bool> = revisions.iter().map(|(_, r)| r.applied).collect();
    let changed: Vec<String> = revisions
        .iter()
        .map(|(_, r)| r.changed_fields.join(","))
        .collect();
    let old: Vec<serde_json::Value> = revisions.iter().map(|(_, r)| values_json(&r.old)).collect();
    let new: Vec<serde_json::Value> = revisions.iter().map(|(_, r)| values_json(&r.new)).collect();
    let old_amounts: Vec<Decimal> = revisions
        .iter()
        .map(|(_, r)| r.old.royalty_amount)
        .collect();
    let new_amounts: Vec<Decimal> = revisions
        .iter()
        .map(|(_, r)| r.new.royalty_amount)
        .collect();
    let old_counts: Vec<i64> = revisions.iter().map(|(_, r)| r.old.stream_count).collect();
    let new_counts: Vec<i64> = revisions.iter().map(|(_, r)| r.new.stream_count).collect();
    let topics: Vec<&str> = revisions.iter().map(|(_, r)| &*r.source.topic).collect();
    let partitions: Vec<i32> = revisions.iter().map(|(_, r)| r.source.partition).collect();
    let offsets: Vec<i64> = revisions.iter().map(|(_, r)| r.source.offset).collect();
    let timestamps: Vec<DateTime<Utc>> =
        revisions.iter().map(|(_, r)| r.source.timestamp).collect();
    sqlx::query(
        "INSERT INTO ledger_revisions (line_key, applied, changed_fields, old_values, new_values,
                old_royalty_amount, new_royalty_amount, old_stream_count, new_stream_count,
                source_topic, source_partition, source_offset, source_timestamp, report_period)
         SELECT i.k, i.applied, string_to_array(i.changed, ','), i.old::json, i.new::json, i.oa, i.na,
                i.oc, i.nc, i.topic, i.partition, i.off, i.ts, i.period
           FROM unnest($1::bytea[], $2::bool[], $3::text[], $4::jsonb[], $5::jsonb[],
                       $6::numeric[], $7::numeric[], $8::bigint[], $9::bigint[], $10::text[],
                       $11::int[], $12::bigint[], $13::timestamptz[], $14::date[])
                AS i(k, applied, changed, old, new, oa, na, oc, nc, topic, partition, off, ts,
                     period)
         ON CONFLICT (source_offset, source_partition, source_topic, line_key, report_period)
             DO NOTHING",
    )
    .bind(&keys)
    .bind(&applied)
    .bind(&changed)
    .bind(&old)
    .bind(&new)
    .bind(&old_amounts)
    .bind(&new_amounts)
    .bind(&old_counts)
    .bind(&new_counts)
    .bind(&topics)
    .bind(&partitions)
    .bind(&offsets)
    .bind(&timestamps)
    .bind(&periods)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validate::validate;
    use crate::sample::{SampleRng, valid_line};
    use chrono::TimeZone;

    /// A valid line (transaction `n`) carried by the record at `offset`, stamped `second`.
    fn version(line: &RoyaltyLine, offset: i64, second: i64) -> LineToPost {
        LineToPost {
            line: line.clone(),
            source: SourceRecord {
                topic: "raw".into(),
                partition: 0,
                offset,
                timestamp: Utc
                    .timestamp_opt(1_790_000_000 + second, 0)
                    .single()
                    .expect("ts"),
            },
            record: Default::default(),
        }
    }

    fn line(n: u64) -> RoyaltyLine {
        validate(&valid_line(&mut SampleRng::new(n), n)).expect("valid sample line")
    }

    fn stored(line: &RoyaltyLine, second: i64) -> LedgerRow {
        let v = version(line, 0, second);
        LedgerRow {
            line: v.line,
            source: v.source,
            version: 1,
            catalog_version_id: None,
        }
    }

    #[test]
    fn a_new_line_and_its_identical_resend_insert_once() {
        let first = line(1);
        let (a, b) = (version(&first, 0, 0), version(&first, 1, 1));
        let folded = fold(None, &[&a, &b]);
        assert!(folded.is_new);
        assert_eq!(folded.stats.inserted, 1);
        assert_eq!(folded.stats.duplicates, 1);
        assert!(folded.revisions.is_empty());
        // The row records the newest record that reported the line (the report's version).
        assert_eq!(folded.row.map(|r| r.source.offset), Some(1));
    }

    #[test]
    fn an_unchanged_line_in_a_newer_version_moves_the_row_to_that_version_without_a_revision() {
        let original = line(8);
        let folded = fold(Some(stored(&original, 0)), &[&version(&original, 4, 0)]);
        assert_eq!(folded.stats.duplicates, 1);
        assert!(
            folded.row.is_none(),
            "a redelivery of the same version writes nothing"
        );

        let folded = fold(Some(stored(&original, 0)), &[&version(&original, 4, 9)]);
        assert_eq!(folded.stats.duplicates, 1);
        assert!(folded.revisions.is_empty());
        let row = folded.row.expect("the row moves to the newer version");
        assert_eq!(row.line, original);
        assert_eq!(row.version, 1, "not a restatement");
        assert_eq!(
            (row.source.offset, row.source.timestamp.timestamp()),
            (4, 1_790_000_009)
        );

        let folded = fold(Some(stored(&original, 9)), &[&version(&original, 5, 3)]);
        assert!(folded.row.is_none(), "an older version never moves it back");
    }

    #[test]
    fn a_resend_in_another_report_is_still_a_duplicate_and_writes_nothing() {
        let original = line(2);
        let mut resent = original.clone();
        resent.report_id = Some("another-report".into());
        let mut known = original.clone();
        known.report_id = Some("first-report".into());
        let folded = fold(Some(stored(&known, 0)), &[&version(&resent, 5, 0)]);
        assert_eq!(folded.stats.duplicates, 1);
        assert!(folded.row.is_none(), "nothing to write");
    }

    #[test]
    fn a_changed_amount_restates_the_row_and_journals_old_and_new() {
        let original = line(3);
        let mut corrected = original.clone();
        corrected.royalty_amount += Decimal::new(1, 13);
        let folded = fold(Some(stored(&original, 0)), &[&version(&corrected, 7, 10)]);
        assert_eq!(folded.stats.restated, 1);
        let row = folded.row.expect("row rewritten");
        assert_eq!(row.version, 2);
        assert_eq!(row.line.royalty_amount, corrected.royalty_amount);
        assert_eq!(folded.revisions.len(), 1);
        let revision = &folded.revisions[0];
        assert!(revision.applied);
        assert_eq!(revision.changed_fields, vec!["royalty_amount"]);
        assert_eq!(revision.old.royalty_amount, original.royalty_amount);
    }

    #[test]
    fn an_older_version_is_journaled_but_not_applied() {
        let current = line(4);
        let mut older = current.clone();
        older.stream_count += 1;
        let folded = fold(Some(stored(&current, 100)), &[&version(&older, 9, 50)]);
        assert_eq!(folded.stats.stale, 1);
        assert!(folded.row.is_none(), "the row keeps the newer version");
        assert_eq!(folded.revisions.len(), 1);
        assert!(!folded.revisions[0].applied);
    }

    #[test]
    fn a_copy_that_lacks_a_field_neither_restates_nor_erases_it_and_one_that_adds_it_enriches() {
        let mut v3 = line(5);
        v3.territory = Some("SE".into());
        let mut v1 = v3.clone();
        v1.territory = None;
        let folded = fold(Some(stored(&v3, 0)), &[&version(&v1, 3, 0)]);
        assert_eq!(folded.stats.duplicates, 1);
        assert!(folded.row.is_none());

        let folded = fold(Some(stored(&v1, 0)), &[&version(&v3, 3, 3)]);
        assert_eq!(folded.stats.enriched, 1);
        assert!(folded.revisions.is_empty());
        assert_eq!(
            folded.row.and_then(|r| r.line.territory).as_deref(),
            Some("SE")
        );
    }

    #[test]
    fn a_line_without_upc_is_enriched_by_a_copy_with_one_and_never_erased() {
        let mut with_upc = line(7);
        with_upc.upc = Some("036000291452".into());
        let mut without = with_upc.clone();
        without.upc = None;
        let folded = fold(Some(stored(&without, 0)), &[&version(&with_upc, 3, 3)]);
        assert_eq!(folded.stats.enriched, 1);
        assert_eq!(
            folded.row.and_then(|r| r.line.upc).as_deref(),
            Some("036000291452")
        );
        let folded = fold(Some(stored(&with_upc, 0)), &[&version(&without, 4, 0)]);
        assert_eq!(folded.stats.duplicates, 1);
        assert!(folded.row.is_none());
    }

    #[test]
    fn versions_in_one_batch_fold_in_arrival_order() {
        let first = line(6);
        let mut second = first.clone();
        second.upc = Some("6291041500213".into());
        let mut third = second.clone();
        third.stream_count += 10;
        let (a, b, c) = (
            version(&first, 0, 0),
            version(&second, 1, 1),
            version(&third, 2, 2),
        );
        let folded = fold(None, &[&a, &b, &c]);
        assert_eq!((folded.stats.inserted, folded.stats.restated), (1, 2));
        let row = folded.row.expect("row");
        assert_eq!(row.version, 3);
        assert_eq!(row.line.stream_count, third.stream_count);
        assert_eq!(folded.revisions[0].changed_fields, vec!["upc"]);
        assert_eq!(folded.revisions[1].changed_fields, vec!["stream_count"]);
    }
}
