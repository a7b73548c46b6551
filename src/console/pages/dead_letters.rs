//! The dead-letter work queue: the filtered, keyset-paginated list (filters in the URL),
//! one letter with its decoded fields, headers, replays and chain, and the actions —
//! replay (with a confirmation naming the count and the targets) and resolve (with a
//! required note) — through the same functions as `dlq replay` and `dlq resolve`.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use maud::{Markup, html};

use crate::commands::dlq::letter::{payload_json, printable};
use crate::commands::dlq::replay::{self, Plan};
use crate::commands::dlq::store::{self, QueueFilter, QueueStatus, Status};
use crate::commands::reconcile::parse_period;
use crate::console::audit;
use crate::console::auth::Session;
use crate::console::form::{Fields, query_string};
use crate::console::html::{
    ConsoleError, PageResult, Section, csrf_field, layout, may_act, or_dash, page_response,
    see_other, when,
};
use crate::console::{Console, Shared};
use crate::kafka::missing_topics;
use crate::ledger::dead_letter;

/// Rows per page.
const PAGE_ROWS: i64 = 50;

/// The list's filters as the URL carries them.
struct ListQuery {
    filter: QueueFilter,
    before: Option<i64>,
    /// The raw values, to refill the form and build links.
    raw: Fields,
}

fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, ConsoleError> {
    let fields = Fields::parse(raw.unwrap_or_default());
    let classes = fields.all("class");
    let known: Vec<&str> = dead_letter::class_names().collect();
    if let Some(bad) = classes.iter().find(|c| !known.contains(&c.as_str())) {
        return Err(ConsoleError::BadRequest(format!(
            "{bad:?} is not an error class; the classes are {}",
            known.join(", ")
        )));
    }
    let stage = fields.get("stage").map(str::to_string);
    if let Some(stage) = &stage
        && !dead_letter::STAGES.contains(&stage.as_str())
    {
        return Err(ConsoleError::BadRequest(format!(
            "{stage:?} is not a stage (decode, validate, ledger)"
        )));
    }
    let status = match fields.get("status") {
        None | Some("all") => None,
        Some(word) => Some(QueueStatus::parse(word).ok_or_else(|| {
            ConsoleError::BadRequest(format!(
                "{word:?} is not a status (open, resolved, superseded, all)"
            ))
        })?),
    };
    let period = fields
        .get("period")
        .map(parse_period)
        .transpose()
        .map_err(ConsoleError::BadRequest)?;
    let before = fields
        .get("before")
        .map(|b| {
            b.parse::<i64>()
                .map_err(|_| ConsoleError::BadRequest(format!("{b:?} is not a position")))
        })
        .transpose()?;
    Ok(ListQuery {
        filter: QueueFilter {
            classes,
            stage,
            dsp: fields.get("dsp").map(str::to_string),
            period,
            status,
            text: fields.get("q").map(str::to_string),
        },
        before,
        raw: fields,
    })
}

/// The list's link with the same filters and another position.
fn list_link(raw: &Fields, before: Option<i64>) -> String {
    let mut pairs: Vec<(&str, String)> =
        raw.all("class").into_iter().map(|c| ("class", c)).collect();
    for name in ["stage", "dsp", "period", "status", "q"] {
        if let Some(value) = raw.get(name) {
            pairs.push((name, value.to_string()));
        }
    }
    if let Some(before) = before {
        pairs.push(("before", before.to_string()));
    }
    format!("/dead-letters?{}", query_string(pairs))
}

/// The path of one letter's page.
pub fn letter_href(id: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/dead-letters/{encoded}")
}

fn status_cell(status: &Status) -> Markup {
    let word = status.word();
    html! { span class=(format!("status-{word}")) { (word) } }
}

/// GET /dead-letters.
pub async fn list(
    State(console): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let session = console.session(&headers).await?;
    let query = parse_list_query(raw.as_deref())?;
    let mut rows =
        store::queue_page(&console.pool, &query.filter, query.before, PAGE_ROWS + 1).await?;
    let more = rows.len() as i64 > PAGE_ROWS;
    rows.truncate(PAGE_ROWS as usize);
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let statuses = store::statuses(&console.pool, &ids).await?;
    let selected_class = query.raw.all("class");
    let status_word = query.raw.get("status").unwrap_or("all");
    let body = html! {
        form.filters method="get" action="/dead-letters" {
            label { "Class"
                select name="class" {
                    option value="" { "any" }
                    @for class in dead_letter::class_names() {
                        option value=(class) selected[selected_class.iter().any(|c| c == class)] { (class) }
                    }
                }
            }
            label { "Stage"
                select name="stage" {
                    option value="" { "any" }
                    @for stage in dead_letter::STAGES {
                        option value=(stage) selected[query.raw.get("stage") == Some(*stage)] { (stage) }
                    }
                }
            }
            label { "DSP" input type="text" name="dsp" value=[query.raw.get("dsp")] size="12"; }
            label { "Period" input type="text" name="period" value=[query.raw.get("period")] placeholder="2026-11" size="10"; }
            label { "Status"
                select name="status" {
                    @for word in ["all", "open", "resolved", "superseded"] {
                        option value=(word) selected[status_word == word] { (word) }
                    }
                }
            }
            label { "Text" input type="search" name="q" value=[query.raw.get("q")] placeholder="reason, letter or report id"; }
            button type="submit" { "Filter" }
            a href="/dead-letters" { "clear" }
        }
        @if rows.is_empty() {
            p.notice { "No dead letters match." }
        } @else {
            form method="post" action="/dead-letters/replay" {
                (csrf_field(&session))
                table #letters {
                    thead { tr {
                        @if may_act(&session) { th { "" } }
                        th { "Dead letter" } th { "Refused" } th { "Stage" } th { "Class" }
                        th { "DSP" } th { "Period" } th { "Report" } th { "Source" } th { "Reason" } th { "Status" }
                    } }
                    tbody {
                        @for row in &rows {
                            @let status = statuses.get(&row.id).cloned().unwrap_or_default();
                            tr data-id=(row.id) {
                                @if may_act(&session) {
                                    td { input type="checkbox" name="id" value=(row.id) aria-label="select"; }
                                }
                                td.mono { a href=(letter_href(&row.id)) { (row.id) } }
                                td { (when(&row.refused_at)) }
                                td { (row.stage) }
                                td.class { (row.class) }
                                td { (or_dash(row.dsp_name.as_deref())) }
                                td { (or_dash(row.report_period)) }
                                td { (or_dash(row.report_id.as_deref())) }
                                td.mono { (row.source) }
                                td { (truncate(&row.reason, 140)) }
                                td.status { (status_cell(&status)) }
                            }
                        }
                    }
                }
                @if may_act(&session) {
                    div.actions {
                        fieldset {
                            legend { "Replay" }
                            button #replay-selected type="submit" { "Replay selected…" }
                            p.muted { "A confirmation shows how many and where to." }
                        }
                        fieldset {
                            legend { "Resolve" }
                            textarea name="note" placeholder="Why are these closed? (required)" {}
                            button #resolve-selected type="submit" formaction="/dead-letters/resolve" { "Resolve selected" }
                        }
                    }
                }
            }
            div.pager {
                @if query.before.is_some() { a href=(list_link(&query.raw, None)) { "← Newest" } }
                @if more {
                    @if let Some(last) = rows.last() {
                        a #older href=(list_link(&query.raw, Some(last.quarantine_id))) { "Older →" }
                    }
                }
            }
        }
    };
    Ok(page_response(
        StatusCode::OK,
        layout("Dead letters", Section::DeadLetters, &session, body),
    ))
}

fn truncate(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(chars).collect();
        out.push('…');
        out
    }
}

/// GET /dead-letters/{id}.
pub async fn letter(
    State(console): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let session = console.session(&headers).await?;
    let pool = &console.pool;
    let letters = store::letters_by_ids(pool, std::slice::from_ref(&id)).await?;
    let Some(letter) = letters.into_iter().next() else {
        return Err(ConsoleError::NotFound(format!(
            "no dead letter {id:?} in quarantine"
        )));
    };
    let status = store::statuses(pool, std::slice::from_ref(&id))
        .await?
        .remove(&id)
        .unwrap_or_default();
    let (dsp, period) = store::line_of(pool, &id).await?.unwrap_or_default();
    let replays = store::replays_of(pool, &id).await?;
    let chain = store::replay_chain(pool, &id).await?;
    let actions = audit::about(pool, &id).await?;
    let decoded = match &letter.value {
        Some(value) => Some(payload_json(&console.decoder, value).await),
        None => None,
    };
    let body = html! {
        dl.fields #summary {
            dt { "Status" } dd #status { (status_cell(&status)) }
            @if let Some(by) = &status.resolved_by { dt { "Resolved" } dd #resolved-by { (by) } }
            @if let Some(at) = &status.resolved_at { dt { "Closed at" } dd { (when(at)) } }
            @if let Some(next) = &status.superseded_by { dt { "Superseded by" } dd { (next) } }
            dt { "Reason" } dd #reason { (letter.reason) }
            dt { "Stage · class" } dd { (letter.stage) " · " (letter.class) }
            dt { "Source" } dd.mono { (letter.source()) }
            dt { "Source timestamp" } dd { (or_dash(letter.original_timestamp.as_ref().map(when))) }
            dt { "Refused at" } dd { (or_dash(letter.refused_at.as_ref().map(when))) }
            dt { "Consumer group" } dd { (or_dash(letter.group.as_deref())) }
            dt { "Writer schema" } dd { (or_dash(letter.schema.as_deref())) }
            dt { "DSP · period" } dd { (or_dash(dsp.as_deref())) " · " (or_dash(period)) }
            dt { "Replays" } dd { (status.replays) }
        }
        h2 { "Payload" }
        @match &decoded {
            None => p.muted { "No payload was stored (the record was too large to read, or had none)." },
            Some(Ok(serde_json::Value::Object(fields))) => {
                table #decoded {
                    thead { tr { th { "Field" } th { "Value" } } }
                    tbody {
                        @for (name, value) in fields {
                            tr { th.mono { (name) } td.mono { (json_text(value)) } }
                        }
                    }
                }
            },
            Some(Ok(other)) => pre #decoded { (other.to_string()) },
            Some(Err(why)) => {
                p.notice { "The payload does not decode: " (why) ". Its bytes:" }
                pre #payload-hex { (letter.value.as_deref().map(printable).unwrap_or_default()) }
            },
        }
        h2 { "Key" }
        pre.mono { (letter.key.as_deref().map(printable).unwrap_or_else(|| "(none)".to_string())) }
        h2 { "Headers" }
        @if letter.original_headers.is_empty() {
            p.muted { "None." }
        } @else {
            table #headers {
                thead { tr { th { "Name" } th { "Value" } } }
                tbody {
                    @for (name, value) in &letter.original_headers {
                        tr { td.mono { (name) } td.mono { (value.as_deref().map(printable).unwrap_or_else(|| "(null)".to_string())) } }
                    }
                }
            }
        }
        h2 { "Replay history" }
        @if replays.is_empty() {
            p.muted { "Never replayed." }
        } @else {
            table #replays {
                thead { tr { th { "Replay" } th { "Sent" } th { "To" } th { "Note" } } }
                tbody {
                    @for r in &replays {
                        tr {
                            td { "#" (r["replay_id"]) }
                            td { (json_text(&r["sent_at"])) }
                            td.mono { (json_text(&r["target_topic"])) "[" (r["target_partition"]) "]@" (r["target_offset"]) }
                            td { (json_text(&r["note"])) }
                        }
                    }
                }
            }
        }
        @if chain.len() > 1 {
            h2 { "Chain of replays" }
            ol #chain {
                @for (link_id, class) in &chain {
                    li {
                        @if *link_id == id { strong.mono { (link_id) } } @else { a.mono href=(letter_href(link_id)) { (link_id) } }
                        " " span.muted { (class) }
                    }
                }
            }
        }
        @if !actions.is_empty() {
            h2 { "Console actions" }
            table #audit {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "Note" } th { "Outcome" } } }
                tbody {
                    @for a in &actions {
                        tr { td { (when(&a.at)) } td { (a.user_name) } td { (a.action) } td { (or_dash(a.note.as_deref())) } td { (a.outcome) } }
                    }
                }
            }
        }
        @if may_act(&session) && status.is_open() {
            div.actions {
                form method="post" action="/dead-letters/replay" {
                    fieldset {
                        legend { "Replay" }
                        (csrf_field(&session))
                        input type="hidden" name="id" value=(id);
                        button #replay type="submit" { "Replay…" }
                    }
                }
                form method="post" action="/dead-letters/resolve" {
                    fieldset {
                        legend { "Resolve by hand" }
                        (csrf_field(&session))
                        input type="hidden" name="id" value=(id);
                        textarea #note name="note" required placeholder="Why is it closed? (required)" {}
                        button #resolve type="submit" { "Resolve" }
                    }
                }
            }
        }
    };
    Ok(page_response(
        StatusCode::OK,
        layout(
            &format!("Dead letter {id}"),
            Section::DeadLetters,
            &session,
            body,
        ),
    ))
}

/// A JSON value as a reader wants it: strings without quotes, null as a dash.
fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "—".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The selected ids of an action's form (at least one).
fn selected_ids(fields: &Fields) -> Result<Vec<String>, ConsoleError> {
    let ids = fields.all("id");
    if ids.is_empty() {
        return Err(ConsoleError::BadRequest(
            "no dead letter selected: tick at least one".to_string(),
        ));
    }
    Ok(ids)
}

/// The plan of a replay of `ids`, by `dlq replay`'s rules (to each source topic).
async fn plan_for<'a>(
    console: &Console,
    letters: &'a [crate::commands::dlq::letter::Letter],
) -> Result<Plan<'a>, ConsoleError> {
    let ids: Vec<String> = letters.iter().map(|l| l.id.clone()).collect();
    let statuses: HashMap<String, Status> = store::statuses(&console.pool, &ids).await?;
    Ok(replay::plan(
        letters,
        |id| statuses.get(id).cloned().unwrap_or_default(),
        None,
        console.args.dlq_topic.trim(),
        false,
    ))
}

/// POST /dead-letters/replay: the confirmation (count and targets), nothing sent yet.
pub async fn confirm_replay(
    State(console): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> PageResult {
    let fields = Fields::parse(&body);
    let session = console.post_session(&headers, &fields, true).await?;
    let ids = selected_ids(&fields)?;
    let letters = store::letters_by_ids(&console.pool, &ids).await?;
    let plan = plan_for(&console, &letters).await?;
    let targets = plan.targets();
    let body = html! {
        @if plan.sends.is_empty() {
            p.notice #nothing { "Nothing to replay: " (plan.summary.line("would replay", 0)) "." }
        } @else {
            p.notice #confirm-text {
                "Replay " strong #count { (plan.sends.len()) } " dead letter(s) to "
                strong #targets { (targets.join(", ")) } "?"
            }
            p.muted { (plan.summary.line("would replay", plan.sends.len())) "." }
            table {
                thead { tr { th { "Dead letter" } th { "Class" } th { "To" } } }
                tbody {
                    @for send in &plan.sends {
                        tr { td.mono { (send.letter.id) } td { (send.letter.class) } td.mono { (send.topic) (send.partition.map(|p| format!("[{p}]")).unwrap_or_default()) } }
                    }
                }
            }
            form method="post" action="/dead-letters/replay/send" {
                (csrf_field(&session))
                @for send in &plan.sends { input type="hidden" name="id" value=(send.letter.id); }
                p { label { "Note (kept with the replay)" br; textarea name="note" {} } }
                button #confirm type="submit" { "Replay " (plan.sends.len()) }
                " " a href="/dead-letters?status=open" { "Cancel" }
            }
        }
    };
    Ok(page_response(
        StatusCode::OK,
        layout("Replay dead letters", Section::DeadLetters, &session, body),
    ))
}

/// POST /dead-letters/replay/send: sends the replay and records it.
pub async fn replay(State(console): State<Shared>, headers: HeaderMap, body: String) -> PageResult {
    let fields = Fields::parse(&body);
    let session = console.post_session(&headers, &fields, true).await?;
    let ids = selected_ids(&fields)?;
    let note = fields.get("note");
    let letters = store::letters_by_ids(&console.pool, &ids).await?;
    let plan = plan_for(&console, &letters).await?;
    let targets = plan.targets();
    let missing = missing_topics(&console.args.kafka, &targets).await?;
    if !missing.is_empty() {
        return Err(ConsoleError::BadRequest(format!(
            "the target topic(s) {} do not exist",
            missing.join(", ")
        )));
    }
    let selection = format!("console {}: {}", session.user, ids.join(" "));
    let outcome = if plan.sends.is_empty() {
        format!("nothing to replay: {}", plan.summary.line("replayed", 0))
    } else {
        let sent = replay::send_plan(
            &console.args.kafka,
            &console.pool,
            &plan,
            None,
            note,
            &selection,
            None,
        )
        .await?;
        let mut outcome = format!(
            "replay #{} to {}: {}",
            sent.replay_id,
            targets.join(", "),
            plan.summary.line("replayed", sent.replayed)
        );
        if !sent.failures.is_empty() {
            outcome.push_str(&format!(
                "; {} not taken by the broker (first: {})",
                sent.failures.len(),
                sent.failures.join("; ")
            ));
        }
        outcome
    };
    audit::record(&console.pool, &session.user, "replay", &ids, note, &outcome).await?;
    tracing::info!(user = session.user, outcome, "console replay");
    let body = html! {
        p.notice #outcome { (outcome) }
        p { "`run` books them as it reads them; each shows resolved once booked." }
        ul { @for id in &ids { li { a.mono href=(letter_href(id)) { (id) } } } }
        p { a href="/dead-letters?status=open" { "Back to the open dead letters" } }
    };
    Ok(page_response(
        StatusCode::OK,
        layout("Replay sent", Section::DeadLetters, &session, body),
    ))
}

/// POST /dead-letters/resolve: closes the selected letters with the required note.
pub async fn resolve(
    State(console): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> PageResult {
    let fields = Fields::parse(&body);
    let session: Session = console.post_session(&headers, &fields, true).await?;
    let ids = selected_ids(&fields)?;
    let Some(note) = fields.get("note") else {
        return Err(ConsoleError::BadRequest(
            "a note is required: say why these dead letters are closed".to_string(),
        ));
    };
    let closed = store::close_by_hand(&console.pool, &ids, note, &session.user).await?;
    let outcome = format!(
        "closed {}, already closed {}, unknown {}",
        closed.closed.len(),
        closed.already.len(),
        closed.unknown.len()
    );
    audit::record(
        &console.pool,
        &session.user,
        "resolve",
        &ids,
        Some(note),
        &outcome,
    )
    .await?;
    tracing::info!(user = session.user, outcome, "console resolve");
    if let [only] = ids.as_slice() {
        return Ok(see_other(&letter_href(only)));
    }
    let body = html! {
        p.notice #outcome { (outcome) }
        ul { @for id in &ids { li { a.mono href=(letter_href(id)) { (id) } } } }
        p { a href="/dead-letters?status=open" { "Back to the open dead letters" } }
    };
    Ok(page_response(
        StatusCode::OK,
        layout(
            "Dead letters resolved",
            Section::DeadLetters,
            &session,
            body,
        ),
    ))
}
