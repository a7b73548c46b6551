//! ISRC (ISO 3901) normalisation.
//!
//! Contract: [`normalize_isrc`] turns what a DSP sent into the 12-character code
//! `[A-Z]{2}[A-Z0-9]{3}[0-9]{7}`, or names the rule it breaks. Accepted on the way in:
//! surrounding whitespace, an optional `ISRC` prefix (any case, followed by optional
//! spaces and/or a colon), lower case, and hyphens only at the display positions
//! `CC-XXX-YY-NNNNN` (all three or none). The first two letters are not checked against
//! a country list: `QM`, `QZ`, `ZZ`, ... are valid registrant prefixes.

/// Rule: after prefix and hyphen removal the value is not `[A-Z]{2}[A-Z0-9]{3}[0-9]{7}`.
pub const RULE_FORMAT: &str = "isrc_format";
/// Rule: hyphens present, but not exactly at the display positions `CC-XXX-YY-NNNNN`.
pub const RULE_HYPHENS: &str = "isrc_hyphens";

/// Byte positions of the three hyphens in the display form `CC-XXX-YY-NNNNN`.
const DISPLAY_HYPHENS: [usize; 3] = [2, 6, 9];

/// Normalises a raw ISRC to its 12-character upper-case form.
/// Errors carry the rule name ([`RULE_FORMAT`] or [`RULE_HYPHENS`]).
pub fn normalize_isrc(raw: &str) -> Result<String, &'static str> {
    let trimmed = raw.trim();
    match normalize_code(trimmed) {
        Ok(code) => Ok(code),
        // A code such as `ISRC12300001` (country IS, registrant RC1) is itself a valid
        // ISRC, so the prefix is only stripped when the whole value is not one.
        Err(rule) => match strip_prefix(trimmed) {
            Some(rest) => normalize_code(rest),
            None => Err(rule),
        },
    }
}

/// Removes a leading `ISRC` (any case) plus any spaces and at most one colon after it.
fn strip_prefix(s: &str) -> Option<&str> {
    let head = s.get(..4)?;
    if !head.eq_ignore_ascii_case("ISRC") {
        return None;
    }
    let rest = s[4..].trim_start();
    let rest = rest.strip_prefix(':').unwrap_or(rest).trim_start();
    Some(rest)
}

/// Checks hyphen placement, drops the hyphens, upper-cases and checks the format.
fn normalize_code(s: &str) -> Result<String, &'static str> {
    if !s.is_ascii() {
        return Err(RULE_FORMAT);
    }
    let bytes = s.as_bytes();
    let hyphens = bytes.iter().filter(|&&b| b == b'-').count();
    let code: Vec<u8> = if hyphens == 0 {
        bytes.to_vec()
    } else {
        let at_display = bytes.len() == 15
            && hyphens == DISPLAY_HYPHENS.len()
            && DISPLAY_HYPHENS.iter().all(|&i| bytes[i] == b'-');
        if !at_display {
            return Err(RULE_HYPHENS);
        }
        bytes.iter().copied().filter(|&b| b != b'-').collect()
    };
    let code = code.to_ascii_uppercase();
    if is_isrc_format(&code) {
        // Only ASCII letters and digits remain, so this is valid UTF-8.
        String::from_utf8(code).map_err(|_| RULE_FORMAT)
    } else {
        Err(RULE_FORMAT)
    }
}

/// `[A-Z]{2}[A-Z0-9]{3}[0-9]{7}` over upper-case ASCII bytes.
fn is_isrc_format(code: &[u8]) -> bool {
    code.len() == 12
        && code[..2].iter().all(u8::is_ascii_uppercase)
        && code[2..5]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && code[5..].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_lower_case() {
        assert_eq!(normalize_isrc("USS1Z9900001").unwrap(), "USS1Z9900001");
        assert_eq!(normalize_isrc("usx123000001").unwrap(), "USX123000001");
        assert_eq!(normalize_isrc("  gbAYE0601498\t").unwrap(), "GBAYE0601498");
    }

    #[test]
    fn display_hyphens_all_or_none() {
        assert_eq!(normalize_isrc("US-S1Z-99-00001").unwrap(), "USS1Z9900001");
        assert_eq!(normalize_isrc("us-s1z-99-00001").unwrap(), "USS1Z9900001");
        assert_eq!(normalize_isrc("aa-xyz-012-3456"), Err(RULE_HYPHENS));
        assert_eq!(normalize_isrc("US-S1Z9900001"), Err(RULE_HYPHENS));
        assert_eq!(normalize_isrc("US-S1Z-9900001"), Err(RULE_HYPHENS));
        assert_eq!(normalize_isrc("USS1Z-99-00001"), Err(RULE_HYPHENS));
        assert_eq!(normalize_isrc("US-S1Z-99-0000-1"), Err(RULE_HYPHENS));
        assert_eq!(normalize_isrc("XX-1"), Err(RULE_HYPHENS));
    }

    #[test]
    fn prefix_variants() {
        for raw in [
            "ISRC USS1Z9900001",
            "isrc:USS1Z9900001",
            "ISRC: US-S1Z-99-00001",
            "Isrc : uss1z9900001",
            "ISRCUSS1Z9900001",
        ] {
            assert_eq!(normalize_isrc(raw).unwrap(), "USS1Z9900001", "{raw}");
        }
        assert_eq!(normalize_isrc("ISRC"), Err(RULE_FORMAT));
        assert_eq!(normalize_isrc("ISRC::USS1Z9900001"), Err(RULE_FORMAT));
    }

    #[test]
    fn code_that_starts_with_isrc_is_kept() {
        // Country IS, registrant RC1: a valid code, not a prefixed one.
        assert_eq!(normalize_isrc("ISRC12300001").unwrap(), "ISRC12300001");
        assert_eq!(normalize_isrc("isrc12300001").unwrap(), "ISRC12300001");
    }

    #[test]
    fn pseudo_country_prefixes_are_valid() {
        for raw in ["QMABC2400001", "QZES71900001", "ZZ0000000001"] {
            assert_eq!(normalize_isrc(raw).unwrap(), raw);
        }
    }

    #[test]
    fn bad_formats() {
        for raw in [
            "",
            "   ",
            "USS1Z990000",     // 11 chars
            "USS1Z99000011",   // 13 chars
            "1SS1Z9900001",    // digit in country
            "USS_Z9900001",    // underscore in registrant
            "USS1Z99O0001",    // letter O in the designation
            "US S1Z 99 00001", // spaces are not display separators here
            "USS1Z99０0001",   // full-width digit
            "USS1Z9900\u{0}01",
        ] {
            assert_eq!(normalize_isrc(raw), Err(RULE_FORMAT), "{raw:?}");
        }
    }
}
