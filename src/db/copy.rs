//! Rows in PostgreSQL's binary `COPY` format, for the bulk writes of a batch: `COPY ...
//! FROM STDIN (FORMAT binary)` takes new ledger rows about three times faster than an
//! `INSERT ... SELECT unnest(...)` of the same rows (BENCHMARKS.md), and binary keeps
//! amounts exact without a text round trip. The other append-mostly tables of a batch
//! (journal, drift events, quarantine, outbox) go the same way through
//! [`copy_unless_taken`], which falls back to their `INSERT … ON CONFLICT` when a row's
//! unique key is already taken.
//!
//! Format (PostgreSQL docs, "COPY", Binary Format): a signature and two 32-bit header
//! fields, then per row a 16-bit field count and per field a 32-bit length (-1: NULL)
//! followed by the value in the type's binary send format, then a -1 trailer.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{Connection, PgConnection};

use super::DbFailure;

/// Element type OIDs of the arrays we write (`pg_type`).
const TEXT_OID: u32 = 25;
const BYTEA_OID: u32 = 17;

/// The 11-byte signature, then flags (0) and header-extension length (0).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// 2000-01-01 (PostgreSQL's epoch) in days from 0001-01-01 (chrono's `num_days_from_ce`).
const PG_EPOCH_DAYS_FROM_CE: i32 = 730_120;
/// Microseconds from 1970-01-01 (the Unix epoch) to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 10_957 * 86_400 * 1_000_000;

/// A buffer of rows being encoded for one `COPY`.
#[derive(Debug)]
pub struct CopyRows {
    buf: Vec<u8>,
    columns: i16,
    rows: usize,
}

impl CopyRows {
    /// An empty buffer for rows of `columns` fields.
    pub fn new(columns: i16) -> Self {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(HEADER);
        Self {
            buf,
            columns,
            rows: 0,
        }
    }

    /// Starts a row; exactly `columns` fields must follow.
    pub fn row(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&self.columns.to_be_bytes());
        self.rows += 1;
        self
    }

    /// A NULL field.
    pub fn null(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&(-1_i32).to_be_bytes());
        self
    }

    fn field(&mut self, value: &[u8]) -> &mut Self {
        // A field longer than 2 GiB cannot reach here: records are bounded by the broker's
        // message size, far below it.
        let len = i32::try_from(value.len()).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(value);
        self
    }

    /// A `bytea` field.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.field(value)
    }

    /// A nullable `bytea` field.
    pub fn opt_bytes(&mut self, value: Option<&[u8]>) -> &mut Self {
        match value {
            Some(value) => self.bytes(value),
            None => self.null(),
        }
    }

    /// A `text` field.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.field(value.as_bytes())
    }

    /// A nullable `text` field.
    pub fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }

    /// A `bool` field.
    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.field(&[u8::from(value)])
    }

    /// A `json` field (its binary format is the JSON text), written in place: the length
    /// is filled in once the text is.
    pub fn json(&mut self, value: &serde_json::Value) -> &mut Self {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        // Writing a Value into a Vec cannot fail (no I/O, keys are strings).
        let _ = serde_json::to_writer(&mut self.buf, value);
        let len = i32::try_from(self.buf.len() - start - 4).unwrap_or(i32::MAX);
        self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        self
    }

    /// A `text[]` field (one dimension, no NULL elements).
    pub fn text_array<'s>(&mut self, values: impl ExactSizeIterator<Item = &'s str>) -> &mut Self {
        self.array(TEXT_OID, values.map(|v| Some(v.as_bytes())))
    }

    /// A `bytea[]` field (one dimension, elements may be NULL).
    pub fn bytea_array<'b>(
        &mut self,
        values: impl ExactSizeIterator<Item = Option<&'b [u8]>>,
    ) -> &mut Self {
        self.array(BYTEA_OID, values)
    }

    /// A one-dimensional array in the binary send format: dimensions, a has-NULLs flag,
    /// the element type, then each element as a field. Empty arrays have no dimension.
    fn array<'e>(
        &mut self,
        element_oid: u32,
        values: impl ExactSizeIterator<Item = Option<&'e [u8]>>,
    ) -> &mut Self {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0_i32.to_be_bytes()); // field length, set below
        let count = values.len();
        let ndim: i32 = if count == 0 { 0 } else { 1 };
        self.buf.extend_from_slice(&ndim.to_be_bytes());
        let flags_at = self.buf.len();
        self.buf.extend_from_slice(&0_i32.to_be_bytes());
        self.buf.extend_from_slice(&element_oid.to_be_bytes());
        if count > 0 {
            let len = i32::try_from(count).unwrap_or(i32::MAX);
            self.buf.extend_from_slice(&len.to_be_bytes());
            self.buf.extend_from_slice(&1_i32.to_be_bytes()); // lower bound
        }
        let mut has_null = false;
        for value in values {
            match value {
                Some(value) => {
                    self.field(value);
                }
                None => {
                    has_null = true;
                    self.null();
                }
            }
        }
        if has_null {
            self.buf[flags_at..flags_at + 4].copy_from_slice(&1_i32.to_be_bytes());
        }
        let len = i32::try_from(self.buf.len() - start - 4).unwrap_or(i32::MAX);
        self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        self
    }

    /// An `int4` field.
    pub fn int4(&mut self, value: i32) -> &mut Self {
        self.field(&value.to_be_bytes())
    }

    /// An `int8` field.
    pub fn int8(&mut self, value: i64) -> &mut Self {
        self.field(&value.to_be_bytes())
    }

    /// A nullable `int8` field.
    pub fn opt_int8(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(value) => self.int8(value),
            None => self.null(),
        }
    }

    /// A `date` field (days since 2000-01-01).
    pub fn date(&mut self, value: NaiveDate) -> &mut Self {
        self.int4(value.num_days_from_ce() - PG_EPOCH_DAYS_FROM_CE)
    }

    /// A `timestamptz` field (microseconds since 2000-01-01 UTC).
    pub fn timestamptz(&mut self, value: DateTime<Utc>) -> &mut Self {
        self.int8(value.timestamp_micros() - PG_EPOCH_MICROS)
    }

    /// A nullable `timestamptz` field.
    pub fn opt_timestamptz(&mut self, value: Option<DateTime<Utc>>) -> &mut Self {
        match value {
            Some(value) => self.timestamptz(value),
            None => self.null(),
        }
    }

    /// A nullable `date` field.
    pub fn opt_date(&mut self, value: Option<NaiveDate>) -> &mut Self {
        match value {
            Some(value) => self.date(value),
            None => self.null(),
        }
    }

    /// A `numeric` field, exact.
    pub fn numeric(&mut self, value: Decimal) -> &mut Self {
        let encoded = numeric_binary(value);
        self.field(&encoded)
    }

    /// Rows encoded so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was encoded.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The finished stream (trailer appended).
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1_i16).to_be_bytes());
        self.buf
    }
}

/// Runs `statement` (`COPY table (columns) FROM STDIN (FORMAT binary)`) with the rows, in
/// the caller's transaction. A row PostgreSQL refuses fails the whole statement, classified
/// like any other statement's error (poison → the caller's savepoint bisection).
pub async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    rows: CopyRows,
) -> Result<u64, DbFailure> {
    if rows.is_empty() {
        return Ok(0);
    }
    let data = rows.finish();
    let mut copy = conn.copy_in_raw(statement).await?;
    if let Err(err) = copy.send(data).await {
        // The connection must leave copy mode before it is used again.
        let _ = copy.abort("royalty-ingest: sending rows failed").await;
        return Err(err.into());
    }
    Ok(copy.finish().await?)
}

/// Writes `rows` with `statement` (a `COPY … FROM STDIN (FORMAT binary)`) under a
/// savepoint, and says whether it did: when a row's unique key is already taken (a
/// concurrent lane met the same drift, another consumer group quarantined the same record,
/// a re-read), the savepoint is rolled back and `false` returned, and the caller writes the
/// same rows with its `INSERT … ON CONFLICT` statement. COPY cannot skip a conflict, and is
/// several times cheaper per row than that statement when there is none, which is nearly
/// always. Any other failure is returned as it is, for the caller's savepoint to handle.
pub async fn copy_unless_taken(
    conn: &mut PgConnection,
    statement: &str,
    rows: CopyRows,
) -> Result<bool, DbFailure> {
    if rows.is_empty() {
        return Ok(true);
    }
    // A savepoint inside the caller's transaction (a transaction of its own outside one).
    let mut attempt = conn.begin().await?;
    match copy_in(&mut attempt, statement, rows).await {
        Ok(_) => {
            attempt.commit().await?;
            Ok(true)
        }
        Err(failure) if is_unique_violation(failure.error()) => {
            attempt.rollback().await?;
            Ok(false)
        }
        Err(other) => Err(other),
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "23505")
}

/// `numeric` in PostgreSQL's binary send format: digit count, weight (of the first base-10000
/// digit), sign, display scale, then base-10000 digits, leading and trailing zero digits
/// left out.
pub fn numeric_binary(value: Decimal) -> Vec<u8> {
    const POSITIVE: u16 = 0x0000;
    const NEGATIVE: u16 = 0x4000;
    let scale = value.scale() as usize;
    let decimal_digits = value.mantissa().unsigned_abs().to_string();
    // Integer and fraction digits, padded to whole groups of four around the point.
    let (int_part, frac_part) = if decimal_digits.len() > scale {
        decimal_digits.split_at(decimal_digits.len() - scale)
    } else {
        ("", decimal_digits.as_str())
    };
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_lead = scale - frac_part.len();
    let mut digits_text = String::with_capacity(int_part.len() + scale + 8);
    digits_text.extend(std::iter::repeat_n('0', int_pad));
    digits_text.push_str(int_part);
    let int_groups = (int_pad + int_part.len()) / 4;
    digits_text.extend(std::iter::repeat_n('0', frac_lead));
    digits_text.push_str(frac_part);
    digits_text.extend(std::iter::repeat_n('0', (4 - scale % 4) % 4));
    let mut groups: Vec<i16> = digits_text
        .as_bytes()
        .chunks(4)
        .map(|chunk| {
            chunk
                .iter()
                .fold(0_i16, |acc, d| acc * 10 + i16::from(d - b'0'))
        })
        .collect();
    let mut weight = int_groups as i16 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if value.is_sign_negative() && !groups.is_empty() {
        NEGATIVE
    } else {
        POSITIVE
    };
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as i16).to_be_bytes());
    for group in groups {
        out.extend_from_slice(&group.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// (ndigits, weight, sign, dscale, digits) of an encoded numeric.
    fn parts(text: &str) -> (i16, i16, u16, i16, Vec<i16>) {
        let bytes = numeric_binary(Decimal::from_str(text).expect("decimal"));
        let word = |i: usize| [bytes[2 * i], bytes[2 * i + 1]];
        let n = i16::from_be_bytes(word(0));
        let digits = (0..n as usize)
            .map(|i| i16::from_be_bytes(word(4 + i)))
            .collect();
        (
            n,
            i16::from_be_bytes(word(1)),
            u16::from_be_bytes(word(2)),
            i16::from_be_bytes(word(3)),
            digits,
        )
    }

    #[test]
    fn numerics_are_base_10000_digits_around_the_point() {
        assert_eq!(parts("1.5"), (2, 0, 0, 1, vec![1, 5000]));
        assert_eq!(parts("12345.678"), (3, 1, 0, 3, vec![1, 2345, 6780]));
        assert_eq!(parts("10000"), (1, 1, 0, 0, vec![1]));
        assert_eq!(parts("-3"), (1, 0, 0x4000, 0, vec![3]));
        assert_eq!(parts("0.0001234000000"), (2, -1, 0, 13, vec![1, 2340]));
        assert_eq!(parts("0.0000000000001"), (1, -4, 0, 13, vec![1000]));
    }

    #[test]
    fn zero_has_no_digits_and_keeps_its_scale() {
        assert_eq!(parts("0"), (0, 0, 0, 0, vec![]));
        assert_eq!(parts("-0.00"), (0, 0, 0, 2, vec![]));
    }

    #[test]
    fn the_widest_decimal_keeps_every_digit() {
        // 28 significant digits, the most a Decimal holds, 13 of them decimals.
        let (n, weight, sign, scale, digits) = parts("-123456789012345.1234567890123");
        assert_eq!((weight, sign, scale), (3, 0x4000, 13));
        assert_eq!(n as usize, digits.len());
        assert_eq!(digits, vec![123, 4567, 8901, 2345, 1234, 5678, 9012, 3000]);
    }

    #[test]
    fn dates_and_timestamps_count_from_2000() {
        let mut rows = CopyRows::new(2);
        rows.row()
            .date(NaiveDate::from_ymd_opt(2000, 1, 2).expect("date"))
            .timestamptz(DateTime::from_timestamp(946_684_801, 0).expect("ts"));
        let data = rows.finish();
        let body = &data[HEADER.len()..];
        assert_eq!(&body[..2], &2_i16.to_be_bytes());
        assert_eq!(&body[2..6], &4_i32.to_be_bytes());
        assert_eq!(&body[6..10], &1_i32.to_be_bytes());
        assert_eq!(&body[10..14], &8_i32.to_be_bytes());
        assert_eq!(&body[14..22], &1_000_000_i64.to_be_bytes());
        assert_eq!(&body[22..], &(-1_i16).to_be_bytes());
    }
}
