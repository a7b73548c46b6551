//! Field-level rules, their names and the ledger limits behind them.
//!
//! Contract: each rule has a stable name (the `RULE_*` constants here and in the
//! identifier modules) that dead letters, quarantine rows and metrics carry; the limits
//! mirror what the ledger can store (text without NUL, `NUMERIC(38,13)` amounts).
//! [`validate`](super::validate::validate) applies them to a whole line.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::line::LineType;
use super::rejection::{Violation, got};

/// Longest accepted free-text field (DSP, transaction id, label, artist, report id), in chars.
pub const MAX_TEXT_CHARS: usize = 512;
/// Longest accepted territory or usage type (after trimming), in chars.
pub const MAX_CODE_CHARS: usize = 32;
/// Decimal places the ledger keeps (`NUMERIC(38,13)`).
pub const MAX_AMOUNT_SCALE: u32 = 13;
/// Amounts must stay strictly below this in absolute value: 10^25 (`NUMERIC(38,13)`).
pub const AMOUNT_LIMIT: Decimal =
    Decimal::from_parts(1_241_513_984, 370_409_800, 542_101, false, 0);

/// Rule: a required text field is empty after trimming.
pub const RULE_REQUIRED: &str = "required";
/// Rule: an identity field contains a control character (NUL, tab, newline, ...).
pub const RULE_CONTROL: &str = "control_character";
/// Rule: a text field contains NUL, which PostgreSQL cannot store in text.
pub const RULE_NUL: &str = "nul_character";
/// Rule: a text field is longer than its limit.
pub const RULE_TOO_LONG: &str = "too_long";
/// Rule: `report_period` is not a real date written `YYYY-MM-DD`.
pub const RULE_ISO_DATE: &str = "iso_date";
/// Rule: `stream_count` is negative.
pub const RULE_NEGATIVE_COUNT: &str = "negative_count";
/// Rule: `line_type` is not `sale`, `return` or `adjustment`.
pub const RULE_LINE_TYPE: &str = "line_type_unknown";
/// Rule: a negative amount on a sale (only returns and adjustments may be negative).
pub const RULE_NEGATIVE_ON_SALE: &str = "negative_amount_on_sale";
/// Rule: the amount has more significant decimal places than the ledger keeps.
pub const RULE_AMOUNT_SCALE: &str = "amount_scale";
/// Rule: the amount's absolute value is 10^25 or more.
pub const RULE_AMOUNT_RANGE: &str = "amount_range";

/// Strict ISO date: exactly `YYYY-MM-DD` (surrounding whitespace ignored), a real day.
pub fn parse_period(raw: &str) -> Option<NaiveDate> {
    let s = raw.trim();
    let shape_ok = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Collects violations while the fields are checked.
#[derive(Default)]
pub(super) struct Checker {
    /// Violations found so far, in check order.
    pub(super) violations: Vec<Violation>,
}

impl Checker {
    /// Records one violation.
    pub(super) fn push(&mut self, field: &'static str, rule: &'static str, detail: String) {
        self.violations.push(Violation {
            field,
            rule,
            detail,
        });
    }

    /// Records the rule an identifier normaliser reported, if any.
    pub(super) fn rule(
        &mut self,
        field: &'static str,
        raw: &str,
        result: Result<String, &'static str>,
    ) -> Option<String> {
        result.map_err(|rule| self.push(field, rule, got(raw))).ok()
    }

    /// NUL (or, for identity fields, any control character) and length checks.
    pub(super) fn text(&mut self, field: &'static str, value: &str, max: usize, no_controls: bool) {
        let bad = |ch: char| {
            if no_controls {
                ch.is_control()
            } else {
                ch == '\0'
            }
        };
        if let Some((at, ch)) = value.chars().enumerate().find(|&(_, ch)| bad(ch)) {
            let rule = if no_controls { RULE_CONTROL } else { RULE_NUL };
            self.push(field, rule, format!("U+{:04X} at char {at}", u32::from(ch)));
        }
        let len = value.chars().count();
        if len > max {
            self.push(field, RULE_TOO_LONG, format!("{len} chars, max {max}"));
        }
    }

    /// A required identity field: trimmed, non-empty, no control characters.
    pub(super) fn required_text(&mut self, field: &'static str, raw: &str) -> Option<String> {
        let value = raw.trim();
        if value.is_empty() {
            self.push(field, RULE_REQUIRED, got(raw));
            return None;
        }
        let before = self.violations.len();
        self.text(field, value, MAX_TEXT_CHARS, true);
        (self.violations.len() == before).then(|| value.to_owned())
    }

    /// An optional short code (territory, usage type): trimmed, empty means unknown.
    pub(super) fn code(&mut self, field: &'static str, raw: Option<&str>) -> Option<String> {
        let value = raw.map(str::trim).filter(|v| !v.is_empty())?;
        self.text(field, value, MAX_CODE_CHARS, false);
        Some(value.to_owned())
    }

    /// Scale, range and sign checks; returns the amount with at most 13 decimal places
    /// (only trailing zeros are ever dropped) and without a negative zero.
    pub(super) fn amount(&mut self, raw: Decimal, line_type: Option<LineType>) -> Decimal {
        const FIELD: &str = "royalty_amount";
        let mut amount = raw;
        if amount.is_zero() {
            amount.set_sign_positive(true);
        }
        let places = amount.normalize().scale();
        if places > MAX_AMOUNT_SCALE {
            let detail = format!("got {raw}: {places} decimal places, max {MAX_AMOUNT_SCALE}");
            self.push(FIELD, RULE_AMOUNT_SCALE, detail);
        } else if amount.scale() > MAX_AMOUNT_SCALE {
            amount.rescale(MAX_AMOUNT_SCALE);
        }
        if amount.abs() >= AMOUNT_LIMIT {
            self.push(
                FIELD,
                RULE_AMOUNT_RANGE,
                format!("got {raw}: must be below 10^25 in absolute value"),
            );
        }
        if amount < Decimal::ZERO && line_type.is_some_and(|t| !t.allows_negative()) {
            self.push(FIELD, RULE_NEGATIVE_ON_SALE, format!("got {raw} on a sale"));
        }
        amount
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact parse: `str::parse` would silently round past 28 significant digits.
    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn found(c: &Checker) -> Vec<(&'static str, &'static str)> {
        c.violations.iter().map(|v| (v.field, v.rule)).collect()
    }

    #[test]
    fn report_period_is_strict() {
        for bad in [
            "2026-9-1",
            "2026-09-1",
            "20260901",
            "2026/09/01",
            "2026-02-30",
            "",
            "2026-09-01T00:00:00",
            "+2026-09-01",
            "２026-09-01",
            "2026-13-01",
        ] {
            assert_eq!(parse_period(bad), None, "{bad:?}");
        }
        let leap = NaiveDate::from_ymd_opt(2024, 2, 29);
        assert_eq!(parse_period(" 2024-02-29\n"), leap);
    }

    #[test]
    fn identity_text() {
        for (raw, rule) in [
            ("", RULE_REQUIRED),
            (" \t", RULE_REQUIRED),
            ("T\u{7}1", RULE_CONTROL),
            ("T\u{0}1", RULE_CONTROL),
            ("T\n1", RULE_CONTROL),
            ("x\u{85}y", RULE_CONTROL),
        ] {
            let mut c = Checker::default();
            assert_eq!(c.required_text("transaction_id", raw), None, "{raw:?}");
            assert_eq!(found(&c), vec![("transaction_id", rule)], "{raw:?}");
        }
        let mut c = Checker::default();
        assert_eq!(
            c.required_text("dsp_name", "  Apple Music\t").as_deref(),
            Some("Apple Music")
        );
        assert_eq!(
            c.required_text("dsp_name", &"é".repeat(MAX_TEXT_CHARS))
                .map(|s| s.chars().count()),
            Some(MAX_TEXT_CHARS)
        );
        assert_eq!(
            c.required_text("dsp_name", &"x".repeat(MAX_TEXT_CHARS + 1)),
            None
        );
        assert_eq!(found(&c), vec![("dsp_name", RULE_TOO_LONG)]);
    }

    #[test]
    fn optional_text_and_codes() {
        let mut c = Checker::default();
        c.text(
            "label",
            "tab\tand\nnewline are fine here",
            MAX_TEXT_CHARS,
            false,
        );
        c.text("artist", &"é".repeat(MAX_TEXT_CHARS), MAX_TEXT_CHARS, false);
        assert_eq!(c.code("territory", Some("  ")), None);
        assert_eq!(c.code("territory", None), None);
        assert_eq!(c.code("territory", Some(" gb ")).as_deref(), Some("gb"));
        assert!(c.violations.is_empty());
        c.text("label", "A\0B", MAX_TEXT_CHARS, false);
        c.text(
            "artist",
            &"é".repeat(MAX_TEXT_CHARS + 1),
            MAX_TEXT_CHARS,
            false,
        );
        c.text(
            "report_id",
            &"\0".repeat(MAX_TEXT_CHARS + 1),
            MAX_TEXT_CHARS,
            false,
        );
        c.code(
            "usage_type",
            Some(&format!(" {} ", "X".repeat(MAX_CODE_CHARS + 1))),
        );
        assert_eq!(
            found(&c),
            vec![
                ("label", RULE_NUL),
                ("artist", RULE_TOO_LONG),
                ("report_id", RULE_NUL),
                ("report_id", RULE_TOO_LONG),
                ("usage_type", RULE_TOO_LONG),
            ]
        );
        assert_eq!(c.violations[0].detail, "U+0000 at char 1");
    }

    #[test]
    fn amount_scale_and_range() {
        let check = |s: &str| {
            let mut c = Checker::default();
            let amount = c.amount(dec(s), Some(LineType::Return)).to_string();
            (amount, c.violations.first().map(|v| v.rule))
        };
        let ok = |s: &str, out: &str| assert_eq!(check(s), (out.to_owned(), None), "{s}");
        ok("0.0000000000001", "0.0000000000001");
        // Trailing zeros beyond 13 places lose nothing: accepted, trimmed to 13.
        ok("1.50000000000000000", "1.5000000000000");
        ok("-0.00", "0.00");
        // Decimal holds at most 28-29 significant digits, fewer than NUMERIC(38,13).
        ok(
            "9999999999999999999999999.999",
            "9999999999999999999999999.999",
        );
        ok(
            "-999999999999999.9999999999999",
            "-999999999999999.9999999999999",
        );
        ok("1.0000000000000000000000000000", "1.0000000000000");
        assert!(Decimal::from_str_exact("9999999999999999999999999.9999999999999").is_err());
        assert_eq!(AMOUNT_LIMIT, dec("10000000000000000000000000"));
        let rule = |s: &str| check(s).1;
        assert_eq!(rule("0.00000000000001"), Some(RULE_AMOUNT_SCALE));
        assert_eq!(rule("-1.00000000000001"), Some(RULE_AMOUNT_SCALE));
        assert_eq!(rule("10000000000000000000000000"), Some(RULE_AMOUNT_RANGE));
        assert_eq!(
            rule("-10000000000000000000000000.5"),
            Some(RULE_AMOUNT_RANGE)
        );
        assert_eq!(
            rule("79228162514264337593543950335"),
            Some(RULE_AMOUNT_RANGE)
        );
    }

    #[test]
    fn sign_depends_on_line_type() {
        let rules = |s: &str, t: Option<LineType>| {
            let mut c = Checker::default();
            c.amount(dec(s), t);
            found(&c)
        };
        assert_eq!(
            rules("-0.01", Some(LineType::Sale)),
            vec![("royalty_amount", RULE_NEGATIVE_ON_SALE)]
        );
        assert!(rules("-0.01", Some(LineType::Return)).is_empty());
        assert!(rules("-0.01", Some(LineType::Adjustment)).is_empty());
        // Unknown line type: that is the violation; the sign is not judged against a guess.
        assert!(rules("-0.01", None).is_empty());
        assert!(rules("0", Some(LineType::Sale)).is_empty());
    }
}
