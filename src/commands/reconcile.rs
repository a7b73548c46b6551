//! `royalty-ingest reconcile`: compares each report's control totals (what `produce`
//! published, kept in `report_summaries`) with what the ledger booked for its newest
//! version — lines, quantity and amount, exactly — and explains the differences it can:
//! lines `run` refused (dead letters, by class), lines not ingested yet (consumer lag),
//! lines still booked from a replaced version. It also flags what a per-report comparison
//! cannot see: summaries on the topic that `run` has not read yet, and two reports of one
//! DSP and period that book the same tracks (a probable double booking). Exit 0 when
//! everything matches, 1 when anything differs or there is nothing to compare, 2 when it
//! could not tell (database or broker unreachable).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use clap::builder::BoolishValueParser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{PgPool, Row};

use crate::avro::LineDecoder;
use crate::config::{DatabaseArgs, KafkaArgs, SchemaArgs, checked_topic_name};
use crate::db;
use crate::domain::currency::normalize_currency;
use crate::kafka::{client_config, missing_topics};
use crate::report::{self, ReportSummary};

/// Settings of `royalty-ingest reconcile`.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The broker, to tell lines not yet ingested (consumer lag) from missing ones.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Writer schemas, to attribute dead letters to their report.
    #[command(flatten)]
    pub schemas: SchemaArgs,

    /// Consumer group of the `run` that books these reports (for its lag).
    #[arg(long, env = "ROYALTY_GROUP", default_value = "royalty-ingest")]
    pub group: String,

    /// Topic of report control totals (as `run --summaries-topic`): summaries on it that
    /// `run` has not read yet are reported as not yet ingested.
    #[arg(
        long,
        env = "ROYALTY_SUMMARIES_TOPIC",
        default_value = "royalty.report.summaries"
    )]
    pub summaries_topic: String,

    /// Only this report.
    #[arg(long, env = "ROYALTY_RECONCILE_REPORT_ID")]
    pub report_id: Option<String>,

    /// Only this DSP (case-insensitive).
    #[arg(long, env = "ROYALTY_RECONCILE_DSP")]
    pub dsp: Option<String>,

    /// Only this report period (YYYY-MM-DD or YYYY-MM).
    #[arg(long, env = "ROYALTY_RECONCILE_PERIOD", value_parser = parse_period)]
    pub period: Option<NaiveDate>,

    /// One JSON object (reports, totals per DSP/period/currency, explanations).
    #[arg(long, env = "ROYALTY_RECONCILE_JSON", value_parser = BoolishValueParser::new(), conflicts_with = "csv")]
    pub json: bool,

    /// CSV, one row per report and currency.
    #[arg(long, env = "ROYALTY_RECONCILE_CSV", value_parser = BoolishValueParser::new())]
    pub csv: bool,
}

/// A report period, YYYY-MM-DD or YYYY-MM (its first day).
pub fn parse_period(raw: &str) -> Result<NaiveDate, String> {
    crate::produce::text::parse_period(raw, None)
        .and_then(|p| NaiveDate::parse_from_str(&p, "%Y-%m-%d").map_err(|e| e.to_string()))
}

/// One report in one currency: what it declared, what the ledger holds.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    /// The report.
    pub report_id: String,
    /// Its DSP.
    pub dsp_name: String,
    /// Its period.
    pub report_period: NaiveDate,
    /// The currency of this row.
    pub currency: String,
    /// Where its totals came from (the file `produce` read).
    pub source: String,
    /// The version's time.
    pub created_at: DateTime<Utc>,
    /// Lines the report has.
    pub expected_lines: i64,
    /// Its total quantity.
    pub expected_quantity: i64,
    /// Its total amount (exact).
    pub expected_amount: Decimal,
    /// The amount its summary records declare, when it has them.
    pub declared_amount: Option<Decimal>,
    /// Lines the ledger holds for this version.
    pub ledger_lines: i64,
    /// Their quantity.
    pub ledger_quantity: i64,
    /// Their amount.
    pub ledger_amount: Decimal,
    /// Lines of older versions of the report still booked with a non-zero amount or count.
    pub replaced_still_booked: i64,
    /// Lines of older versions reversed to zero because this version no longer has them.
    pub reversed: i64,
    /// Whether `run` still waits for this version's lines before reversing older ones.
    pub replacement_pending: bool,
    /// Lines, quantity and amount agree and nothing is pending.
    pub matches: bool,
    /// What explains the difference, as far as it can tell.
    pub explanation: Vec<String>,
}

/// Sums per DSP, period and currency.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupTotals {
    /// Reports in the group.
    pub reports: u64,
    /// Lines the reports have.
    pub expected_lines: i64,
    /// Lines the ledger holds.
    pub ledger_lines: i64,
    /// Quantity the reports have.
    pub expected_quantity: i64,
    /// Quantity the ledger holds.
    pub ledger_quantity: i64,
    /// Amount the reports have.
    pub expected_amount: Decimal,
    /// Amount the ledger holds.
    pub ledger_amount: Decimal,
}

impl GroupTotals {
    /// Lines, quantity and amount agree.
    pub fn matches(&self) -> bool {
        self.expected_lines == self.ledger_lines
            && self.expected_quantity == self.ledger_quantity
            && self.expected_amount == self.ledger_amount
    }
}

/// The comparison: what `reconcile` prints and `--json` serialises, and what the console's
/// reports page shows.
#[derive(Debug, Clone, Default)]
pub struct Reconciliation {
    /// Every report row matches and nothing else was found.
    pub matched: bool,
    /// One row per report and currency.
    pub reports: Vec<ReportRow>,
    /// Sums per DSP, period and currency.
    pub totals: BTreeMap<(String, NaiveDate, String), GroupTotals>,
    /// What a per-report comparison cannot see (unread summaries, double bookings, nothing
    /// to compare).
    pub findings: Vec<String>,
}

impl Reconciliation {
    /// The `--json` object.
    pub fn to_json(&self) -> serde_json::Value {
        let totals: Vec<serde_json::Value> = self
            .totals
            .iter()
            .map(|((dsp, period, currency), g)| {
                let mut value = serde_json::to_value(g).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    object.insert("dsp_name".into(), dsp.clone().into());
                    object.insert("report_period".into(), period.to_string().into());
                    object.insert("currency".into(), currency.clone().into());
                }
                value
            })
            .collect();
        serde_json::json!({
            "matched": self.matched,
            "reports": self.reports,
            "totals": totals,
            "findings": self.findings,
        })
    }
}

/// Runs the comparison and prints it; `Ok(true)` when everything matches.
pub async fn reconcile(args: &ReconcileArgs) -> anyhow::Result<bool> {
    let pool = db::connect(&args.database.url()?, 2).await?;
    db::migrate(&pool).await?;
    let result = compute(&pool, args).await?;
    if args.json {
        println!("{}", result.to_json());
    } else if args.csv {
        print_csv(&result.reports)?;
        for finding in &result.findings {
            eprintln!("{finding}");
        }
    } else {
        print_table(&result.reports, &result.totals);
        for finding in &result.findings {
            println!("{finding}");
        }
    }
    Ok(result.matched)
}

/// Compares the reports `args` selects with the ledger (the broker is asked for unread
/// summaries and consumer lag). `args.json` and `args.csv` are not looked at.
pub async fn compute(pool: &PgPool, args: &ReconcileArgs) -> anyhow::Result<Reconciliation> {
    // The broker is asked first: a reconcile that cannot see what is still on the way
    // cannot say "all match" (exit 2 through the error).
    let summaries_topic = checked_topic_name("--summaries-topic", args.summaries_topic.trim())?;
    let missing = missing_topics(&args.kafka, &[summaries_topic.as_str()]).await?;
    let unread = if missing.is_empty() {
        unread_summaries(pool, args, &summaries_topic).await?
    } else {
        Vec::new()
    };
    let mut rows = compare(pool, args).await?;
    if rows.iter().any(|r| !r.matches) {
        explain(pool, args, &mut rows).await?;
    }
    let overlaps = double_bookings(pool, args).await?;
    let mut findings: Vec<String> = Vec::new();
    for s in &unread {
        findings.push(format!(
            "report {} ({} {} {}, made {}) is on {summaries_topic} but not yet ingested by group {}: run again once `run` has caught up",
            s.report_id,
            s.dsp_name,
            s.report_period,
            s.currency,
            s.created_at.to_rfc3339(),
            args.group
        ));
    }
    for o in &overlaps {
        findings.push(format!(
            "probable double booking: reports {} and {} of {} {} both book {} line(s) of the same tracks (ISRC, territory, usage type and quantity); neither replaces the other — if one is a corrected resend, publish it under the same report identity",
            o.first, o.second, o.dsp_name, o.report_period, o.shared
        ));
    }
    if rows.is_empty() && unread.is_empty() {
        findings.push(match &args.report_id {
            Some(id) => format!(
                "no report {id:?} in the ledger or on {summaries_topic}: check the id (`royalty-ingest reconcile --json` lists the known ones)"
            ),
            None => "no report summaries match: nothing to compare (publish reports with `royalty-ingest produce`)".to_string(),
        });
    }
    let matched = rows.iter().all(|r| r.matches) && findings.is_empty();
    let mut totals: BTreeMap<(String, NaiveDate, String), GroupTotals> = BTreeMap::new();
    for row in &rows {
        let g = totals
            .entry((
                row.dsp_name.clone(),
                row.report_period,
                row.currency.clone(),
            ))
            .or_default();
        g.reports += 1;
        g.expected_lines += row.expected_lines;
        g.ledger_lines += row.ledger_lines;
        g.expected_quantity += row.expected_quantity;
        g.ledger_quantity += row.ledger_quantity;
        g.expected_amount += row.expected_amount;
        g.ledger_amount += row.ledger_amount;
    }
    Ok(Reconciliation {
        matched,
        reports: rows,
        totals,
        findings,
    })
}

async fn compare(pool: &PgPool, args: &ReconcileArgs) -> anyhow::Result<Vec<ReportRow>> {
    // The ledger side through its (dsp_name, report_period) index, one report at a time.
    // A line belongs to the summary's version when its row holds that version or a later
    // one, and is not a line the version reversed; an older row is from a replaced version.
    let records = sqlx::query(
        "SELECT s.report_id, s.dsp_name, s.report_period, s.currency, s.source, s.created_at,
                s.lines, s.quantity, s.amount, s.declared_amount, s.replaces_pending,
                l.lines AS ledger_lines, l.quantity AS ledger_quantity, l.amount AS ledger_amount,
                l.replaced, l.reversed
           FROM report_summaries s
           CROSS JOIN LATERAL (
                SELECT count(*) FILTER (WHERE current) AS lines,
                       coalesce(sum(r.stream_count) FILTER (WHERE current), 0)::bigint AS quantity,
                       coalesce(sum(r.royalty_amount) FILTER (WHERE current), 0) AS amount,
                       count(*) FILTER (WHERE NOT current AND NOT is_reversed
                                          AND (r.royalty_amount <> 0 OR r.stream_count <> 0))
                           AS replaced,
                       count(*) FILTER (WHERE is_reversed) AS reversed
                  FROM royalty_ledger r
                 CROSS JOIN LATERAL (
                       SELECT EXISTS (SELECT 1 FROM ledger_reversals v
                                       WHERE v.line_key = r.line_key
                                         AND v.version_at = r.source_timestamp) AS is_reversed) rv
                 CROSS JOIN LATERAL (
                       SELECT r.source_timestamp >= s.created_at AND NOT rv.is_reversed AS current) c
                 WHERE r.dsp_name = s.dsp_name AND r.report_period = s.report_period
                   AND r.report_id = s.report_id AND r.currency = s.currency) l
          WHERE ($1::text IS NULL OR s.report_id = $1)
            AND ($2::text IS NULL OR lower(s.dsp_name) = lower($2))
            AND ($3::date IS NULL OR s.report_period = $3)
          ORDER BY s.dsp_name, s.report_period, s.report_id, s.currency",
    )
    .bind(args.report_id.as_deref().map(str::trim))
    .bind(args.dsp.as_deref().map(str::trim))
    .bind(args.period)
    .fetch_all(pool)
    .await
    .context("cannot read report_summaries and the ledger")?;
    let mut rows = Vec::with_capacity(records.len());
    for r in records {
        let expected = (
            r.try_get::<i64, _>("lines")?,
            r.try_get::<i64, _>("quantity")?,
            r.try_get::<Decimal, _>("amount")?,
        );
        let ledger = (
            r.try_get::<i64, _>("ledger_lines")?,
            r.try_get::<i64, _>("ledger_quantity")?,
            r.try_get::<Decimal, _>("ledger_amount")?,
        );
        let replaced: i64 = r.try_get("replaced")?;
        let pending: bool = r.try_get("replaces_pending")?;
        rows.push(ReportRow {
            report_id: r.try_get("report_id")?,
            dsp_name: r.try_get("dsp_name")?,
            report_period: r.try_get("report_period")?,
            currency: r.try_get("currency")?,
            source: r.try_get("source")?,
            created_at: r.try_get("created_at")?,
            expected_lines: expected.0,
            expected_quantity: expected.1,
            expected_amount: expected.2,
            declared_amount: r.try_get("declared_amount")?,
            ledger_lines: ledger.0,
            ledger_quantity: ledger.1,
            ledger_amount: ledger.2,
            replaced_still_booked: replaced,
            reversed: r.try_get("reversed")?,
            replacement_pending: pending,
            matches: expected == ledger && replaced == 0 && !pending,
            explanation: Vec::new(),
        });
    }
    Ok(rows)
}

/// Says what it can about each difference: dead letters of the report (by class), records
/// not yet ingested by the group, more lines in the ledger than the report published.
async fn explain(
    pool: &PgPool,
    args: &ReconcileArgs,
    rows: &mut [ReportRow],
) -> anyhow::Result<()> {
    let refused = refused_by_report(pool, args).await?;
    // The currencies each report has a row for: a refused line in none of them (its
    // currency was the fault) is named on every row of its report, said as such.
    let mut currencies: HashMap<String, Vec<String>> = HashMap::new();
    for row in rows.iter() {
        currencies
            .entry(row.report_id.clone())
            .or_default()
            .push(row.currency.clone());
    }
    let lag = match consumer_lag(pool, args).await {
        Ok(lag) => Some(lag),
        Err(err) => {
            eprintln!("note: consumer lag unknown ({err:#})");
            None
        }
    };
    for row in rows.iter_mut().filter(|r| !r.matches) {
        if row.replaced_still_booked > 0 {
            row.explanation.push(format!(
                "{} line(s) of an older version of the report are still booked{}",
                row.replaced_still_booked,
                if row.replacement_pending {
                    ": they are reversed once every line of this version is in the ledger"
                } else {
                    ""
                }
            ));
        }
        let missing = row.expected_lines - row.ledger_lines;
        if missing > 0 {
            row.explanation.push(format!(
                "{missing} line(s) of the report are not in the ledger"
            ));
        } else if missing < 0 {
            row.explanation.push(format!(
                "the ledger has {} line(s) more than the report published (another file with the same report id?)",
                -missing
            ));
        }
        // Per currency: each row is one currency of the report, and only that currency's
        // refused lines explain its difference.
        let key = (row.report_id.clone(), row.currency.clone());
        if let Some(classes) = refused.get(&key) {
            row.explanation.push(format!(
                "run refused {} in {} (see `royalty-ingest dlq list --report-id {}`)",
                class_counts(classes),
                row.currency,
                row.report_id
            ));
        }
        let known = currencies.get(&row.report_id);
        let elsewhere: BTreeMap<&str, u64> = refused
            .iter()
            .filter(|((report, currency), _)| {
                *report == row.report_id && known.is_none_or(|k| !k.contains(currency))
            })
            .flat_map(|(_, classes)| classes.iter())
            .fold(BTreeMap::new(), |mut sum, (class, n)| {
                *sum.entry(class.as_str()).or_default() += n;
                sum
            });
        if !elsewhere.is_empty() {
            let list: Vec<String> = elsewhere.iter().map(|(c, n)| format!("{n} {c}")).collect();
            row.explanation.push(format!(
                "run refused {} of the report in a currency it has no totals for (see `royalty-ingest dlq list --report-id {}`)",
                list.join(", "),
                row.report_id
            ));
        }
        match lag {
            Some(0) => {}
            Some(n) => row.explanation.push(format!(
                "{n} record(s) not yet ingested by group {}: run again once it has caught up",
                args.group
            )),
            None => {}
        }
        if row.ledger_lines == row.expected_lines && row.ledger_amount != row.expected_amount {
            row.explanation.push(format!(
                "same line count, amounts differ by {}: lines restated after the report (see ledger_revisions)",
                row.ledger_amount - row.expected_amount
            ));
        }
    }
    Ok(())
}

/// Summaries on the summaries topic past the group's stored offsets: published, not yet
/// read by `run` (their reports are not in `report_summaries` yet, or in an older version).
async fn unread_summaries(
    pool: &PgPool,
    args: &ReconcileArgs,
    topic: &str,
) -> anyhow::Result<Vec<ReportSummary>> {
    let stored: HashMap<i32, i64> = sqlx::query_as::<_, (i32, i64)>(
        "SELECT partition, next_offset FROM consumer_offsets
          WHERE consumer_group = $1 AND topic = $2",
    )
    .bind(&args.group)
    .bind(topic)
    .fetch_all(pool)
    .await
    .context("cannot read consumer_offsets")?
    .into_iter()
    .collect();
    let store = args.schemas.store()?;
    let (kafka, topic) = (args.kafka.clone(), topic.to_string());
    let (report_id, dsp, period) = (args.report_id.clone(), args.dsp.clone(), args.period);
    tokio::task::spawn_blocking(move || {
        let unread = report::read_summaries(&kafka, &store, &topic, |partition, low| {
            stored.get(&partition).copied().unwrap_or(low)
        })?;
        Ok(unread
            .into_iter()
            .filter(|summary| {
                report_id
                    .as_deref()
                    .is_none_or(|id| id.trim() == summary.report_id)
                    && dsp
                        .as_deref()
                        .is_none_or(|d| d.trim().eq_ignore_ascii_case(&summary.dsp_name))
                    && period.is_none_or(|p| p == summary.report_period)
            })
            .collect())
    })
    .await
    .context("reading the summaries topic was interrupted")?
}

/// Two reports of one DSP and period whose lines book the same tracks.
#[derive(Debug, Clone, Serialize)]
struct DoubleBooking {
    dsp_name: String,
    report_period: NaiveDate,
    first: String,
    second: String,
    shared: i64,
}

/// Pairs of reports of one DSP and period, neither replacing the other, where at least half
/// of the smaller report's booked lines have a twin in the other (same ISRC, territory,
/// usage type, currency and quantity): a report booked twice under two identities (a copy
/// with another report id, an older identity rule). Reversed lines do not count.
async fn double_bookings(
    pool: &PgPool,
    args: &ReconcileArgs,
) -> anyhow::Result<Vec<DoubleBooking>> {
    let rows = sqlx::query(
        "WITH scope AS (
            SELECT DISTINCT dsp_name, report_period FROM report_summaries
             WHERE ($1::text IS NULL OR lower(dsp_name) = lower($1))
               AND ($2::date IS NULL OR report_period = $2)
               AND ($3::text IS NULL OR report_id = $3)
         ), booked AS (
            SELECT r.dsp_name, r.report_period, r.report_id, r.isrc, r.territory, r.usage_type,
                   r.currency, r.stream_count
              FROM royalty_ledger r JOIN scope USING (dsp_name, report_period)
             WHERE r.report_id IS NOT NULL AND (r.royalty_amount <> 0 OR r.stream_count <> 0)
         ), sizes AS (
            SELECT dsp_name, report_period, report_id, count(*) AS n FROM booked
             GROUP BY 1, 2, 3
         ), shared_periods AS (
            -- Only a DSP and period with two reports or more can hold a pair: the self-join
            -- below then reads their lines alone, not every line in scope.
            SELECT dsp_name, report_period FROM sizes GROUP BY 1, 2 HAVING count(*) > 1
         ), candidates AS (
            SELECT b.* FROM booked b JOIN shared_periods USING (dsp_name, report_period)
         ), pairs AS (
            SELECT a.dsp_name, a.report_period, a.report_id AS first, b.report_id AS second,
                   count(*) AS shared
              FROM candidates a JOIN candidates b
                ON a.dsp_name = b.dsp_name AND a.report_period = b.report_period
               AND a.report_id < b.report_id AND a.isrc = b.isrc
               AND a.territory IS NOT DISTINCT FROM b.territory
               AND a.usage_type IS NOT DISTINCT FROM b.usage_type
               AND a.currency = b.currency AND a.stream_count = b.stream_count
             GROUP BY 1, 2, 3, 4
         )
         SELECT p.dsp_name, p.report_period, p.first, p.second, p.shared
           FROM pairs p
           JOIN sizes x ON x.dsp_name = p.dsp_name AND x.report_period = p.report_period
                       AND x.report_id = p.first
           JOIN sizes y ON y.dsp_name = p.dsp_name AND y.report_period = p.report_period
                       AND y.report_id = p.second
          WHERE p.shared * 2 >= least(x.n, y.n)
            AND ($3::text IS NULL OR p.first = $3 OR p.second = $3)
          ORDER BY 1, 2, 3, 4",
    )
    .bind(args.dsp.as_deref().map(str::trim))
    .bind(args.period)
    .bind(args.report_id.as_deref().map(str::trim))
    .fetch_all(pool)
    .await
    .context("cannot look for reports booked twice")?;
    rows.into_iter()
        .map(|r| {
            Ok(DoubleBooking {
                dsp_name: r.try_get("dsp_name")?,
                report_period: r.try_get("report_period")?,
                first: r.try_get("first")?,
                second: r.try_get("second")?,
                shared: r.try_get("shared")?,
            })
        })
        .collect()
}

/// `3 unknown_fingerprint, 1 database_rejected`.
fn class_counts(classes: &BTreeMap<String, u64>) -> String {
    classes
        .iter()
        .map(|(class, n)| format!("{n} {class}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Dead letters in quarantine per report id, currency (as the ledger would spell it) and
/// class (payloads decoded to find the report; those that do not decode cannot be
/// attributed).
async fn refused_by_report(
    pool: &PgPool,
    args: &ReconcileArgs,
) -> anyhow::Result<HashMap<(String, String), BTreeMap<String, u64>>> {
    let decoder = LineDecoder::new(Arc::new(args.schemas.store()?), args.schemas.registry()?);
    let rows = sqlx::query(
        "SELECT error_class, record_value FROM quarantine
          WHERE resolved_at IS NULL AND record_value IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .context("cannot read quarantine")?;
    let mut out: HashMap<(String, String), BTreeMap<String, u64>> = HashMap::new();
    for row in rows {
        let value: Vec<u8> = row.try_get("record_value")?;
        let Ok(decoded) = decoder.decode(&value).await else {
            continue;
        };
        let raw = decoded.line.currency;
        let currency = normalize_currency(&raw).unwrap_or(raw);
        if let Some(report) = decoded.line.report_id {
            *out.entry((report.trim().to_string(), currency))
                .or_default()
                .entry(row.try_get("error_class")?)
                .or_default() += 1;
        }
    }
    Ok(out)
}

/// Records on the group's partitions past its stored offsets.
async fn consumer_lag(pool: &PgPool, args: &ReconcileArgs) -> anyhow::Result<i64> {
    let partitions = partition_lag(pool, &args.kafka, &args.group, Duration::from_secs(10)).await?;
    let mut lag = 0;
    for p in partitions {
        let end = p
            .end
            .with_context(|| format!("cannot read the end of {}[{}]", p.topic, p.partition))?;
        lag += (end - p.next_offset).max(0);
    }
    Ok(lag)
}

/// One partition a consumer group stored offsets for.
#[derive(Debug, Clone)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Where the group resumes (`consumer_offsets`).
    pub next_offset: i64,
    /// When that offset was last committed.
    pub committed_at: DateTime<Utc>,
    /// The partition's end (high watermark), when the broker answered in time.
    pub end: Option<i64>,
}

impl PartitionLag {
    /// Records not yet ingested, when the end is known.
    pub fn lag(&self) -> Option<i64> {
        self.end.map(|end| (end - self.next_offset).max(0))
    }
}

/// The group's stored offsets with each partition's end as the broker says within
/// `timeout` (`end` is `None` where it did not answer, and for every partition after the
/// first it did not answer for).
pub async fn partition_lag(
    pool: &PgPool,
    kafka: &KafkaArgs,
    group: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<PartitionLag>> {
    let stored: Vec<(String, i32, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT topic, partition, next_offset, updated_at FROM consumer_offsets
          WHERE consumer_group = $1 ORDER BY topic, partition",
    )
    .bind(group)
    .fetch_all(pool)
    .await
    .context("cannot read consumer_offsets")?;
    let consumer: BaseConsumer = client_config(kafka)
        .create()
        .context("failed to create a Kafka client")?;
    tokio::task::spawn_blocking(move || {
        stored
            .into_iter()
            .scan(
                true,
                |broker_answers, (topic, partition, next_offset, committed_at)| {
                    // A broker that did not answer for one partition is not asked for the
                    // rest: a page waits one timeout, not one per partition.
                    let end = if *broker_answers {
                        let end = consumer
                            .fetch_watermarks(&topic, partition, timeout)
                            .ok()
                            .map(|(_, high)| high);
                        *broker_answers = end.is_some();
                        end
                    } else {
                        None
                    };
                    Some(PartitionLag {
                        topic,
                        partition,
                        next_offset,
                        committed_at,
                        end,
                    })
                },
            )
            .collect()
    })
    .await
    .context("the lag check was interrupted")
}

fn print_table(rows: &[ReportRow], groups: &BTreeMap<(String, NaiveDate, String), GroupTotals>) {
    if rows.is_empty() {
        return;
    }
    // Columns as wide as their longest value: DSR report ids and DSP names run long.
    let report_width = rows
        .iter()
        .map(|r| r.report_id.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let dsp_width = rows
        .iter()
        .map(|r| r.dsp_name.chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    println!(
        "{:<report_width$}  {:<dsp_width$}  {:<10}  {:<4}  {:>9}  {:>9}  {:>12}  {:>12}  {:>22}  {:>22}  STATUS",
        "REPORT",
        "DSP",
        "PERIOD",
        "CUR",
        "LINES",
        "BOOKED",
        "QUANTITY",
        "BOOKED",
        "AMOUNT",
        "BOOKED"
    );
    for r in rows {
        println!(
            "{:<report_width$}  {:<dsp_width$}  {:<10}  {:<4}  {:>9}  {:>9}  {:>12}  {:>12}  {:>22}  {:>22}  {}",
            r.report_id,
            r.dsp_name,
            r.report_period,
            r.currency,
            r.expected_lines,
            r.ledger_lines,
            r.expected_quantity,
            r.ledger_quantity,
            r.expected_amount.normalize(),
            r.ledger_amount.normalize(),
            if r.matches { "ok" } else { "DIFFERS" }
        );
        for why in &r.explanation {
            println!("    - {why}");
        }
        if let Some(declared) = r.declared_amount
            && declared != r.expected_amount
        {
            println!(
                "    note: the report's summary records declare {} {}; its lines carry {}",
                declared.normalize(),
                r.currency,
                r.expected_amount.normalize()
            );
        }
    }
    println!();
    println!("per DSP, period and currency:");
    for ((dsp, period, currency), g) in groups {
        let status = if g.matches() { "ok" } else { "DIFFERS" };
        println!(
            "  {dsp} {period} {currency}: {} report(s), {}/{} lines, quantity {}/{}, amount {}/{} (report/ledger) {status}",
            g.reports,
            g.expected_lines,
            g.ledger_lines,
            g.expected_quantity,
            g.ledger_quantity,
            g.expected_amount.normalize(),
            g.ledger_amount.normalize()
        );
    }
    let differing = rows.iter().filter(|r| !r.matches).count();
    if differing == 0 {
        println!("{} report line(s) reconciled, all match", rows.len());
    } else {
        println!("{differing} of {} report line(s) DIFFER", rows.len());
    }
}

fn print_csv(rows: &[ReportRow]) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_writer(std::io::stdout());
    out.write_record([
        "report_id",
        "dsp_name",
        "report_period",
        "currency",
        "expected_lines",
        "ledger_lines",
        "expected_quantity",
        "ledger_quantity",
        "expected_amount",
        "ledger_amount",
        "declared_amount",
        "matches",
        "explanation",
    ])?;
    for r in rows {
        out.write_record([
            r.report_id.clone(),
            r.dsp_name.clone(),
            r.report_period.to_string(),
            r.currency.clone(),
            r.expected_lines.to_string(),
            r.ledger_lines.to_string(),
            r.expected_quantity.to_string(),
            r.ledger_quantity.to_string(),
            r.expected_amount.to_string(),
            r.ledger_amount.to_string(),
            r.declared_amount.map(|d| d.to_string()).unwrap_or_default(),
            r.matches.to_string(),
            r.explanation.join("; "),
        ])?;
    }
    out.flush()?;
    Ok(())
}
