//! Reconciliation: each report's control totals against the ledger, per report and per
//! DSP, period and currency, with the differences and what explains them. The data is
//! `reconcile --json`'s, from `reconcile::compute`.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use maud::{Markup, html};
use rust_decimal::Decimal;

use std::sync::Arc;

use chrono::Utc;

use crate::commands::reconcile::{compute, parse_period};
use crate::console::form::{Fields, query_string};
use crate::console::html::{ConsoleError, PageResult, Section, layout, page_response, when};
use crate::console::{Reconciled, Shared};

/// The link to one report's reconciliation.
pub fn report_href(report_id: &str) -> String {
    format!(
        "/reports?{}",
        query_string([("report", report_id.to_string())])
    )
}

/// What the ledger holds beyond the report (negative: short), or `=`.
fn difference(booked_minus_expected: Decimal) -> Markup {
    if booked_minus_expected.is_zero() {
        html! { span.good { "=" } }
    } else {
        html! { span.bad.diff { (amount(booked_minus_expected)) } }
    }
}

fn amount(value: Decimal) -> String {
    value.normalize().to_string()
}

/// GET /reports?report=&dsp=&period=.
pub async fn page(
    State(console): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let session = console.session(&headers).await?;
    let fields = Fields::parse(raw.as_deref().unwrap_or_default());
    let period = fields
        .get("period")
        .map(parse_period)
        .transpose()
        .map_err(ConsoleError::BadRequest)?;
    let report_id = fields.get("report").map(str::to_string);
    let dsp = fields.get("dsp").map(str::to_string);
    // Every report: the console's cached reconciliation unless a fresh one is asked for;
    // a filtered page reads only its reports, always now.
    let reconciled = if report_id.is_none() && dsp.is_none() && period.is_none() {
        console
            .reconciliation(fields.get("fresh").is_some())
            .await?
    } else {
        let args = console.reconcile_args(report_id, dsp, period);
        let started = Utc::now();
        Arc::new(Reconciled {
            result: compute(&console.pool, &args).await?,
            at: Utc::now(),
            started,
        })
    };
    let result = &reconciled.result;
    let differing = result.reports.iter().filter(|r| !r.matches).count();
    let body = html! {
        form.filters method="get" action="/reports" {
            label { "Report" input type="text" name="report" value=[fields.get("report")]; }
            label { "DSP" input type="text" name="dsp" value=[fields.get("dsp")] size="12"; }
            label { "Period" input type="text" name="period" value=[fields.get("period")] placeholder="2026-11" size="10"; }
            button type="submit" { "Filter" }
            a href="/reports" { "clear" }
        }
        p.muted {
            "Reconciled at " (when(&reconciled.at)) ". "
            a href=(format!("/reports?{}", query_string([("fresh", "1".to_string()), ("report", fields.get("report").unwrap_or_default().to_string()), ("dsp", fields.get("dsp").unwrap_or_default().to_string()), ("period", fields.get("period").unwrap_or_default().to_string())]))) { "Reconcile now" }
        }
        p #verdict class=(if result.matched { "notice good" } else { "notice bad" }) {
            @if result.matched { "Every report matches the ledger." }
            @else { (differing) " of " (result.reports.len()) " report row(s) differ." }
        }
        @for finding in &result.findings { p.notice.finding { (finding) } }
        h2 { "Per DSP, period and currency" }
        table #totals {
            thead { tr {
                th { "DSP" } th { "Period" } th { "Currency" } th.num { "Reports" }
                th.num { "Lines (report / ledger)" } th.num { "Quantity" } th.num { "Amount (report)" } th.num { "Amount (ledger)" } th.num { "Difference" }
            } }
            tbody {
                @for ((dsp, period, currency), g) in &result.totals {
                    tr class=(if g.matches() { "" } else { "differs" }) {
                        td { (dsp) } td { (period) } td { (currency) } td.num { (g.reports) }
                        td.num { (g.expected_lines) " / " (g.ledger_lines) }
                        td.num { (g.expected_quantity) " / " (g.ledger_quantity) }
                        td.num { (amount(g.expected_amount)) }
                        td.num { (amount(g.ledger_amount)) }
                        td.num { (difference(g.ledger_amount - g.expected_amount)) }
                    }
                }
            }
        }
        h2 { "Per report" }
        table #reports {
            thead { tr {
                th { "Report" } th { "DSP" } th { "Period" } th { "Cur." }
                th.num { "Lines" } th.num { "Booked" } th.num { "Δ lines" }
                th.num { "Quantity" } th.num { "Booked" }
                th.num { "Amount" } th.num { "Booked" } th.num { "Δ amount" } th { "Status" }
            } }
            tbody {
                @for r in &result.reports {
                    tr.report data-report=(r.report_id) class=(if r.matches { "" } else { "differs" }) {
                        td.mono { a href=(report_href(&r.report_id)) { (r.report_id) } }
                        td { (r.dsp_name) } td { (r.report_period) } td { (r.currency) }
                        td.num { (r.expected_lines) } td.num { (r.ledger_lines) }
                        td.num { (difference(Decimal::from(r.ledger_lines - r.expected_lines))) }
                        td.num { (r.expected_quantity) } td.num { (r.ledger_quantity) }
                        td.num { (amount(r.expected_amount)) } td.num { (amount(r.ledger_amount)) }
                        td.num.amount-diff { (difference(r.ledger_amount - r.expected_amount)) }
                        td { @if r.matches { span.good { "matches" } } @else { span.bad { "DIFFERS" } } }
                    }
                    @if !r.explanation.is_empty() {
                        tr.explanation { td colspan="13" { ul { @for why in &r.explanation { li { (why) } } } } }
                    }
                }
            }
        }
    };
    Ok(page_response(
        StatusCode::OK,
        layout("Reports", Section::Reports, &session, body),
    ))
}
