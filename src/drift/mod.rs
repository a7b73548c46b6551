//! Metadata drift: the versioned master catalog and what disagrees with it.
//!
//! Contract: every line the ledger writes (new or restated) is compared with the catalog
//! version effective at its report period *as the catalog stands when the line is
//! processed*; the row records that version (history is never re-attributed). A distinct
//! drift (ISRC, kind, expected, received, catalog version) raises one alert through the
//! outbox in the same transaction; further lines showing it are only counted, per DSP.
//! ISRCs unknown to the catalog are the exception to one alert each: a batch announces
//! those first seen in one DSP's report (DSP, report, period) with one alert carrying their
//! number and a sample, and every track keeps its own `drift_events` row
//! (`royalty-ingest alerts unknown-tracks` lists them).

pub mod alert;
pub mod catalog;
pub mod detect;
pub mod review;
pub mod store;

use sqlx::PgConnection;

use crate::db::DbFailure;
use crate::domain::RoyaltyLine;
use crate::record::SourceRecord;

pub use alert::DriftAlert;
pub use catalog::{CatalogEntry, CatalogVersion};
pub use detect::{Drift, DriftKind};
pub use store::DriftSettings;

/// A line about to be written to the ledger and the values it replaces (None: new row).
#[derive(Debug, Clone, Copy)]
pub struct LineToCheck<'a> {
    /// The values to be written.
    pub line: &'a RoyaltyLine,
    /// The record that carried them.
    pub source: &'a SourceRecord,
    /// The row's values before (a restatement or enrichment).
    pub previous: Option<&'a RoyaltyLine>,
}

/// What the catalog says of one line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineCheck {
    /// The catalog version effective at the line's report period (None: not catalogued).
    pub catalog_version_id: Option<i64>,
    /// Drift the line shows that its previous values did not already show.
    pub drifts: Vec<Drift>,
}

/// Checks lines against the catalog version effective at their report periods, with a few
/// lookups for all of them (never one per line). A line counts once per distinct drift,
/// however often it is resent, enriched or restated without touching what the catalog
/// checks. The result is in the order of `lines`.
pub async fn check_lines(
    conn: &mut PgConnection,
    lines: &[LineToCheck<'_>],
    settings: &DriftSettings,
) -> Result<Vec<LineCheck>, DbFailure> {
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    // Before any catalog is loaded, "unknown ISRC" means nothing and nothing can drift.
    if !store::catalog_loaded(conn).await? {
        return Ok(vec![LineCheck::default(); lines.len()]);
    }
    let wanted: Vec<(&str, chrono::NaiveDate)> = lines
        .iter()
        .map(|l| (l.line.isrc.as_str(), l.line.report_period))
        .collect();
    // ISRCs without a version at the line's date but with versions at other dates are not
    // unknown: the catalog just does not cover that period.
    let store::CatalogAt { versions, known } = store::catalog_at(conn, &wanted).await?;
    let loaded = true; // see above
    Ok(lines
        .iter()
        .zip(&versions)
        .map(|(l, version)| {
            let version = version.as_ref();
            let alert_unknown = settings.alert_unknown_isrc && !known.contains(&l.line.isrc);
            // At most one drift per kind: a short scan, by ids computed at detection.
            let already: Vec<Drift> = l
                .previous
                .map(|old| detect::detect_line(old, version, loaded, alert_unknown, l.source))
                .unwrap_or_default();
            LineCheck {
                catalog_version_id: version.map(|v| v.version_id),
                drifts: detect::detect_line(l.line, version, loaded, alert_unknown, l.source)
                    .into_iter()
                    .filter(|d| !already.iter().any(|a| a.id() == d.id()))
                    .collect(),
            }
        })
        .collect())
}
