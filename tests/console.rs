//! The operator console against the real broker and database: HTTP-level security (no
//! session → sign-in, a viewer's POST → 403, a POST without its CSRF token → 403, a hostile
//! payload shown as text, wrong passwords rate-limited) and a royalty manager's work in a
//! real headless Chromium (sign-in, the queue filtered by class, a letter's decoded fields,
//! three letters replayed and booked by `run`, one resolved with a note, a drift
//! acknowledged, a report that does not reconcile). The browser tests also take the
//! README's screenshots (docs/console/).

mod common;

// The test's modules live in tests/console/ (a directory without main.rs, so cargo keeps
// this one file as the test target and scripts/test finds it as tests/console.rs).
#[path = "console/browser.rs"]
mod browser;
#[path = "console/deploy.rs"]
mod deploy;
#[path = "console/fixture.rs"]
mod fixture;
#[path = "console/http.rs"]
mod http;
