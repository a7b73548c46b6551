//! Drift as a reviewer reads it (the console's drift and track pages): distinct drifts with
//! the DSPs that reported them and their occurrences, their acknowledgement, and a track's
//! catalog history. Reads only, apart from [`acknowledge`]; the pipeline never calls it.

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgPool, Row};

/// One distinct drift over every DSP that reported it.
#[derive(Debug, Clone)]
pub struct DriftRow {
    /// The stable id of the drift.
    pub drift_id: String,
    /// Its kind (`upc_mismatch`, …).
    pub kind: String,
    /// The track.
    pub isrc: String,
    /// What the catalog says.
    pub expected: Option<String>,
    /// What was received.
    pub received: Option<String>,
    /// The catalog version the lines were checked against (or a catalog update closed).
    pub version_before: Option<i64>,
    /// The version that superseded it, if one did.
    pub version_after: Option<i64>,
    /// The DSPs that reported it.
    pub dsps: Vec<String>,
    /// Lines showing it, over all DSPs.
    pub occurrences: i64,
    /// Last seen.
    pub last_seen_at: DateTime<Utc>,
    /// Who acknowledged it, when and why.
    pub acknowledged: Option<(String, DateTime<Utc>, String)>,
}

/// Drifts, most recently seen first: of `kind` when given; only unacknowledged ones
/// (`Some(false)`), only acknowledged ones (`Some(true)`), or all; at most `limit`.
pub async fn drifts(
    pool: &PgPool,
    kind: Option<&str>,
    acknowledged: Option<bool>,
    limit: i64,
) -> anyhow::Result<Vec<DriftRow>> {
    let rows = sqlx::query(
        "SELECT e.drift_id, min(e.kind) AS kind, min(e.isrc) AS isrc,
                min(e.expected) AS expected, min(e.received) AS received,
                min(e.catalog_version_id) AS version_before,
                min(v.superseded_by) AS version_after,
                array_agg(DISTINCT e.dsp_name ORDER BY e.dsp_name) AS dsps,
                sum(e.occurrences)::bigint AS occurrences, max(e.last_seen_at) AS last_seen_at,
                min(a.acknowledged_by) AS acknowledged_by,
                min(a.acknowledged_at) AS acknowledged_at, min(a.note) AS note
           FROM drift_events e
           LEFT JOIN catalog_versions v ON v.version_id = e.catalog_version_id
           LEFT JOIN drift_acknowledgements a ON a.drift_id = e.drift_id
          WHERE ($1::text IS NULL OR e.kind = $1)
            AND ($2::boolean IS NULL OR (a.drift_id IS NOT NULL) = $2)
          GROUP BY e.drift_id
          ORDER BY max(e.last_seen_at) DESC, e.drift_id
          LIMIT $3",
    )
    .bind(kind)
    .bind(acknowledged)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("cannot read drift_events")?;
    rows.iter()
        .map(|r| {
            let by: Option<String> = r.try_get("acknowledged_by")?;
            let at: Option<DateTime<Utc>> = r.try_get("acknowledged_at")?;
            let note: Option<String> = r.try_get("note")?;
            Ok(DriftRow {
                drift_id: r.try_get("drift_id")?,
                kind: r.try_get("kind")?,
                isrc: r.try_get("isrc")?,
                expected: r.try_get("expected")?,
                received: r.try_get("received")?,
                version_before: r.try_get("version_before")?,
                version_after: r.try_get("version_after")?,
                dsps: r.try_get("dsps")?,
                occurrences: r.try_get("occurrences")?,
                last_seen_at: r.try_get("last_seen_at")?,
                acknowledged: match (by, at, note) {
                    (Some(by), Some(at), Some(note)) => Some((by, at, note)),
                    _ => None,
                },
            })
        })
        .collect()
}

/// Unacknowledged drifts counted by kind.
pub async fn open_by_kind(pool: &PgPool) -> anyhow::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT e.kind, count(DISTINCT e.drift_id) FROM drift_events e
          WHERE NOT EXISTS (SELECT 1 FROM drift_acknowledgements a WHERE a.drift_id = e.drift_id)
          GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    .fetch_all(pool)
    .await
    .context("cannot count drift_events")
}

/// Acknowledges a drift with a note; `false` when no such drift exists or it already was.
pub async fn acknowledge(
    pool: &PgPool,
    drift_id: &str,
    by: &str,
    note: &str,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO drift_acknowledgements (drift_id, acknowledged_by, note)
         SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM drift_events WHERE drift_id = $1)
         ON CONFLICT (drift_id) DO NOTHING",
    )
    .bind(drift_id)
    .bind(by)
    .bind(note)
    .execute(pool)
    .await
    .context("cannot record the acknowledgement in drift_acknowledgements")?;
    Ok(done.rows_affected() == 1)
}

/// One catalog version of a track, with both times: in effect over
/// `[valid_from, valid_to)`, learned at `loaded_at`, closed at `closed_at`.
#[derive(Debug, Clone)]
pub struct TrackVersion {
    /// Version id.
    pub version_id: i64,
    /// UPCs.
    pub upcs: Vec<String>,
    /// Title.
    pub title: Option<String>,
    /// Display artist.
    pub display_artist: Option<String>,
    /// Label.
    pub label: Option<String>,
    /// In effect from.
    pub valid_from: NaiveDate,
    /// Until (exclusive; `None`: open).
    pub valid_to: Option<NaiveDate>,
    /// Learned at.
    pub loaded_at: DateTime<Utc>,
    /// Closed at.
    pub closed_at: Option<DateTime<Utc>>,
    /// Closed by.
    pub superseded_by: Option<i64>,
    /// Where it came from.
    pub source: String,
}

/// Every catalog version of a track, in business-time order.
pub async fn track_history(pool: &PgPool, isrc: &str) -> anyhow::Result<Vec<TrackVersion>> {
    let rows = sqlx::query(
        "SELECT version_id, upcs, title, display_artist, label, valid_from, valid_to, loaded_at,
                closed_at, superseded_by, source
           FROM catalog_versions WHERE isrc = $1 ORDER BY valid_from, version_id",
    )
    .bind(isrc)
    .fetch_all(pool)
    .await
    .context("cannot read catalog_versions")?;
    rows.iter()
        .map(|r| {
            Ok(TrackVersion {
                version_id: r.try_get("version_id")?,
                upcs: r.try_get("upcs")?,
                title: r.try_get("title")?,
                display_artist: r.try_get("display_artist")?,
                label: r.try_get("label")?,
                valid_from: r.try_get("valid_from")?,
                valid_to: r.try_get("valid_to")?,
                loaded_at: r.try_get("loaded_at")?,
                closed_at: r.try_get("closed_at")?,
                superseded_by: r.try_get("superseded_by")?,
                source: r.try_get("source")?,
            })
        })
        .collect()
}
