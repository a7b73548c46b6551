//! The royalty line in its two shapes: as decoded from any schema version
//! ([`DecodedLine`], canonical field names, nothing checked yet) and as accepted by the
//! domain rules ([`RoyaltyLine`], normalised identifiers, exact amount, identity key).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::key::LineKey;

/// One royalty line after decoding, mapped onto the canonical field names of the newest
/// schema. Optional fields are `None` when the writer's schema does not carry them (or the
/// writer sent null): *unknown*, which is not the same as "changed to nothing".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodedLine {
    /// ISRC as the DSP sent it (may be lower case or hyphenated).
    pub isrc: String,
    /// UPC / EAN / GTIN of the release, as sent; `None` when the line names no release
    /// (schema v4+: unknown, not a change).
    pub upc: Option<String>,
    /// Name of the DSP that reported the line.
    pub dsp_name: String,
    /// Report period as sent (expected ISO date `YYYY-MM-DD`).
    pub report_period: String,
    /// The DSP's transaction id for this sale (unique within DSP + period).
    pub transaction_id: String,
    /// Quantity (`streams` in v1, `play_count` in v2).
    pub stream_count: i64,
    /// Exact royalty amount.
    pub royalty_amount: Decimal,
    /// ISO 4217 currency code as sent.
    pub currency: String,
    /// Territory (v2+).
    pub territory: Option<String>,
    /// Usage type, e.g. `stream`, `download` (v2+).
    pub usage_type: Option<String>,
    /// `sale`, `return` or `adjustment` (v3+); writers without it report sales.
    pub line_type: Option<String>,
    /// Label credited on the line (v3+).
    pub label: Option<String>,
    /// Display artist credited on the line (v3+).
    pub artist: Option<String>,
    /// The DSP's report (file) id (v2+); not part of the line's identity or value.
    pub report_id: Option<String>,
}

/// What kind of money movement a line is; only returns and adjustments may be negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineType {
    /// A sale or stream (the default).
    Sale,
    /// A return, void, refund or chargeback.
    Return,
    /// A correction or fee posted by the DSP.
    Adjustment,
}

impl LineType {
    /// The lower-case name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            LineType::Sale => "sale",
            LineType::Return => "return",
            LineType::Adjustment => "adjustment",
        }
    }

    /// Parses `sale`, `return` or `adjustment` (surrounding whitespace and case ignored);
    /// `None` for anything else.
    pub fn parse(raw: &str) -> Option<LineType> {
        let raw = raw.trim();
        [LineType::Sale, LineType::Return, LineType::Adjustment]
            .into_iter()
            .find(|t| raw.eq_ignore_ascii_case(t.as_str()))
    }

    /// True for the line types that may carry a negative amount.
    pub fn allows_negative(self) -> bool {
        matches!(self, LineType::Return | LineType::Adjustment)
    }
}

/// A line that passed every domain rule, with its identity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoyaltyLine {
    /// Idempotency key: SHA-256 over DSP + period + transaction id.
    pub key: LineKey,
    /// Normalised ISRC (12 characters, upper case, no hyphens).
    pub isrc: String,
    /// UPC/EAN/GTIN digits with a valid GS1 check digit; `None` when the line names no
    /// release.
    pub upc: Option<String>,
    /// DSP name, trimmed (the key uses it lower-cased).
    pub dsp_name: String,
    /// Report period.
    pub report_period: NaiveDate,
    /// Transaction id, trimmed.
    pub transaction_id: String,
    /// Non-negative quantity.
    pub stream_count: i64,
    /// Exact amount; negative only for returns and adjustments.
    pub royalty_amount: Decimal,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// Territory when known.
    pub territory: Option<String>,
    /// Usage type when known.
    pub usage_type: Option<String>,
    /// Sale, return or adjustment.
    pub line_type: LineType,
    /// Label when the line carries it.
    pub label: Option<String>,
    /// Artist when the line carries it.
    pub artist: Option<String>,
    /// Report id when known.
    pub report_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_type_parse_round_trips_and_ignores_case() {
        for t in [LineType::Sale, LineType::Return, LineType::Adjustment] {
            assert_eq!(LineType::parse(t.as_str()), Some(t));
            assert_eq!(LineType::parse(&t.as_str().to_uppercase()), Some(t));
        }
        assert_eq!(LineType::parse(" Return\t"), Some(LineType::Return));
        for raw in ["", " ", "refund", "sales", "void", "ſale"] {
            assert_eq!(LineType::parse(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn only_returns_and_adjustments_allow_negative() {
        assert!(!LineType::Sale.allows_negative());
        assert!(LineType::Return.allows_negative());
        assert!(LineType::Adjustment.allows_negative());
    }
}
