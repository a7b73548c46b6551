//! The pages' frame and the console's responses: the layout (navigation, the signed-in
//! user, the stylesheet), errors as pages, and small formatting helpers. maud escapes every
//! interpolated value; nothing here builds HTML from strings by hand.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::auth::{Role, Session};

/// The stylesheet, built into the binary.
pub const STYLESHEET: &str = include_str!("console.css");

/// No scripts at all, styles from this origin only, no framing: a payload that slipped
/// past escaping still could not run.
const POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                      frame-ancestors 'none'; base-uri 'none'";

/// An HTML response with the console's security headers.
pub fn page_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    response
}

/// A 303 to `location` (after a POST, or to the sign-in page).
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// Which section of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The overview.
    Overview,
    /// Dead letters.
    DeadLetters,
    /// Drift and tracks.
    Drift,
    /// Reconciliation.
    Reports,
}

/// A whole page: navigation with `section` marked, the user and a sign-out button, then
/// `body`.
pub fn layout(title: &str, section: Section, session: &Session, body: Markup) -> Markup {
    let link = |href: &str, label: &str, this: Section| {
        html! { a href=(href) class=[(section == this).then_some("current")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · royalty-ingest console" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                header {
                    nav {
                        span.brand { "royalty-ingest" }
                        (link("/", "Overview", Section::Overview))
                        (link("/dead-letters?status=open", "Dead letters", Section::DeadLetters))
                        (link("/drift?status=open", "Drift", Section::Drift))
                        (link("/reports", "Reports", Section::Reports))
                    }
                    form.who method="post" action="/sign-out" {
                        span { (session.user) " · " (session.role.word()) }
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A bare page (sign-in, errors without a session).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · royalty-ingest console" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body.bare { main { h1 { (title) } (body) } }
        }
    }
}

/// The hidden CSRF field every form of a session carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// Whether the session may act (forms for actions are shown to operators only; the server
/// checks again on every POST).
pub fn may_act(session: &Session) -> bool {
    session.role == Role::Operator
}

/// A time as `2026-12-05 03:04:05 UTC`.
pub fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An optional value, `—` when absent.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "—".to_string(), |v| v.to_string())
}

/// A failure answered with a page: a status and a message the user can act on. Server
/// faults are logged with their cause and shown without it.
#[derive(Debug)]
pub enum ConsoleError {
    /// 400: the request was malformed (a missing note, a bad filter).
    BadRequest(String),
    /// 403: not allowed (viewer, missing or wrong CSRF token).
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 429: too many failed sign-ins.
    TooMany(String),
    /// 500: the database or broker failed.
    Internal(anyhow::Error),
    /// No session: answered with a redirect to the sign-in page.
    SignInFirst,
}

impl From<anyhow::Error> for ConsoleError {
    fn from(err: anyhow::Error) -> Self {
        ConsoleError::Internal(err)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ConsoleError::SignInFirst => return see_other("/sign-in"),
            ConsoleError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ConsoleError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ConsoleError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ConsoleError::TooMany(m) => (StatusCode::TOO_MANY_REQUESTS, m),
            ConsoleError::Internal(err) => {
                tracing::error!(cause = %format!("{err:#}"), "console request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the console could not answer (the database or the broker failed); the \
                     server log has the cause"
                        .to_string(),
                )
            }
        };
        let title = status.canonical_reason().unwrap_or("Error");
        page_response(
            status,
            bare(
                title,
                html! { p.error { (message) } p { a href="/" { "Back to the overview" } } },
            ),
        )
    }
}

/// What a handler returns.
pub type PageResult = Result<Response, ConsoleError>;
