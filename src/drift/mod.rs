//! Metadata drift: the versioned master catalog and what disagrees with it.
//!
//! Contract: every line the ledger writes (new or restated) is compared with the catalog
//! version effective at its report period *as the catalog stands when the line is
//! processed*; the row records that version (history is never re-attributed). A distinct
//! drift (ISRC, kind, expected, received, catalog version) raises one alert through the
//! outbox in the same transaction; further lines showing it are only counted, per DSP.

pub mod alert;
pub mod catalog;
pub mod detect;
pub mod import;
pub mod record;
pub mod store;
pub mod subscribe;

use sqlx::PgConnection;

use crate::domain::RoyaltyLine;
use crate::ledger::DbFailure;
use crate::ledger::post::LedgerRow;

pub use alert::DriftAlert;
pub use catalog::{CatalogEntry, CatalogVersion};
pub use detect::{Drift, DriftKind};
pub use store::DriftSettings;

/// Stamps each written row with the catalog version effective at its period and returns
/// the drift it shows that its previous values (for a rewritten row) did not already show:
/// a line counts once per distinct drift, however often it is resent, enriched or
/// restated without touching what the catalog checks.
pub async fn check_rows(
    conn: &mut PgConnection,
    rows: &mut [(&mut LedgerRow, Option<&RoyaltyLine>)],
    settings: &DriftSettings,
) -> Result<Vec<Drift>, DbFailure> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<(String, chrono::NaiveDate)> = rows
        .iter()
        .map(|(r, _)| (r.line.isrc.clone(), r.line.report_period))
        .collect();
    let versions = store::versions_at(conn, &wanted).await?;
    let loaded = !versions.is_empty() || store::catalog_loaded(conn).await?;
    // ISRCs without a version at the line's date but with versions at other dates are not
    // unknown: the catalog just does not cover that period.
    let uncovered: Vec<String> = rows
        .iter()
        .filter(|(r, _)| !versions.contains_key(&(r.line.isrc.clone(), r.line.report_period)))
        .map(|(r, _)| r.line.isrc.clone())
        .collect();
    let known = if loaded && settings.alert_unknown_isrc {
        store::known_isrcs(conn, &uncovered).await?
    } else {
        Default::default()
    };
    let mut drifts = Vec::new();
    for (row, previous) in rows.iter_mut() {
        let version = versions.get(&(row.line.isrc.clone(), row.line.report_period));
        row.catalog_version_id = version.map(|v| v.version_id);
        let alert_unknown = settings.alert_unknown_isrc && !known.contains(&row.line.isrc);
        let source = format!(
            "{}[{}]@{}",
            row.source.topic, row.source.partition, row.source.offset
        );
        let already: Vec<String> = previous
            .map(|old| detect::detect_line(old, version, loaded, alert_unknown, &source))
            .unwrap_or_default()
            .iter()
            .map(Drift::id)
            .collect();
        drifts.extend(
            detect::detect_line(&row.line, version, loaded, alert_unknown, &source)
                .into_iter()
                .filter(|d| !already.contains(&d.id())),
        );
    }
    Ok(drifts)
}
