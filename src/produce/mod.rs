//! Reading DSP report files into royalty lines, for `royalty-ingest produce`: delimited
//! files through a column-mapping [`profile::Profile`] ([`delimited`]), DDEX DSR flat files
//! ([`dsr`]), the one grammar of amounts and quantities ([`amount`]), the other cell
//! spellings both share ([`text`]), and the control totals of what a file held
//! ([`ReportTotals`]). Nothing here talks to Kafka: the command publishes.

pub mod amount;
pub mod delimited;
pub mod dsr;
pub mod identity;
pub mod profile;
pub mod text;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::Context;
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::{DecodedLine, RoyaltyLine};

/// One line of a file read into a royalty line, or why it could not be (`field: reason`).
#[derive(Debug, Clone)]
pub struct FileItem {
    /// 1-based line number in the file.
    pub line_no: u64,
    /// The line, or the reason it could not be read.
    pub parsed: Result<DecodedLine, String>,
    /// The report time the row states (a profile's `report_time` column), if any.
    pub report_time: Option<Result<chrono::DateTime<chrono::Utc>, String>>,
}

/// What kind of file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Decide from the content: a DSR flat file starts with a `HEAD` record.
    Auto,
    /// CSV / TSV / semicolon through a profile.
    Delimited,
    /// DDEX DSR flat file.
    Dsr,
}

/// Opens a file for reading, gunzipping it when it is gzip (by content, not by name).
pub fn open(path: &Path) -> anyhow::Result<Box<dyn BufRead + Send>> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 2];
    let n = file
        .read(&mut magic)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(file),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
    }
}

/// SHA-256 (hex) of a file's content, gunzipped: what tells a file published before.
pub fn content_sha256(path: &Path) -> anyhow::Result<String> {
    let mut reader = open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Fails when the start of a file (gunzipped) is not text: a report is CSV/TSV or DSR
/// text, and an image or an archive would otherwise be read as a header of odd columns.
pub fn ensure_text(path: &Path) -> anyhow::Result<()> {
    let mut reader = open(path)?;
    let mut start = Vec::with_capacity(8192);
    reader
        .by_ref()
        .take(8192)
        .read_to_end(&mut start)
        .with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(
        !start.contains(&0),
        "not a text file (it holds NUL bytes: an image, an archive, a spreadsheet?); produce \
         reads CSV/TSV/semicolon files and DDEX DSR flat files, gzipped or not (export a \
         spreadsheet as CSV first)"
    );
    Ok(())
}

/// The format of a file: DSR when its first record (comments skipped) is `HEAD`.
pub fn detect(path: &Path) -> anyhow::Result<Format> {
    let mut reader = open(path)?;
    let mut line = Vec::new();
    for _ in 0..64 {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        return Ok(if text.starts_with("HEAD\t") {
            Format::Dsr
        } else {
            Format::Delimited
        });
    }
    Ok(Format::Delimited)
}

/// Which report, DSP, period and currency a total is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ReportKey {
    /// The report's identity (see [`identity`]).
    pub report_id: String,
    /// DSP as the lines spell it.
    pub dsp_name: String,
    /// Report period (ISO date).
    pub report_period: String,
    /// ISO 4217 currency.
    pub currency: String,
}

/// Lines, quantity and amount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Lines.
    pub lines: i64,
    /// Sum of quantities.
    pub quantity: i64,
    /// Sum of amounts (exact).
    pub amount: Decimal,
}

/// Control totals per report, DSP, period and currency of the lines a file published.
#[derive(Debug, Clone, Default)]
pub struct ReportTotals {
    /// Totals by report.
    pub by_report: BTreeMap<ReportKey, Totals>,
    /// What the file itself declares per currency (DSR summary records), if anything.
    pub declared: BTreeMap<String, Decimal>,
    /// The report's creation time.
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ReportTotals {
    /// Counts one accepted line (validated, so its fields are normalised).
    pub fn add(&mut self, line: &RoyaltyLine) {
        let key = ReportKey {
            report_id: line.report_id.clone().unwrap_or_default(),
            dsp_name: line.dsp_name.clone(),
            report_period: line.report_period.format("%Y-%m-%d").to_string(),
            currency: line.currency.clone(),
        };
        let totals = self.by_report.entry(key).or_default();
        totals.lines += 1;
        totals.quantity += line.stream_count;
        totals.amount += line.royalty_amount;
    }

    /// Quantity and amount per currency, over every report.
    pub fn per_currency(&self) -> BTreeMap<String, Totals> {
        let mut out: BTreeMap<String, Totals> = BTreeMap::new();
        for (key, totals) in &self.by_report {
            let sum = out.entry(key.currency.clone()).or_default();
            sum.lines += totals.lines;
            sum.quantity += totals.quantity;
            sum.amount += totals.amount;
        }
        out
    }
}
