//! Signing in and out. The sign-in form is tied to the browser that loaded it by a
//! one-time cookie (there is no session to hold a CSRF token yet); failed attempts are
//! limited per user name and per client address.

use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use maud::html;

use crate::console::Shared;
use crate::console::auth::{self, SESSION_COOKIE, SIGN_IN_COOKIE};
use crate::console::form::Fields;
use crate::console::html::{ConsoleError, PageResult, bare, page_response, see_other};
use crate::console::tls::ClientAddr;

/// GET /sign-in.
pub async fn form(State(console): State<Shared>, headers: HeaderMap) -> PageResult {
    if auth::session_of(&console.pool, &headers).await?.is_some() {
        return Ok(see_other("/"));
    }
    render(&console, StatusCode::OK, None)
}

fn render(console: &Shared, status: StatusCode, problem: Option<&str>) -> PageResult {
    let token = auth::random_token()?;
    let markup = bare(
        "Sign in",
        html! {
            @if let Some(problem) = problem { p.error { (problem) } }
            form method="post" action="/sign-in" {
                input type="hidden" name="csrf" value=(token);
                p { label { "User" br; input type="text" name="user" autocomplete="username" required autofocus; } }
                p { label { "Password" br; input type="password" name="password" autocomplete="current-password" required; } }
                p { button type="submit" { "Sign in" } }
            }
            p.muted { "Users are added with " code { "royalty-ingest console user add" } "." }
        },
    );
    let mut response = page_response(status, markup);
    let cookie = auth::set_cookie(
        SIGN_IN_COOKIE,
        &token,
        Duration::from_secs(3600),
        console.secure_cookies(),
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    Ok(response)
}

/// POST /sign-in.
pub async fn submit(
    State(console): State<Shared>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
    body: String,
) -> PageResult {
    let fields = Fields::parse(&body);
    let expected = auth::cookie(&headers, SIGN_IN_COOKIE);
    let tied = match (fields.get("csrf"), expected.as_deref()) {
        (Some(presented), Some(expected)) => auth::same_secret(presented, expected),
        _ => false,
    };
    if !tied {
        return Err(ConsoleError::Forbidden(
            "the sign-in form is stale or came from elsewhere: load the sign-in page again"
                .to_string(),
        ));
    }
    let user = fields.get("user").unwrap_or_default().to_string();
    let password = fields.get("password").unwrap_or_default().to_string();
    if let Some(wait) = console.limiter.wait(&user, client.ip()) {
        tracing::warn!(user, client = %client.ip(), "sign-in refused: too many failures");
        return Err(ConsoleError::TooMany(format!(
            "too many failed sign-ins: try again in {} minute(s)",
            wait.as_secs().div_ceil(60).max(1)
        )));
    }
    let role = auth::check_password(&console.pool, &console.decoy_hash, &user, &password).await?;
    if role.is_none() {
        console.limiter.failed(&user, client.ip());
        tracing::warn!(user, client = %client.ip(), "sign-in failed");
        return render(
            &console,
            StatusCode::UNAUTHORIZED,
            Some("unknown user or wrong password"),
        );
    }
    console.limiter.succeeded(&user);
    let lifetime = console.session_lifetime();
    let token = auth::open_session(&console.pool, &user, lifetime).await?;
    tracing::info!(user, client = %client.ip(), "signed in");
    let mut response = see_other("/");
    let secure = console.secure_cookies();
    for cookie in [
        auth::set_cookie(SESSION_COOKIE, &token, lifetime, secure),
        auth::set_cookie(SIGN_IN_COOKIE, "", Duration::ZERO, secure),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// POST /sign-out.
pub async fn sign_out(
    State(console): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ConsoleError> {
    let fields = Fields::parse(&body);
    console.post_session(&headers, &fields, false).await?;
    auth::close_session(&console.pool, &headers).await?;
    let mut response = see_other("/sign-in");
    let cookie = auth::set_cookie(SESSION_COOKIE, "", Duration::ZERO, console.secure_cookies());
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    Ok(response)
}
