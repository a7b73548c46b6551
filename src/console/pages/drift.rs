//! Drift: distinct drifts with the catalog version before and after, the DSPs that
//! reported them and their occurrences; acknowledging one with a note; a track's
//! bitemporal catalog history and the version in effect for a period as known at a time
//! (what `catalog as-of` answers).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use maud::html;

use crate::commands::catalog_as_of::version_as_of;
use crate::commands::reconcile::parse_period;
use crate::console::Shared;
use crate::console::audit;
use crate::console::form::{Fields, query_string};
use crate::console::html::{
    ConsoleError, PageResult, Section, csrf_field, layout, may_act, or_dash, page_response,
    see_other, when,
};
use crate::domain::isrc::normalize_isrc;
use crate::drift::detect::ALL_KINDS;
use crate::drift::review;

/// Drifts shown at most.
const ROWS: i64 = 200;

/// The path of a track's page.
pub fn track_href(isrc: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(isrc.as_bytes()).collect();
    format!("/tracks/{encoded}")
}

/// GET /drift?kind=&status=open|acknowledged|all.
pub async fn list(
    State(console): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let session = console.session(&headers).await?;
    let fields = Fields::parse(raw.as_deref().unwrap_or_default());
    let kind = fields.get("kind");
    if let Some(kind) = kind
        && !ALL_KINDS.iter().any(|k| k.as_str() == kind)
    {
        return Err(ConsoleError::BadRequest(format!(
            "{kind:?} is not a drift kind"
        )));
    }
    let status = fields.get("status").unwrap_or("all");
    let acknowledged = match status {
        "open" => Some(false),
        "acknowledged" => Some(true),
        "all" => None,
        other => {
            return Err(ConsoleError::BadRequest(format!(
                "{other:?} is not a status (open, acknowledged, all)"
            )));
        }
    };
    let drifts = review::drifts(&console.pool, kind, acknowledged, ROWS).await?;
    let body = html! {
        form.filters method="get" action="/drift" {
            label { "Kind"
                select name="kind" {
                    option value="" { "any" }
                    @for k in ALL_KINDS { option value=(k.as_str()) selected[kind == Some(k.as_str())] { (k.as_str()) } }
                }
            }
            label { "Status"
                select name="status" {
                    @for word in ["open", "acknowledged", "all"] { option value=(word) selected[status == word] { (word) } }
                }
            }
            button type="submit" { "Filter" }
        }
        @if drifts.is_empty() {
            p.notice { "No drift matches." }
        } @else {
            table #drifts {
                thead { tr {
                    th { "Kind" } th { "ISRC" } th { "Catalog says" } th { "Received" }
                    th { "Version before → after" } th { "DSPs" } th.num { "Occurrences" } th { "Last seen" } th { "Acknowledged" }
                } }
                tbody {
                    @for d in &drifts {
                        tr id=(format!("drift-{}", d.drift_id)) data-drift=(d.drift_id) {
                            td { (d.kind) }
                            td.mono { a href=(track_href(&d.isrc)) { (d.isrc) } }
                            td { (or_dash(d.expected.as_deref())) }
                            td { (or_dash(d.received.as_deref())) }
                            td { (or_dash(d.version_before)) " → " (or_dash(d.version_after)) }
                            td { (d.dsps.join(", ")) }
                            td.num { (d.occurrences) }
                            td { (when(&d.last_seen_at)) }
                            td.ack {
                                @if let Some((by, at, note)) = &d.acknowledged {
                                    span.good { "by " (by) } " " span.muted { (when(at)) } br; (note)
                                } @else if may_act(&session) {
                                    form method="post" action="/drift/acknowledge" {
                                        (csrf_field(&session))
                                        input type="hidden" name="drift_id" value=(d.drift_id);
                                        textarea name="note" required placeholder="Why? (required)" {}
                                        button type="submit" { "Acknowledge" }
                                    }
                                } @else {
                                    span.bad { "open" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page_response(
        StatusCode::OK,
        layout("Drift", Section::Drift, &session, body),
    ))
}

/// POST /drift/acknowledge.
pub async fn acknowledge(
    State(console): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> PageResult {
    let fields = Fields::parse(&body);
    let session = console.post_session(&headers, &fields, true).await?;
    let Some(drift_id) = fields.get("drift_id") else {
        return Err(ConsoleError::BadRequest("no drift named".to_string()));
    };
    let Some(note) = fields.get("note") else {
        return Err(ConsoleError::BadRequest(
            "a note is required: say why this drift is acknowledged".to_string(),
        ));
    };
    let done = review::acknowledge(&console.pool, drift_id, &session.user, note).await?;
    let outcome = if done {
        "acknowledged"
    } else {
        "unknown or already acknowledged"
    };
    audit::record(
        &console.pool,
        &session.user,
        "acknowledge",
        &[drift_id.to_string()],
        Some(note),
        outcome,
    )
    .await?;
    Ok(see_other(&format!(
        "/drift?{}",
        query_string([("status", "all".to_string())])
    )))
}

/// GET /tracks/{isrc}?period=&known_at=.
pub async fn track(
    State(console): State<Shared>,
    headers: HeaderMap,
    Path(raw_isrc): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let session = console.session(&headers).await?;
    let isrc = normalize_isrc(&raw_isrc).map_err(|rule| {
        ConsoleError::BadRequest(format!("{raw_isrc:?} is not an ISRC ({rule})"))
    })?;
    let fields = Fields::parse(raw.as_deref().unwrap_or_default());
    let history = review::track_history(&console.pool, &isrc).await?;
    let period = fields
        .get("period")
        .map(parse_period)
        .transpose()
        .map_err(ConsoleError::BadRequest)?;
    let known_at = fields
        .get("known_at")
        .map(crate::commands::parse_utc_time)
        .transpose()
        .map_err(ConsoleError::BadRequest)?;
    let as_of = match period {
        Some(period) => Some(
            version_as_of(
                &console.pool,
                &isrc,
                period,
                known_at.unwrap_or_else(Utc::now),
            )
            .await?,
        ),
        None => None,
    };
    let body = html! {
        h2 { "Catalog versions (business time × when learned)" }
        @if history.is_empty() {
            p.notice { "The catalog has no version of this track." }
        } @else {
            table #history {
                thead { tr {
                    th { "Version" } th { "UPCs" } th { "Title" } th { "Artist" } th { "Label" }
                    th { "In effect" } th { "Learned" } th { "Closed" } th { "Superseded by" } th { "Source" }
                } }
                tbody {
                    @for v in &history {
                        tr {
                            td { (v.version_id) }
                            td.mono { (v.upcs.join(" ")) }
                            td { (or_dash(v.title.as_deref())) }
                            td { (or_dash(v.display_artist.as_deref())) }
                            td { (or_dash(v.label.as_deref())) }
                            td { (v.valid_from) " → " (v.valid_to.map_or_else(|| "open".to_string(), |d| d.to_string())) }
                            td { (when(&v.loaded_at)) }
                            td { (or_dash(v.closed_at.as_ref().map(when))) }
                            td { (or_dash(v.superseded_by)) }
                            td { (v.source) }
                        }
                    }
                }
            }
        }
        h2 { "As of" }
        form.filters method="get" action=(track_href(&isrc)) {
            label { "Report period" input type="text" name="period" value=[fields.get("period")] placeholder="2026-11-01" required; }
            label { "As known at (RFC 3339; empty: now)" input type="text" name="known_at" value=[fields.get("known_at")] placeholder="2026-12-01T00:00:00Z"; }
            button type="submit" { "Show" }
        }
        @match &as_of {
            None => {},
            Some(None) => p.notice #as-of { "No catalog version of " (isrc) " was in effect for that period as known then." },
            Some(Some(version)) => {
                dl.fields #as-of {
                    @if let Some(object) = version.as_object() {
                        @for (name, value) in object {
                            dt { (name) } dd.mono { (match value { serde_json::Value::String(s) => s.clone(), other => other.to_string() }) }
                        }
                    }
                }
            },
        }
    };
    Ok(page_response(
        StatusCode::OK,
        layout(&format!("Track {isrc}"), Section::Drift, &session, body),
    ))
}
