//! ISO 4217 currency codes and their minor units.
//!
//! Contract: [`normalize_currency`] accepts a code (surrounding whitespace and case
//! ignored) that is a current ISO 4217 alphabetic code, or one of a few recently withdrawn
//! codes that real reports still carry, and returns it upper-case. [`minor_units`] gives
//! the code's ISO minor units (0, 2, 3 or 4). Minor units describe payables; amounts are
//! never rounded to them on ingest.
//!
//! Left out on purpose: the ISO codes whose minor unit is "N.A." (precious metals XAU,
//! XAG, XPD, XPT; bond-market units XBA..XBD; XDR, XSU, XUA; the testing code XTS and
//! "no currency" XXX). No DSP pays royalties in them and they have no minor unit.

/// Rule: not a known ISO 4217 alphabetic code.
pub const RULE_CODE: &str = "iso4217_code";

/// Current ISO 4217 alphabetic codes with minor units, sorted by code.
/// Minor units: 0 for BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF
/// XPF; 3 for BHD IQD JOD KWD LYD OMR TND; 4 for CLF UYW; 2 for all others.
#[rustfmt::skip]
static ACTIVE: &[(&str, u8)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("AOA", 2), ("ARS", 2), ("AUD", 2),
    ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2),
    // Bulgaria adopted the euro on 2026-01-01; reports for earlier periods carry BGN.
    ("BGN", 2), ("BHD", 3), ("BIF", 0), ("BMD", 2), ("BND", 2), ("BOB", 2), ("BOV", 2),
    ("BRL", 2), ("BSD", 2), ("BTN", 2), ("BWP", 2), ("BYN", 2), ("BZD", 2), ("CAD", 2),
    ("CDF", 2), ("CHE", 2), ("CHF", 2), ("CHW", 2), ("CLF", 4), ("CLP", 0), ("CNY", 2),
    ("COP", 2), ("COU", 2), ("CRC", 2), ("CUP", 2), ("CVE", 2), ("CZK", 2), ("DJF", 0),
    ("DKK", 2), ("DOP", 2), ("DZD", 2), ("EGP", 2), ("ERN", 2), ("ETB", 2), ("EUR", 2),
    ("FJD", 2), ("FKP", 2), ("GBP", 2), ("GEL", 2), ("GHS", 2), ("GIP", 2), ("GMD", 2),
    ("GNF", 0), ("GTQ", 2), ("GYD", 2), ("HKD", 2), ("HNL", 2), ("HTG", 2), ("HUF", 2),
    ("IDR", 2), ("ILS", 2), ("INR", 2), ("IQD", 3), ("IRR", 2), ("ISK", 0), ("JMD", 2),
    ("JOD", 3), ("JPY", 0), ("KES", 2), ("KGS", 2), ("KHR", 2), ("KMF", 0), ("KPW", 2),
    ("KRW", 0), ("KWD", 3), ("KYD", 2), ("KZT", 2), ("LAK", 2), ("LBP", 2), ("LKR", 2),
    ("LRD", 2), ("LSL", 2), ("LYD", 3), ("MAD", 2), ("MDL", 2), ("MGA", 2), ("MKD", 2),
    ("MMK", 2), ("MNT", 2), ("MOP", 2), ("MRU", 2), ("MUR", 2), ("MVR", 2), ("MWK", 2),
    ("MXN", 2), ("MXV", 2), ("MYR", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2), ("NIO", 2),
    ("NOK", 2), ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2), ("PGK", 2),
    ("PHP", 2), ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2), ("RSD", 2),
    ("RUB", 2), ("RWF", 0), ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2), ("SEK", 2),
    ("SGD", 2), ("SHP", 2), ("SLE", 2), ("SOS", 2), ("SRD", 2), ("SSP", 2), ("STN", 2),
    ("SVC", 2), ("SYP", 2), ("SZL", 2), ("THB", 2), ("TJS", 2), ("TMT", 2), ("TND", 3),
    ("TOP", 2), ("TRY", 2), ("TTD", 2), ("TWD", 2), ("TZS", 2), ("UAH", 2), ("UGX", 0),
    ("USD", 2), ("USN", 2), ("UYI", 0), ("UYU", 2), ("UYW", 4), ("UZS", 2), ("VED", 2),
    ("VES", 2), ("VND", 0), ("VUV", 0), ("WST", 2), ("XAF", 0), ("XCD", 2), ("XCG", 2),
    ("XOF", 0), ("XPF", 0), ("YER", 2), ("ZAR", 2), ("ZMW", 2), ("ZWG", 2),
];

/// Withdrawn codes still accepted, sorted by code, with the minor units ISO gave them.
/// DSPs report months late, restate old periods and re-send archived files, so lines for
/// periods before a currency change legitimately carry the old code; refusing them would
/// dead-letter valid money. Converting them is a payout concern, not an ingest one.
#[rustfmt::skip]
static WITHDRAWN: &[(&str, u8)] = &[
    ("ANG", 2), // Netherlands Antillean guilder -> XCG (2025)
    ("BYR", 0), // Belarusian ruble -> BYN (2016); ISO gave BYR no minor unit
    ("CUC", 2), // Cuban convertible peso, out of circulation since 2021
    ("EEK", 2), // Estonian kroon -> EUR (2011)
    ("HRK", 2), // Croatian kuna -> EUR (2023)
    ("LTL", 2), // Lithuanian litas -> EUR (2015)
    ("LVL", 2), // Latvian lats -> EUR (2014)
    ("MRO", 2), // Mauritanian ouguiya -> MRU (2018)
    ("SLL", 2), // Sierra Leonean leone -> SLE (2022-2024)
    ("STD", 2), // São Tomé dobra -> STN (2018)
    ("VEF", 2), // Venezuelan bolívar fuerte -> VES (2018)
    ("ZWL", 2), // Zimbabwe dollar -> ZWG (2024)
];

/// Normalises a raw currency code: trimmed, upper-case, known to ISO 4217.
/// Errors carry the rule name [`RULE_CODE`].
pub fn normalize_currency(raw: &str) -> Result<String, &'static str> {
    let code = raw.trim().to_ascii_uppercase();
    if lookup(&code).is_some() {
        Ok(code)
    } else {
        Err(RULE_CODE)
    }
}

/// ISO 4217 minor units of `code` (case-insensitive), `None` for an unknown code.
pub fn minor_units(code: &str) -> Option<u32> {
    lookup(&code.to_ascii_uppercase()).map(u32::from)
}

/// True when `code` (case-insensitive) is a withdrawn code this module still accepts.
pub fn is_withdrawn(code: &str) -> bool {
    find(WITHDRAWN, &code.to_ascii_uppercase()).is_some()
}

/// Minor units of an upper-case code, searching current then withdrawn codes.
fn lookup(code: &str) -> Option<u8> {
    find(ACTIVE, code).or_else(|| find(WITHDRAWN, code))
}

/// Binary search in one sorted table.
fn find(table: &[(&str, u8)], code: &str) -> Option<u8> {
    table
        .binary_search_by(|(c, _)| (*c).cmp(code))
        .ok()
        .map(|i| table[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_disjoint_and_well_formed() {
        for table in [ACTIVE, WITHDRAWN] {
            assert!(
                table.windows(2).all(|w| w[0].0 < w[1].0),
                "table not sorted"
            );
            for (code, units) in table {
                assert!(code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()));
                assert!(matches!(units, 0 | 2 | 3 | 4), "{code}");
            }
        }
        for (code, _) in WITHDRAWN {
            assert!(find(ACTIVE, code).is_none(), "{code} is in both tables");
        }
        assert!(ACTIVE.len() > 150);
    }

    #[test]
    fn minor_units_follow_domain_rules() {
        let zero = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF";
        let three = "BHD IQD JOD KWD LYD OMR TND";
        let four = "CLF UYW";
        for (codes, units) in [(zero, 0), (three, 3), (four, 4)] {
            for code in codes.split(' ') {
                assert_eq!(minor_units(code), Some(units), "{code}");
            }
        }
        let special = [zero, three, four].join(" ");
        for (code, units) in ACTIVE {
            if !special.split(' ').any(|c| c == *code) {
                assert_eq!(*units, 2, "{code}");
            }
        }
        assert_eq!(minor_units("usd"), Some(2));
        assert_eq!(minor_units("XXX"), None);
    }

    #[test]
    fn normalises_case_and_whitespace() {
        assert_eq!(normalize_currency(" usd ").unwrap(), "USD");
        assert_eq!(normalize_currency("Eur").unwrap(), "EUR");
        assert_eq!(normalize_currency("jpy\n").unwrap(), "JPY");
        assert_eq!(normalize_currency("XCG").unwrap(), "XCG");
        assert_eq!(normalize_currency("ZWG").unwrap(), "ZWG");
    }

    #[test]
    fn withdrawn_codes_still_accepted() {
        for code in [
            "HRK", "SLL", "VEF", "MRO", "STD", "BYR", "LTL", "LVL", "EEK",
        ] {
            assert_eq!(normalize_currency(code).unwrap(), code);
            assert!(is_withdrawn(code), "{code}");
        }
        assert_eq!(minor_units("BYR"), Some(0));
        assert!(!is_withdrawn("EUR"));
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        for raw in [
            "", "   ", "US", "USDD", "US D", "XYZ", "XAU", "XXX", "XTS", "$", "€", "ÜSD", "U\u{0}D",
        ] {
            assert_eq!(normalize_currency(raw), Err(RULE_CODE), "{raw:?}");
        }
    }
}
