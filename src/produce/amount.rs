//! The one grammar of amounts and quantities in report files: a number is read exactly
//! as the file's [`Notation`] says it is written, or refused with the reason. Nothing is
//! dropped or guessed: a separator that does not fit the notation is an error, because a
//! `0,0035` read as 35 is money booked ten thousand times over.
//!
//! Delimited files (through a profile):
//!
//! ```text
//! amount    = [ "+" | "-" ] number | "(" number ")"       (parentheses: negative)
//! number    = integer [ DECIMAL digits ] | DECIMAL digits
//! integer   = digits | group1 ( SEP group3 )+              (SEP: one character throughout)
//! group1    = 1-3 digits, not starting with 0;  group3 = exactly 3 digits
//! ```
//!
//! `DECIMAL` is the profile's decimal separator (`.` or `,`). `SEP`, when the profile allows
//! grouping, is the other one of `.` and `,`, or a space, a no-break space (U+00A0, U+202F)
//! or `'`. Those last four are never a decimal separator, so they are safe in either
//! notation; `.` and `,` are, so the one shape that reads as two different numbers in the
//! two notations — a lone `.`/`,` group and no decimals, `1,234` — is refused in an amount
//! as ambiguous (write `1234` or `1,234.00`). The rule that keeps files honest: a string
//! that both notations accept has the same value in both (the property tests below).
//!
//! Quantities are whole: the same integer grammar, no decimal separator at all (so `1.000`
//! can never be one unit in one notation and a thousand in the other).
//!
//! DDEX DSR files write numbers as XML Schema does (`xs:decimal`, `xs:integer`): a point,
//! no grouping, an optional sign ([`parse_ddex_amount`], [`parse_ddex_count`]).

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde::Deserialize;

/// The character between the whole part and the fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum DecimalSeparator {
    /// `1234.56` (grouped: `1,234.56`).
    #[default]
    #[serde(rename = ".")]
    Point,
    /// `1234,56` (grouped: `1.234,56` or `1 234,56`).
    #[serde(rename = ",")]
    Comma,
}

impl DecimalSeparator {
    fn char(self) -> char {
        match self {
            DecimalSeparator::Point => '.',
            DecimalSeparator::Comma => ',',
        }
    }

    /// The other notation's decimal separator: the only punctuation grouping may use here.
    fn other(self) -> char {
        match self {
            DecimalSeparator::Point => ',',
            DecimalSeparator::Comma => '.',
        }
    }
}

/// How a file writes numbers: its decimal separator and whether digits may be grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notation {
    /// The decimal separator.
    pub decimal: DecimalSeparator,
    /// Whether a grouping separator may stand between groups of three digits.
    pub grouping: bool,
}

impl Default for Notation {
    fn default() -> Self {
        Notation {
            decimal: DecimalSeparator::Point,
            grouping: true,
        }
    }
}

/// Grouping separators no notation uses as a decimal separator.
const NEUTRAL_GROUPING: [char; 4] = [' ', '\u{a0}', '\u{202f}', '\''];

/// A number split into its sign and digits, before it becomes a value.
struct Parts {
    negative: bool,
    whole: String,
    fraction: Option<String>,
}

/// Reads an amount exactly (see the module docs for the grammar): `-1234.5`, `+0.0035`,
/// `(12.30)`, `1,234.50`, or under a decimal comma `1.234,56` and `1 234,5`.
pub fn parse_amount(raw: &str, notation: Notation) -> Result<Decimal, String> {
    let parts = split(raw, notation, true)?;
    let fraction = parts.fraction.unwrap_or_default();
    let whole = if parts.whole.is_empty() {
        "0"
    } else {
        parts.whole.as_str()
    };
    let text = if fraction.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{fraction}")
    };
    let value = Decimal::from_str_exact(&text)
        .map_err(|e| format!("{raw:?} does not fit an exact decimal ({e})"))?;
    Ok(if parts.negative { -value } else { value })
}

/// Reads a whole quantity: the amount grammar without a decimal separator (`1,204`,
/// `1.204` under a decimal comma, `(3)` and `-3` negative).
pub fn parse_quantity(raw: &str, notation: Notation) -> Result<i64, String> {
    let parts = split(raw, notation, false)?;
    if parts.fraction.is_some() {
        return Err(format!(
            "{raw:?} is not a whole quantity (a quantity has no decimal separator)"
        ));
    }
    let out_of_range = || format!("{raw:?} is out of range");
    let magnitude: i128 = parts.whole.parse().map_err(|_| out_of_range())?;
    i64::try_from(if parts.negative {
        -magnitude
    } else {
        magnitude
    })
    .map_err(|_| out_of_range())
}

/// Reads a DSR amount as `xs:decimal`: optional sign, digits, a point; no grouping, no
/// exponent (`-12.5`, `0.0035`, `.5`, `3.`).
pub fn parse_ddex_amount(raw: &str) -> Result<Decimal, String> {
    let s = raw.trim();
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return Err(format!(
            "{raw:?} is not a DDEX decimal (digits, one decimal point, an optional sign; no grouping)"
        ));
    }
    Decimal::from_str_exact(s).map_err(|e| format!("{raw:?} does not fit an exact decimal ({e})"))
}

/// Reads a DSR count as `xs:integer`: optional sign and digits, nothing else.
pub fn parse_ddex_count(raw: &str) -> Result<i64, String> {
    let s = raw.trim();
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{raw:?} is not a DDEX integer (digits and an optional sign; no grouping)"
        ));
    }
    s.parse().map_err(|_| format!("{raw:?} is out of range"))
}

/// Splits `raw` into sign, whole digits and fraction digits, checking every character
/// against the notation. `decimals`: an amount, where a lone `.`/`,` group is ambiguous.
fn split(raw: &str, notation: Notation, decimals: bool) -> Result<Parts, String> {
    let s = raw.trim();
    let bad = |why: &str| Err(format!("{raw:?} is not {}: {why}", what(decimals)));
    if s.is_empty() {
        return bad("empty");
    }
    let (negative, body) = if let Some(inner) = s.strip_prefix('(') {
        let Some(inner) = inner.strip_suffix(')') else {
            return bad("an opening parenthesis without its closing one");
        };
        let inner = inner.trim();
        if inner.is_empty() {
            return bad("empty parentheses");
        }
        if inner.starts_with(['-', '+']) {
            return bad("a sign inside parentheses");
        }
        (true, inner)
    } else if s.ends_with(')') {
        return bad("a closing parenthesis without its opening one");
    } else if let Some(rest) = s.strip_prefix('-') {
        (true, rest.trim_start())
    } else if let Some(rest) = s.strip_prefix('+') {
        (false, rest.trim_start())
    } else {
        (false, s)
    };
    if body.is_empty() {
        return bad("a sign without digits");
    }
    let decimal = notation.decimal.char();
    let other = notation.decimal.other();
    for c in body.chars() {
        if c.is_ascii_digit() || c == decimal || c == other || NEUTRAL_GROUPING.contains(&c) {
            continue;
        }
        return match c {
            'e' | 'E' => bad("an exponent; write the number out"),
            '-' | '+' => bad("a sign that is not in front"),
            _ => bad(&format!("{c:?} is not part of a number")),
        };
    }
    let hint = || match notation.decimal {
        DecimalSeparator::Point => {
            "; the profile reads a decimal point (decimal_separator = \".\"), with `,` only between groups of three digits"
        }
        DecimalSeparator::Comma => {
            "; the profile reads a decimal comma (decimal_separator = \",\"), with `.` only between groups of three digits"
        }
    };
    if body.matches(decimal).count() > 1 {
        return bad(&format!(
            "more than one decimal separator {decimal:?}{}",
            hint()
        ));
    }
    let (whole, fraction) = match body.split_once(decimal) {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (body, None),
    };
    if let Some(fraction) = fraction {
        if fraction.is_empty() {
            return bad(&format!(
                "no digits after the decimal separator {decimal:?}"
            ));
        }
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return bad(&format!(
                "a separator after the decimal separator {decimal:?}{}",
                hint()
            ));
        }
    } else if whole.is_empty() {
        return bad("no digits");
    }
    let separators: BTreeSet<char> = whole.chars().filter(|c| !c.is_ascii_digit()).collect();
    let separators: Vec<char> = separators.into_iter().collect();
    let digits = match separators.as_slice() {
        [] => whole.to_string(),
        [sep] => {
            if !notation.grouping {
                return bad(&format!(
                    "a grouping separator {sep:?}, and the profile allows none (grouping = false){}",
                    if *sep == other { hint() } else { "" }
                ));
            }
            let groups: Vec<&str> = whole.split(*sep).collect();
            let first = groups.first().copied().unwrap_or_default();
            let well_formed = (1..=3).contains(&first.len())
                && !first.starts_with('0')
                && groups[1..].iter().all(|g| g.len() == 3);
            if !well_formed {
                return bad(&format!(
                    "{sep:?} stands where no group of three digits ends{}",
                    if *sep == other { hint() } else { "" }
                ));
            }
            if decimals && *sep == other && groups.len() == 2 && fraction.is_none() {
                let grouped = groups.concat();
                return bad(&format!(
                    "ambiguous: {grouped} with {other:?} between groups, {}.{} with {other:?} as the decimal separator; write {grouped}, or add the decimals ({whole}{decimal}00)",
                    groups[0], groups[1]
                ));
            }
            groups.concat()
        }
        _ => return bad("more than one kind of grouping separator"),
    };
    Ok(Parts {
        negative,
        whole: digits,
        fraction: fraction.map(str::to_string),
    })
}

fn what(decimals: bool) -> &'static str {
    if decimals { "an amount" } else { "a quantity" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POINT: Notation = Notation {
        decimal: DecimalSeparator::Point,
        grouping: true,
    };
    const COMMA: Notation = Notation {
        decimal: DecimalSeparator::Comma,
        grouping: true,
    };

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("decimal")
    }

    fn refused(raw: &str, notation: Notation, needle: &str) {
        match parse_amount(raw, notation) {
            Ok(v) => panic!("{raw:?} read as {v} under {notation:?}"),
            Err(e) => assert!(e.contains(needle), "{raw:?}: {e}"),
        }
    }

    #[test]
    fn amounts_as_written() {
        assert_eq!(parse_amount("1,234.5000001", POINT), Ok(d("1234.5000001")));
        assert_eq!(parse_amount("1,234,567.89", POINT), Ok(d("1234567.89")));
        assert_eq!(parse_amount(" -12.30 ", POINT), Ok(d("-12.30")));
        assert_eq!(parse_amount("+0.0035", POINT), Ok(d("0.0035")));
        assert_eq!(parse_amount("(12.30)", POINT), Ok(d("-12.30")));
        assert_eq!(parse_amount("( 0.99 )", POINT), Ok(d("-0.99")));
        assert_eq!(parse_amount(".99", POINT), Ok(d("0.99")));
        assert_eq!(parse_amount("1'234.5", POINT), Ok(d("1234.5")));
        assert_eq!(parse_amount("1234", POINT), Ok(d("1234")));
        assert_eq!(parse_amount("1.234,56", COMMA), Ok(d("1234.56")));
        assert_eq!(parse_amount("(0,0123)", COMMA), Ok(d("-0.0123")));
        assert_eq!(parse_amount("1 234,5", COMMA), Ok(d("1234.5")));
        assert_eq!(
            parse_amount("1\u{a0}234\u{a0}567,5", COMMA),
            Ok(d("1234567.5"))
        );
        assert_eq!(parse_amount("1\u{202f}234,5", COMMA), Ok(d("1234.5")));
        assert_eq!(parse_amount("0,0035", COMMA), Ok(d("0.0035")));
        assert_eq!(parse_amount("1,50", COMMA), Ok(d("1.50")));
        // A space never is a decimal separator: a lone space group is not ambiguous.
        assert_eq!(parse_amount("1 234", COMMA), Ok(d("1234")));
    }

    #[test]
    fn the_other_conventions_decimal_separator_is_refused_where_it_cannot_group() {
        for raw in [
            "0,0035", "12,5", "1,50", "1,2,3.4", "0,123", "1,2345.6", ",5",
        ] {
            refused(raw, POINT, "decimal_separator = \".\"");
        }
        for raw in ["1.50", "0.0035", "12.5", "1.2.3,4", "0.123", ".5"] {
            refused(raw, COMMA, "decimal_separator = \",\"");
        }
        // The decimal separator comes once, and nothing is grouped after it.
        refused("1.234,56", POINT, "after the decimal separator");
        refused("12.3.4", POINT, "more than one decimal separator");
        refused("1,234.567,8", POINT, "after the decimal separator");
        refused("1,234,56", COMMA, "more than one decimal separator");
        refused("1.234,567.8", COMMA, "after the decimal separator");
    }

    #[test]
    fn a_lone_point_or_comma_group_without_decimals_is_ambiguous() {
        refused("1,234", POINT, "ambiguous");
        refused("-123,456", POINT, "ambiguous");
        refused("1.234", COMMA, "ambiguous");
        // Two groups, or decimals, say which notation it is.
        assert_eq!(parse_amount("1,234,567", POINT), Ok(d("1234567")));
        assert_eq!(parse_amount("1,234.00", POINT), Ok(d("1234.00")));
        assert_eq!(parse_amount("1.234", POINT), Ok(d("1.234")));
        assert_eq!(parse_amount("1,234", COMMA), Ok(d("1.234")));
    }

    #[test]
    fn malformed_amounts_say_why() {
        refused("", POINT, "empty");
        refused("   ", POINT, "empty");
        refused("-", POINT, "a sign without digits");
        refused("+", COMMA, "a sign without digits");
        refused("()", POINT, "empty parentheses");
        refused("1e5", POINT, "exponent");
        refused("1.5E-3", POINT, "exponent");
        refused("12.", POINT, "no digits after the decimal separator");
        refused("(-12.30)", POINT, "a sign inside parentheses");
        refused("(12.30", POINT, "parenthesis");
        refused("12.30)", POINT, "parenthesis");
        refused("12-", POINT, "a sign that is not in front");
        refused("--1", POINT, "a sign that is not in front");
        refused("$12", POINT, "'$' is not part of a number");
        refused("1_000", POINT, "'_' is not part of a number");
        refused("1 234,5", POINT, "more than one kind of grouping separator");
        refused(
            "1,234 567.5",
            POINT,
            "more than one kind of grouping separator",
        );
        refused("01,234.5", POINT, "no group of three digits");
        refused("1234,567.5", POINT, "no group of three digits");
        refused("99999999999999999999999999999", POINT, "exact decimal");
    }

    #[test]
    fn a_profile_without_grouping_refuses_every_separator() {
        let plain = Notation {
            decimal: DecimalSeparator::Point,
            grouping: false,
        };
        assert_eq!(parse_amount("1234.56", plain), Ok(d("1234.56")));
        refused("1,234.56", plain, "grouping = false");
        refused("1 234.56", plain, "grouping = false");
        let plain = Notation {
            decimal: DecimalSeparator::Comma,
            grouping: false,
        };
        assert_eq!(parse_amount("1234,56", plain), Ok(d("1234.56")));
        refused("1.234,56", plain, "grouping = false");
    }

    #[test]
    fn quantities_are_whole_numbers_with_the_same_groups() {
        assert_eq!(parse_quantity("1,204", POINT), Ok(1204));
        assert_eq!(parse_quantity("1.204", COMMA), Ok(1204));
        assert_eq!(parse_quantity("1 204", COMMA), Ok(1204));
        assert_eq!(parse_quantity("(3)", POINT), Ok(-3));
        assert_eq!(parse_quantity("-3", COMMA), Ok(-3));
        assert_eq!(parse_quantity("+7", POINT), Ok(7));
        for raw in [
            "1.5", "3.0", "1.204", "12,5", "1,2", "", "-", ".5", "1e3", "1,2,3",
        ] {
            assert!(parse_quantity(raw, POINT).is_err(), "{raw:?}");
        }
        for raw in ["1,5", "3,0", "1,000", "12.5", "1.2", ",5"] {
            assert!(parse_quantity(raw, COMMA).is_err(), "{raw:?}");
        }
        assert!(parse_quantity("99999999999999999999", POINT).is_err());
    }

    #[test]
    fn ddex_numbers_are_xs_decimal_and_xs_integer() {
        assert_eq!(parse_ddex_amount("1000.00"), Ok(d("1000.00")));
        assert_eq!(parse_ddex_amount("-0.0035"), Ok(d("-0.0035")));
        assert_eq!(parse_ddex_amount("+3.5"), Ok(d("3.5")));
        assert_eq!(parse_ddex_amount(".5"), Ok(d("0.5")));
        assert_eq!(parse_ddex_amount("3."), Ok(d("3")));
        for raw in [
            "1000,00", "1,000.00", "1 000", "1e3", "", "-", ".", "(1.5)", "1.2.3",
        ] {
            assert!(parse_ddex_amount(raw).is_err(), "{raw:?}");
        }
        assert_eq!(parse_ddex_count("7810"), Ok(7810));
        assert_eq!(parse_ddex_count("-2"), Ok(-2));
        for raw in ["1,204", "1.204", "1.0", "", "+", "1 000"] {
            assert!(parse_ddex_count(raw).is_err(), "{raw:?}");
        }
    }

    /// Writes `value` as an accountant in `notation` would: its own decimal places, and
    /// the whole part grouped in threes with `group` when one is given.
    fn render(value: Decimal, decimal: DecimalSeparator, group: Option<char>) -> String {
        let plain = value.abs().to_string();
        let (whole, fraction) = plain.split_once('.').unwrap_or((&plain, ""));
        let mut text = String::new();
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                text.extend(group);
            }
            text.push(c);
        }
        if !fraction.is_empty() {
            text.push(decimal.char());
            text.push_str(fraction);
        }
        if value.is_sign_negative() {
            format!("-{text}")
        } else {
            text
        }
    }

    /// Amounts of every size, mostly of the sizes where `1,234` and `1.234` meet.
    fn value() -> impl Strategy<Value = Decimal> {
        let mantissa = prop_oneof![-10_000_000i64..10_000_000, -10_000i64..10_000, any::<i64>()];
        let scale = prop_oneof![0u32..=4, 0u32..=13];
        (mantissa, scale).prop_map(|(m, scale)| Decimal::new(m, scale))
    }

    fn notation() -> impl Strategy<Value = Notation> {
        (any::<bool>(), any::<bool>()).prop_map(|(comma, grouping)| Notation {
            decimal: if comma {
                DecimalSeparator::Comma
            } else {
                DecimalSeparator::Point
            },
            grouping,
        })
    }

    /// `1,234`-shaped: the one writing the grammar refuses in its own notation.
    fn ambiguous(text: &str, decimal: DecimalSeparator) -> bool {
        let body = text.trim_start_matches('-');
        let other = decimal.other();
        !body.contains(decimal.char())
            && body.matches(other).count() == 1
            && body.split(other).nth(1).is_some_and(|g| g.len() == 3)
    }

    fn other_of(n: Notation) -> Notation {
        Notation {
            decimal: match n.decimal {
                DecimalSeparator::Point => DecimalSeparator::Comma,
                DecimalSeparator::Comma => DecimalSeparator::Point,
            },
            grouping: n.grouping,
        }
    }

    proptest! {
        #[test]
        fn a_rendered_amount_reads_back_to_itself(
            v in value(),
            comma in any::<bool>(),
            group in prop::option::of(prop::sample::select(vec!['.', ',', ' ', '\u{a0}', '\''])),
        ) {
            let decimal = if comma { DecimalSeparator::Comma } else { DecimalSeparator::Point };
            // A notation groups with the other one's separator or a neutral one.
            let group = group.filter(|g| *g != decimal.char());
            let text = render(v, decimal, group);
            let own = Notation { decimal, grouping: group.is_some() };
            match parse_amount(&text, own) {
                Ok(read) => prop_assert_eq!(read, v, "{:?}", text),
                Err(e) => {
                    prop_assert!(
                        ambiguous(&text, decimal) && e.contains("ambiguous"),
                        "{:?}: {}", text, e
                    );
                    return Ok(());
                }
            }
            // Read under the other notation: refused, or the same value; never another.
            for grouping in [false, true] {
                let other = Notation { grouping, ..other_of(own) };
                if let Ok(read) = parse_amount(&text, other) {
                    prop_assert_eq!(read, v, "{:?} under {:?}", text, other);
                }
            }
        }

        #[test]
        fn no_string_reads_as_two_values(
            text in prop_oneof![
                "[(+-]?[0-9.,' ]{0,12}\\)?",
                "[(+-]?[0-9]{1,4}([.,' ][0-9]{1,4}){0,3}\\)?",
            ],
            n in notation(),
        ) {
            if let (Ok(a), Ok(b)) = (parse_amount(&text, n), parse_amount(&text, other_of(n))) {
                prop_assert_eq!(a, b, "{:?}", text);
            }
            if let (Ok(a), Ok(b)) = (parse_quantity(&text, n), parse_quantity(&text, other_of(n))) {
                prop_assert_eq!(a, b, "{:?}", text);
            }
        }

        #[test]
        fn a_rendered_quantity_reads_back_to_itself(
            q in any::<i64>().prop_filter("i64::MIN has no magnitude", |q| *q != i64::MIN),
            n in notation(),
        ) {
            let group = n.grouping.then_some(n.decimal.other());
            let text = render(Decimal::from(q), n.decimal, group);
            prop_assert_eq!(parse_quantity(&text, n), Ok(q), "{:?}", text);
            if let Ok(read) = parse_quantity(&text, other_of(n)) {
                prop_assert_eq!(read, q, "{:?}", text);
            }
        }
    }
}
