//! Refused records: one quarantine row each and one outbox row that the relay publishes to
//! the dead-letter topic — original key, value and headers unchanged (the original timestamp
//! travels in a header; the dead letter is stamped with the refusal time), plus
//! headers that say why (the facts Kafka Connect's `__connect.errors.*` headers carry).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::{RecordBytes, SourceRecord};
use crate::db::DbFailure;
use crate::db::copy::{CopyRows, copy_unless_taken};
use crate::db::outbox::{self, OutboxMessage, headers_json};
use crate::domain::LineKey;

/// Header names added to every dead letter.
pub mod headers {
    /// Stable id of the dead letter (same id however often the record is re-read).
    pub const ID: &str = "royalty.dlq.id";
    /// Pipeline stage that refused the record: `decode`, `validate` or `ledger`.
    pub const STAGE: &str = "royalty.errors.stage";
    /// Machine-readable error class, e.g. `unknown_fingerprint`, `isrc_format`.
    pub const CLASS: &str = "royalty.errors.class";
    /// Human-readable reason naming the field and the rule.
    pub const REASON: &str = "royalty.errors.reason";
    /// Topic the record was read from.
    pub const TOPIC: &str = "royalty.errors.topic";
    /// Partition the record was read from.
    pub const PARTITION: &str = "royalty.errors.partition";
    /// Offset of the record.
    pub const OFFSET: &str = "royalty.errors.offset";
    /// The record's original Kafka timestamp (ms since the epoch). The dead letter itself
    /// is stamped with the refusal time, so the dead-letter topic's retention counts from
    /// then; replay restores this one.
    pub const TIMESTAMP: &str = "royalty.errors.timestamp";
    /// Writer schema (fingerprint or registry id), when the framing named one.
    pub const SCHEMA: &str = "royalty.errors.schema";
    /// Consumer group that refused it.
    pub const GROUP: &str = "royalty.errors.group";
    /// When it was refused (RFC 3339, UTC).
    pub const TIME: &str = "royalty.errors.time";
    /// On a record `dlq replay` sent: the id of the dead letter it replays. Booking the
    /// record resolves that dead letter; refusing it again names it in the new one.
    pub const REPLAY_OF: &str = "royalty.replay.of";
    /// Prefix of the headers that say why a record was refused (dropped on replay).
    pub const ERRORS_PREFIX: &str = "royalty.errors.";
}

/// The stages that refuse records, in pipeline order.
pub const STAGES: &[&str] = &["decode", "validate", "ledger"];

/// Every class a dead letter can carry, with the stage that gives it: what `dlq list
/// --class` accepts (a misspelt class would otherwise select nothing and look like "no
/// such dead letters"). `registry_unavailable` is absent on purpose: such a record waits
/// for the registry and is never dead-lettered.
pub const CLASSES: &[(&str, &str)] = {
    use crate::domain::{currency, gtin, isrc, rules};
    use crate::record::NotRead;
    &[
        ("decode", "unknown_framing"),
        ("decode", "unknown_fingerprint"),
        ("decode", "unknown_schema_id"),
        ("decode", "no_registry"),
        ("decode", "invalid_writer_schema"),
        ("decode", "unexpected_record_type"),
        ("decode", "truncated"),
        ("decode", "trailing_bytes"),
        ("decode", "invalid_datum"),
        ("decode", "null_required_field"),
        ("decode", "decimal_out_of_range"),
        ("decode", EMPTY_VALUE_CLASS),
        ("decode", "invalid_header"),
        ("decode", NotRead::TOO_LARGE_CLASS),
        ("decode", REPORT_SUMMARY_CLASS),
        ("validate", rules::RULE_REQUIRED),
        ("validate", rules::RULE_CONTROL),
        ("validate", rules::RULE_NUL),
        ("validate", rules::RULE_TOO_LONG),
        ("validate", isrc::RULE_FORMAT),
        ("validate", isrc::RULE_HYPHENS),
        ("validate", gtin::RULE_DIGITS),
        ("validate", gtin::RULE_LENGTH),
        ("validate", gtin::RULE_CHECK_DIGIT),
        ("validate", currency::RULE_CODE),
        ("validate", rules::RULE_ISO_DATE),
        ("validate", rules::RULE_NEGATIVE_COUNT),
        ("validate", rules::RULE_LINE_TYPE),
        ("validate", rules::RULE_NEGATIVE_ON_SALE),
        ("validate", rules::RULE_AMOUNT_SCALE),
        ("validate", rules::RULE_AMOUNT_RANGE),
        ("validate", CATALOG_ENTRY_CLASS),
        ("ledger", DATABASE_REJECTED_CLASS),
    ]
};

/// Class of a record without a value (null or 0 bytes).
pub const EMPTY_VALUE_CLASS: &str = "empty_value";
/// Class of a report summary that decodes but lacks a field or holds a bad one.
pub const REPORT_SUMMARY_CLASS: &str = "report_summary";
/// Class of a catalog update whose ISRC, UPCs or date break the catalog's rules.
pub const CATALOG_ENTRY_CLASS: &str = "catalog_entry";
/// Class of a record the ledger database refused.
pub const DATABASE_REJECTED_CLASS: &str = "database_rejected";

/// The class names of [`CLASSES`], for argument parsers.
pub fn class_names() -> impl Iterator<Item = &'static str> {
    CLASSES.iter().map(|(_, class)| *class)
}

/// A refused source record and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where the record came from.
    pub source: SourceRecord,
    /// The original key, value and headers.
    pub record: Arc<RecordBytes>,
    /// `decode`, `validate` or `ledger`.
    pub stage: &'static str,
    /// Machine-readable class.
    pub class: String,
    /// Human-readable reason.
    pub reason: String,
    /// Writer schema reference when known.
    pub schema_ref: Option<String>,
    /// The line the record carried, when it was read far enough to tell (a validation or
    /// database refusal of a line): a newer version of it, once booked, closes the letter
    /// ([`supersede`]).
    pub line: Option<RefusedLine>,
}

/// Which line a refused record carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedLine {
    /// The line's identity key (as the ledger would book it).
    pub key: LineKey,
    /// The report it came in, as the record named it.
    pub report_id: Option<String>,
    /// Its DSP and report period: the console's work queue filters and counts by them.
    pub dsp_name: String,
    /// See `dsp_name`.
    pub report_period: NaiveDate,
}

impl DeadLetter {
    /// The stable id: a hash of the source coordinates, so a record re-read after a crash
    /// gets the same id and subscribers can drop repeats.
    pub fn id(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(
            format!(
                "dl1|{}|{}|{}",
                self.source.topic, self.source.partition, self.source.offset
            )
            .as_bytes(),
        );
        format!("dl-{}", &hex::encode(hasher.finalize())[..32])
    }

    /// The dead letter this record replays, when `dlq replay` sent it.
    pub fn replay_of(&self) -> Option<String> {
        replay_of(&self.record)
    }

    /// The headers of the published dead letter: the originals, then ours (`id`: its
    /// [`DeadLetter::id`]; `refused_at`: an RFC 3339 time, formatted once per batch).
    pub fn outgoing_headers(
        &self,
        id: &str,
        group: &str,
        refused_at: &str,
    ) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = self.record.headers.clone();
        let mut add =
            |name: &str, value: String| out.push((name.to_string(), Some(value.into_bytes())));
        add(headers::ID, id.to_string());
        add(headers::STAGE, self.stage.to_string());
        add(headers::CLASS, self.class.clone());
        add(headers::REASON, self.reason.clone());
        add(headers::TOPIC, self.source.topic.to_string());
        add(headers::PARTITION, self.source.partition.to_string());
        add(headers::OFFSET, self.source.offset.to_string());
        add(
            headers::TIMESTAMP,
            self.source.timestamp.timestamp_millis().to_string(),
        );
        if let Some(schema) = &self.schema_ref {
            add(headers::SCHEMA, schema.clone());
        }
        add(headers::GROUP, group.to_string());
        add(headers::TIME, refused_at.to_string());
        out
    }
}

/// Writes one quarantine row and one outbox row per dead letter (re-reads are absorbed by
/// the unique source coordinates and the stable id).
pub async fn record(
    conn: &mut PgConnection,
    group: &str,
    dlq_topic: &str,
    letters: &[DeadLetter],
) -> Result<(), DbFailure> {
    if letters.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    // A letter's id is a hash of its coordinates: once per letter, for both tables.
    let ids: Vec<String> = letters.iter().map(DeadLetter::id).collect();
    let mut rows = CopyRows::new(20);
    for (d, id) in letters.iter().zip(&ids) {
        let line = d.line.as_ref();
        rows.row()
            .text(&d.source.topic)
            .int4(d.source.partition)
            .int8(d.source.offset)
            .timestamptz(d.source.timestamp)
            .text(group)
            .opt_bytes(d.record.key.as_deref())
            .opt_bytes(d.record.value.as_deref())
            .text_array(d.record.headers.iter().map(|(name, _)| name.as_str()))
            .bytea_array(d.record.headers.iter().map(|(_, value)| value.as_deref()))
            .text(d.stage)
            .text(&d.class)
            // Reasons may quote outside text: make them storable whatever they quote.
            .text(&crate::db::storable_text(&d.reason))
            .opt_text(d.schema_ref.as_deref())
            .text(id)
            .opt_text(d.replay_of().as_deref())
            .opt_bytes(line.map(|l| &l.key.0[..]))
            .opt_text(line.and_then(|l| l.report_id.as_deref()))
            .opt_text(line.map(|l| l.dsp_name.as_str()))
            .opt_date(line.map(|l| l.report_period))
            .text(dlq_topic);
    }
    // The outbox forgets what it published: only letters new to quarantine are sent.
    let added: Option<HashSet<String>> =
        if copy_unless_taken(conn, QUARANTINE_COPY_SQL, rows).await? {
            None
        } else {
            Some(insert_new(conn, group, dlq_topic, letters, &ids).await?)
        };

    let refused_at = now.to_rfc3339();
    let messages: Vec<OutboxMessage> = letters
        .iter()
        .zip(ids)
        .filter(|(_, id)| added.as_ref().is_none_or(|added| added.contains(id)))
        .map(|(d, id)| OutboxMessage {
            headers: d.outgoing_headers(&id, group, &refused_at),
            message_id: id,
            topic: dlq_topic.to_string(),
            key: d.record.key.clone(),
            payload: d.record.value.clone(),
            timestamp: Some(now),
        })
        .collect();
    outbox::enqueue(conn, &messages).await?;
    Ok(())
}

const QUARANTINE_COPY_SQL: &str = "COPY quarantine (source_topic, source_partition, source_offset,
                                 source_timestamp, consumer_group, record_key, record_value,
                                 header_names, header_values, error_stage, error_class, reason,
                                 schema_ref, dead_letter_id, replay_of, line_key, report_id,
                                 dsp_name, report_period, dlq_topic)
                   FROM STDIN (FORMAT binary)";

/// The same letters as one `INSERT … ON CONFLICT DO NOTHING`, for when some record is
/// quarantined already (by another consumer group, or a re-read). Returns the ids of the
/// letters it added.
async fn insert_new(
    conn: &mut PgConnection,
    group: &str,
    dlq_topic: &str,
    letters: &[DeadLetter],
    ids: &[String],
) -> Result<HashSet<String>, DbFailure> {
    let topics: Vec<&str> = letters.iter().map(|d| &*d.source.topic).collect();
    let partitions: Vec<i32> = letters.iter().map(|d| d.source.partition).collect();
    let offsets: Vec<i64> = letters.iter().map(|d| d.source.offset).collect();
    let timestamps: Vec<DateTime<Utc>> = letters.iter().map(|d| d.source.timestamp).collect();
    let keys: Vec<Option<&[u8]>> = letters.iter().map(|d| d.record.key.as_deref()).collect();
    let values: Vec<Option<&[u8]>> = letters.iter().map(|d| d.record.value.as_deref()).collect();
    let stages: Vec<&str> = letters.iter().map(|d| d.stage).collect();
    let classes: Vec<&str> = letters.iter().map(|d| d.class.as_str()).collect();
    let reasons: Vec<String> = letters
        .iter()
        .map(|d| crate::db::storable_text(&d.reason).into_owned())
        .collect();
    let schemas: Vec<Option<&str>> = letters.iter().map(|d| d.schema_ref.as_deref()).collect();
    let replays: Vec<Option<String>> = letters.iter().map(DeadLetter::replay_of).collect();
    let line_keys: Vec<Option<&[u8]>> = letters
        .iter()
        .map(|d| d.line.as_ref().map(|l| &l.key.0[..]))
        .collect();
    let report_ids: Vec<Option<&str>> = letters
        .iter()
        .map(|d| d.line.as_ref().and_then(|l| l.report_id.as_deref()))
        .collect();
    let dsp_names: Vec<Option<&str>> = letters
        .iter()
        .map(|d| d.line.as_ref().map(|l| l.dsp_name.as_str()))
        .collect();
    let report_periods: Vec<Option<NaiveDate>> = letters
        .iter()
        .map(|d| d.line.as_ref().map(|l| l.report_period))
        .collect();
    // Headers travel as JSON (name + hex value) per row: PostgreSQL has no ragged arrays.
    let original_headers: Vec<serde_json::Value> = letters
        .iter()
        .map(|d| headers_json(&d.record.headers))
        .collect();
    let added: Vec<String> = sqlx::query_scalar(
        "INSERT INTO quarantine (source_topic, source_partition, source_offset, source_timestamp,
                                 consumer_group, record_key, record_value, header_names,
                                 header_values, error_stage, error_class, reason, schema_ref,
                                 dead_letter_id, replay_of, line_key, report_id, dsp_name,
                                 report_period, dlq_topic)
         SELECT i.topic, i.partition, i.off, i.ts, $1, i.k, i.v,
                ARRAY(SELECT h->>0 FROM jsonb_array_elements(i.headers) WITH ORDINALITY e(h, n) ORDER BY n),
                ARRAY(SELECT decode(h->>1, 'hex') FROM jsonb_array_elements(i.headers) WITH ORDINALITY e(h, n) ORDER BY n),
                i.stage, i.class, i.reason, i.schema, i.id, i.replay_of, i.line_key, i.report_id,
                i.dsp_name, i.report_period, $19
           FROM unnest($2::text[], $3::int[], $4::bigint[], $5::timestamptz[], $6::bytea[],
                       $7::bytea[], $8::jsonb[], $9::text[], $10::text[], $11::text[],
                       $12::text[], $13::text[], $14::text[], $15::bytea[], $16::text[],
                       $17::text[], $18::date[])
                AS i(topic, partition, off, ts, k, v, headers, stage, class, reason, schema, id,
                     replay_of, line_key, report_id, dsp_name, report_period)
         ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING
         RETURNING dead_letter_id",
    )
    .bind(group)
    .bind(&topics)
    .bind(&partitions)
    .bind(&offsets)
    .bind(&timestamps)
    .bind(&keys)
    .bind(&values)
    .bind(&original_headers)
    .bind(&stages)
    .bind(&classes)
    .bind(&reasons)
    .bind(&schemas)
    .bind(ids)
    .bind(&replays)
    .bind(&line_keys)
    .bind(&report_ids)
    .bind(&dsp_names)
    .bind(&report_periods)
    .bind(dlq_topic)
    .fetch_all(&mut *conn)
    .await?;
    Ok(added.into_iter().collect())
}

/// The dead letter a record replays (its `royalty.replay.of` header), if any.
pub fn replay_of(record: &RecordBytes) -> Option<String> {
    record
        .header(headers::REPLAY_OF)
        .and_then(|id| std::str::from_utf8(id).ok())
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
}

/// A replayed record the batch booked: which dead letter it resolves and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookedReplay {
    /// The dead letter the record replays.
    pub dead_letter_id: String,
    /// Where the replayed copy was read.
    pub source: SourceRecord,
    /// The ledger row it was booked into.
    pub line_key: [u8; 32],
}

/// Marks the replayed dead letters resolved, in the batch transaction that booked them,
/// and with them every earlier dead letter of the same record that they replayed (a
/// replay refused again and replayed once more). Already resolved rows keep their stamp.
pub async fn resolve(conn: &mut PgConnection, booked: &[BookedReplay]) -> Result<(), DbFailure> {
    if booked.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = booked.iter().map(|b| b.dead_letter_id.as_str()).collect();
    let topics: Vec<&str> = booked.iter().map(|b| &*b.source.topic).collect();
    let partitions: Vec<i32> = booked.iter().map(|b| b.source.partition).collect();
    let offsets: Vec<i64> = booked.iter().map(|b| b.source.offset).collect();
    let keys: Vec<&[u8]> = booked.iter().map(|b| &b.line_key[..]).collect();
    sqlx::query(
        "WITH RECURSIVE chain (id, topic, part, off, line_key, depth) AS (
             SELECT * , 0 FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::bytea[])
           UNION
             SELECT q.replay_of, c.topic, c.part, c.off, c.line_key, c.depth + 1
               FROM quarantine q JOIN chain c ON q.dead_letter_id = c.id
              WHERE q.replay_of IS NOT NULL AND c.depth < 32
         )
         UPDATE quarantine q
            SET resolved_at = now(), resolved_topic = c.topic, resolved_partition = c.part,
                resolved_offset = c.off, resolved_line_key = c.line_key
           FROM chain c
          WHERE q.dead_letter_id = c.id AND q.resolved_at IS NULL",
    )
    .bind(&ids)
    .bind(&topics)
    .bind(&partitions)
    .bind(&offsets)
    .bind(&keys)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Closes, as superseded, the open dead letters of the given lines whose newer version
/// the ledger now holds: the same line identity, the same report (or none named by
/// either), and a version newer than the refused record's (a later report time, or the
/// same report time read later from the same partition). A DSP's corrected resend thus
/// closes the letter of the line it corrects, and a refused copy older than what is
/// booked is closed as it is refused. The quarantine row keeps where the newer version
/// was read, its time (`superseded_version`) and a note saying so; when that version is
/// the reversal of the line (a newer report version no longer has it), the note says it
/// was withdrawn. Call it in the batch transaction, after the lines and dead letters are
/// written, with the lines of both (period and key: the ledger's primary key): `booked`,
/// the batch's lines, and `refused`, the other lines of its dead letters. Returns how many
/// letters it closed.
pub async fn supersede(
    conn: &mut PgConnection,
    booked: &[(NaiveDate, LineKey)],
    refused: &[(NaiveDate, LineKey)],
) -> Result<u64, DbFailure> {
    if booked.is_empty() && refused.is_empty() {
        return Ok(0);
    }
    let (booked_periods, booked_keys) = super::primary_key_arrays(booked);
    let (refused_periods, refused_keys) = super::primary_key_arrays(refused);
    let candidates: Vec<(i64, String, NaiveDate, Vec<u8>)> =
        sqlx::query_as(SUPERSEDE_CANDIDATES_SQL)
            .bind(&booked_periods)
            .bind(&booked_keys)
            .bind(&refused_periods)
            .bind(&refused_keys)
            .fetch_all(&mut *conn)
            .await?;
    if candidates.is_empty() {
        return Ok(0);
    }
    // The letters by address and the ledger rows by key, one probe each (OFFSET 0 keeps the
    // ledger's a lookup, never a join against the whole ledger). Not by `quarantine_id`:
    // joined on it, with statistics that still counted a few open letters, PostgreSQL
    // hashed every open letter for each batch (6 ms per batch at 9,000 open letters, 10 ms
    // at 30,000; 4 of 31 PostgreSQL CPU-s at 1M records). A TID can only be fetched.
    let ids: Vec<i64> = candidates.iter().map(|c| c.0).collect();
    let tids: Vec<&str> = candidates.iter().map(|c| c.1.as_str()).collect();
    let periods: Vec<NaiveDate> = candidates.iter().map(|c| c.2).collect();
    let keys: Vec<&[u8]> = candidates.iter().map(|c| &c.3[..]).collect();
    let closed = sqlx::query(SUPERSEDE_SQL)
        .bind(&ids)
        .bind(&tids)
        .bind(&periods)
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
    Ok(closed.rows_affected())
}

/// The open letters of the lines `supersede` is given, found and locked ($1, $2 the periods
/// and keys of the booked lines; $3, $4 of the refused ones): one index probe per key, and
/// nearly every batch has none.
///
/// Written so that the plan cannot be a scan of every open letter filtered by the key
/// array (OFFSET 0 keeps the lookup per key): while a run fills quarantine its statistics
/// lag, the planner took the few open letters it expected for a scan of all of them, and
/// each batch then cost open letters × batch lines comparisons (measured: 85 CPU-s of
/// PostgreSQL instead of 16 for 1M records). The period comes from the line, not the
/// letter: a letter refused before quarantine recorded periods has none. Each letter found
/// is locked: nobody can resolve or move it before this transaction ends, so the update
/// reaches it by its physical address.
///
/// Only a line the ledger holds can close a letter, and a line the batch only refused
/// mostly is not in it (an invalid line of a new track): those are looked up in quarantine
/// only when the ledger has their row (a probe of its primary key, LIMIT 1 keeping it one).
/// Otherwise each of them found its own letter, just written, locked it, and had the
/// update compare it with nothing (measured: 2 of 35 PostgreSQL CPU-s for 1M records with
/// a fifth refused). Public for the plan test.
pub const SUPERSEDE_CANDIDATES_SQL: &str =
    "SELECT o.quarantine_id, o.ctid::text, k.report_period, k.line_key
   FROM (SELECT b.report_period, b.line_key
           FROM unnest($1::date[], $2::bytea[]) AS b(report_period, line_key)
         UNION ALL
         SELECT r.report_period, r.line_key
           FROM unnest($3::date[], $4::bytea[]) AS r(report_period, line_key)
           CROSS JOIN LATERAL (SELECT 1 FROM royalty_ledger l
                                WHERE l.report_period = r.report_period
                                  AND l.line_key = r.line_key
                                LIMIT 1) AS held) AS k
   CROSS JOIN LATERAL (SELECT quarantine_id, ctid FROM quarantine
                        WHERE line_key = k.line_key AND resolved_at IS NULL
                       OFFSET 0 FOR UPDATE) AS o";

/// Closes the letters `supersede` found and locked ($1 ids, $2 their TIDs) whose line's
/// booked version ($3 period, $4 key) is newer, same report. Public for the plan test.
pub const SUPERSEDE_SQL: &str = r#"UPDATE quarantine q
    SET resolved_at = now(), superseded_version = l.source_timestamp,
        resolved_topic = l.source_topic, resolved_partition = l.source_partition,
        resolved_offset = l.source_offset, resolved_line_key = l.line_key,
        resolved_note = concat(
            'the version of ', coalesce('report ' || l.report_id, 'the line'),
            ' made ',
            to_char(l.source_timestamp AT TIME ZONE 'UTC',
                    'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            CASE WHEN r.line_key IS NULL
                 THEN ' was booked from ' || l.source_topic || '['
                      || l.source_partition || ']@' || l.source_offset
                 ELSE ' no longer has this line (reversed to zero)' END)
   FROM unnest($1::bigint[], $2::text[]::tid[], $3::date[], $4::bytea[])
        AS c(id, tid, report_period, line_key)
   CROSS JOIN LATERAL (SELECT * FROM royalty_ledger
                        WHERE report_period = c.report_period
                          AND line_key = c.line_key
                       OFFSET 0) AS l
   LEFT JOIN ledger_reversals r
     ON r.line_key = l.line_key AND r.version_at = l.source_timestamp
  WHERE q.ctid = c.tid AND q.quarantine_id = c.id
    AND btrim(l.report_id) IS NOT DISTINCT FROM btrim(q.report_id)
    AND (l.source_timestamp > q.source_timestamp
         OR (l.source_timestamp = q.source_timestamp
             AND l.source_topic = q.source_topic
             AND l.source_partition = q.source_partition
             AND l.source_offset > q.source_offset))"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::{DecodeError, DecodeErrorKind};

    /// Lists every decode failure; no wildcard arm, so a new kind stops this test from
    /// compiling until it is added here (and, unless it is retried, to [`CLASSES`]).
    fn every_decode_kind() -> Vec<DecodeErrorKind> {
        let kinds = vec![
            DecodeErrorKind::UnknownFraming(String::new()),
            DecodeErrorKind::UnknownFingerprint(0),
            DecodeErrorKind::UnknownSchemaId(0),
            DecodeErrorKind::NoRegistry(0),
            DecodeErrorKind::RegistryUnavailable {
                id: 0,
                reason: String::new(),
            },
            DecodeErrorKind::InvalidWriterSchema(String::new()),
            DecodeErrorKind::UnexpectedRecordType(String::new()),
            DecodeErrorKind::Truncated(String::new()),
            DecodeErrorKind::TrailingBytes(0),
            DecodeErrorKind::InvalidDatum(String::new()),
            DecodeErrorKind::NullRequiredField("isrc"),
            DecodeErrorKind::DecimalOutOfRange(String::new()),
        ];
        for kind in &kinds {
            match kind {
                DecodeErrorKind::UnknownFraming(_)
                | DecodeErrorKind::UnknownFingerprint(_)
                | DecodeErrorKind::UnknownSchemaId(_)
                | DecodeErrorKind::NoRegistry(_)
                | DecodeErrorKind::RegistryUnavailable { .. }
                | DecodeErrorKind::InvalidWriterSchema(_)
                | DecodeErrorKind::UnexpectedRecordType(_)
                | DecodeErrorKind::Truncated(_)
                | DecodeErrorKind::TrailingBytes(_)
                | DecodeErrorKind::InvalidDatum(_)
                | DecodeErrorKind::NullRequiredField(_)
                | DecodeErrorKind::DecimalOutOfRange(_) => {}
            }
        }
        kinds
    }

    #[test]
    fn every_decode_class_that_is_dead_lettered_is_a_known_class_of_the_decode_stage() {
        for kind in every_decode_kind() {
            let error = DecodeError::from(kind);
            let class = error.class();
            if error.is_retryable() {
                assert!(
                    !class_names().any(|c| c == class),
                    "{class} is retried, never dead-lettered"
                );
                continue;
            }
            assert!(
                CLASSES.contains(&("decode", class)),
                "{class} missing from CLASSES"
            );
        }
    }

    #[test]
    fn classes_are_unique_and_their_stages_are_known() {
        let mut seen = std::collections::HashSet::new();
        for (stage, class) in CLASSES {
            assert!(STAGES.contains(stage), "{stage}");
            assert!(seen.insert(*class), "{class} twice");
        }
    }
}
