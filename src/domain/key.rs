//! The line identity key (idempotency key).
//!
//! Contract: a royalty line is the sale a DSP reported, identified by DSP, report period
//! and transaction id. [`LineKey::for_line`] is SHA-256 over the UTF-8 bytes of
//! `rk1|{dsp}|{period}|{transaction_id}` with the DSP name trimmed and lower-cased, the
//! period as `YYYY-MM-DD` and the transaction id trimmed. `rk1` versions the formula:
//! changing any part of it changes every key, so a new formula needs a new prefix and a
//! migration. ISRC, UPC, currency and amounts are values, not identity: a correction of
//! them is a restatement of the same line, never a second line.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use sha2::{Digest, Sha256};

/// SHA-256 identity key of a royalty line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineKey(pub [u8; 32]);

impl LineKey {
    /// Version tag hashed in front of every key.
    pub const VERSION: &'static str = "rk1";

    /// The key of the line `transaction_id` reported by `dsp_name` for `report_period`.
    pub fn for_line(dsp_name: &str, report_period: NaiveDate, transaction_id: &str) -> LineKey {
        // The ISO date written out by hand for four-digit years: chrono's `format` parses
        // its pattern on every call, which showed in profiles (one key per record). Other
        // years keep chrono's spelling (a sign and more digits), so no key ever changes.
        let period = if (0..=9999).contains(&report_period.year()) {
            format!(
                "{:04}-{:02}-{:02}",
                report_period.year(),
                report_period.month(),
                report_period.day()
            )
        } else {
            report_period.format("%Y-%m-%d").to_string()
        };
        let preimage = format!(
            "{}|{}|{}|{}",
            Self::VERSION,
            dsp_name.trim().to_lowercase(),
            period,
            transaction_id.trim(),
        );
        LineKey(Sha256::digest(preimage.as_bytes()).into())
    }

    /// The 32 raw bytes (as stored in a `BYTEA` column).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hexadecimal form (64 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Rebuilds a key from raw bytes; `None` unless exactly 32 bytes are given.
    pub fn from_slice(bytes: &[u8]) -> Option<LineKey> {
        <[u8; 32]>::try_from(bytes).ok().map(LineKey)
    }
}

impl fmt::Display for LineKey {
    /// Lower-case hexadecimal form, as [`LineKey::to_hex`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    // Vectors computed independently:
    // python3 -c "import hashlib;print(hashlib.sha256(b'rk1|spotify|2026-09-01|T-1').hexdigest())"
    const SPOTIFY_SEP_T1: &str = "77267a62b06fab4ad322c06065ae82d36e16832d8573db6cf315d16e9eefabaf";
    const SPOTIFY_OCT_T1: &str = "fadb4734a97c69396ed78ddb8e7a29924872a4aa929c4c74c189a18da1f1de21";
    // b'rk1|apple music|2026-09-01|TX 9': inner whitespace is kept.
    const APPLE_SEP_TX9: &str = "d49c746bcaed0f144e27b3aa7dc726eb0422032044f92a1fb358b72437150179";

    #[test]
    fn fixed_vectors() {
        let key = LineKey::for_line("spotify", date(2026, 9, 1), "T-1");
        assert_eq!(key.to_hex(), SPOTIFY_SEP_T1);
        assert_eq!(key.to_string(), SPOTIFY_SEP_T1);
        assert_eq!(
            LineKey::for_line("Apple Music", date(2026, 9, 1), " TX 9 ").to_hex(),
            APPLE_SEP_TX9
        );
    }

    #[test]
    fn dsp_case_and_whitespace_do_not_matter() {
        let base = LineKey::for_line("spotify", date(2026, 9, 1), "T-1");
        for dsp in [
            "Spotify",
            "SPOTIFY",
            "  spotify",
            "Spotify \t",
            "\nSpOtIfY ",
        ] {
            assert_eq!(
                LineKey::for_line(dsp, date(2026, 9, 1), "T-1"),
                base,
                "{dsp:?}"
            );
        }
        for txn in [" T-1", "T-1 ", "\tT-1\n"] {
            assert_eq!(
                LineKey::for_line("spotify", date(2026, 9, 1), txn),
                base,
                "{txn:?}"
            );
        }
    }

    #[test]
    fn period_and_transaction_id_do_matter() {
        let base = LineKey::for_line("spotify", date(2026, 9, 1), "T-1");
        let october = LineKey::for_line("spotify", date(2026, 10, 1), "T-1");
        assert_eq!(october.to_hex(), SPOTIFY_OCT_T1);
        assert_ne!(october, base);
        // Transaction ids are case-sensitive: only the DSP name is folded.
        assert_ne!(LineKey::for_line("spotify", date(2026, 9, 1), "t-1"), base);
        assert_ne!(LineKey::for_line("spotify", date(2026, 9, 1), "T-2"), base);
        assert_ne!(LineKey::for_line("deezer", date(2026, 9, 1), "T-1"), base);
    }

    #[test]
    fn byte_round_trip() {
        let key = LineKey::for_line("spotify", date(2026, 9, 1), "T-1");
        assert_eq!(LineKey::from_slice(key.as_bytes()), Some(key));
        assert_eq!(hex::decode(key.to_hex()).unwrap(), key.as_bytes().to_vec());
        assert_eq!(LineKey::from_slice(&[0u8; 31]), None);
        assert_eq!(LineKey::from_slice(&[0u8; 33]), None);
        assert_eq!(LineKey::from_slice(&[]), None);
    }
}
