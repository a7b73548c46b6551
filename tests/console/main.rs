//! The operator console against the real broker and database: HTTP-level security (no
//! session → sign-in, a viewer's POST → 403, a POST without its CSRF token → 403, a hostile
//! payload shown as text, wrong passwords rate-limited) and a royalty manager's work in a
//! real headless Chromium (sign-in, the queue filtered by class, a letter's decoded fields,
//! three letters replayed and booked by `run`, one resolved with a note, a drift
//! acknowledged, a report that does not reconcile). The browser tests also take the
//! README's screenshots (docs/console/).

#[path = "../common/mod.rs"]
mod common;

mod browser;
mod deploy;
mod fixture;
mod http;
