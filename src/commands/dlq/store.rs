//! What PostgreSQL knows about dead letters: the quarantine row (open or resolved, and
//! where a replay was booked), the replays that sent it back, and the dead letters that
//! never reached the topic (or no longer are on it).

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use super::letter::{Letter, Place};

/// The state of one dead letter in the ledger database.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// A quarantine row exists (false: refused by a pipeline writing to another database).
    pub quarantined: bool,
    /// When it was closed: a replay of it booked, closed by hand, or a newer version of
    /// its line booked.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Where the booked replay was read, `topic[partition]@offset`, or who closed it by
    /// hand and why.
    pub resolved_by: Option<String>,
    /// How often it was replayed.
    pub replays: i64,
    /// What carries its line on: a replay of it was refused again (the newer dead letter,
    /// whose `replay_of` names this one; booking it resolves both), or a newer version of
    /// the line was booked (the DSP's corrected resend), which closed this one.
    pub superseded_by: Option<String>,
    /// Closed because a newer version of its line was booked (`superseded_by` says which).
    pub by_newer_version: bool,
}

impl Status {
    /// Still waiting for a fix: quarantined, not resolved, not carried on by a newer
    /// dead letter of the same record.
    pub fn is_open(&self) -> bool {
        self.quarantined && self.resolved_at.is_none() && self.superseded_by.is_none()
    }

    /// Closed as resolved: a replay of it booked, or closed by hand.
    pub fn is_resolved(&self) -> bool {
        self.resolved_at.is_some() && !self.by_newer_version
    }

    /// One word for tables: `open`, `resolved`, `superseded` or `unknown` (no quarantine
    /// row in this database).
    pub fn word(&self) -> &'static str {
        if !self.quarantined {
            "unknown"
        } else if self.is_resolved() {
            "resolved"
        } else if self.superseded_by.is_some() {
            "superseded"
        } else {
            "open"
        }
    }
}

/// The status of each id (ids without a quarantine row get the default).
pub async fn statuses(pool: &PgPool, ids: &[String]) -> anyhow::Result<HashMap<String, Status>> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(10_000) {
        let rows = sqlx::query(
            "SELECT i.id, q.dead_letter_id IS NOT NULL AS quarantined, q.resolved_at,
                    CASE WHEN q.superseded_version IS NULL THEN
                      coalesce(q.resolved_topic || '[' || q.resolved_partition || ']@'
                                   || q.resolved_offset,
                               'by hand (' || q.resolved_by_user || '): ' || q.resolved_note)
                    END AS resolved_by,
                    (SELECT count(*) FROM dlq_replay_items r WHERE r.dead_letter_id = i.id)
                        AS replays,
                    CASE WHEN q.superseded_version IS NOT NULL THEN q.resolved_note
                         ELSE (SELECT min(n.dead_letter_id) FROM quarantine n
                                WHERE n.replay_of = i.id)
                    END AS superseded_by,
                    coalesce(q.superseded_version IS NOT NULL, false) AS by_newer_version
               FROM unnest($1::text[]) AS i(id)
               LEFT JOIN quarantine q ON q.dead_letter_id = i.id",
        )
        .bind(chunk)
        .fetch_all(pool)
        .await
        .context("cannot read quarantine and replay state")?;
        for row in rows {
            out.insert(
                row.try_get("id")?,
                Status {
                    quarantined: row.try_get("quarantined")?,
                    resolved_at: row.try_get("resolved_at")?,
                    resolved_by: row.try_get("resolved_by")?,
                    replays: row.try_get("replays")?,
                    superseded_by: row.try_get("superseded_by")?,
                    by_newer_version: row.try_get("by_newer_version")?,
                },
            );
        }
    }
    Ok(out)
}

/// Dead letters meant for `dlq_topic` whose id was not seen on it: unpublished ones (the
/// broker refused them) and published ones the topic no longer holds, from quarantine.
pub async fn letters_off_topic(
    pool: &PgPool,
    dlq_topic: &str,
    seen: &HashSet<String>,
) -> anyhow::Result<Vec<Letter>> {
    let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
    let rows = sqlx::query(
        "SELECT q.dead_letter_id, q.error_stage, q.error_class, q.reason, q.source_topic,
                q.source_partition, q.source_offset, q.source_timestamp, q.quarantined_at,
                q.schema_ref, q.consumer_group, q.replay_of, q.record_key, q.record_value,
                q.header_names, q.header_values, o.outbox_id IS NOT NULL AS unpublished,
                o.last_error
           FROM quarantine q LEFT JOIN outbox o ON o.message_id = q.dead_letter_id
          WHERE q.dlq_topic = $1 AND NOT (q.dead_letter_id = ANY($2::text[]))
          ORDER BY q.quarantine_id",
    )
    .bind(dlq_topic)
    .bind(&seen)
    .fetch_all(pool)
    .await
    .context("cannot read quarantine")?;
    rows.iter().map(letter_from_row).collect()
}

/// The dead letters with these ids, from quarantine (where their original record is kept),
/// in the order of `ids`; ids without a quarantine row are left out.
pub async fn letters_by_ids(pool: &PgPool, ids: &[String]) -> anyhow::Result<Vec<Letter>> {
    let rows = sqlx::query(
        "SELECT q.dead_letter_id, q.error_stage, q.error_class, q.reason, q.source_topic,
                q.source_partition, q.source_offset, q.source_timestamp, q.quarantined_at,
                q.schema_ref, q.consumer_group, q.replay_of, q.record_key, q.record_value,
                q.header_names, q.header_values, o.outbox_id IS NOT NULL AS unpublished,
                o.last_error
           FROM unnest($1::text[]) WITH ORDINALITY AS i(id, n)
           JOIN quarantine q ON q.dead_letter_id = i.id
           LEFT JOIN outbox o ON o.message_id = q.dead_letter_id
          ORDER BY i.n",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .context("cannot read quarantine")?;
    rows.iter().map(letter_from_row).collect()
}

/// A dead letter from its quarantine row, placed by its outbox row: one still there is
/// unpublished (with the broker's last refusal); none means the relay published it.
fn letter_from_row(row: &sqlx::postgres::PgRow) -> anyhow::Result<Letter> {
    let place = if row.try_get("unpublished")? {
        Place::Unpublished {
            error: row.try_get("last_error")?,
        }
    } else {
        Place::Expired
    };
    let names: Vec<String> = row.try_get("header_names")?;
    let values: Vec<Option<Vec<u8>>> = row.try_get("header_values")?;
    Ok(Letter {
        id: row.try_get("dead_letter_id")?,
        stage: row.try_get("error_stage")?,
        class: row.try_get("error_class")?,
        reason: row.try_get("reason")?,
        source_topic: Some(row.try_get("source_topic")?),
        source_partition: Some(row.try_get("source_partition")?),
        source_offset: Some(row.try_get("source_offset")?),
        original_timestamp: row.try_get("source_timestamp")?,
        refused_at: Some(row.try_get("quarantined_at")?),
        schema: row.try_get("schema_ref")?,
        group: Some(row.try_get("consumer_group")?),
        replay_of: row.try_get("replay_of")?,
        place,
        key: row.try_get("record_key")?,
        value: row.try_get("record_value")?,
        original_headers: names.into_iter().zip(values).collect(),
    })
}

/// The quarantine row of one dead letter, as JSON (bytes left out), if there is one.
pub async fn quarantine_row(pool: &PgPool, id: &str) -> anyhow::Result<Option<serde_json::Value>> {
    let row = sqlx::query(
        "SELECT quarantine_id, consumer_group, error_stage, error_class, reason, schema_ref,
                quarantined_at, replay_of, resolved_at, resolved_topic, resolved_partition,
                resolved_offset, encode(resolved_line_key, 'hex') AS resolved_line_key,
                resolved_by_user, resolved_note, encode(line_key, 'hex') AS line_key,
                report_id, superseded_version
           FROM quarantine WHERE dead_letter_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("cannot read quarantine")?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(serde_json::json!({
        "quarantine_id": row.try_get::<i64, _>("quarantine_id")?,
        "consumer_group": row.try_get::<String, _>("consumer_group")?,
        "error_stage": row.try_get::<String, _>("error_stage")?,
        "error_class": row.try_get::<String, _>("error_class")?,
        "reason": row.try_get::<String, _>("reason")?,
        "schema_ref": row.try_get::<Option<String>, _>("schema_ref")?,
        "quarantined_at": row.try_get::<DateTime<Utc>, _>("quarantined_at")?,
        "replay_of": row.try_get::<Option<String>, _>("replay_of")?,
        "resolved_at": row.try_get::<Option<DateTime<Utc>>, _>("resolved_at")?,
        "resolved_topic": row.try_get::<Option<String>, _>("resolved_topic")?,
        "resolved_partition": row.try_get::<Option<i32>, _>("resolved_partition")?,
        "resolved_offset": row.try_get::<Option<i64>, _>("resolved_offset")?,
        "resolved_line_key": row.try_get::<Option<String>, _>("resolved_line_key")?,
        "resolved_by_user": row.try_get::<Option<String>, _>("resolved_by_user")?,
        "resolved_note": row.try_get::<Option<String>, _>("resolved_note")?,
        "line_key": row.try_get::<Option<String>, _>("line_key")?,
        "report_id": row.try_get::<Option<String>, _>("report_id")?,
        "superseded_version": row.try_get::<Option<DateTime<Utc>>, _>("superseded_version")?,
    })))
}

/// Every replay that sent one dead letter back, oldest first, as JSON.
pub async fn replays_of(pool: &PgPool, id: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let rows = sqlx::query(
        "SELECT r.replay_id, r.started_at, r.note, i.target_topic, i.target_partition,
                i.target_offset, i.sent_at
           FROM dlq_replay_items i JOIN dlq_replays r USING (replay_id)
          WHERE i.dead_letter_id = $1 ORDER BY i.sent_at, r.replay_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .context("cannot read dlq_replay_items")?;
    rows.iter()
        .map(|row| {
            Ok(serde_json::json!({
                "replay_id": row.try_get::<i64, _>("replay_id")?,
                "started_at": row.try_get::<DateTime<Utc>, _>("started_at")?,
                "note": row.try_get::<Option<String>, _>("note")?,
                "target_topic": row.try_get::<String, _>("target_topic")?,
                "target_partition": row.try_get::<i32, _>("target_partition")?,
                "target_offset": row.try_get::<i64, _>("target_offset")?,
                "sent_at": row.try_get::<DateTime<Utc>, _>("sent_at")?,
            }))
        })
        .collect()
}

/// Opens the record of one replay; returns its id.
pub async fn begin_replay(
    pool: &PgPool,
    note: Option<&str>,
    target_topic: Option<&str>,
    selection: &str,
    selected: usize,
) -> anyhow::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO dlq_replays (note, target_topic, selection, selected)
         VALUES ($1, $2, $3, $4) RETURNING replay_id",
    )
    .bind(note)
    .bind(target_topic)
    .bind(selection)
    .bind(selected as i32)
    .fetch_one(pool)
    .await
    .context("cannot record the replay in dlq_replays")
}

/// One dead letter the broker acknowledged: where its replayed copy went.
pub struct SentItem {
    /// The dead letter.
    pub dead_letter_id: String,
    /// Target topic.
    pub topic: String,
    /// Target partition.
    pub partition: i32,
    /// Target offset.
    pub offset: i64,
}

/// Records acknowledged sends of a replay.
pub async fn record_items(pool: &PgPool, replay_id: i64, items: &[SentItem]) -> anyhow::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = items.iter().map(|i| i.dead_letter_id.as_str()).collect();
    let topics: Vec<&str> = items.iter().map(|i| i.topic.as_str()).collect();
    let partitions: Vec<i32> = items.iter().map(|i| i.partition).collect();
    let offsets: Vec<i64> = items.iter().map(|i| i.offset).collect();
    sqlx::query(
        "INSERT INTO dlq_replay_items (replay_id, dead_letter_id, target_topic, target_partition,
                                       target_offset)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int[], $5::bigint[])
         ON CONFLICT (replay_id, dead_letter_id) DO NOTHING",
    )
    .bind(replay_id)
    .bind(&ids)
    .bind(&topics)
    .bind(&partitions)
    .bind(&offsets)
    .execute(pool)
    .await
    .context("cannot record replayed dead letters in dlq_replay_items")?;
    Ok(())
}

/// Closes the record of a replay with its counts.
pub async fn finish_replay(
    pool: &PgPool,
    replay_id: i64,
    replayed: usize,
    skipped: usize,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE dlq_replays SET finished_at = now(), replayed = $2, skipped = $3
          WHERE replay_id = $1",
    )
    .bind(replay_id)
    .bind(replayed as i32)
    .bind(skipped as i32)
    .execute(pool)
    .await
    .context("cannot close the replay record in dlq_replays")?;
    Ok(())
}

/// What closing dead letters by hand did.
#[derive(Debug, Default)]
pub struct Closed {
    /// Closed now.
    pub closed: Vec<String>,
    /// Already closed, left as they were.
    pub already: Vec<String>,
    /// No quarantine row has these ids.
    pub unknown: Vec<String>,
}

/// Closes the open ones among `ids` by hand (`dlq resolve`, the console's resolve): who
/// and why are kept in the quarantine row; nothing is deleted.
pub async fn close_by_hand(
    pool: &PgPool,
    ids: &[String],
    note: &str,
    by: &str,
) -> anyhow::Result<Closed> {
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "WITH wanted AS (SELECT DISTINCT unnest($1::text[]) AS id),
              closed AS (
                UPDATE quarantine q
                   SET resolved_at = now(), resolved_note = $2, resolved_by_user = $3
                  FROM wanted w
                 WHERE q.dead_letter_id = w.id AND q.resolved_at IS NULL
                RETURNING q.dead_letter_id)
         SELECT w.id, EXISTS (SELECT 1 FROM closed c WHERE c.dead_letter_id = w.id)
           FROM wanted w
          WHERE EXISTS (SELECT 1 FROM quarantine q WHERE q.dead_letter_id = w.id)",
    )
    .bind(ids)
    .bind(note)
    .bind(by)
    .fetch_all(pool)
    .await
    .context("cannot close the dead letters in quarantine")?;
    let mut out = Closed::default();
    for (id, closed) in &rows {
        if *closed {
            out.closed.push(id.clone());
        } else {
            out.already.push(id.clone());
        }
    }
    out.unknown = ids
        .iter()
        .filter(|id| !rows.iter().any(|(known, _)| known == *id))
        .cloned()
        .collect();
    Ok(out)
}

/// A dead letter's state as the work queue filters it (the words of [`Status::word`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStatus {
    /// Waiting for a fix.
    Open,
    /// A replay of it booked, or closed by hand.
    Resolved,
    /// Carried on by a newer dead letter of its replay, or closed by a newer version of its
    /// line.
    Superseded,
}

impl QueueStatus {
    /// Parses `open`, `resolved` or `superseded`.
    pub fn parse(word: &str) -> Option<QueueStatus> {
        match word {
            "open" => Some(QueueStatus::Open),
            "resolved" => Some(QueueStatus::Resolved),
            "superseded" => Some(QueueStatus::Superseded),
            _ => None,
        }
    }

    /// The word it parses from.
    pub fn word(self) -> &'static str {
        match self {
            QueueStatus::Open => "open",
            QueueStatus::Resolved => "resolved",
            QueueStatus::Superseded => "superseded",
        }
    }

    /// The SQL condition on `quarantine q`, the same partition of states as
    /// [`Status::is_open`], [`Status::is_resolved`] and `superseded_by`.
    fn condition(self) -> &'static str {
        match self {
            QueueStatus::Open => {
                "q.resolved_at IS NULL
                 AND NOT EXISTS (SELECT 1 FROM quarantine n WHERE n.replay_of = q.dead_letter_id)"
            }
            QueueStatus::Resolved => "q.resolved_at IS NOT NULL AND q.superseded_version IS NULL",
            QueueStatus::Superseded => {
                "(q.superseded_version IS NOT NULL
                  OR (q.resolved_at IS NULL
                      AND EXISTS (SELECT 1 FROM quarantine n WHERE n.replay_of = q.dead_letter_id)))"
            }
        }
    }
}

/// Which dead letters a page of the work queue shows (every field optional).
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// Error classes (any of them).
    pub classes: Vec<String>,
    /// Stage.
    pub stage: Option<String>,
    /// DSP (exact, case-insensitive).
    pub dsp: Option<String>,
    /// Report period.
    pub period: Option<NaiveDate>,
    /// State.
    pub status: Option<QueueStatus>,
    /// Words in the reason, or a dead-letter or report id.
    pub text: Option<String>,
}

/// One row of the work queue.
#[derive(Debug, Clone)]
pub struct QueueRow {
    /// The keyset position (newest first).
    pub quarantine_id: i64,
    /// The dead letter's id.
    pub id: String,
    /// `decode`, `validate` or `ledger`.
    pub stage: String,
    /// Error class.
    pub class: String,
    /// Why it was refused.
    pub reason: String,
    /// `topic[partition]@offset` of the refused record.
    pub source: String,
    /// When it was refused.
    pub refused_at: DateTime<Utc>,
    /// DSP, when the line decoded far enough.
    pub dsp_name: Option<String>,
    /// Report period, likewise.
    pub report_period: Option<NaiveDate>,
    /// Report id, likewise.
    pub report_id: Option<String>,
}

/// One page of the work queue, newest first, from quarantine: the rows after `before`
/// (a `quarantine_id`, exclusive) that the filter selects, at most `limit`. Keyset
/// pagination: every page is an index range scan, however deep.
pub async fn queue_page(
    pool: &PgPool,
    filter: &QueueFilter,
    before: Option<i64>,
    limit: i64,
) -> anyhow::Result<Vec<QueueRow>> {
    let status = filter
        .status
        .map_or("true", QueueStatus::condition)
        .to_string();
    // The only text spliced in is one of QueueStatus's constant conditions.
    let sql = format!(
        "SELECT q.quarantine_id, q.dead_letter_id, q.error_stage, q.error_class, q.reason,
                q.source_topic || '[' || q.source_partition || ']@' || q.source_offset AS source,
                q.quarantined_at, q.dsp_name, q.report_period, q.report_id
           FROM quarantine q
          WHERE ($1::bigint IS NULL OR q.quarantine_id < $1)
            AND (cardinality($2::text[]) = 0 OR q.error_class = ANY($2))
            AND ($3::text IS NULL OR q.error_stage = $3)
            AND ($4::text IS NULL OR lower(q.dsp_name) = lower($4))
            AND ($5::date IS NULL OR q.report_period = $5)
            AND ($6::text IS NULL OR q.dead_letter_id = $6 OR q.report_id = $6
                 OR q.reason ILIKE '%' || replace(replace(replace($6, '\\', '\\\\'), '%', '\\%'),
                                              '_', '\\_') || '%')
            AND {status}
          ORDER BY q.quarantine_id DESC
          LIMIT $7"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(before)
        .bind(&filter.classes)
        .bind(filter.stage.as_deref())
        .bind(filter.dsp.as_deref())
        .bind(filter.period)
        .bind(filter.text.as_deref())
        .bind(limit)
        .fetch_all(pool)
        .await
        .context("cannot read the dead-letter queue from quarantine")?;
    rows.iter()
        .map(|row| {
            Ok(QueueRow {
                quarantine_id: row.try_get("quarantine_id")?,
                id: row.try_get("dead_letter_id")?,
                stage: row.try_get("error_stage")?,
                class: row.try_get("error_class")?,
                reason: row.try_get("reason")?,
                source: row.try_get("source")?,
                refused_at: row.try_get("quarantined_at")?,
                dsp_name: row.try_get("dsp_name")?,
                report_period: row.try_get("report_period")?,
                report_id: row.try_get("report_id")?,
            })
        })
        .collect()
}

/// Open dead letters counted by class and DSP (`None`: the line did not decode far enough
/// to name its DSP), most first.
pub async fn open_by_class_and_dsp(
    pool: &PgPool,
) -> anyhow::Result<Vec<(String, Option<String>, i64)>> {
    let sql = format!(
        "SELECT q.error_class, q.dsp_name, count(*) FROM quarantine q
          WHERE {} GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
        QueueStatus::Open.condition()
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .context("cannot count open dead letters")
}

/// The DSP and report period a dead letter's line was for, when known.
pub async fn line_of(
    pool: &PgPool,
    id: &str,
) -> anyhow::Result<Option<(Option<String>, Option<NaiveDate>)>> {
    sqlx::query_as("SELECT dsp_name, report_period FROM quarantine WHERE dead_letter_id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .context("cannot read quarantine")
}

/// The chain of replays a dead letter belongs to: the letters it replays (older first),
/// itself, and the letters replaying it (newer), each with its id and class.
pub async fn replay_chain(pool: &PgPool, id: &str) -> anyhow::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "WITH RECURSIVE up (id, depth) AS (
             SELECT $1::text, 0
             UNION ALL
             SELECT q.replay_of, up.depth - 1 FROM up JOIN quarantine q ON q.dead_letter_id = up.id
              WHERE q.replay_of IS NOT NULL AND up.depth > -100),
         down (id, depth) AS (
             SELECT $1::text, 0
             UNION ALL
             SELECT q.dead_letter_id, down.depth + 1 FROM down JOIN quarantine q ON q.replay_of = down.id
              WHERE down.depth < 100),
         chain AS (SELECT id, depth FROM up UNION SELECT id, depth FROM down)
         SELECT c.id, coalesce(q.error_class, '') FROM chain c
           LEFT JOIN quarantine q ON q.dead_letter_id = c.id
          ORDER BY c.depth",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .context("cannot follow the chain of replays in quarantine")
}
