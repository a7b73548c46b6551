//! The catalog and drift tables, inside the caller's transaction: versions current at a
//! date, applying an entry (close the covering version, open a new one), and recording
//! drift (counted per DSP; one alert through the outbox per distinct drift, one per DSP
//! and report for the ISRCs the catalog does not know).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};

use crate::avro::WriterSchema;
use crate::db::DbFailure;
use crate::db::copy::{CopyRows, copy_unless_taken};
use crate::db::outbox::{self, OutboxMessage};

use super::alert::DriftAlert;
use super::catalog::{CatalogEntry, CatalogVersion};
use super::detect::{ALL_KINDS, Drift, DriftKind, detect_update};

/// How drift is reported.
#[derive(Debug, Clone)]
pub struct DriftSettings {
    /// Topic of the alerts.
    pub alerts_topic: String,
    /// Whether an ISRC missing from a loaded catalog raises an alert.
    pub alert_unknown_isrc: bool,
    /// Schema the alerts are encoded with.
    pub alert_schema: Arc<WriterSchema>,
}

/// What applying catalog entries did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries identical to the version already effective at their date.
    pub unchanged: u64,
    /// New versions for ISRCs with no version at that date.
    pub created: u64,
    /// New versions that closed an effective one.
    pub superseded: u64,
}

impl ApplyStats {
    /// Adds another application's counts.
    pub fn add(&mut self, other: ApplyStats) {
        self.unchanged += other.unchanged;
        self.created += other.created;
        self.superseded += other.superseded;
    }
}

/// Whether any catalog has been loaded (before that, "unknown ISRC" means nothing).
pub async fn catalog_loaded(conn: &mut PgConnection) -> Result<bool, DbFailure> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM catalog_versions)")
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// What the catalog says of some lines' tracks ([`catalog_at`]).
#[derive(Debug, Default)]
pub struct CatalogAt {
    /// The version effective at each (ISRC, date) asked for, in the order asked (None: no
    /// version at that date).
    pub versions: Vec<Option<CatalogVersion>>,
    /// The ISRCs asked for that have versions at any date: one without a version at a
    /// line's date is known, the catalog just does not cover that period.
    pub known: HashSet<String>,
}

/// The version effective at each (ISRC, date) asked for.
pub async fn versions_at(
    conn: &mut PgConnection,
    wanted: &[(&str, NaiveDate)],
) -> Result<HashMap<(String, NaiveDate), CatalogVersion>, DbFailure> {
    let found = catalog_at(conn, wanted).await?.versions;
    Ok(wanted
        .iter()
        .zip(found)
        .filter_map(|((isrc, day), version)| Some(((isrc.to_string(), *day), version?)))
        .collect())
}

/// The version effective at each (ISRC, date) asked for, and which of the ISRCs the catalog
/// knows at all. One index lookup per distinct ISRC of the batch: every version of those
/// tracks is read (a track has a handful) and the one effective at each date picked here.
pub async fn catalog_at(
    conn: &mut PgConnection,
    wanted: &[(&str, NaiveDate)],
) -> Result<CatalogAt, DbFailure> {
    if wanted.is_empty() {
        return Ok(CatalogAt::default());
    }
    let isrcs: HashSet<&str> = wanted.iter().map(|(isrc, _)| *isrc).collect();
    let isrcs: Vec<&str> = isrcs.into_iter().collect();
    let rows = sqlx::query(
        "SELECT version_id, isrc, upcs, title, display_artist, label, iswc, valid_from, valid_to
           FROM catalog_versions WHERE isrc = ANY($1)",
    )
    .bind(&isrcs)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_isrc: HashMap<String, Vec<CatalogVersion>> = HashMap::new();
    for row in &rows {
        let version = version_from_row(row)?;
        by_isrc
            .entry(version.entry.isrc.clone())
            .or_default()
            .push(version);
    }
    let versions = wanted
        .iter()
        .map(|(isrc, day)| {
            // The latest version to start on or before the day and not closed by then.
            by_isrc
                .get(*isrc)?
                .iter()
                .filter(|v| v.entry.valid_from <= *day && v.valid_to.is_none_or(|to| to > *day))
                .max_by_key(|v| (v.entry.valid_from, v.version_id))
                .cloned()
        })
        .collect();
    Ok(CatalogAt {
        versions,
        known: by_isrc.into_keys().collect(),
    })
}

fn version_from_row(row: &sqlx::postgres::PgRow) -> Result<CatalogVersion, sqlx::Error> {
    Ok(CatalogVersion {
        version_id: row.try_get("version_id")?,
        entry: CatalogEntry {
            isrc: row.try_get("isrc")?,
            upcs: row.try_get("upcs")?,
            title: row.try_get("title")?,
            display_artist: row.try_get("display_artist")?,
            label: row.try_get("label")?,
            iswc: row.try_get("iswc")?,
            valid_from: row.try_get("valid_from")?,
        },
        valid_to: row.try_get("valid_to")?,
    })
}

/// Applies entries in order: an entry identical to the version effective at its date
/// changes nothing (re-imports are no-ops; a field the entry leaves empty keeps the value in
/// effect, as an absent field does in the ledger); otherwise the covering version is closed at
/// the entry's date (the past is never edited) and a new version opened. Changes of UPCs,
/// label or artist come back as drift.
pub async fn apply_entries<'e>(
    conn: &mut PgConnection,
    entries: impl IntoIterator<Item = (&'e CatalogEntry, &'e str)> + Send,
) -> Result<(ApplyStats, Vec<Drift>), DbFailure> {
    let mut stats = ApplyStats::default();
    let mut drifts = Vec::new();
    for (entry, source) in entries {
        // Serialises writers of one ISRC (an import and a run at once): the lock is taken
        // before the read, so the read sees what the other transaction committed.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('catalog:' || $1))")
            .bind(&entry.isrc)
            .execute(&mut *conn)
            .await?;
        let rows = sqlx::query(
            "SELECT version_id, isrc, upcs, title, display_artist, label, iswc, valid_from, valid_to
               FROM catalog_versions WHERE isrc = $1 ORDER BY valid_from, version_id FOR UPDATE",
        )
        .bind(&entry.isrc)
        .fetch_all(&mut *conn)
        .await?;
        let versions = rows
            .iter()
            .map(version_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let day = entry.valid_from;
        let covering = versions
            .iter()
            .rev()
            .find(|v| v.entry.valid_from <= day && v.valid_to.is_none_or(|to| to > day));
        // What the entry does not state is kept from the version in effect.
        let filled = covering.map(|current| entry.filled_from(&current.entry));
        let entry = filled.as_ref().unwrap_or(entry);
        let valid_to = match covering {
            Some(current) if current.entry.same_content(entry) => {
                stats.unchanged += 1;
                continue;
            }
            Some(current) => {
                // Closed before the new version is inserted (one open version per ISRC);
                // who superseded it is filled in below.
                sqlx::query(
                    "UPDATE catalog_versions SET valid_to = $2, closed_at = now() WHERE version_id = $1",
                )
                .bind(current.version_id)
                .bind(day)
                .execute(&mut *conn)
                .await?;
                drifts.extend(detect_update(current, entry, source));
                stats.superseded += 1;
                current.valid_to
            }
            None => {
                stats.created += 1;
                versions
                    .iter()
                    .map(|v| v.entry.valid_from)
                    .filter(|from| *from > day)
                    .min()
            }
        };
        let new_id: i64 = sqlx::query_scalar(
            "INSERT INTO catalog_versions (isrc, upcs, title, display_artist, label, iswc,
                                           valid_from, valid_to, source)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING version_id",
        )
        .bind(&entry.isrc)
        .bind(&entry.upcs)
        .bind(&entry.title)
        .bind(&entry.display_artist)
        .bind(&entry.label)
        .bind(&entry.iswc)
        .bind(day)
        .bind(valid_to)
        .bind(source)
        .fetch_one(&mut *conn)
        .await?;
        if let Some(current) = covering {
            // The audit trail: which version closed which, when, from what valid_to.
            sqlx::query("UPDATE catalog_versions SET superseded_by = $2 WHERE version_id = $1")
                .bind(current.version_id)
                .bind(new_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO catalog_version_closures (version_id, old_valid_to, new_valid_to,
                                                       superseded_by)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(current.version_id)
            .bind(current.valid_to)
            .bind(day)
            .bind(new_id)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok((stats, drifts))
}

/// What recording a batch's drift raised.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RaisedAlerts {
    /// Ids of the alerts enqueued.
    pub ids: Vec<String>,
    /// The same, counted per kind (indexed like [`ALL_KINDS`]).
    pub by_kind: [u64; ALL_KINDS.len()],
    /// Tracks found unknown to the catalog for the first time at a DSP (what the `unknown_isrc`
    /// alerts announce, each track once).
    pub unknown_tracks: u64,
}

/// One drift at one DSP in this batch: its first observation and how many lines showed it.
struct Event<'d> {
    drift: &'d Drift,
    /// The DSP as the line key spells it (lower-cased, trimmed), shared by the batch's
    /// events of that DSP.
    dsp: Arc<str>,
    occurrences: i64,
    /// The alert announcing it, if this event raises one (index into the planned alerts).
    alert: Option<usize>,
}

/// Each distinct (drift, DSP) of `drifts` once, in order of first appearance.
fn count_events(drifts: &[Drift]) -> Vec<Event<'_>> {
    // A batch names a handful of DSPs: each is spelled as the key spells it once.
    let mut dsps: HashMap<&str, Arc<str>> = HashMap::new();
    let mut index: HashMap<(&str, Arc<str>), usize> = HashMap::with_capacity(drifts.len());
    let mut events: Vec<Event<'_>> = Vec::with_capacity(drifts.len());
    for drift in drifts {
        let dsp = dsps
            .entry(drift.dsp_name.as_str())
            .or_insert_with(|| Arc::from(drift.dsp_name.trim().to_lowercase()))
            .clone();
        match index.entry((drift.id(), dsp)) {
            Entry::Occupied(seen) => events[*seen.get()].occurrences += 1,
            Entry::Vacant(new) => {
                events.push(Event {
                    drift,
                    dsp: new.key().1.clone(),
                    occurrences: 1,
                    alert: None,
                });
                new.insert(events.len() - 1);
            }
        }
    }
    events
}

/// The drifts one alert announces: `first`, then `more` (unknown tracks of the same
/// report), in the order seen.
struct Planned<'d> {
    first: &'d Drift,
    more: Vec<&'d Drift>,
}

impl Planned<'_> {
    fn kind(&self) -> DriftKind {
        self.first.kind
    }

    fn to_alert(&self, now: DateTime<Utc>) -> DriftAlert {
        match self.kind() {
            DriftKind::UnknownIsrc => DriftAlert::unknown_tracks(self.first, &self.more, now),
            _ => DriftAlert::from_drift(self.first, now),
        }
    }
}

/// The drift of a batch that has `drift_events` rows already.
#[derive(Debug, Default)]
struct Known {
    /// Drift ids with a row at some DSP.
    ids: HashSet<String>,
    /// The (drift id, DSP) of those rows.
    at: HashSet<(String, String)>,
}

impl Known {
    /// Reads which of these drift ids have rows, and at which DSPs.
    async fn read(conn: &mut PgConnection, ids: &[&str]) -> Result<Known, DbFailure> {
        let mut known = Known::default();
        if ids.is_empty() {
            return Ok(known);
        }
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT drift_id, dsp_name FROM drift_events WHERE drift_id = ANY($1)")
                .bind(ids)
                .fetch_all(&mut *conn)
                .await?;
        for (id, dsp) in rows {
            known.ids.insert(id.clone());
            known.at.insert((id, dsp));
        }
        Ok(known)
    }

    /// Whether the event's drift was announced before: a track unknown to the catalog at
    /// this DSP (each DSP's reports list all of their unknown tracks), other drift at any.
    fn announced(&self, event: &Event<'_>) -> bool {
        let id = event.drift.id();
        if !self.ids.contains(id) {
            return false;
        }
        match event.drift.kind {
            DriftKind::UnknownIsrc => self.at.contains(&(id.to_string(), event.dsp.to_string())),
            _ => true,
        }
    }

    /// Whether the event's row exists (or, for drift known at another DSP, may: the upsert
    /// tells).
    fn has_row(&self, event: &Event<'_>) -> bool {
        self.ids.contains(event.drift.id())
    }
}

/// The alert announcing an event, if it raises one.
fn alert_of<'a>(event: &Event<'_>, alerts: &'a [DriftAlert]) -> Option<&'a str> {
    event
        .alert
        .and_then(|i| alerts.get(i))
        .map(|a| a.alert_id.as_str())
}

/// The `drift_events` rows of events never seen before, for [`EVENTS_COPY_SQL`].
fn event_rows<'e, 'd: 'e>(
    events: impl Iterator<Item = &'e Event<'d>>,
    alerts: &[DriftAlert],
) -> CopyRows {
    let mut rows = CopyRows::new(12);
    for e in events {
        let d = e.drift;
        rows.row()
            .text(d.id())
            .text(&e.dsp)
            .text(&d.isrc)
            .text(d.kind.as_str())
            .opt_text(d.expected.as_deref())
            .opt_text(d.received.as_deref())
            .opt_int8(d.catalog_version_id)
            .int8(e.occurrences)
            .opt_text(d.report_id.as_deref())
            .text(&d.source)
            .opt_date(d.period)
            .opt_text(alert_of(e, alerts));
    }
    rows
}

/// Decides a batch's alerts: one per drift never seen before (a drift seen at two DSPs of
/// the batch is announced by the first), except that ISRCs unknown to the catalog are
/// announced together, one alert per DSP, report and period, naming every track unknown at
/// that DSP for the first time: the report is what a label's people take up with the DSP or
/// the catalog team, and a report of new releases can name thousands of tracks. Each event
/// learns its alert.
fn plan_alerts<'d>(events: &mut [Event<'d>], known: &Known) -> Vec<Planned<'d>> {
    type Report<'r> = (Arc<str>, Option<&'r str>, Option<NaiveDate>);
    let mut alerted: HashSet<&'d str> = HashSet::new();
    let mut reports: HashMap<Report<'d>, usize> = HashMap::new();
    let mut planned: Vec<Planned<'d>> = Vec::new();
    for event in events.iter_mut() {
        event.alert = None;
        let drift: &'d Drift = event.drift;
        // Events are distinct per (drift, DSP): only drift other than unknown tracks can
        // repeat, at another DSP.
        let repeat = drift.kind != DriftKind::UnknownIsrc && !alerted.insert(drift.id());
        if repeat || known.announced(event) {
            continue;
        }
        // The alert of this report's unknown tracks, if the batch already has one.
        let joins = if drift.kind == DriftKind::UnknownIsrc {
            let report = (event.dsp.clone(), drift.report_id.as_deref(), drift.period);
            match reports.entry(report) {
                Entry::Occupied(slot) => Some(*slot.get()),
                Entry::Vacant(slot) => {
                    slot.insert(planned.len());
                    None
                }
            }
        } else {
            None
        };
        match joins.and_then(|slot| planned.get_mut(slot).map(|p| (slot, p))) {
            Some((slot, alert)) => {
                alert.more.push(drift);
                event.alert = Some(slot);
            }
            None => {
                event.alert = Some(planned.len());
                planned.push(Planned {
                    first: drift,
                    more: Vec::new(),
                });
            }
        }
    }
    planned
}

/// The alerts [`plan_alerts`] decides, built.
fn planned_alerts(events: &mut [Event<'_>], known: &Known, now: DateTime<Utc>) -> Vec<DriftAlert> {
    plan_alerts(events, known)
        .iter()
        .map(|planned| planned.to_alert(now))
        .collect()
}

/// Counts drift occurrences per DSP (a `drift_events` row per drift and DSP, each unknown
/// track its own) and enqueues the alerts of drift never seen before: one per drift, but
/// one per DSP, report and period for ISRCs unknown to the catalog ([`plan_alerts`]).
/// Everything is looked up by hash: a batch can hold as many drifts as lines.
pub async fn record_drifts(
    conn: &mut PgConnection,
    drifts: &[Drift],
    settings: &DriftSettings,
) -> Result<RaisedAlerts, DbFailure> {
    if drifts.is_empty() {
        return Ok(RaisedAlerts::default());
    }
    let mut events = count_events(drifts);
    let now = Utc::now();
    // Whether an unknown track was announced at this DSP is whether its row exists, which
    // the copy finds out; only other drift is looked up first (it is announced once, at
    // whichever DSP shows it first).
    let others: Vec<&str> = events
        .iter()
        .filter(|e| e.drift.kind != DriftKind::UnknownIsrc)
        .map(|e| e.drift.id())
        .collect();
    let mut known = Known::read(conn, &others).await?;
    let mut complete = false;
    let alerts = loop {
        let alerts = planned_alerts(&mut events, &known, now);
        // Drift never seen before (nearly all of it, when a catalog misses many tracks) is
        // copied in; what has rows already has its occurrences added.
        let fresh = events.iter().filter(|e| !known.has_row(e));
        if copy_unless_taken(conn, EVENTS_COPY_SQL, event_rows(fresh, &alerts)).await? {
            let seen: Vec<&Event<'_>> = events.iter().filter(|e| known.has_row(e)).collect();
            upsert_events(conn, &seen, &alerts).await?;
            break alerts;
        }
        // Some rows exist: tracks found unknown at this DSP before, or drift a concurrent
        // lane recorded and committed (the copy waited for it), raising its alerts. The
        // batch's existing rows are read and the batch planned again (the relay may have
        // published the other lane's alerts and let them go from the outbox, which could
        // then not tell a repeat); met a second time, the rows are a concurrent lane's,
        // and everything is counted by upsert.
        let ids: Vec<&str> = events.iter().map(|e| e.drift.id()).collect();
        known = Known::read(conn, &ids).await?;
        if std::mem::replace(&mut complete, true) {
            let alerts = planned_alerts(&mut events, &known, now);
            let all: Vec<&Event<'_>> = events.iter().collect();
            upsert_events(conn, &all, &alerts).await?;
            break alerts;
        }
    };

    let mut messages: Vec<OutboxMessage> = Vec::with_capacity(alerts.len());
    for alert in &alerts {
        // An alert that cannot be encoded must fail the batch: once its drift_events rows
        // are committed it would never be raised again.
        let message = alert
            .to_message(&settings.alert_schema, &settings.alerts_topic)
            .map_err(|err| {
                DbFailure::Fatal(sqlx::Error::Encode(
                    format!("drift alert {}: {err}", alert.alert_id).into(),
                ))
            })?;
        messages.push(message);
    }
    // Two lanes can meet the same new drift at once: both find it unknown and plan its
    // alert (its id is the drift's), and the outbox keeps one. Only what this batch added
    // is counted.
    let added = outbox::enqueue(conn, &messages).await?;
    let mut raised = RaisedAlerts::default();
    for alert in alerts.iter().filter(|a| added.contains(&a.alert_id)) {
        raised.ids.push(alert.alert_id.clone());
        if let Some(kind) = alert.kind() {
            raised.by_kind[kind.index()] += 1;
            if kind == DriftKind::UnknownIsrc {
                raised.unknown_tracks += alert.tracks;
            }
        }
        // Per alert at debug only: the batch's counts are logged once, after its commit.
        tracing::debug!(
            alert_id = %alert.alert_id,
            kind = %alert.kind,
            tracks = alert.tracks,
            "drift alert raised"
        );
    }
    Ok(raised)
}

const EVENTS_COPY_SQL: &str =
    "COPY drift_events (drift_id, dsp_name, isrc, kind, expected, received,
                                   catalog_version_id, occurrences, first_report_id, first_source,
                                   first_period, alert_id)
                 FROM STDIN (FORMAT binary)";

/// Adds the events' occurrences to their rows, creating those that do not exist yet.
async fn upsert_events(
    conn: &mut PgConnection,
    events: &[&Event<'_>],
    alerts: &[DriftAlert],
) -> Result<(), DbFailure> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = events.iter().map(|e| e.drift.id()).collect();
    let dsps: Vec<&str> = events.iter().map(|e| &*e.dsp).collect();
    let isrcs: Vec<&str> = events.iter().map(|e| e.drift.isrc.as_str()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.drift.kind.as_str()).collect();
    let expected: Vec<Option<&str>> = events.iter().map(|e| e.drift.expected.as_deref()).collect();
    let received: Vec<Option<&str>> = events.iter().map(|e| e.drift.received.as_deref()).collect();
    let versions: Vec<Option<i64>> = events.iter().map(|e| e.drift.catalog_version_id).collect();
    let counts: Vec<i64> = events.iter().map(|e| e.occurrences).collect();
    let reports: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.drift.report_id.as_deref())
        .collect();
    let sources: Vec<&str> = events.iter().map(|e| e.drift.source.as_str()).collect();
    let periods: Vec<Option<NaiveDate>> = events.iter().map(|e| e.drift.period).collect();
    let alert_ids: Vec<Option<&str>> = events.iter().map(|e| alert_of(e, alerts)).collect();
    sqlx::query(
        "INSERT INTO drift_events (drift_id, dsp_name, isrc, kind, expected, received,
                                   catalog_version_id, occurrences, first_report_id, first_source,
                                   first_period, alert_id)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::text[],
                              $11::date[], $12::text[])
         ON CONFLICT (drift_id, dsp_name) DO UPDATE
            SET occurrences = drift_events.occurrences + EXCLUDED.occurrences,
                last_seen_at = now()",
    )
    .bind(&ids)
    .bind(&dsps)
    .bind(&isrcs)
    .bind(&kinds)
    .bind(&expected)
    .bind(&received)
    .bind(&versions)
    .bind(&counts)
    .bind(&reports)
    .bind(&sources)
    .bind(&periods)
    .bind(&alert_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RoyaltyLine;
    use crate::domain::validate::validate;
    use crate::drift::detect::detect_line;
    use crate::sample::{SampleRng, isrc_for, valid_line};

    fn line(n: u64, dsp: &str, report: &str) -> RoyaltyLine {
        let mut line = validate(&valid_line(&mut SampleRng::new(n), n)).expect("valid line");
        line.isrc = isrc_for(n);
        line.dsp_name = dsp.into();
        line.report_id = Some(report.into());
        line.report_period = NaiveDate::from_ymd_opt(2026, 9, 1).expect("date");
        line
    }

    fn unknown(n: u64, dsp: &str, report: &str) -> Drift {
        let found = detect_line(&line(n, dsp, report), None, true, true, "raw[0]@1");
        found.into_iter().next().expect("unknown ISRC")
    }

    fn upc_drift(n: u64) -> Drift {
        let version = CatalogVersion {
            version_id: 1,
            entry: CatalogEntry {
                isrc: isrc_for(n),
                upcs: vec!["6291041500213".into()],
                title: None,
                display_artist: None,
                label: None,
                iswc: None,
                valid_from: NaiveDate::from_ymd_opt(2020, 1, 1).expect("date"),
            },
            valid_to: None,
        };
        let mut line = line(n, "Spotify", "spotify-1");
        line.upc = Some("036000291452".into());
        let found = detect_line(&line, Some(&version), true, true, "raw[0]@2");
        let upc = found.into_iter().find(|d| d.kind == DriftKind::UpcMismatch);
        upc.expect("a UPC mismatch")
    }

    fn tracks(alert: &Planned<'_>) -> Vec<String> {
        let all = std::iter::once(alert.first).chain(alert.more.iter().copied());
        all.map(|d| d.isrc.clone()).collect()
    }

    #[test]
    fn unknown_tracks_are_one_alert_per_dsp_and_report_other_drift_one_per_drift() {
        let mut drifts: Vec<Drift> = (1..=30)
            .map(|n| unknown(n, "Spotify", "spotify-1"))
            .collect();
        drifts.extend((31..=40).map(|n| unknown(n, " SPOTIFY", "spotify-2")));
        drifts.extend((41..=45).map(|n| unknown(n, "Deezer", "deezer-1")));
        drifts.push(upc_drift(50));
        drifts.push(upc_drift(51));
        // The same unknown track again at the same DSP, and at another DSP.
        drifts.push(unknown(1, "spotify", "spotify-1"));
        drifts.push(unknown(2, "Deezer", "deezer-1"));
        // The same UPC drift at another DSP.
        let mut elsewhere = upc_drift(50);
        elsewhere.dsp_name = "Deezer".into();
        drifts.push(elsewhere);
        let mut events = count_events(&drifts);
        assert_eq!(events.len(), 49, "one event per drift and DSP");
        let planned = plan_alerts(&mut events, &Known::default());
        let shape: Vec<(DriftKind, usize)> = planned
            .iter()
            .map(|p| (p.kind(), 1 + p.more.len()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (DriftKind::UnknownIsrc, 30),
                (DriftKind::UnknownIsrc, 10),
                (DriftKind::UnknownIsrc, 6),
                (DriftKind::UpcMismatch, 1),
                (DriftKind::UpcMismatch, 1),
            ]
        );
        let first_report: Vec<String> = (1..=30).map(isrc_for).collect();
        assert_eq!(tracks(&planned[0]), first_report);
        // Track 1 was seen twice at Spotify: one event, two lines, announced once.
        let repeated = events
            .iter()
            .find(|e| e.drift.isrc == isrc_for(1) && &*e.dsp == "spotify");
        assert_eq!(
            repeated.map(|e| (e.occurrences, e.alert)),
            Some((2, Some(0)))
        );
        // Track 2 at Deezer too: its own row, and Deezer's report lists it as well.
        let deezer = events
            .iter()
            .find(|e| e.drift.isrc == isrc_for(2) && &*e.dsp == "deezer");
        assert_eq!(deezer.map(|e| e.alert), Some(Some(2)));
        // The UPC drift at Deezer: its own row, announced once (at Spotify).
        let upc_at_deezer = events
            .iter()
            .find(|e| e.drift.kind == DriftKind::UpcMismatch && &*e.dsp == "deezer");
        assert_eq!(upc_at_deezer.map(|e| e.alert), Some(None));
    }

    #[test]
    fn drift_seen_before_raises_nothing_but_is_still_counted() {
        let drifts: Vec<Drift> = (1..=5)
            .map(|n| unknown(n, "Spotify", "spotify-1"))
            .collect();
        // Tracks 1–3 announced at Spotify before, track 4 only at Deezer.
        let mut known = Known::default();
        for d in &drifts[..3] {
            known.ids.insert(d.id().to_string());
            known.at.insert((d.id().to_string(), "spotify".into()));
        }
        known.ids.insert(drifts[3].id().to_string());
        known
            .at
            .insert((drifts[3].id().to_string(), "deezer".into()));
        let mut events = count_events(&drifts);
        let planned = plan_alerts(&mut events, &known);
        assert_eq!(planned.len(), 1);
        assert_eq!(tracks(&planned[0]), vec![isrc_for(4), isrc_for(5)]);
        assert_eq!(events.len(), 5, "every track keeps its row");
        assert_eq!(events.iter().filter(|e| e.alert.is_some()).count(), 2);
    }
}
