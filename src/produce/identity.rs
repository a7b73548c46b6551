//! Where a report's identity and a line's identity within it are decided, for every file
//! `produce` reads. Nothing about how a file happens to be stored takes part: not its
//! bytes, name, line numbers, modification time, nor a DSR's MessageId. A copy, a rename,
//! a CRLF re-save or a corrected resend of a report lands on the same report id and the
//! same line keys, so the ledger restates instead of booking twice.
//!
//! - A DSR report is its sender, recipient, service, usage period, territories and (for a
//!   report split over several files) the file's place in it: the parts of DDEX's file
//!   naming convention. Its version is `MessageCreatedDateTime`.
//! - A DSR usage line is its natural key: release, resource, commercial model, use type,
//!   territory, service and price. DDEX makes `SalesTransactionId` unique within one
//!   message, not stable across a resend, so it is not used. Lines whose natural keys
//!   collide are told apart by their order among themselves (`#2`, `#3`): they report the
//!   same track, release, model, territory and price, so if a resend reorders them only the
//!   counts of identical sales trade places.
//! - A delimited file's report is its report id column, `--report-id`, or the profile's
//!   `report_key` columns; a line is its transaction id column, or the profile's `line_key`
//!   columns, or (only when asked for, with a warning) its line number.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

/// Longest id kept readable; a longer one is replaced by its SHA-256 (the ledger's text
/// limit is 512 characters, and an id that long is not read by people anyway).
const MAX_READABLE: usize = 400;

/// Joins identity parts into one id: `|` between parts, a `|` or `\` inside a part escaped,
/// so that different parts never give the same id.
pub fn compose<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    readable(join(parts))
}

/// A line's id: its report's id (already composed, so kept as it is) and the line's parts.
fn within(report_id: &str, parts: String) -> String {
    readable(format!("{}|{parts}", report_id.trim()))
}

/// `id`, or its SHA-256 when it is too long to keep.
fn readable(id: String) -> String {
    if id.chars().count() > MAX_READABLE {
        return format!("sha256:{}", hex::encode(Sha256::digest(id.as_bytes())));
    }
    id
}

fn join<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut id = String::new();
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            id.push('|');
        }
        for c in part.trim().chars() {
            if c == '|' || c == '\\' {
                id.push('\\');
            }
            id.push(c);
        }
    }
    id
}

/// A report's version time as the report writes it: RFC 3339 (`2016-01-21T15:09:26Z`, an
/// offset), a date-time without an offset (read as UTC), or a date (its midnight UTC).
pub fn parse_report_time(raw: &str) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(at) = chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S") {
        return Ok(at.and_utc());
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("{raw:?} is not a report time (RFC 3339, or YYYY-MM-DD)"))
}

/// The parts of a DSR HEAD that name the report.
#[derive(Debug, Clone)]
pub struct DsrReportParts<'a> {
    /// SenderPartyId, else SenderName.
    pub sender: &'a str,
    /// RecipientPartyId, else RecipientName (may be empty).
    pub recipient: &'a str,
    /// ServiceDescription of the HEAD (may be empty).
    pub service: &'a str,
    /// UsageStartDate.
    pub start: &'a str,
    /// UsageEndDate (may be empty).
    pub end: &'a str,
    /// The distinct territories of the summary records, sorted.
    pub territories: Vec<&'a str>,
    /// FileNumber and NumberOfFiles when the report spans several files.
    pub part: Option<(&'a str, &'a str)>,
}

/// A DSR report's id: `DSR|sender|recipient|service|start..end|territories[|file x of y]`.
pub fn dsr_report_id(parts: &DsrReportParts<'_>) -> String {
    let period = format!("{}..{}", parts.start.trim(), parts.end.trim());
    let territories = parts.territories.join("+");
    let part = parts.part.map(|(x, y)| format!("file {x} of {y}"));
    let mut all = vec![
        "DSR",
        parts.sender,
        parts.recipient,
        parts.service,
        period.as_str(),
        territories.as_str(),
    ];
    all.extend(part.as_deref());
    compose(all)
}

/// The natural key of a DSR usage line, in its report.
#[derive(Debug, Clone, Default)]
pub struct DsrLineParts<'a> {
    /// ICPN, else the DSP's release id, else the release reference.
    pub release: &'a str,
    /// ISRC, else the DSP's resource id.
    pub resource: &'a str,
    /// CommercialModel of the summary record.
    pub commercial_model: &'a str,
    /// UseType of the line, else of its summary record.
    pub use_type: &'a str,
    /// Territory of the summary record.
    pub territory: &'a str,
    /// ServiceDescription of the summary record.
    pub service: &'a str,
    /// PriceConsumerPaidExcSalesTax as written (may be empty).
    pub price: &'a str,
}

/// The transaction id of a DSR usage line: its report's id and its natural key.
pub fn dsr_line_id(report_id: &str, line: &DsrLineParts<'_>) -> String {
    within(
        report_id,
        join([
            line.release,
            line.resource,
            line.commercial_model,
            line.use_type,
            line.territory,
            line.service,
            line.price,
        ]),
    )
}

/// The transaction id of a delimited line told by the profile's `line_key` columns.
pub fn delimited_line_id<'a>(report_id: &str, cells: impl IntoIterator<Item = &'a str>) -> String {
    within(report_id, join(cells))
}

/// The transaction id of a delimited line told by its line number (`--line-number-identity`).
pub fn line_number_id(report_id: &str, line_no: u64) -> String {
    within(report_id, format!("line {line_no}"))
}

/// Remembers the identities a report has handed out (as 16-byte digests, so a file of
/// millions of lines stays small), to find two lines that would land on one key.
#[derive(Debug, Default)]
pub struct SeenIds {
    /// The first line that claimed an id, and how many lines claimed it.
    claims: HashMap<[u8; 16], (u64, u64)>,
}

impl SeenIds {
    /// Records `id` for `line_no`; returns the line that already holds it, if any.
    pub fn claim(&mut self, id: &str, line_no: u64) -> Option<u64> {
        let (first, count) = self.count(id, line_no);
        (count > 1).then_some(first)
    }

    /// Records `id` and returns how many lines have claimed it so far, this one included.
    pub fn occurrence(&mut self, id: &str) -> u64 {
        self.count(id, 0).1
    }

    fn count(&mut self, id: &str, line_no: u64) -> (u64, u64) {
        let digest = Sha256::digest(id.as_bytes());
        let mut short = [0u8; 16];
        short.copy_from_slice(&digest[..16]);
        let entry = self.claims.entry(short).or_insert((line_no, 0));
        entry.1 += 1;
        *entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_never_run_into_each_other() {
        assert_ne!(compose(["a|b", "c"]), compose(["a", "b|c"]));
        assert_ne!(compose(["a\\", "b"]), compose(["a", "\\b"]));
        assert_eq!(compose([" a ", "b"]), "a|b");
        let long = "x".repeat(500);
        assert!(compose([long.as_str()]).starts_with("sha256:"));
    }

    #[test]
    fn a_dsr_report_id_is_made_of_what_the_report_covers() {
        let parts = DsrReportParts {
            sender: "PADPIDA2014120301A",
            recipient: "PADPIDA0000000001X",
            service: "Premium",
            start: "2026-09-01",
            end: "2026-09-30",
            territories: vec!["DE", "SE"],
            part: None,
        };
        assert_eq!(
            dsr_report_id(&parts),
            "DSR|PADPIDA2014120301A|PADPIDA0000000001X|Premium|2026-09-01..2026-09-30|DE+SE"
        );
        let split = DsrReportParts {
            part: Some(("2", "3")),
            ..parts
        };
        assert!(dsr_report_id(&split).ends_with("|file 2 of 3"));
    }

    #[test]
    fn a_second_claim_names_the_first_line() {
        let mut seen = SeenIds::default();
        assert_eq!(seen.claim("r|GBQZA2400007|SE", 2), None);
        assert_eq!(seen.claim("r|GBQZA2400008|SE", 3), None);
        assert_eq!(seen.claim("r|GBQZA2400007|SE", 9), Some(2));
        let mut seen = SeenIds::default();
        assert_eq!(seen.occurrence("a"), 1);
        assert_eq!(seen.occurrence("b"), 1);
        assert_eq!(seen.occurrence("a"), 2);
    }
}
