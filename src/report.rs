//! Control totals of a DSP report ([`ReportSummary`]): published by `produce` as an Avro
//! `ReportSummary` record, applied by `run` into `report_summaries` in the batch
//! transaction (exactly once, like lines; the newest summary of a report wins), compared
//! with the ledger by `reconcile`.

use anyhow::Context;
use apache_avro::types::Value;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgConnection;

use crate::avro::record::{decode_record, text};
use crate::avro::{SchemaStore, encode_record_single_object};
use crate::db::DbFailure;
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
        ]);
        encode_record_single_object(&schema, value).context("cannot encode a ReportSummary")
    }

    /// Decodes and checks one record; the error is a dead-letter class and reason.
    pub fn decode(store: &SchemaStore, payload: &[u8]) -> Result<ReportSummary, (String, String)> {
        let fields = decode_record(store, payload, REPORT_SUMMARY)?;
        let get = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let bad = |reason: String| ("report_summary".to_string(), reason);
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
        })
    }
}

/// Writes summaries read from the summaries topic: per report, DSP, period and currency
/// the newest by creation time (a re-read or an older one changes nothing).
pub async fn store<'s>(
    conn: &mut PgConnection,
    summaries: impl IntoIterator<Item = (&'s ReportSummary, &'s SourceRecord)> + Send,
) -> Result<(), DbFailure> {
    for (s, source) in summaries {
        sqlx::query(
            "INSERT INTO report_summaries (report_id, dsp_name, report_period, currency, lines,
                                           quantity, amount, declared_amount, source, created_at,
                                           source_topic, source_partition, source_offset)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (report_id, dsp_name, report_period, currency) DO UPDATE
                SET lines = excluded.lines, quantity = excluded.quantity,
                    amount = excluded.amount, declared_amount = excluded.declared_amount,
                    source = excluded.source, created_at = excluded.created_at,
                    source_topic = excluded.source_topic,
                    source_partition = excluded.source_partition,
                    source_offset = excluded.source_offset, received_at = now()
              WHERE excluded.created_at > report_summaries.created_at",
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
        };
        let bytes = summary.encode(&store).expect("encodes");
        assert_eq!(ReportSummary::decode(&store, &bytes), Ok(summary));
        assert!(ReportSummary::decode(&store, b"junk").is_err());
    }
}
