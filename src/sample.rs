//! Synthetic DSP royalty lines for the quickstart and for tests: valid ISRCs and UPC check
//! digits, several DSPs and currencies, 13-decimal amounts, a mix of schema versions, and
//! the mess real feeds carry — redeliveries, restatements and invalid lines. Deterministic
//! for a given seed, so publishing the same sample twice shows the ledger absorbing it.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::domain::DecodedLine;
use crate::domain::gtin::gs1_check_digit;

/// DSPs and the currencies they report in.
const DSPS: &[(&str, &[&str])] = &[
    ("Spotify", &["EUR", "USD", "SEK"]),
    ("Apple Music", &["USD", "EUR", "GBP"]),
    ("YouTube", &["USD"]),
    ("Deezer", &["EUR"]),
    ("Amazon Music", &["USD", "JPY", "GBP"]),
    ("TIDAL", &["NOK", "USD"]),
];
const TERRITORIES: &[&str] = &["US", "GB", "DE", "FR", "SE", "JP", "BR", "NO"];
const ARTISTS: &[&str] = &[
    "The Ledger Lines",
    "Mira Kade",
    "Northbound Echo",
    "DJ Offset",
];
const LABELS: &[&str] = &["Harbor Records", "Quiet Current"];

/// What a published sample record is meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// A line seen for the first time.
    New,
    /// An identical copy of an earlier line (possibly in another schema version).
    Redelivery,
    /// An earlier line with a changed amount.
    Restatement,
    /// A line the validator or decoder must refuse.
    Invalid,
}

/// One sample record before encoding.
#[derive(Debug, Clone)]
pub struct SampleLine {
    /// What it is.
    pub kind: SampleKind,
    /// Record key: the line's identity (DSP + period + transaction id).
    pub key: String,
    /// Schema version to encode it with (1, 2 or 3); `None` for raw garbage bytes.
    pub schema_version: Option<u32>,
    /// The line (for garbage, a placeholder).
    pub line: DecodedLine,
}

/// splitmix64: tiny, deterministic, good enough for sample data.
#[derive(Debug, Clone)]
pub struct SampleRng(u64);

impl SampleRng {
    /// A generator for the given seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A valid ISRC for track number `n`.
pub fn isrc_for(n: u64) -> String {
    format!("GBQZA{:02}{:05}", 24 + n % 3, n % 100_000)
}

/// A valid UPC-A (12 digits with GS1 check digit) for release number `n`.
pub fn upc_for(n: u64) -> String {
    let body = format!("{:011}", 19_000_000_000 + n);
    let check = gs1_check_digit(&body);
    format!("{body}{check}")
}

/// A valid line: DSP `dsp`, period, transaction number `n`.
pub fn valid_line(rng: &mut SampleRng, n: u64) -> DecodedLine {
    let (dsp, currencies) = *rng.pick(DSPS);
    let month = 7 + rng.below(3) as u32;
    let period = NaiveDate::from_ymd_opt(2026, month, 1).unwrap_or_default();
    let track = rng.below(60);
    let streams = 1 + rng.below(50_000) as i64;
    // Per-stream rate with 13 decimal places, e.g. 0.0031234567891.
    let rate = Decimal::new(30_000_000_000 + rng.below(30_000_000_000) as i64, 13);
    let amount = (rate * Decimal::from(streams)).round_dp(13);
    DecodedLine {
        isrc: isrc_for(track),
        upc: Some(upc_for(track / 4)),
        dsp_name: dsp.to_string(),
        report_period: period.format("%Y-%m-%d").to_string(),
        transaction_id: format!(
            "{}-{}-{n:08}",
            &dsp[..3].to_uppercase(),
            period.format("%Y%m")
        ),
        stream_count: streams,
        royalty_amount: amount,
        currency: rng.pick(currencies).to_string(),
        territory: Some(rng.pick(TERRITORIES).to_string()),
        usage_type: Some("stream".to_string()),
        line_type: Some("sale".to_string()),
        label: Some(LABELS[(track % 2) as usize].to_string()),
        artist: Some(ARTISTS[(track % 4) as usize].to_string()),
        report_id: Some(format!(
            "{}-{}",
            dsp.to_lowercase().replace(' ', "-"),
            period.format("%Y%m")
        )),
    }
}

/// The record key producers use: the line's identity.
pub fn record_key(line: &DecodedLine) -> String {
    format!(
        "{}|{}|{}",
        line.dsp_name.trim().to_lowercase(),
        line.report_period,
        line.transaction_id.trim()
    )
}

/// The shares of a sample that are not new lines, in percent of all records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleMix {
    /// Identical copies of earlier lines.
    pub redeliveries: u64,
    /// Earlier lines with a changed amount.
    pub restatements: u64,
    /// Lines the validator or decoder refuses.
    pub invalid: u64,
}

impl Default for SampleMix {
    /// What real feeds carry, roughly: 8% redeliveries, 4% restatements, 3% invalid.
    fn default() -> Self {
        SampleMix {
            redeliveries: 8,
            restatements: 4,
            invalid: 3,
        }
    }
}

/// Generates `count` sample records: mostly new lines in schema v1/v2/v3, plus ~8%
/// redeliveries, ~4% restatements and ~3% invalid lines.
pub fn generate(seed: u64, count: usize) -> Vec<SampleLine> {
    generate_mix(seed, count, SampleMix::default())
}

/// Generates `count` sample records in the shares `mix` gives (the first records are new
/// lines until there is one to repeat).
pub fn generate_mix(seed: u64, count: usize, mix: SampleMix) -> Vec<SampleLine> {
    let mut rng = SampleRng::new(seed);
    let mut out: Vec<SampleLine> = Vec::with_capacity(count);
    // Indexes of the new lines in `out`: what a redelivery or a restatement repeats.
    let mut news: Vec<usize> = Vec::new();
    let mut next_txn = 1u64;
    let restated_from = mix.redeliveries;
    let invalid_from = restated_from + mix.restatements;
    let new_from = invalid_from + mix.invalid;
    while out.len() < count {
        let roll = rng.below(100);
        let previous =
            (!news.is_empty()).then(|| out[news[rng.below(news.len() as u64) as usize]].clone());
        let record = match (roll, previous) {
            (r, Some(prev)) if r < restated_from => SampleLine {
                kind: SampleKind::Redelivery,
                schema_version: Some(3),
                ..prev
            },
            (r, Some(prev)) if r < invalid_from => {
                let mut line = prev.line.clone();
                line.royalty_amount += Decimal::new(1 + rng.below(9_999) as i64, 6);
                SampleLine {
                    kind: SampleKind::Restatement,
                    key: prev.key,
                    schema_version: Some(3),
                    line,
                }
            }
            (r, _) if (invalid_from..new_from).contains(&r) => {
                let mut line = valid_line(&mut rng, next_txn);
                next_txn += 1;
                match rng.below(5) {
                    0 => line.isrc = "XX-NOT-AN-ISRC".into(),
                    1 => {
                        if let Some(upc) = line.upc.as_mut() {
                            let last = upc.pop().and_then(|c| c.to_digit(10)).unwrap_or(0);
                            upc.push(char::from_digit((last + 1) % 10, 10).unwrap_or('0'));
                        }
                    }
                    2 => line.currency = "XYZ".into(),
                    3 => line.stream_count = -5,
                    _ => {
                        // Not Avro at all: encoded as raw garbage bytes.
                        push_garbage(&mut out, &line);
                        continue;
                    }
                }
                SampleLine {
                    kind: SampleKind::Invalid,
                    key: record_key(&line),
                    schema_version: Some(3),
                    line,
                }
            }
            _ => {
                let line = valid_line(&mut rng, next_txn);
                next_txn += 1;
                news.push(out.len());
                SampleLine {
                    kind: SampleKind::New,
                    key: record_key(&line),
                    schema_version: Some(1 + rng.below(3) as u32),
                    line,
                }
            }
        };
        out.push(record);
    }
    out
}

/// Adds a record that will be published as bytes no decoder accepts.
fn push_garbage(out: &mut Vec<SampleLine>, line: &DecodedLine) {
    out.push(SampleLine {
        kind: SampleKind::Invalid,
        key: record_key(line),
        schema_version: None,
        line: line.clone(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validate;

    #[test]
    fn generated_identifiers_are_valid() {
        for n in 0..500 {
            let mut rng = SampleRng::new(n);
            let line = valid_line(&mut rng, n);
            assert!(
                validate(&line).is_ok(),
                "{line:?}: {:?}",
                validate(&line).err()
            );
        }
    }

    #[test]
    fn sample_is_deterministic_and_mixed() {
        let a = generate(7, 2_000);
        let b = generate(7, 2_000);
        assert_eq!(a.len(), 2_000);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.key == y.key && x.line == y.line)
        );
        for kind in [
            SampleKind::New,
            SampleKind::Redelivery,
            SampleKind::Restatement,
            SampleKind::Invalid,
        ] {
            assert!(a.iter().any(|s| s.kind == kind), "{kind:?} present");
        }
        for s in a
            .iter()
            .filter(|s| s.kind == SampleKind::Invalid && s.schema_version.is_some())
        {
            assert!(
                validate(&s.line).is_err(),
                "invalid sample is refused: {s:?}"
            );
        }
    }

    #[test]
    fn a_mix_gives_its_shares() {
        let heavy = SampleMix {
            redeliveries: 8,
            restatements: 30,
            invalid: 20,
        };
        let lines = generate_mix(7, 10_000, heavy);
        let share = |kind| lines.iter().filter(|s| s.kind == kind).count() as f64 / 100.0;
        let (restated, invalid) = (share(SampleKind::Restatement), share(SampleKind::Invalid));
        assert!((28.0..32.0).contains(&restated), "restatements {restated}%");
        assert!((18.0..22.0).contains(&invalid), "invalid {invalid}%");
        // A restatement repeats a new line's key with another amount.
        let news: std::collections::HashMap<&str, &SampleLine> = lines
            .iter()
            .filter(|s| s.kind == SampleKind::New)
            .map(|s| (s.key.as_str(), s))
            .collect();
        for s in lines.iter().filter(|s| s.kind == SampleKind::Restatement) {
            let new = news
                .get(s.key.as_str())
                .expect("a restatement of a new line");
            assert_ne!(new.line.royalty_amount, s.line.royalty_amount);
        }
    }
}
