//! `royalty-ingest alerts unknown-tracks`: every track the catalog did not know, one line
//! each, from the ledger's `drift_events`. `run` announces unknown ISRCs with one alert per
//! DSP, report and period per batch (a count and a sample of ISRCs); this lists all of
//! them: the tracks of one alert (`--alert`), or by DSP, report and period.

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use clap::builder::BoolishValueParser;
use futures::TryStreamExt;
use sqlx::Row;

use crate::config::DatabaseArgs;
use crate::db;

/// Settings of `royalty-ingest alerts unknown-tracks`.
#[derive(Debug, Clone, Args)]
pub struct UnknownTracksArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Only the tracks this alert announced (its alert_id, as `alerts tail` prints it).
    #[arg(long)]
    pub alert: Option<String>,

    /// Only tracks reported by this DSP (case-insensitive).
    #[arg(long)]
    pub dsp: Option<String>,

    /// Only tracks first reported (at their DSP) in this report.
    #[arg(long)]
    pub report: Option<String>,

    /// Only tracks first reported (at their DSP) for this report period, YYYY-MM-DD.
    #[arg(long)]
    pub period: Option<NaiveDate>,

    /// One JSON object per line instead of tab-separated columns.
    #[arg(long, value_parser = BoolishValueParser::new())]
    pub json: bool,
}

/// Prints the tracks, ordered by DSP, period, report and ISRC, and their number on stderr.
pub async fn unknown_tracks(args: &UnknownTracksArgs) -> anyhow::Result<()> {
    let pool = db::connect(&args.database.url()?, 1).await?;
    db::migrate(&pool).await?;
    // One row per track and DSP; `occurrences` counts its lines there.
    let mut rows = sqlx::query(
        "SELECT isrc, dsp_name, first_report_id, first_period, occurrences, first_source,
                first_seen_at, alert_id
           FROM drift_events
          WHERE kind = 'unknown_isrc'
            AND ($1::text IS NULL OR alert_id = $1)
            AND ($2::text IS NULL OR dsp_name = $2)
            AND ($3::text IS NULL OR first_report_id = $3)
            AND ($4::date IS NULL OR first_period = $4)
          ORDER BY dsp_name, first_period, first_report_id, isrc",
    )
    .bind(args.alert.as_deref().map(str::trim))
    .bind(args.dsp.as_deref().map(|d| d.trim().to_lowercase()))
    .bind(args.report.as_deref())
    .bind(args.period)
    .fetch(&pool);
    let mut stdout = std::io::stdout().lock();
    if !args.json {
        writeln!(
            stdout,
            "isrc\tdsp\treport\tperiod\tlines\tfirst_seen_at\tfirst_source\talert_id"
        )?;
    }
    let mut listed = 0u64;
    while let Some(row) = rows.try_next().await.context("cannot read drift_events")? {
        let track = Track::from_row(&row).context("unexpected drift_events row")?;
        let line = if args.json {
            serde_json::to_string(&track)?
        } else {
            track.tab_separated()
        };
        writeln!(stdout, "{line}")?;
        listed += 1;
    }
    stdout.flush()?;
    eprintln!("{listed} unknown tracks");
    Ok(())
}

/// One unknown track at one DSP.
#[derive(Debug, serde::Serialize)]
struct Track {
    isrc: String,
    dsp: String,
    report: Option<String>,
    period: Option<NaiveDate>,
    lines: i64,
    first_seen_at: DateTime<Utc>,
    first_source: Option<String>,
    /// None: announced earlier (at another DSP), or recorded before alerts named their
    /// tracks.
    alert_id: Option<String>,
}

impl Track {
    fn from_row(row: &sqlx::postgres::PgRow) -> Result<Track, sqlx::Error> {
        Ok(Track {
            isrc: row.try_get("isrc")?,
            dsp: row.try_get("dsp_name")?,
            report: row.try_get("first_report_id")?,
            period: row.try_get("first_period")?,
            lines: row.try_get("occurrences")?,
            first_seen_at: row.try_get("first_seen_at")?,
            first_source: row.try_get("first_source")?,
            alert_id: row.try_get("alert_id")?,
        })
    }

    fn tab_separated(&self) -> String {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.isrc,
            self.dsp,
            or_dash(self.report.clone()),
            or_dash(self.period.map(|p| p.to_string())),
            self.lines,
            self.first_seen_at.to_rfc3339(),
            or_dash(self.first_source.clone()),
            or_dash(self.alert_id.clone()),
        )
    }
}
