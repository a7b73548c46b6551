//! The domain rules a royalty manager applies to a decoded line.
//!
//! Contract: [`validate`] turns a [`DecodedLine`] into a [`RoyaltyLine`] (normalised
//! identifiers, trimmed names, identity key) or a [`Rejection`] listing *every* broken
//! rule, each naming its field and rule. A line that passes can be written to the ledger
//! as is: no text field holds a NUL (PostgreSQL refuses it) or exceeds its length limit,
//! and the amount fits `NUMERIC(38,13)` without rounding. Nothing is rounded here.
//! Rule names and limits live in [`rules`](super::rules).

use super::currency::normalize_currency;
use super::gtin::validate_gtin;
use super::isrc::normalize_isrc;
use super::key::LineKey;
use super::line::{DecodedLine, LineType, RoyaltyLine};
use super::rejection::got;
pub use super::rejection::{Rejection, Violation};
use super::rules::{
    Checker, MAX_TEXT_CHARS, RULE_ISO_DATE, RULE_LINE_TYPE, RULE_NEGATIVE_COUNT, parse_period,
};

/// Applies every domain rule to `line`; see the module docs for the contract.
pub fn validate(line: &DecodedLine) -> Result<RoyaltyLine, Rejection> {
    let mut c = Checker::default();
    let isrc = c.rule("isrc", &line.isrc, normalize_isrc(&line.isrc));
    // Absent is allowed (schema v4: ISRC-only lines); present, it must be a valid GTIN.
    let upc = line
        .upc
        .as_deref()
        .and_then(|raw| c.rule("upc", raw, validate_gtin(raw)));
    let dsp_name = c.required_text("dsp_name", &line.dsp_name);
    let report_period = parse_period(&line.report_period);
    if report_period.is_none() {
        c.push("report_period", RULE_ISO_DATE, got(&line.report_period));
    }
    let transaction_id = c.required_text("transaction_id", &line.transaction_id);
    if line.stream_count < 0 {
        c.push(
            "stream_count",
            RULE_NEGATIVE_COUNT,
            format!("got {}", line.stream_count),
        );
    }
    let line_type = match &line.line_type {
        None => Some(LineType::Sale),
        Some(raw) => LineType::parse(raw),
    };
    if let (None, Some(raw)) = (line_type, &line.line_type) {
        c.push("line_type", RULE_LINE_TYPE, got(raw));
    }
    let royalty_amount = c.amount(line.royalty_amount, line_type);
    let currency = c.rule(
        "currency",
        &line.currency,
        normalize_currency(&line.currency),
    );
    let territory = c.code("territory", line.territory.as_deref());
    let usage_type = c.code("usage_type", line.usage_type.as_deref());
    for (field, value) in [
        ("label", &line.label),
        ("artist", &line.artist),
        ("report_id", &line.report_id),
    ] {
        if let Some(value) = value {
            c.text(field, value, MAX_TEXT_CHARS, false);
        }
    }

    match (
        isrc,
        dsp_name,
        report_period,
        transaction_id,
        currency,
        line_type,
    ) {
        (
            Some(isrc),
            Some(dsp_name),
            Some(report_period),
            Some(transaction_id),
            Some(currency),
            Some(line_type),
        ) if c.violations.is_empty() => Ok(RoyaltyLine {
            key: LineKey::for_line(&dsp_name, report_period, &transaction_id),
            isrc,
            upc,
            dsp_name,
            report_period,
            transaction_id,
            stream_count: line.stream_count,
            royalty_amount,
            currency,
            territory,
            usage_type,
            line_type,
            label: line.label.clone(),
            artist: line.artist.clone(),
            report_id: line.report_id.clone(),
        }),
        _ => Err(Rejection {
            violations: c.violations,
        }),
    }
}

/// Which line a refused `line` is, as far as it can tell: its key when the fields the key
/// is made of (DSP, report period, transaction id) pass their own rules, whatever else is
/// wrong with it, and the report it names when that is storable text. A dead letter keeps
/// it, so that a newer version of the line, once booked, can close it.
pub fn identity(line: &DecodedLine) -> Option<LineIdentity> {
    let mut c = Checker::default();
    let dsp_name = c.required_text("dsp_name", &line.dsp_name)?;
    let report_period = parse_period(&line.report_period)?;
    let transaction_id = c.required_text("transaction_id", &line.transaction_id)?;
    let report_id = line.report_id.clone().filter(|report| {
        let mut c = Checker::default();
        c.text("report_id", report, MAX_TEXT_CHARS, false);
        c.violations.is_empty()
    });
    Some(LineIdentity {
        key: LineKey::for_line(&dsp_name, report_period, &transaction_id),
        report_id,
        dsp_name,
        report_period,
    })
}

/// Which line a refused line is ([`identity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineIdentity {
    /// Its key, as the ledger would book it.
    pub key: LineKey,
    /// The report it names, when that is storable text.
    pub report_id: Option<String>,
    /// Its DSP (kept with the dead letter so the review queue can filter by it).
    pub dsp_name: String,
    /// Its report period (likewise).
    pub report_period: chrono::NaiveDate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::rules::*;
    use crate::domain::{currency, gtin, isrc};
    use chrono::NaiveDate;
    use rust_decimal::Decimal;

    fn good() -> DecodedLine {
        DecodedLine {
            isrc: "us-s1z-99-00001".into(),
            upc: Some(" 036000291452 ".into()),
            dsp_name: "  Spotify ".into(),
            report_period: "2026-09-01".into(),
            transaction_id: " T-1 ".into(),
            stream_count: 1200,
            royalty_amount: dec("3.1415926535897"),
            currency: "usd".into(),
            territory: Some(" GB ".into()),
            usage_type: Some("   ".into()),
            line_type: None,
            label: Some("Label ".into()),
            artist: None,
            report_id: Some("R-7".into()),
        }
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn rules(line: &DecodedLine) -> Vec<(&'static str, &'static str)> {
        let r = validate(line).unwrap_err();
        r.violations.iter().map(|v| (v.field, v.rule)).collect()
    }

    #[test]
    fn a_refused_line_knows_its_identity_when_its_key_fields_are_valid() {
        let mut bad_upc = good();
        bad_upc.upc = Some("731453000000".into());
        assert!(validate(&bad_upc).is_err());
        let valid = validate(&good()).expect("valid");
        let known = identity(&bad_upc).expect("identity");
        assert_eq!(known.key, valid.key, "the same key as the line would have");
        assert_eq!(known.report_id.as_deref(), Some("R-7"));
        assert_eq!(known.dsp_name, valid.dsp_name);
        assert_eq!(known.report_period, valid.report_period);
        let mut bad_period = good();
        bad_period.report_period = "2026-13-01".into();
        assert_eq!(identity(&bad_period), None);
        let mut no_transaction = good();
        no_transaction.transaction_id = " ".into();
        assert_eq!(identity(&no_transaction), None);
        let mut nul_report = bad_upc.clone();
        nul_report.report_id = Some("R\0".into());
        let known = identity(&nul_report).expect("identity");
        assert_eq!((known.key, known.report_id), (valid.key, None));
    }

    #[test]
    fn a_line_without_upc_is_valid_and_keeps_none() {
        let mut l = good();
        l.upc = None;
        assert_eq!(validate(&l).map(|line| line.upc), Ok(None));
    }

    #[test]
    fn accepts_and_normalises_a_good_line() {
        let line = validate(&good()).unwrap();
        let period = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
        assert_eq!(line.key, LineKey::for_line("spotify", period, "T-1"));
        assert_eq!(line.isrc, "USS1Z9900001");
        assert_eq!(line.upc.as_deref(), Some("036000291452"));
        assert_eq!(
            (line.dsp_name.as_str(), line.transaction_id.as_str()),
            ("Spotify", "T-1")
        );
        assert_eq!(line.report_period, period);
        assert_eq!(line.currency, "USD");
        assert_eq!(line.territory.as_deref(), Some("GB"));
        assert_eq!(line.usage_type, None);
        assert_eq!(line.line_type, LineType::Sale);
        assert_eq!(line.royalty_amount, dec("3.1415926535897"));
        assert_eq!(line.label.as_deref(), Some("Label "));
        assert_eq!(line.report_id.as_deref(), Some("R-7"));
    }

    #[test]
    fn collects_every_violation_in_field_order() {
        let mut l = good();
        l.isrc = "XX-1".into();
        l.upc = Some("731453000000".into());
        l.dsp_name = " ".into();
        l.report_period = "2026-9-1".into();
        l.stream_count = -3;
        l.royalty_amount = dec("-1.00");
        l.currency = "XYZ".into();
        assert_eq!(
            rules(&l),
            vec![
                ("isrc", isrc::RULE_HYPHENS),
                ("upc", gtin::RULE_CHECK_DIGIT),
                ("dsp_name", RULE_REQUIRED),
                ("report_period", RULE_ISO_DATE),
                ("stream_count", RULE_NEGATIVE_COUNT),
                ("royalty_amount", RULE_NEGATIVE_ON_SALE),
                ("currency", currency::RULE_CODE),
            ]
        );
        let summary = validate(&l).unwrap_err().summary();
        assert!(summary.starts_with(r#"isrc: isrc_hyphens (got "XX-1"); upc: gs1_check_digit"#));
    }

    #[test]
    fn line_type_and_sign() {
        for (raw, amount, expected) in [
            ("RETURN", "-2.5", LineType::Return),
            (" Adjustment ", "-0.000001", LineType::Adjustment),
            ("sale", "0", LineType::Sale),
        ] {
            let mut l = good();
            l.line_type = Some(raw.into());
            l.royalty_amount = dec(amount);
            let line = validate(&l).unwrap();
            assert_eq!(
                (line.line_type, line.royalty_amount),
                (expected, dec(amount))
            );
        }
        let mut l = good();
        l.line_type = Some("refund".into());
        l.royalty_amount = dec("-1");
        // An unknown type is the violation; the sign is not judged against a guess.
        assert_eq!(rules(&l), vec![("line_type", RULE_LINE_TYPE)]);
        l.line_type = Some(String::new());
        assert_eq!(rules(&l), vec![("line_type", RULE_LINE_TYPE)]);
        l.line_type = Some("Sale".into());
        assert_eq!(rules(&l), vec![("royalty_amount", RULE_NEGATIVE_ON_SALE)]);
    }

    #[test]
    fn optional_fields_are_checked() {
        let mut l = good();
        l.territory = Some("X".repeat(MAX_CODE_CHARS + 1));
        l.usage_type = Some("str\0eam".into());
        l.label = Some("A\0".into());
        l.artist = Some("x".repeat(MAX_TEXT_CHARS + 1));
        l.report_id = Some("\0".into());
        assert_eq!(
            rules(&l),
            vec![
                ("territory", RULE_TOO_LONG),
                ("usage_type", RULE_NUL),
                ("label", RULE_NUL),
                ("artist", RULE_TOO_LONG),
                ("report_id", RULE_NUL),
            ]
        );
    }

    #[test]
    fn details_never_carry_nul() {
        let mut l = good();
        l.isrc = format!("\0{}", "A".repeat(10_000));
        l.dsp_name = "\0".into();
        let r = validate(&l).unwrap_err();
        assert!(!r.summary().contains('\0'));
        assert!(r.summary().len() < 200, "{}", r.summary());
    }
}
