//! The operator console of the tests: `royalty-ingest console` started as a child process
//! on a free port over the test's database (killed on drop), its users, and an HTTP client
//! that signs in the way a browser does (cookies and form tokens by hand).
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

use super::pipeline::{ChildGuard, royalty_ingest_with_env};

/// A password long enough for `console user add`.
pub const PASSWORD: &str = "correct horse battery";

/// A console of the test's own.
pub struct ConsoleServer {
    _child: ChildGuard,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ConsoleServer {
    /// Starts the console over `database_url` with `extra` arguments and waits until it
    /// serves the sign-in page.
    pub async fn start(database_url: &str, extra: &[&str]) -> ConsoleServer {
        let port = super::free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
            .args(["console", "--listen", &listen])
            .args(extra)
            .env("KAFKA_BROKERS", super::brokers())
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start royalty-ingest console");
        let guard = ChildGuard(child);
        let tls = extra.contains(&"--tls-cert");
        let base = format!("{}://{listen}", if tls { "https" } else { "http" });
        // The readiness probe only: the TLS test checks the certificate itself.
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(tls)
            .build()
            .expect("http client");
        let sign_in = format!("{base}/sign-in");
        super::wait_until(
            Duration::from_secs(60),
            "the console to serve /sign-in",
            || {
                let request = client.get(&sign_in).send();
                async move { request.await.is_ok_and(|r| r.status().is_success()) }
            },
        )
        .await;
        ConsoleServer {
            _child: guard,
            base,
        }
    }

    /// An absolute URL of the console.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Adds a console user with [`PASSWORD`] (through the command, the password in the
/// environment).
pub async fn add_user(database_url: &str, name: &str, role: &str) {
    let output = royalty_ingest_with_env(
        &["console", "user", "add", name, "--role", role],
        database_url,
        &[("ROYALTY_CONSOLE_PASSWORD", PASSWORD)],
    )
    .await;
    assert!(
        output.status.success(),
        "console user add {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An HTTP client that does not follow redirects (tests look at them).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("http client")
}

/// The value of `name="csrf"` in a page's form.
pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().map(str::to_string)
}

/// The `name=value` of a response's Set-Cookie for `name`.
pub fn cookie_from(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

/// What one sign-in attempt got back.
pub struct SignIn {
    /// The status of the POST.
    pub status: reqwest::StatusCode,
    /// Where it redirects.
    pub location: Option<String>,
    /// The session cookie (`name=value`), when one was set.
    pub session: Option<String>,
    /// Every Set-Cookie header as sent.
    pub set_cookies: Vec<String>,
}

/// Loads the sign-in page and posts `user` / `password` with its form token.
pub async fn sign_in(console: &ConsoleServer, user: &str, password: &str) -> SignIn {
    let client = http();
    let page = client
        .get(console.url("/sign-in"))
        .send()
        .await
        .expect("sign-in page");
    let form_cookie = cookie_from(&page, "ri_console_sign_in").expect("sign-in cookie");
    let html = page.text().await.expect("sign-in html");
    let csrf = csrf_of(&html).expect("sign-in form token");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .append_pair("user", user)
        .append_pair("password", password)
        .finish();
    let response = client
        .post(console.url("/sign-in"))
        .header(COOKIE, form_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("sign-in answered");
    SignIn {
        status: response.status(),
        location: response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        session: cookie_from(&response, "ri_console_session"),
        set_cookies: response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect(),
    }
}

/// GET `path` with the session cookie; status and body.
pub async fn get_page(console: &ConsoleServer, session: &str, path: &str) -> (u16, String) {
    let response = http()
        .get(console.url(path))
        .header(COOKIE, session)
        .send()
        .await
        .expect("page answered");
    let status = response.status().as_u16();
    (status, response.text().await.expect("page body"))
}

/// POST `pairs` as a form to `path` with the session cookie; status and body.
pub async fn post_form(
    console: &ConsoleServer,
    session: &str,
    path: &str,
    pairs: &[(&str, &str)],
) -> (u16, String) {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        body.append_pair(name, value);
    }
    let response = http()
        .post(console.url(path))
        .header(COOKIE, session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.finish())
        .send()
        .await
        .expect("POST answered");
    let status = response.status().as_u16();
    (status, response.text().await.expect("POST body"))
}
