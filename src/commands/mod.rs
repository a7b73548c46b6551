//! The commands besides `run` (which is [`crate::pipeline`]): each module holds its
//! arguments and the one function `main.rs` calls. They sit above every other module.

pub mod alerts_tail;
pub mod alerts_unknown;
pub mod catalog_as_of;
pub mod catalog_import;
pub mod config_show;
pub mod dlq;
pub mod produce;
pub mod progress;
pub mod reconcile;
pub mod sample;

/// Parses an RFC 3339 time given on the command line (`2026-10-05T08:00:00Z`) as UTC.
pub(crate) fn parse_utc_time(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{raw:?} is not an RFC 3339 time (2026-10-05T08:00:00Z): {e}"))
}
