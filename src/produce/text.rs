//! Reading the cells of real report files: encodings (UTF-8 with or without BOM,
//! ISO-8859-1) and report periods in their common spellings. Amounts and quantities have
//! a grammar of their own in [`super::amount`].

use chrono::NaiveDate;

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
