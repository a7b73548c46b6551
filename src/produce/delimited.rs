//! Delimited report files (CSV, TSV, semicolon) read through a [`Profile`]: one royalty
//! line per data row, streamed (one row in memory at a time), each row numbered as the
//! file numbers it so a refusal can say `file:line`.

use std::io::Read;

use anyhow::Context;

use super::FileItem;
use super::profile::Profile;
use super::text::{parse_amount, parse_period, parse_quantity};
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
}

/// Reads `reader` (the file's bytes) with `profile`. `fallback_id` (derived from the file)
/// is the report id of a row that names none, and the derived transaction id of a row
/// without one is `<report id>:<line>`.
pub fn read_rows(
    mut reader: impl Read,
    profile: &Profile,
    fallback_id: &str,
    mut out: impl FnMut(FileItem) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
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
    let positions = locate(profile, &header)?;
    let first_line = profile.skip_lines as u64;
    loop {
        let more = csv.read_byte_record(&mut record);
        let line_no = first_line + record.position().map_or(0, |p| p.line());
        match more {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(err) => {
                out(FileItem {
                    line_no,
                    parsed: Err(format!("row: {err}")),
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
            parsed: row_line(profile, &positions, &cells, line_no, fallback_id),
        })?;
    }
}

fn locate(profile: &Profile, header: &[String]) -> anyhow::Result<Positions> {
    let find =
        |column: &Option<String>| -> anyhow::Result<Option<usize>> {
            let Some(name) = column else { return Ok(None) };
            header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name.trim()))
            .map(Some)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the header has no column {name:?} (it has {}); fix the profile's [columns]",
                    header.iter().map(|h| format!("{h:?}")).collect::<Vec<_>>().join(", ")
                )
            })
        };
    let c = &profile.columns;
    let required = |column: &Option<String>, field: &str| -> anyhow::Result<usize> {
        find(column)?.with_context(|| format!("the profile maps no column to {field}"))
    };
    Ok(Positions {
        isrc: required(&c.isrc, "isrc")?,
        upc: find(&c.upc)?,
        quantity: required(&c.quantity, "quantity")?,
        amount: required(&c.amount, "amount")?,
        currency: find(&c.currency)?,
        period: find(&c.period)?,
        transaction_id: find(&c.transaction_id)?,
        dsp: find(&c.dsp)?,
        territory: find(&c.territory)?,
        usage_type: find(&c.usage_type)?,
        line_type: find(&c.line_type)?,
        label: find(&c.label)?,
        artist: find(&c.artist)?,
        report_id: find(&c.report_id)?,
    })
}

fn row_line(
    profile: &Profile,
    at: &Positions,
    cells: &[String],
    line_no: u64,
    fallback_id: &str,
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
    let quantity = parse_quantity(
        cell(at.quantity).ok_or("quantity: empty")?,
        profile.decimal_comma,
    )
    .map_err(|e| format!("quantity: {e}"))?;
    let amount = parse_amount(
        cell(at.amount).ok_or("amount: empty")?,
        profile.decimal_comma,
    )
    .map_err(|e| format!("amount: {e}"))?;
    let period = parse_period(
        &required("period", at.period, &k.period)?,
        profile.period_format.as_deref(),
    )
    .map_err(|e| format!("period: {e}"))?;
    let report_id = optional(at.report_id, &k.report_id).unwrap_or_else(|| fallback_id.to_string());
    let transaction_id = match at.transaction_id.and_then(cell) {
        Some(id) => id.to_string(),
        None => format!("{report_id}:{line_no}"),
    };
    let mut line_type = optional(at.line_type, &k.line_type).map(|t| profile.line_type(&t));
    // A negative quantity is a return written as one (a void, a refund).
    let stream_count = if quantity < 0 {
        line_type.get_or_insert_with(|| "return".to_string());
        -quantity
    } else {
        quantity
    };
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
