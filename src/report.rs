//! Control totals of a DSP report ([`ReportSummary`]): published by `produce` as an Avro
//! `ReportSummary` record, applied by `run` into `report_summaries` in the batch
//! transaction (exactly once, like lines; the newest summary of a report wins), compared
//! with the ledger by `reconcile`. A newer summary is a newer version of its report: once
//! every line of that version is booked, [`settle_replacements`] reverses the lines of older
//! versions that it no longer has. That runs after the batch commits, in its own
//! transaction: a version's lines and its summary may commit in different lanes or
//! instances at the same time, and neither transaction sees the other's rows; the one that
//! settles after both committed does.

use anyhow::Context;
use apache_avro::types::Value;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgConnection;

use crate::avro::record::{decode_record, text};
use std::sync::LazyLock;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::avro::{SchemaStore, encode_record_single_object};
use crate::config::KafkaArgs;
use crate::db::DbFailure;
use crate::kafka::{BROKER_PROBE_TIMEOUT, client_config, topic_partitions};
use crate::record::SourceRecord;

/// Full name of the Avro record.
pub const REPORT_SUMMARY: &str = "io.royaltyingest.ReportSummary";

/// What one report held in one currency, as its producer published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportSummary {
    /// The DSP's report id.
    pub report_id: String,
    /// DSP as the lines spell it.
    pub dsp_name: String,
    /// Report period.
    pub report_period: NaiveDate,
    /// ISO 4217 currency.
    pub currency: String,
    /// Lines published.
    pub lines: i64,
    /// Sum of quantities.
    pub quantity: i64,
    /// Sum of amounts.
    pub amount: Decimal,
    /// What the report itself declares in this currency (DSR summary records), if anything.
    pub declared_amount: Option<Decimal>,
    /// The file it came in.
    pub source: String,
    /// The report's creation time.
    pub created_at: DateTime<Utc>,
    /// SHA-256 (hex) of the content of the file it came in (gunzipped); `None` from v1
    /// writers.
    pub content_sha256: Option<String>,
}

impl ReportSummary {
    /// The record key (report, DSP, period, currency): one partition per report.
    pub fn record_key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.report_id,
            self.dsp_name.trim().to_lowercase(),
            self.report_period,
            self.currency
        )
    }

    /// Avro single-object bytes under the newest `ReportSummary` schema.
    pub fn encode(&self, store: &SchemaStore) -> anyhow::Result<Vec<u8>> {
        let schema = store
            .latest(REPORT_SUMMARY)
            .context("the schemas have no ReportSummary record (report_summary.v1.avsc)")?;
        let value = Value::Record(vec![
            ("report_id".into(), Value::String(self.report_id.clone())),
            ("dsp_name".into(), Value::String(self.dsp_name.clone())),
            (
                "report_period".into(),
                Value::String(self.report_period.to_string()),
            ),
            ("currency".into(), Value::String(self.currency.clone())),
            ("lines".into(), Value::Long(self.lines)),
            ("quantity".into(), Value::Long(self.quantity)),
            ("amount".into(), Value::String(self.amount.to_string())),
            (
                "declared_amount".into(),
                match self.declared_amount {
                    Some(d) => Value::Union(1, Box::new(Value::String(d.to_string()))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
            ("source".into(), Value::String(self.source.clone())),
            (
                "created_at".into(),
                Value::String(self.created_at.to_rfc3339()),
            ),
            (
                "content_sha256".into(),
                match &self.content_sha256 {
                    Some(d) => Value::Union(1, Box::new(Value::String(d.clone()))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
        ]);
        encode_record_single_object(&schema, value).context("cannot encode a ReportSummary")
    }

    /// Decodes and checks one record; the error is a dead-letter class and reason.
    pub fn decode(store: &SchemaStore, payload: &[u8]) -> Result<ReportSummary, (String, String)> {
        let fields = decode_record(store, payload, REPORT_SUMMARY)?;
        let get = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let bad = |reason: String| {
            (
                crate::ledger::dead_letter::REPORT_SUMMARY_CLASS.to_string(),
                reason,
            )
        };
        let string = |name: &str| {
            get(name)
                .and_then(text)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| bad(format!("{name}: missing")))
        };
        let long = |name: &str| match get(name) {
            Some(Value::Long(n)) => Ok(*n),
            _ => Err(bad(format!("{name}: missing"))),
        };
        let decimal = |name: &str, raw: &str| {
            Decimal::from_str_exact(raw.trim())
                .map_err(|_| bad(format!("{name}: {raw:?} is not a decimal")))
        };
        let period = string("report_period")?;
        let created = string("created_at")?;
        let amount = string("amount")?;
        Ok(ReportSummary {
            report_id: string("report_id")?.trim().to_string(),
            dsp_name: string("dsp_name")?.trim().to_string(),
            report_period: NaiveDate::parse_from_str(period.trim(), "%Y-%m-%d")
                .map_err(|_| bad(format!("report_period: {period:?} is not an ISO date")))?,
            currency: string("currency")?.trim().to_string(),
            lines: long("lines")?,
            quantity: long("quantity")?,
            amount: decimal("amount", &amount)?,
            declared_amount: get("declared_amount")
                .and_then(text)
                .map(|raw| decimal("declared_amount", &raw))
                .transpose()?,
            source: string("source")?,
            created_at: DateTime::parse_from_rfc3339(created.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| bad(format!("created_at: {created:?} is not RFC 3339")))?,
            content_sha256: get("content_sha256").and_then(text),
        })
    }
}

/// Writes summaries read from the summaries topic: per report, DSP, period and currency
/// the newest by creation time. An older one changes nothing; one of the same time replaces
/// the stored one, as its lines restate the rows (the later-published copy of a version
/// wins, lines and totals alike). Either way the report's replacement is due again.
pub async fn store<'s>(
    conn: &mut PgConnection,
    summaries: impl IntoIterator<Item = (&'s ReportSummary, &'s SourceRecord)> + Send,
) -> Result<(), DbFailure> {
    for (s, source) in summaries {
        sqlx::query(
            "INSERT INTO report_summaries (report_id, dsp_name, report_period, currency, lines,
                                           quantity, amount, declared_amount, source, created_at,
                                           source_topic, source_partition, source_offset,
                                           replaces_pending)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, true)
             ON CONFLICT (report_id, dsp_name, report_period, currency) DO UPDATE
                SET replaces_pending = true, lines = excluded.lines, quantity = excluded.quantity,
                    amount = excluded.amount, declared_amount = excluded.declared_amount,
                    source = excluded.source, created_at = excluded.created_at,
                    source_topic = excluded.source_topic,
                    source_partition = excluded.source_partition,
                    source_offset = excluded.source_offset, received_at = now()
              WHERE excluded.created_at >= report_summaries.created_at",
        )
        .bind(&s.report_id)
        .bind(&s.dsp_name)
        .bind(s.report_period)
        .bind(&s.currency)
        .bind(s.lines)
        .bind(s.quantity)
        .bind(s.amount)
        .bind(s.declared_amount)
        .bind(&s.source)
        .bind(s.created_at)
        .bind(&*source.topic)
        .bind(source.partition)
        .bind(source.offset)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Reads the summaries on `topic` from `start(partition, low watermark)` to the end of each
/// partition as it is now (blocking: call it off the async workers). Records that do not
/// decode as a `ReportSummary` are skipped: they are `run`'s to dead-letter.
pub fn read_summaries(
    kafka: &KafkaArgs,
    store: &SchemaStore,
    topic: &str,
    start: impl Fn(i32, i64) -> i64,
) -> anyhow::Result<Vec<ReportSummary>> {
    let consumer: BaseConsumer = client_config(kafka)
        .set("group.id", "royalty-ingest-summary-reader")
        .set("enable.auto.commit", "false")
        .create()
        .context("failed to create a Kafka client")?;
    // A topic that does not exist yet has nothing published.
    let partitions = topic_partitions(&consumer, topic, BROKER_PROBE_TIMEOUT)?.unwrap_or_default();
    let mut list = TopicPartitionList::new();
    // Each partition is read up to its end as it is now (its high watermark).
    let mut ends: Vec<(i32, i64)> = Vec::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .with_context(|| format!("cannot read the end of {topic}[{partition}]"))?;
        let from = start(partition, low).max(low);
        if from < high {
            list.add_partition_offset(topic, partition, Offset::Offset(from))
                .with_context(|| format!("cannot read {topic}[{partition}]"))?;
            ends.push((partition, high));
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer
        .assign(&list)
        .with_context(|| format!("cannot read {topic}"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{topic} could not be read to its end within 60 s"
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(err)) => {
                return Err(anyhow::Error::new(err).context(format!("cannot read {topic}")));
            }
            Some(Ok(message)) => {
                if let Some(Ok(summary)) = message
                    .payload()
                    .map(|payload| ReportSummary::decode(store, payload))
                {
                    out.push(summary);
                }
            }
        }
        // A partition is done once the consumer's position reached its end (by offset, not
        // by the last record: the end may be a marker that is never delivered).
        let position = consumer
            .position()
            .with_context(|| format!("cannot read the position on {topic}"))?;
        ends.retain(|(partition, high)| {
            !matches!(
                position.find_partition(topic, *partition).map(|p| p.offset()),
                Some(Offset::Offset(at)) if at >= *high
            )
        });
    }
    Ok(out)
}

/// One report of one DSP and period, as lines and summaries name it.
pub type ReportRef = (String, NaiveDate, String);

/// Reverses, for each summary still waiting to replace its report's older version (see the
/// module docs) whose report `touched` names (`None`: every one), the lines that version no
/// longer has: once the ledger holds at least the summary's number of lines of its
/// version, every other line of the report in that currency with an older version is
/// restated to zero, journaled in `ledger_revisions` with the reason, and listed in
/// `ledger_reversals`. Returns how many lines were reversed. Call it after a batch commits
/// (and once at start, for a crash between the two); it is idempotent, and one transaction
/// at a time runs it (an advisory lock), so the last one to run sees every commit before it.
pub async fn settle_replacements(
    pool: &sqlx::PgPool,
    touched: Option<&std::collections::HashSet<ReportRef>>,
) -> Result<u64, DbFailure> {
    if touched.is_some_and(|t| t.is_empty()) {
        return Ok(0);
    }
    // The common case, nothing pending, costs one round trip (a partial index), not a
    // locked transaction. Seen after this instance's commit, so never a missed summary.
    let any_pending: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM report_summaries WHERE replaces_pending)")
            .fetch_one(pool)
            .await?;
    if !any_pending {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SETTLE_LOCK)
        .execute(&mut *tx)
        .await?;
    let reversed = settle_in(&mut tx, touched).await?;
    tx.commit().await?;
    Ok(reversed)
}

/// The advisory lock that makes one settling transaction run at a time ("rpt-set").
const SETTLE_LOCK: i64 = 0x0072_7074_2d73_6574;

async fn settle_in(
    conn: &mut PgConnection,
    touched: Option<&std::collections::HashSet<ReportRef>>,
) -> Result<u64, DbFailure> {
    let pending: Vec<PendingSummary> = sqlx::query_as(
        "SELECT report_id, dsp_name, report_period, currency, lines, created_at,
                source_topic, source_partition, source_offset
           FROM report_summaries WHERE replaces_pending",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut reversed = 0;
    for p in pending.into_iter().filter(|p| {
        touched.is_none_or(|t| {
            t.contains(&(
                p.dsp_name.trim().to_lowercase(),
                p.report_period,
                p.report_id.clone(),
            ))
        })
    }) {
        let booked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM royalty_ledger
              WHERE dsp_name = $1 AND report_period = $2 AND report_id = $3 AND currency = $4
                AND source_timestamp >= $5",
        )
        .bind(&p.dsp_name)
        .bind(p.report_period)
        .bind(&p.report_id)
        .bind(&p.currency)
        .bind(p.created_at)
        .fetch_one(&mut *conn)
        .await?;
        if booked < p.lines {
            continue;
        }
        let reason = format!(
            "reversed: the version of report {} made {} no longer has this line",
            p.report_id,
            p.created_at.to_rfc3339()
        );
        let done = sqlx::query(REVERSE_SQL.as_str())
            .bind(&p.dsp_name)
            .bind(p.report_period)
            .bind(&p.report_id)
            .bind(&p.currency)
            .bind(p.created_at)
            .bind(&p.source_topic)
            .bind(p.source_partition)
            .bind(p.source_offset)
            .bind(&reason)
            .execute(&mut *conn)
            .await?;
        reversed += done.rows_affected();
        sqlx::query(
            "UPDATE report_summaries SET replaces_pending = false
              WHERE report_id = $1 AND dsp_name = $2 AND report_period = $3 AND currency = $4",
        )
        .bind(&p.report_id)
        .bind(&p.dsp_name)
        .bind(p.report_period)
        .bind(&p.currency)
        .execute(&mut *conn)
        .await?;
    }
    Ok(reversed)
}

/// Reverses the lines of a report's older version ($1 DSP, $2 period, $3 report, $4
/// currency, $5 the version's time, $6..$8 its summary's record, $9 the reason): restated
/// to zero, journaled (the old values as the batch path journals them, from the ledger's
/// column declaration) and listed in `ledger_reversals`.
static REVERSE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH gone AS (
            SELECT * FROM royalty_ledger
             WHERE dsp_name = $1 AND report_period = $2 AND report_id = $3
               AND currency = $4 AND source_timestamp < $5
               AND (royalty_amount <> 0 OR stream_count <> 0)
               FOR UPDATE
         ), journal AS (
            INSERT INTO ledger_revisions (line_key, report_period, applied, changed_fields,
                   old_values, new_values, old_royalty_amount, new_royalty_amount,
                   old_stream_count, new_stream_count, source_topic, source_partition,
                   source_offset, source_timestamp, reason)
            SELECT g.line_key, g.report_period, true, ARRAY['stream_count', 'royalty_amount'],
                   v.old_values::json, (v.old_values || jsonb_build_object(
                       'stream_count', 0, 'royalty_amount', '0'))::json,
                   g.royalty_amount, 0, g.stream_count, 0, $6, $7, $8, $5, $9
              FROM gone g
             CROSS JOIN LATERAL (SELECT {old_values} AS old_values) v
         ), zeroed AS (
            UPDATE royalty_ledger l
               SET royalty_amount = 0, stream_count = 0, version = l.version + 1,
                   source_topic = $6, source_partition = $7, source_offset = $8,
                   source_timestamp = $5, updated_at = now()
              FROM gone g
             WHERE l.report_period = g.report_period AND l.line_key = g.line_key
            RETURNING l.line_key, l.report_period
         )
         INSERT INTO ledger_reversals (line_key, report_period, report_id, version_at)
         SELECT line_key, report_period, $3, $5 FROM zeroed
         ON CONFLICT (line_key) DO UPDATE
            SET report_id = excluded.report_id, version_at = excluded.version_at,
                reversed_at = now()",
        old_values = crate::ledger::columns::journal_json_sql("g")
    )
});

/// A summary whose version has not yet replaced the older one.
#[derive(sqlx::FromRow)]
struct PendingSummary {
    report_id: String,
    dsp_name: String,
    report_period: NaiveDate,
    currency: String,
    lines: i64,
    created_at: DateTime<Utc>,
    source_topic: String,
    source_partition: i32,
    source_offset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_round_trips_exactly() {
        let store = SchemaStore::builtin().expect("schemas");
        let summary = ReportSummary {
            report_id: "1453417766009915".into(),
            dsp_name: "YouTube".into(),
            report_period: NaiveDate::from_ymd_opt(2015, 10, 1).expect("date"),
            currency: "USD".into(),
            lines: 6,
            quantity: 10210,
            amount: Decimal::from_str_exact("7.0000000000001").expect("decimal"),
            declared_amount: Some(Decimal::from_str_exact("15763.58").expect("decimal")),
            source: "DSR_TEST.tsv".into(),
            created_at: DateTime::parse_from_rfc3339("2016-01-21T15:09:26Z")
                .expect("time")
                .with_timezone(&Utc),
            content_sha256: Some("9f86d081884c7d65".into()),
        };
        let bytes = summary.encode(&store).expect("encodes");
        assert_eq!(ReportSummary::decode(&store, &bytes), Ok(summary));
        assert!(ReportSummary::decode(&store, b"junk").is_err());
    }
}
