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
pub mod store;
pub mod subscribe;

use sqlx::PgConnection;

use crate::ledger::DbFailure;
use crate::ledger::post::LedgerRow;

pub use alert::DriftAlert;
pub use catalog::{CatalogEntry, CatalogVersion};
pub use detect::{Drift, DriftKind};
pub use store::DriftSettings;

/// Stamps each row with the catalog version effective at its period and returns the drift
/// the rows show.
pub async fn check_rows(
    conn: &mut PgConnection,
    rows: &mut [&mut LedgerRow],
    settings: &DriftSettings,
) -> Result<Vec<Drift>, DbFailure> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<(String, chrono::NaiveDate)> = rows
        .iter()
        .map(|r| (r.line.isrc.clone(), r.line.report_period))
        .collect();
    let versions = store::versions_at(conn, &wanted).await?;
    let loaded = !versions.is_empty() || store::catalog_loaded(conn).await?;
    let mut drifts = Vec::new();
    for row in rows.iter_mut() {
        let version = versions.get(&(row.line.isrc.clone(), row.line.report_period));
        row.catalog_version_id = version.map(|v| v.version_id);
        let source = format!(
            "{}[{}]@{}",
            row.source.topic, row.source.partition, row.source.offset
        );
        drifts.extend(detect::detect_line(
            &row.line,
            version,
            loaded,
            settings.alert_unknown_isrc,
            &source,
        ));
    }
    Ok(drifts)
}
