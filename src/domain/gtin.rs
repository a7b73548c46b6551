//! UPC / EAN / GTIN validation with the GS1 mod-10 check digit.
//!
//! Contract: [`validate_gtin`] accepts GTIN-8, UPC-A (GTIN-12), EAN-13 (GTIN-13) and
//! GTIN-14 written as plain ASCII digits (surrounding whitespace ignored) whose last digit
//! is the GS1 check digit of the others. The value is kept as a string, leading zeros
//! included: `036000291452` and `0036000291452` are returned as sent, not unified.

/// Rule: the value contains something other than ASCII digits (or is empty).
pub const RULE_DIGITS: &str = "gtin_digits";
/// Rule: the number of digits is not 8, 12, 13 or 14.
pub const RULE_LENGTH: &str = "gtin_length";
/// Rule: the last digit is not the GS1 check digit of the others.
pub const RULE_CHECK_DIGIT: &str = "gs1_check_digit";

/// Lengths of the GTIN family accepted here.
const LENGTHS: [usize; 4] = [8, 12, 13, 14];

/// Validates a raw UPC/EAN/GTIN and returns its trimmed digits.
/// Errors carry the rule name ([`RULE_DIGITS`], [`RULE_LENGTH`] or [`RULE_CHECK_DIGIT`]).
pub fn validate_gtin(raw: &str) -> Result<String, &'static str> {
    let digits = raw.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RULE_DIGITS);
    }
    if !LENGTHS.contains(&digits.len()) {
        return Err(RULE_LENGTH);
    }
    let (body, check) = digits.split_at(digits.len() - 1);
    if check.as_bytes()[0] - b'0' == gs1_check_digit(body) {
        Ok(digits.to_owned())
    } else {
        Err(RULE_CHECK_DIGIT)
    }
}

/// GS1 mod-10 check digit of `body` (the code without its check digit): from the
/// rightmost digit leftwards weights 3,1,3,1,...; check = (10 - sum mod 10) mod 10.
/// `body` must be ASCII digits; any other character is skipped (the result is then
/// meaningless, which [`validate_gtin`] never lets happen).
pub fn gs1_check_digit(body: &str) -> u8 {
    let sum: u32 = body
        .bytes()
        .filter(u8::is_ascii_digit)
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 { d * 3 } else { d }
        })
        .sum();
    // `sum % 10` is below 10, so the result fits a u8.
    ((10 - sum % 10) % 10) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gs1_example() {
        // GS1's worked example: body 629104150021 -> check digit 3.
        assert_eq!(gs1_check_digit("629104150021"), 3);
        assert_eq!(validate_gtin("6291041500213").unwrap(), "6291041500213");
        assert_eq!(validate_gtin("6291041500214"), Err(RULE_CHECK_DIGIT));
    }

    #[test]
    fn public_sample_with_bad_check_digit() {
        // Body 73145300000: 0·3+0+0·3+0+0·3+3+5·3+4+1·3+3+7·3 = 49 -> check 1, not 0.
        assert_eq!(gs1_check_digit("73145300000"), 1);
        assert_eq!(validate_gtin("731453000000"), Err(RULE_CHECK_DIGIT));
        assert_eq!(validate_gtin("731453000001").unwrap(), "731453000001");
    }

    #[test]
    fn each_length_verified_by_hand() {
        // UPC-A 036000291452: 5·3+4+1·3+9+2·3+0+0·3+0+6·3+3+0·3 = 58 -> 2.
        assert_eq!(validate_gtin("036000291452").unwrap(), "036000291452");
        // EAN-13 4006381333931: 3·3+9+3·3+3+3·3+1+8·3+3+6·3+0+0·3+4 = 89 -> 1.
        assert_eq!(validate_gtin("4006381333931").unwrap(), "4006381333931");
        // GTIN-8 96385074: 7·3+0+5·3+8+3·3+6+9·3 = 86 -> 4.
        assert_eq!(validate_gtin("96385074").unwrap(), "96385074");
        // GTIN-14 00012345600012: 1·3+0+0+0+6·3+5+4·3+3+2·3+1+0+0+0 = 48 -> 2.
        assert_eq!(validate_gtin("00012345600012").unwrap(), "00012345600012");
        // The same UPC-A padded to EAN-13 is valid too and keeps its leading zero.
        assert_eq!(validate_gtin("0036000291452").unwrap(), "0036000291452");
    }

    #[test]
    fn shape_rules() {
        assert_eq!(validate_gtin(" 036000291452\n").unwrap(), "036000291452");
        assert_eq!(validate_gtin(""), Err(RULE_DIGITS));
        assert_eq!(validate_gtin("   "), Err(RULE_DIGITS));
        assert_eq!(validate_gtin("0360-0029-1452"), Err(RULE_DIGITS));
        assert_eq!(validate_gtin("03600029145２"), Err(RULE_DIGITS));
        assert_eq!(validate_gtin("-36000291452"), Err(RULE_DIGITS));
        assert_eq!(validate_gtin("0"), Err(RULE_LENGTH));
        assert_eq!(validate_gtin("03600029145"), Err(RULE_LENGTH));
        assert_eq!(validate_gtin("000123456000120"), Err(RULE_LENGTH));
    }

    #[test]
    fn every_wrong_check_digit_is_caught() {
        for d in 0..=9u8 {
            let candidate = format!("62910415002{d}");
            let expected = if d == 4 {
                Ok(candidate.clone())
            } else {
                Err(RULE_CHECK_DIGIT)
            };
            assert_eq!(validate_gtin(&candidate), expected);
        }
    }
}
