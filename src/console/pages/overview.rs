//! The overview: ingest health (each partition's stored offset, last commit and lag, the
//! outbox backlog), open dead letters by class and DSP, open drift by kind, reports that
//! do not reconcile, the latest console actions. Each figure links to its list.

use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use maud::html;

use crate::commands::dlq::store;
use crate::commands::reconcile::partition_lag;
use crate::console::Shared;
use crate::console::form::query_string;
use crate::console::html::{PageResult, Section, layout, or_dash, page_response, when};
use crate::console::pages::reports::report_href;
use crate::console::{audit, latency};
use crate::drift::review;

/// How long the broker may take to say where a partition ends.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);

/// GET /.
pub async fn page(State(console): State<Shared>, headers: HeaderMap) -> PageResult {
    let session = console.session(&headers).await?;
    let pool = &console.pool;
    let args = &console.args;
    let partitions = partition_lag(pool, &args.kafka, &args.group, WATERMARK_TIMEOUT).await?;
    let backlog: Vec<(String, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT topic, count(*), min(created_at) FROM outbox GROUP BY topic ORDER BY topic",
    )
    .fetch_all(pool)
    .await
    .context("cannot read the outbox backlog")?;
    // Run's own measurement; a run that does not answer only leaves the figure out.
    let p99 = match &args.run_metrics_url {
        Some(url) => Some(
            latency::p99_from(url, WATERMARK_TIMEOUT)
                .await
                .map_err(|err| format!("{err:#}")),
        ),
        None => None,
    };
    let letters = store::open_by_class_and_dsp(pool).await?;
    let drifts = review::open_by_kind(pool).await?;
    let reconciled = console.reconciliation(false).await?;
    let reconciliation = &reconciled.result;
    let differing: Vec<_> = reconciliation
        .reports
        .iter()
        .filter(|r| !r.matches)
        .collect();
    let actions = audit::latest(pool, 10).await?;
    let open_letters: i64 = letters.iter().map(|(_, _, n)| n).sum();
    let open_drifts: i64 = drifts.iter().map(|(_, n)| n).sum();
    let total_lag: Option<i64> = partitions.iter().map(|p| p.lag()).sum();
    let letters_link = |class: &str, dsp: Option<&str>| {
        let mut pairs = vec![("status", "open".to_string()), ("class", class.to_string())];
        if let Some(dsp) = dsp {
            pairs.push(("dsp", dsp.to_string()));
        }
        format!("/dead-letters?{}", query_string(pairs))
    };
    let body = html! {
        div.cards {
            div.card #health {
                h2 { "Ingest health · group " (args.group) }
                p {
                    span.figure { (or_dash(total_lag)) } " record(s) not yet ingested"
                    @if total_lag.is_none() && !partitions.is_empty() { span.muted { " (the broker did not say where every partition ends)" } }
                }
                @if partitions.is_empty() {
                    p.muted { "The group has committed nothing yet." }
                } @else {
                    table #partitions {
                        thead { tr { th { "Partition" } th.num { "Next offset" } th.num { "End" } th.num { "Lag" } th { "Last commit" } } }
                        tbody {
                            @for p in &partitions {
                                tr { td.mono { (p.topic) "[" (p.partition) "]" } td.num { (p.next_offset) } td.num { (or_dash(p.end)) } td.num { (or_dash(p.lag())) } td { (when(&p.committed_at)) } }
                            }
                        }
                    }
                }
                p #latency {
                    "Latency p99 (record timestamp to commit, since run started): "
                    @match &p99 {
                        None => span.muted { "start the console with --run-metrics-url to see it" },
                        Some(Ok(None)) => span.muted { "no line booked yet" },
                        Some(Ok(Some(bound))) if bound.is_infinite() => strong.bad { "over 1 hour" },
                        Some(Ok(Some(bound))) => strong { "≤ " (bound) " s" },
                        Some(Err(why)) => span.bad { "unknown (" (why) ")" },
                    }
                }
                h2 { "Outbox backlog" }
                @if backlog.is_empty() {
                    p.good { "Every dead letter and alert is published." }
                } @else {
                    table #backlog {
                        thead { tr { th { "Topic" } th.num { "Unpublished" } th { "Oldest" } } }
                        tbody { @for (topic, n, oldest) in &backlog { tr { td.mono { (topic) } td.num { (n) } td { (when(oldest)) } } } }
                    }
                }
            }
            div.card #open-letters {
                h2 { a href="/dead-letters?status=open" { "Open dead letters" } }
                p { a.figure href="/dead-letters?status=open" { (open_letters) } }
                @if !letters.is_empty() {
                    table {
                        thead { tr { th { "Class" } th { "DSP" } th.num { "Open" } } }
                        tbody {
                            @for (class, dsp, n) in &letters {
                                tr {
                                    td { (class) }
                                    td { (or_dash(dsp.as_deref())) }
                                    td.num { a href=(letters_link(class, dsp.as_deref())) { (n) } }
                                }
                            }
                        }
                    }
                }
            }
            div.card #open-drift {
                h2 { a href="/drift?status=open" { "Open drift" } }
                p { a.figure href="/drift?status=open" { (open_drifts) } }
                @if !drifts.is_empty() {
                    table {
                        thead { tr { th { "Kind" } th.num { "Open" } } }
                        tbody {
                            @for (kind, n) in &drifts {
                                tr { td { (kind) } td.num { a href=(format!("/drift?{}", query_string([("status", "open".to_string()), ("kind", kind.clone())]))) { (n) } } }
                            }
                        }
                    }
                }
            }
            div.card #unreconciled {
                h2 { a href="/reports" { "Reports that do not reconcile" } }
                p { a.figure href="/reports" class=[(!differing.is_empty()).then_some("bad")] { (differing.len()) } " of " (reconciliation.reports.len()) }
                @if !differing.is_empty() {
                    ul { @for r in &differing { li { a.mono href=(report_href(&r.report_id)) { (r.report_id) } " " (r.dsp_name) " " (r.report_period) " " (r.currency) } } }
                }
                @for finding in &reconciliation.findings { p.muted { (finding) } }
                p.muted { "Reconciled at " (when(&reconciled.at)) "." }
            }
        }
        @if !actions.is_empty() {
            h2 { "Latest console actions" }
            table #actions {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "On" } th { "Note" } th { "Outcome" } } }
                tbody {
                    @for a in &actions {
                        tr { td { (when(&a.at)) } td { (a.user_name) } td { (a.action) } td.mono { (a.subjects.join(" ")) } td { (or_dash(a.note.as_deref())) } td { (a.outcome) } }
                    }
                }
            }
        }
    };
    Ok(page_response(
        StatusCode::OK,
        layout("Overview", Section::Overview, &session, body),
    ))
}
