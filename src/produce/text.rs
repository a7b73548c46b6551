//! Reading the cells of real report files: encodings (UTF-8 with or without BOM,
//! ISO-8859-1), amounts as accountants write them (decimal commas, thousands separators,
//! `(1.23)` for negatives), quantities and report periods in their common spellings.

use chrono::NaiveDate;
use rust_decimal::Decimal;

/// How the bytes of a file are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum Encoding {
    /// UTF-8 (a leading BOM is dropped); a line that is not UTF-8 is read as ISO-8859-1.
    #[default]
    #[serde(rename = "utf-8", alias = "utf8", alias = "UTF-8")]
    Utf8,
    /// ISO-8859-1 (Latin-1): every byte is the character of the same number.
    #[serde(
        rename = "latin1",
        alias = "iso-8859-1",
        alias = "ISO-8859-1",
        alias = "latin-1"
    )]
    Latin1,
}

impl Encoding {
    /// The text of `bytes`.
    pub fn decode(self, bytes: &[u8]) -> String {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        match self {
            Encoding::Utf8 => match std::str::from_utf8(bytes) {
                Ok(text) => text.to_string(),
                Err(_) => latin1(bytes),
            },
            Encoding::Latin1 => latin1(bytes),
        }
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Parses an amount exactly: `-1234.5`, `1,234.50`, `1.234,50` (with `decimal_comma`),
/// `(12.30)` for a negative, `1 234,5`, a leading `+`. Never through a float.
pub fn parse_amount(raw: &str, decimal_comma: bool) -> Result<Decimal, String> {
    let mut s = raw.trim().to_string();
    let mut negative = false;
    if s.starts_with('(') && s.ends_with(')') && s.len() >= 2 {
        negative = true;
        s = s[1..s.len() - 1].trim().to_string();
    }
    if let Some(rest) = s.strip_prefix('-') {
        negative = !negative;
        s = rest.trim().to_string();
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest.trim().to_string();
    }
    let (thousands, decimal) = if decimal_comma {
        ('.', ',')
    } else {
        (',', '.')
    };
    let cleaned: String = s
        .chars()
        .filter(|&c| c != thousands && c != ' ' && c != '\u{a0}' && c != '\'')
        .map(|c| if c == decimal { '.' } else { c })
        .collect();
    if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("{raw:?} is not an amount"));
    }
    let value = Decimal::from_str_exact(&cleaned).map_err(|e| format!("{raw:?}: {e}"))?;
    Ok(if negative { -value } else { value })
}

/// Parses a whole quantity (`1,234` and `1.234` with `decimal_comma` allowed; `(3)` and
/// `-3` are negative).
pub fn parse_quantity(raw: &str, decimal_comma: bool) -> Result<i64, String> {
    let amount =
        parse_amount(raw, decimal_comma).map_err(|_| format!("{raw:?} is not a quantity"))?;
    if !amount.fract().is_zero() {
        return Err(format!("{raw:?} is not a whole quantity"));
    }
    i64::try_from(amount).map_err(|_| format!("{raw:?} is out of range"))
}

/// A report period as the ISO date of its first day: `2026-09-01`, `2026-09`, `20260901`,
/// `202609`, `09/2026`, or `fmt` (a chrono format) when the profile names one.
pub fn parse_period(raw: &str, fmt: Option<&str>) -> Result<String, String> {
    let s = raw.trim();
    let bad = || {
        format!("{raw:?} is not a report period (YYYY-MM-DD, YYYY-MM, YYYYMMDD, YYYYMM, MM/YYYY)")
    };
    if let Some(fmt) = fmt {
        return NaiveDate::parse_from_str(s, fmt)
            .or_else(|_| NaiveDate::parse_from_str(&format!("{s}-01"), &format!("{fmt}-%d")))
            .map(|d| d.format("%Y-%m-%d").to_string())
            .map_err(|_| format!("{raw:?} does not match the profile's period format {fmt:?}"));
    }
    let date = if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d
    } else if let Ok(d) = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d") {
        d
    } else if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        NaiveDate::parse_from_str(s, "%Y%m%d").map_err(|_| bad())?
    } else if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
        NaiveDate::parse_from_str(&format!("{s}01"), "%Y%m%d").map_err(|_| bad())?
    } else if let Some((month, year)) = s.split_once('/') {
        NaiveDate::parse_from_str(&format!("{year}-{month}-01"), "%Y-%m-%d").map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    Ok(date.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("decimal")
    }

    #[test]
    fn amounts_are_read_as_accountants_write_them() {
        assert_eq!(parse_amount("1,234.5000001", false), Ok(d("1234.5000001")));
        assert_eq!(parse_amount("1.234,56", true), Ok(d("1234.56")));
        assert_eq!(parse_amount("(0,0123)", true), Ok(d("-0.0123")));
        assert_eq!(parse_amount(" -12.30 ", false), Ok(d("-12.30")));
        assert_eq!(parse_amount("1 234,5", true), Ok(d("1234.5")));
        assert!(parse_amount("12.3.4", false).is_err());
        assert!(parse_amount("1e5", false).is_err());
        assert!(parse_amount("", false).is_err());
        assert!(parse_amount("-", false).is_err());
    }

    #[test]
    fn quantities_are_whole() {
        assert_eq!(parse_quantity("1,204", false), Ok(1204));
        assert_eq!(parse_quantity("(3)", false), Ok(-3));
        assert!(parse_quantity("1.5", false).is_err());
    }

    #[test]
    fn periods_in_common_spellings() {
        for raw in ["2026-09-01", "2026-09", "20260901", "202609", "09/2026"] {
            assert_eq!(
                parse_period(raw, None).as_deref(),
                Ok("2026-09-01"),
                "{raw}"
            );
        }
        assert_eq!(
            parse_period("Sep 2026", Some("%b %Y")).as_deref(),
            Ok("2026-09-01")
        );
        assert!(parse_period("2026-13", None).is_err());
    }

    #[test]
    fn latin1_and_bom() {
        assert_eq!(Encoding::Latin1.decode(b"Beyonc\xe9"), "Beyoncé");
        assert_eq!(Encoding::Utf8.decode("\u{feff}isrc".as_bytes()), "isrc");
        assert_eq!(Encoding::Utf8.decode(b"Caf\xe9"), "Café");
    }
}
