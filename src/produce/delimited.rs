//! Delimited report files (CSV, TSV, semicolon) read through a [`Profile`]: one royalty
//! line per data row, streamed (one row in memory at a time), each row numbered as the
//! file numbers it so a refusal can say `file:line`.

use std::io::Read;

use anyhow::Context;
use rust_decimal::Decimal;

use super::FileItem;
use super::amount::{parse_amount, parse_quantity};
use super::identity::{compose, delimited_line_id, line_number_id, parse_report_time};
use super::profile::{Profile, ReturnAmounts};
use super::text::parse_period;
use crate::domain::DecodedLine;

/// Column positions of the header.
struct Positions {
    isrc: usize,
    upc: Option<usize>,
    quantity: usize,
    amount: usize,
    currency: Option<usize>,
    period: Option<usize>,
    transaction_id: Option<usize>,
    dsp: Option<usize>,
    territory: Option<usize>,
    usage_type: Option<usize>,
    line_type: Option<usize>,
    label: Option<usize>,
    artist: Option<usize>,
    report_id: Option<usize>,
    report_time: Option<usize>,
    /// The profile's `report_key` columns (empty when the report id comes from elsewhere).
    report_key: Vec<usize>,
    /// The profile's `line_key` columns (empty when lines have a transaction id column).
    line_key: Vec<usize>,
}

/// How the lines of a file get their identity beyond what the profile says.
#[derive(Debug, Clone, Default)]
pub struct IdentityArgs {
    /// `--report-id`: the report every line of the file belongs to.
    pub report_id: Option<String>,
    /// `--line-number-identity`: lines without a transaction id or `line_key` are told
    /// apart by their line number (a re-issue with a row added or removed then moves lines).
    pub line_numbers: bool,
}

/// Reads `reader` (the file's bytes) with `profile`; lines get their identity as
/// [`super::identity`] says, with `identity` from the command line. Returns the columns
/// the profile names that the file does not have (optional ones: those fields stay empty).
/// Fails before the first row when nothing names the report or tells its lines apart.
pub fn read_rows(
    mut reader: impl Read,
    profile: &Profile,
    identity: &IdentityArgs,
    mut out: impl FnMut(FileItem) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<String>> {
    // The banner lines and the header decide the delimiter: read them first.
    let mut prefix = Vec::new();
    let mut byte = [0u8; 1];
    let mut newlines = 0;
    while newlines <= profile.skip_lines {
        if reader.read(&mut byte).context("cannot read the file")? == 0 {
            break;
        }
        prefix.push(byte[0]);
        if byte[0] == b'\n' {
            newlines += 1;
        }
    }
    let header_start = prefix
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(profile.skip_lines.saturating_sub(1))
        .map_or(0, |(i, _)| if profile.skip_lines == 0 { 0 } else { i + 1 });
    let delimiter = profile.delimiter_byte(Some(&prefix[header_start..]))?;
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(std::io::Cursor::new(prefix[header_start..].to_vec()).chain(reader));
    let mut record = csv::ByteRecord::new();
    anyhow::ensure!(
        csv.read_byte_record(&mut record)
            .context("cannot read the header line")?,
        "the file has no header line"
    );
    let header: Vec<String> = record
        .iter()
        .map(|cell| profile.encoding.decode(cell).trim().to_string())
        .collect();
    let (positions, notes) = locate(profile, &header, identity)?;
    let first_line = profile.skip_lines as u64;
    loop {
        let more = csv.read_byte_record(&mut record);
        let line_no = first_line + record.position().map_or(0, |p| p.line());
        match more {
            Ok(false) => return Ok(notes),
            Ok(true) => {}
            Err(err) => {
                out(FileItem {
                    line_no,
                    parsed: Err(format!("row: {err}")),
                    report_time: None,
                })?;
                continue;
            }
        }
        if record.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        let cells: Vec<String> = record
            .iter()
            .map(|cell| profile.encoding.decode(cell).trim().to_string())
            .collect();
        out(FileItem {
            line_no,
            parsed: row_line(profile, &positions, &cells, line_no, identity),
            report_time: match positions.report_time.and_then(|i| cells.get(i)) {
                Some(raw) if !raw.is_empty() => Some(parse_report_time(raw)),
                _ => None,
            },
        })?;
    }
}

/// Finds the profile's columns in the header. A required field's column (or one without
/// a constant to fall back on) must be there; an optional one may be missing (noted).
fn locate(
    profile: &Profile,
    header: &[String],
    identity: &IdentityArgs,
) -> anyhow::Result<(Positions, Vec<String>)> {
    let mut notes = Vec::new();
    let position = |name: &str| {
        header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name.trim()))
    };
    let missing = |name: &str| {
        anyhow::anyhow!(
            "the header has no column {name:?} (it has {}); fix the profile's [columns]",
            header
                .iter()
                .map(|h| format!("{h:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let c = &profile.columns;
    let k = &profile.constants;
    let required = |column: &Option<String>, field: &str| -> anyhow::Result<usize> {
        let name = column
            .as_deref()
            .with_context(|| format!("the profile maps no column to {field}"))?;
        position(name).ok_or_else(|| missing(name))
    };
    // Required unless the profile gives a constant for it.
    let mut with_constant =
        |column: &Option<String>, constant: &Option<String>| -> anyhow::Result<Option<usize>> {
            let Some(name) = column.as_deref() else {
                return Ok(None);
            };
            match position(name) {
                Some(at) => Ok(Some(at)),
                None if constant.is_some() => {
                    notes.push(format!("{name:?} (its constant is used)"));
                    Ok(None)
                }
                None => Err(missing(name)),
            }
        };
    let currency = with_constant(&c.currency, &k.currency)?;
    let period = with_constant(&c.period, &k.period)?;
    let dsp = with_constant(&c.dsp, &k.dsp)?;
    let mut optional = |column: &Option<String>, derived: Option<&str>| {
        let name = column.as_deref()?;
        let at = position(name);
        if at.is_none() {
            notes.push(match derived {
                Some(how) => format!("{name:?} ({how})"),
                None => format!("{name:?}"),
            });
        }
        at
    };
    let positions = Positions {
        isrc: required(&c.isrc, "isrc")?,
        upc: optional(&c.upc, None),
        quantity: required(&c.quantity, "quantity")?,
        amount: required(&c.amount, "amount")?,
        currency,
        period,
        transaction_id: optional(&c.transaction_id, Some("the profile's line_key is used")),
        dsp,
        territory: optional(&c.territory, None),
        usage_type: optional(&c.usage_type, None),
        line_type: optional(&c.line_type, Some("sale, or return when negative")),
        label: optional(&c.label, None),
        artist: optional(&c.artist, None),
        report_id: optional(
            &c.report_id,
            Some("--report-id or the profile's report_key is used"),
        ),
        report_time: optional(&c.report_time, Some("--report-time is used")),
        report_key: Vec::new(),
        line_key: Vec::new(),
    };
    let mut positions = positions;
    let columns = |names: &[String], what: &str| -> anyhow::Result<Vec<usize>> {
        names
            .iter()
            .map(|name| {
                position(name).ok_or_else(|| {
                    anyhow::anyhow!("{}; the profile's {what} names it", missing(name))
                })
            })
            .collect()
    };
    let names_report = identity.report_id.is_some()
        || positions.report_id.is_some()
        || profile.constants.report_id.is_some();
    if !names_report {
        anyhow::ensure!(
            !profile.report_key.is_empty(),
            "nothing names the report these lines belong to: the file has no report id column{}; \
             pass --report-id, or list the columns that name a report in the profile's report_key",
            c.report_id
                .as_deref()
                .map(|n| format!(" ({n:?})"))
                .unwrap_or_default()
        );
        positions.report_key = columns(&profile.report_key, "report_key")?;
    }
    if positions.transaction_id.is_none() && !identity.line_numbers {
        anyhow::ensure!(
            !profile.line_key.is_empty(),
            "nothing tells the lines of a report apart: the file has no transaction id column{} \
             and the profile no line_key (the columns that identify a line, e.g. ISRC, territory, \
             usage type); add one, or pass --line-number-identity to use line numbers (a \
             re-issued file with a row added or removed then restates the wrong lines)",
            c.transaction_id
                .as_deref()
                .map(|n| format!(" ({n:?})"))
                .unwrap_or_default()
        );
    }
    if positions.transaction_id.is_none() && !profile.line_key.is_empty() {
        positions.line_key = columns(&profile.line_key, "line_key")?;
    }
    Ok((positions, notes))
}

fn row_line(
    profile: &Profile,
    at: &Positions,
    cells: &[String],
    line_no: u64,
    identity: &IdentityArgs,
) -> Result<DecodedLine, String> {
    let cell = |i: usize| cells.get(i).map(String::as_str).filter(|c| !c.is_empty());
    let optional = |i: Option<usize>, constant: &Option<String>| {
        i.and_then(cell)
            .map(str::to_string)
            .or_else(|| constant.clone())
    };
    let k = &profile.constants;
    let required = |field: &str, i: Option<usize>, constant: &Option<String>| {
        optional(i, constant).ok_or_else(|| format!("{field}: empty"))
    };
    let isrc = required("isrc", Some(at.isrc), &None)?;
    let notation = profile.notation();
    let quantity = parse_quantity(cell(at.quantity).ok_or("quantity: empty")?, notation)
        .map_err(|e| format!("quantity: {e}"))?;
    let amount = parse_amount(cell(at.amount).ok_or("amount: empty")?, notation)
        .map_err(|e| format!("amount: {e}"))?;
    let period = parse_period(
        &required("period", at.period, &k.period)?,
        profile.period_format.as_deref(),
    )
    .map_err(|e| format!("period: {e}"))?;
    let report_id = match &identity.report_id {
        Some(id) => id.clone(),
        None => match optional(at.report_id, &k.report_id) {
            Some(id) => id,
            None if !at.report_key.is_empty() => {
                compose(at.report_key.iter().map(|&i| cell(i).unwrap_or_default()))
            }
            None => return Err("report_id: empty (and no --report-id)".into()),
        },
    };
    let transaction_id = match at.transaction_id.and_then(cell) {
        Some(id) => id.to_string(),
        None if !at.line_key.is_empty() => delimited_line_id(
            &report_id,
            at.line_key.iter().map(|&i| cell(i).unwrap_or_default()),
        ),
        None if identity.line_numbers => line_number_id(&report_id, line_no),
        None => return Err("transaction_id: empty".into()),
    };
    let line_type = optional(at.line_type, &k.line_type).map(|t| profile.line_type(&t));
    let (line_type, amount, stream_count) =
        signed(profile.return_amounts, line_type, quantity, amount)?;
    Ok(DecodedLine {
        isrc,
        upc: optional(at.upc, &None),
        dsp_name: required("dsp", at.dsp, &k.dsp)?,
        report_period: period,
        transaction_id,
        stream_count,
        royalty_amount: amount,
        currency: required("currency", at.currency, &k.currency)?,
        territory: optional(at.territory, &k.territory),
        usage_type: optional(at.usage_type, &k.usage_type),
        line_type,
        label: optional(at.label, &k.label),
        artist: optional(at.artist, &None),
        report_id: Some(report_id),
    })
}

/// The line type, amount and quantity to book. A return is booked with a negative amount
/// however the file writes it (`return_amounts`), and one written with the other sign is
/// refused: booked as it stands it would add to earnings. Its quantity is the units
/// returned, written with either sign; the ledger's quantity is never negative, so a
/// negative quantity on a sale or adjustment is refused rather than booked as a positive.
fn signed(
    convention: ReturnAmounts,
    line_type: Option<String>,
    quantity: i64,
    amount: Decimal,
) -> Result<(Option<String>, Decimal, i64), String> {
    let line_type = match line_type {
        // A negative row with no line type is a return written as one (a void, a refund,
        // a chargeback): real exports mark them no other way. Under "positive" only the
        // type says so, and a negative sale is refused by validation.
        None if convention == ReturnAmounts::Negative
            && (quantity < 0 || amount < Decimal::ZERO) =>
        {
            Some("return".to_string())
        }
        other => other,
    };
    let units = quantity
        .checked_abs()
        .ok_or_else(|| format!("quantity: {quantity} is out of range"))?;
    if line_type.as_deref() != Some("return") {
        if quantity < 0 {
            return Err(format!(
                "quantity: {quantity} on a {} line; only a return counts units back",
                line_type.as_deref().unwrap_or("sale")
            ));
        }
        return Ok((line_type, amount, quantity));
    }
    let booked = match convention {
        ReturnAmounts::Negative if amount > Decimal::ZERO => {
            return Err(format!(
                "amount: {amount} is positive on a return, and the profile writes returns negative \
                 (return_amounts = \"negative\"); booked as written it would add to earnings"
            ));
        }
        ReturnAmounts::Positive if amount < Decimal::ZERO => {
            return Err(format!(
                "amount: {amount} is negative on a return, and the profile writes returns positive \
                 (return_amounts = \"positive\")"
            ));
        }
        ReturnAmounts::Negative => amount,
        ReturnAmounts::Positive => -amount,
    };
    Ok((line_type, booked, units))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReturnAmounts::{Negative, Positive};

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("decimal")
    }

    fn typed(t: &str) -> Option<String> {
        Some(t.to_string())
    }

    #[test]
    fn a_return_is_booked_negative_whichever_way_the_file_writes_it() {
        let ret = || typed("return");
        assert_eq!(
            signed(Negative, ret(), 1, d("-0.99")),
            Ok((ret(), d("-0.99"), 1))
        );
        assert_eq!(
            signed(Negative, ret(), -1, d("-0.99")),
            Ok((ret(), d("-0.99"), 1))
        );
        assert_eq!(
            signed(Positive, ret(), 1, d("0.99")),
            Ok((ret(), d("-0.99"), 1))
        );
        assert_eq!(
            signed(Positive, ret(), -2, d("0.99")),
            Ok((ret(), d("-0.99"), 2))
        );
        assert_eq!(
            signed(Positive, ret(), 1, d("0.00")).map(|(_, a, _)| a.is_zero()),
            Ok(true)
        );
        let err = signed(Negative, ret(), 1, d("0.99")).expect_err("positive return");
        assert!(
            err.starts_with("amount: 0.99 is positive") && err.contains("\"negative\""),
            "{err}"
        );
        let err = signed(Positive, ret(), 1, d("-0.99")).expect_err("negative return");
        assert!(
            err.starts_with("amount: -0.99 is negative") && err.contains("\"positive\""),
            "{err}"
        );
    }

    #[test]
    fn an_untyped_negative_row_is_a_return_only_where_returns_are_written_negative() {
        let ret = || typed("return");
        assert_eq!(
            signed(Negative, None, 1, d("-0.99")),
            Ok((ret(), d("-0.99"), 1))
        );
        assert_eq!(
            signed(Negative, None, -1, d("-0.99")),
            Ok((ret(), d("-0.99"), 1))
        );
        assert_eq!(
            signed(Negative, None, 2, d("0.99")),
            Ok((None, d("0.99"), 2))
        );
        // One unit back at +0.99 would add to earnings.
        let err = signed(Negative, None, -1, d("0.99")).expect_err("positive return");
        assert!(err.starts_with("amount: "), "{err}");
        // Where returns are written positive, a sign says nothing: validation refuses the
        // negative sale, and a negative quantity is refused here.
        assert_eq!(
            signed(Positive, None, 1, d("-0.99")),
            Ok((None, d("-0.99"), 1))
        );
        let err = signed(Positive, None, -1, d("0.99")).expect_err("negative sale");
        assert!(err.starts_with("quantity: -1 on a sale line"), "{err}");
    }

    #[test]
    fn only_a_return_counts_units_back() {
        assert_eq!(
            signed(Negative, typed("sale"), 3, d("1.5")),
            Ok((typed("sale"), d("1.5"), 3))
        );
        assert_eq!(
            signed(Negative, typed("adjustment"), 0, d("-1.5")),
            Ok((typed("adjustment"), d("-1.5"), 0))
        );
        for kind in ["sale", "adjustment"] {
            let err = signed(Negative, typed(kind), -3, d("-1.5")).expect_err("negative units");
            assert!(
                err.starts_with(&format!("quantity: -3 on a {kind} line")),
                "{err}"
            );
        }
        assert!(signed(Negative, typed("return"), i64::MIN, d("-1")).is_err());
    }
}
