//! The columns of `royalty_ledger`, declared once (the `ledger_columns!` table below):
//! each column's name, the [`LedgerRow`] field it holds and its [`Role`]. Everything that
//! spells the columns derives from that one table:
//!
//! - the statements, built once per process: the binary `COPY` of new rows
//!   ([`COPY_SQL`]), the `SELECT … FOR UPDATE` of stored rows ([`LOAD_SQL`]), the one
//!   `UPDATE … FROM unnest(…)` of changed rows ([`UPDATE_SQL`]; its SQL array types come
//!   from the fields' Rust types, [`ColumnValue::SQL_TYPE`]);
//! - the code run per row, generated straight-line (no per-column dispatch at run time):
//!   [`copy_row`], [`bind_update`] (one array per column the UPDATE unnests, in its order),
//!   [`load_row`] (a struct literal: a field added to the line but not here does not
//!   compile);
//! - the fold's per-field rules ([`merge_unknown`], [`learns_unknown`],
//!   [`changed_fields`]) from each column's role;
//! - the revision journal's JSON, in Rust ([`values_json`]) and in SQL
//!   ([`journal_json_sql`], for the reversal that `report.rs` journals in SQL), the same
//!   keys and values.
//!
//! Adding a ledger field: its migration, the field in `RoyaltyLine` (and wherever the
//! domain fills it in), one line in the table below.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value as Json;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};

use super::post::LedgerRow;
use crate::db::copy::CopyRows;
use crate::domain::{LineKey, LineType, RoyaltyLine};
use crate::record::SourceRecord;

/// The ledger table.
pub const TABLE: &str = "royalty_ledger";

/// What a column is to the line and its row; decides the fold's treatment of the field,
/// whether the UPDATE writes it and whether the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The identity key: with the period, the primary key, by which the loader and the
    /// UPDATE find rows; never rewritten.
    Key,
    /// The report period: part of the identity, and the primary key's first column (the
    /// ledger's index is ordered by period, so today's lines touch only today's periods'
    /// pages of it); never rewritten.
    Period,
    /// Part of the identity (the key is derived from it): written once, by the COPY. The
    /// fold keeps the stored value (for `dsp_name`, the spelling first stored).
    Identity,
    /// A value of the line: a known value that differs is a restatement. A field whose type
    /// can be unknown (`Option`, `None`: the writer's schema lacks it) is filled from the
    /// stored row when unknown, and the row learning it is an enrichment, not a change.
    Value,
    /// Carried and journaled but not a value (`report_id`: a resend in another report is
    /// still a duplicate): never a change; unknown and learned like a value.
    Note,
    /// The row's own bookkeeping (the record of its version, the version number, the
    /// catalog version it was checked against): not the line's, not journaled.
    Meta,
}

impl Role {
    /// Whether the UPDATE unnests the column: the primary key's two (to match rows) and
    /// every column it sets.
    pub const fn unnested(self) -> bool {
        !matches!(self, Role::Identity)
    }

    /// Whether the UPDATE sets the column.
    pub const fn updated(self) -> bool {
        !matches!(self, Role::Key | Role::Period | Role::Identity)
    }

    /// Whether the revision journal records the column (`old_values`, `new_values`).
    pub const fn journaled(self) -> bool {
        matches!(self, Role::Value | Role::Note)
    }

    /// Whether a differing known value is a change (`changed_fields`).
    pub const fn compared(self) -> bool {
        matches!(self, Role::Value)
    }

    /// Whether the fold keeps the stored value whatever the incoming version says.
    pub const fn keeps_stored(self) -> bool {
        matches!(self, Role::Key | Role::Period | Role::Identity)
    }

    /// Whether an unknown value is taken from the stored row, and a learned one enriches it.
    pub const fn learns(self) -> bool {
        matches!(self, Role::Value | Role::Note)
    }
}

/// One column of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Column name (also the field's name in the journal and in `changed_fields`).
    pub name: &'static str,
    /// Its SQL type (the UPDATE's arrays are of it).
    pub sql_type: &'static str,
    /// What it is to the line.
    pub role: Role,
    /// For a column of the line, how SQL renders a stored value as the journal's JSON
    /// ([`values_json`]; `{}` stands for the column).
    pub json_sql: Option<&'static str>,
}

/// A Rust type a ledger column holds: its SQL type, its binary COPY encoding, the element
/// bound in the UPDATE's array, how it is read back, and whether a value is unknown.
pub trait ColumnValue: Clone + PartialEq + Sized {
    /// The column's SQL type.
    const SQL_TYPE: &'static str;
    /// The element of the UPDATE's bound array (borrowed where it can be).
    type Bound<'a>
    where
        Self: 'a;
    /// The value as the UPDATE binds it.
    fn bound(&self) -> Self::Bound<'_>;
    /// Appends the value as one field of a binary COPY row.
    fn copy(&self, rows: &mut CopyRows);
    /// Reads the value of `column` from a loaded row.
    fn load(row: &PgRow, column: &str) -> Result<Self, sqlx::Error>;
    /// Whether the value is unknown (only an `Option` can be: `None`).
    fn is_unknown(&self) -> bool {
        false
    }
}

/// A type of a line's field: how the revision journal writes it, from Rust and from SQL.
pub trait JournalValue: ColumnValue {
    /// The SQL (`{}`: the column) that renders a stored value as [`JournalValue::json`]
    /// does.
    const JSON_SQL: &'static str = "{}";
    /// The value in the journal.
    fn json(&self) -> Json;
}

impl ColumnValue for LineKey {
    const SQL_TYPE: &'static str = "bytea";
    type Bound<'a> = &'a [u8];
    fn bound(&self) -> &[u8] {
        &self.0
    }
    fn copy(&self, rows: &mut CopyRows) {
        rows.bytes(&self.0);
    }
    fn load(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        let raw: Vec<u8> = row.try_get(column)?;
        // The column's CHECK keeps it at 32 bytes.
        LineKey::from_slice(&raw).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: column.to_string(),
            source: format!("a line key is 32 bytes, not {}", raw.len()).into(),
        })
    }
}

impl JournalValue for LineKey {
    const JSON_SQL: &'static str = "encode({}, 'hex')";
    fn json(&self) -> Json {
        Json::String(self.to_hex())
    }
}

impl ColumnValue for String {
    const SQL_TYPE: &'static str = "text";
    type Bound<'a> = &'a str;
    fn bound(&self) -> &str {
        self
    }
    fn copy(&self, rows: &mut CopyRows) {
        rows.text(self);
    }
    fn load(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get(column)
    }
}

impl JournalValue for String {
    fn json(&self) -> Json {
        Json::String(self.clone())
    }
}

impl ColumnValue for Option<String> {
    const SQL_TYPE: &'static str = "text";
    type Bound<'a> = Option<&'a str>;
    fn bound(&self) -> Option<&str> {
        self.as_deref()
    }
    fn copy(&self, rows: &mut CopyRows) {
        rows.opt_text(self.as_deref());
    }
    fn load(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get(column)
    }
    fn is_unknown(&self) -> bool {
        self.is_none()
    }
}

impl JournalValue for Option<String> {
    fn json(&self) -> Json {
        self.as_ref()
            .map_or(Json::Null, |s| Json::String(s.clone()))
    }
}

impl ColumnValue for Arc<str> {
    const SQL_TYPE: &'static str = "text";
    type Bound<'a> = &'a str;
    fn bound(&self) -> &str {
        self
    }
    fn copy(&self, rows: &mut CopyRows) {
        rows.text(self);
    }
    fn load(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get::<String, _>(column).map(Arc::from)
    }
}

impl ColumnValue for LineType {
    const SQL_TYPE: &'static str = "text";
    type Bound<'a> = &'static str;
    fn bound(&self) -> &'static str {
        self.as_str()
    }
    fn copy(&self, rows: &mut CopyRows) {
        rows.text(self.as_str());
    }
    fn load(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        // The column's CHECK allows only the three names.
        let name: String = row.try_get(column)?;
        Ok(match name.as_str() {
            "return" => LineType::Return,
            "adjustment" => LineType::Adjustment,
            _ => LineType::Sale,
        })
    }
}

impl JournalValue for LineType {
    fn json(&self) -> Json {
        Json::String(self.as_str().to_string())
    }
}

impl ColumnValue for NaiveDate {
    const SQL_TYPE: &'static str = "date";
    type Bound<'a> = NaiveDate;
    fn bound(&self) -> NaiveDate {
        *self
    }
    fn copy(&self, rows: &mut CopyRows) {
        rows.date(*self);
    }
    fn load(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get(column)
    }
}

impl JournalValue for NaiveDate {
    fn json(&self) -> Json {
        Json::String(self.to_string())
    }
}

impl ColumnValue for DateTime<Utc> {
    const SQL_TYPE: &'static str = "timestamptz";
    type Bound<'a> = DateTime<Utc>;
    fn bound(&self) -> DateTime<Utc> {
        *self
    }
    fn copy(&self, rows: &mut CopyRows) {
        rows.timestamptz(*self);
    }
    fn load(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get(column)
    }
}

impl ColumnValue for i32 {
    const SQL_TYPE: &'static str = "int";
    type Bound<'a> = i32;
    fn bound(&self) -> i32 {
        *self
    }
    fn copy(&self, rows: &mut CopyRows) {
        rows.int4(*self);
    }
    fn load(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get(column)
    }
}

impl ColumnValue for i64 {
    const SQL_TYPE: &'static str = "bigint";
    type Bound<'a> = i64;
    fn bound(&self) -> i64 {
        *self
    }
    fn copy(&self, rows: &mut CopyRows) {
        rows.int8(*self);
    }
    fn load(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get(column)
    }
}

impl JournalValue for i64 {
    fn json(&self) -> Json {
        Json::from(*self)
    }
}

impl ColumnValue for Option<i64> {
    const SQL_TYPE: &'static str = "bigint";
    type Bound<'a> = Option<i64>;
    fn bound(&self) -> Option<i64> {
        *self
    }
    fn copy(&self, rows: &mut CopyRows) {
        rows.opt_int8(*self);
    }
    fn load(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get(column)
    }
    fn is_unknown(&self) -> bool {
        self.is_none()
    }
}

impl ColumnValue for Decimal {
    const SQL_TYPE: &'static str = "numeric";
    type Bound<'a> = Decimal;
    fn bound(&self) -> Decimal {
        *self
    }
    fn copy(&self, rows: &mut CopyRows) {
        rows.numeric(*self);
    }
    fn load(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get(column)
    }
}

impl JournalValue for Decimal {
    /// An exact decimal string, as `numeric`'s text output.
    const JSON_SQL: &'static str = "{}::text";
    fn json(&self) -> Json {
        Json::String(self.to_string())
    }
}

/// A column of the line (the field's type gives the SQL type and the journal's JSON).
const fn line_column<T: JournalValue>(
    name: &'static str,
    role: Role,
    _field: fn(&RoyaltyLine) -> &T,
) -> Column {
    Column {
        name,
        sql_type: T::SQL_TYPE,
        role,
        json_sql: Some(T::JSON_SQL),
    }
}

/// A column of the row's own ([`Role::Meta`]).
const fn meta_column<T: ColumnValue>(name: &'static str, _field: fn(&LedgerRow) -> &T) -> Column {
    Column {
        name,
        sql_type: T::SQL_TYPE,
        role: Role::Meta,
        json_sql: None,
    }
}

/// Generates the column table and the per-row code from one list. Three groups, in column
/// order: the line's fields (`column = field => role`), its source record's
/// (`column = field`) and the row's own (`column = field`); the last two are
/// [`Role::Meta`]. Each group lists every field of its struct (the loader builds them
/// with struct literals).
macro_rules! ledger_columns {
    (
        line { $($lcol:ident = $lfield:ident => $lrole:ident,)* }
        source { $($scol:ident = $sfield:ident,)* }
        row { $($rcol:ident = $rfield:ident,)* }
    ) => {
        /// Every column of the ledger, in the order of the COPY, the loader's SELECT and the
        /// UPDATE's arrays.
        pub const COLUMNS: &[Column] = &[
            $(line_column(stringify!($lcol), Role::$lrole, |l| &l.$lfield),)*
            $(meta_column(stringify!($scol), |r| &r.source.$sfield),)*
            $(meta_column(stringify!($rcol), |r| &r.$rfield),)*
        ];

        /// Appends one row to a COPY of [`COPY_SQL`].
        pub fn copy_row(rows: &mut CopyRows, r: &LedgerRow) {
            rows.row();
            $(r.line.$lfield.copy(rows);)*
            $(r.source.$sfield.copy(rows);)*
            $(r.$rfield.copy(rows);)*
        }

        /// Binds the arrays of [`UPDATE_SQL`] for `rows` (each with where the loader
        /// found it): the locations, then one per unnested column, in column order.
        pub fn bind_update<'q>(
            mut query: Query<'q, Postgres, PgArguments>,
            rows: &[(&str, &LedgerRow)],
        ) -> Query<'q, Postgres, PgArguments> {
            query = query.bind(rows.iter().map(|(at, _)| *at).collect::<Vec<&str>>());
            $(if Role::$lrole.unnested() {
                query = query.bind(array(rows, |r| r.line.$lfield.bound()));
            })*
            $(query = query.bind(array(rows, |r| r.source.$sfield.bound()));)*
            $(query = query.bind(array(rows, |r| r.$rfield.bound()));)*
            query
        }

        /// A stored row, as [`LOAD_SQL`] reads it.
        pub fn load_row(row: &PgRow) -> Result<LedgerRow, sqlx::Error> {
            Ok(LedgerRow {
                line: RoyaltyLine {
                    $($lfield: ColumnValue::load(row, stringify!($lcol))?,)*
                },
                source: SourceRecord {
                    $($sfield: ColumnValue::load(row, stringify!($scol))?,)*
                },
                $($rfield: ColumnValue::load(row, stringify!($rcol))?,)*
            })
        }

        /// The values of a line as JSON for the journal: its journaled columns (amounts as
        /// exact decimal strings).
        pub fn values_json(line: &RoyaltyLine) -> Json {
            let mut values = serde_json::Map::new();
            $(if Role::$lrole.journaled() {
                values.insert(stringify!($lcol).to_string(), line.$lfield.json());
            })*
            Json::Object(values)
        }

        /// The incoming version with what its writer did not know taken from the stored
        /// line: a field the writer's schema lacks is unknown, not a change. The identity
        /// stays as stored (the display spelling of the DSP, which the key lower-cases).
        pub fn merge_unknown(incoming: &RoyaltyLine, stored: &RoyaltyLine) -> RoyaltyLine {
            RoyaltyLine {
                $($lfield: merge(Role::$lrole, &incoming.$lfield, &stored.$lfield),)*
            }
        }

        /// Whether `new` knows a field `old` did not (unknown → known is not a change).
        pub fn learns_unknown(old: &RoyaltyLine, new: &RoyaltyLine) -> bool {
            false $(|| (Role::$lrole.learns()
                && old.$lfield.is_unknown()
                && !new.$lfield.is_unknown()))*
        }

        /// The value fields that differ (a note such as the report id is not a value: a
        /// resend in another report is still a duplicate). A field the old version did not
        /// know is not a change.
        pub fn changed_fields(old: &RoyaltyLine, new: &RoyaltyLine) -> Vec<&'static str> {
            let mut changed = Vec::new();
            $(if Role::$lrole.compared()
                && !(old.$lfield.is_unknown() || old.$lfield == new.$lfield)
            {
                changed.push(stringify!($lcol));
            })*
            changed
        }
    };
}

ledger_columns! {
    line {
        // column      = field of RoyaltyLine => role
        line_key       = key            => Key,
        dsp_name       = dsp_name       => Identity,
        report_period  = report_period  => Period,
        transaction_id = transaction_id => Identity,
        isrc           = isrc           => Value,
        upc            = upc            => Value,
        stream_count   = stream_count   => Value,
        royalty_amount = royalty_amount => Value,
        currency       = currency       => Value,
        territory      = territory      => Value,
        usage_type     = usage_type     => Value,
        line_type      = line_type      => Value,
        label          = label          => Value,
        artist         = artist         => Value,
        report_id      = report_id      => Note,
    }
    source {
        // column        = field of SourceRecord
        source_topic     = topic,
        source_partition = partition,
        source_offset    = offset,
        source_timestamp = timestamp,
    }
    row {
        // column          = field of LedgerRow
        version            = version,
        catalog_version_id = catalog_version_id,
    }
}

/// One column of the UPDATE's arrays.
fn array<'r, T>(rows: &[(&str, &'r LedgerRow)], value: impl Fn(&'r LedgerRow) -> T) -> Vec<T> {
    rows.iter().map(|(_, r)| value(r)).collect()
}

/// The fold's value of one field: the stored one for the identity or when the incoming
/// version does not know it, the incoming one otherwise.
fn merge<T: ColumnValue>(role: Role, incoming: &T, stored: &T) -> T {
    if role.keeps_stored() || (role.learns() && incoming.is_unknown()) {
        stored.clone()
    } else {
        incoming.clone()
    }
}

/// The column of `role` (the declaration must have exactly one of the key's roles:
/// checked at compile time that it has one, and by a unit test that it has no other).
const fn the(role: Role) -> &'static Column {
    let mut i = 0;
    loop {
        assert!(
            i < COLUMNS.len(),
            "the ledger lacks a column of the primary key"
        );
        if COLUMNS[i].role as u8 == role as u8 {
            break &COLUMNS[i];
        }
        i += 1;
    }
}

/// The key column.
const KEY: &Column = the(Role::Key);

/// The period column, the primary key's first.
const PERIOD: &Column = the(Role::Period);

/// The number of columns, as a binary COPY row's field count.
pub const COLUMN_COUNT: i16 = {
    assert!(COLUMNS.len() <= i16::MAX as usize);
    COLUMNS.len() as i16
};

fn names<'a>(columns: impl Iterator<Item = &'a Column>) -> String {
    columns.map(|c| c.name).collect::<Vec<_>>().join(", ")
}

/// `COPY royalty_ledger (every column) FROM STDIN (FORMAT binary)`.
pub static COPY_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "COPY {TABLE} ({}) FROM STDIN (FORMAT binary)",
        names(COLUMNS.iter())
    )
});

/// The column of [`LOAD_SQL`] that gives where a row lies in the table (its `ctid`, as
/// text), for [`UPDATE_SQL`].
pub const STORED_AT: &str = "stored_at";

/// Reads and locks the stored rows of the primary keys bound as `$1` (an array of periods)
/// and `$2` (of keys, pairwise): one index probe per key. Written as a LATERAL lookup so
/// that no plan can join the batch against the whole table instead: with a plain join, and
/// statistics from when the table was smaller, PostgreSQL chose a merge join over a full
/// scan of the primary key for every batch (measured: 20 s per batch at 150k rows, steady
/// 5,000 lines/s).
pub static LOAD_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT l.* FROM unnest($1::{}[], $2::{}[]) AS k({period}, {key}) \
         CROSS JOIN LATERAL (SELECT ctid::text AS {STORED_AT}, {} FROM {TABLE} \
                              WHERE {period} = k.{period} AND {key} = k.{key} \
                              FOR UPDATE) AS l",
        PERIOD.sql_type,
        KEY.sql_type,
        names(COLUMNS.iter()),
        period = PERIOD.name,
        key = KEY.name,
    )
});

/// Overwrites rows from arrays ([`bind_update`]): sets every column but the identity, and
/// `updated_at`. Rows are found where [`LOAD_SQL`] found them (`$1`, their `ctid`s): the
/// loader's lock keeps every one there until the transaction ends, and going there directly
/// spares a second probe of the primary key per row (measured in the restatement-heavy
/// bench: 21 → 13–14 µs per updated row). The key is compared too, so a row that is not
/// where it was read is never overwritten: it is not updated, and the caller counts.
pub static UPDATE_SQL: LazyLock<String> = LazyLock::new(|| {
    let unnested: Vec<&Column> = COLUMNS.iter().filter(|c| c.role.unnested()).collect();
    let set: Vec<String> = unnested
        .iter()
        .filter(|c| c.role.updated())
        .map(|c| format!("{0} = i.{0}", c.name))
        .collect();
    let arrays: Vec<String> = unnested
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 2, c.sql_type))
        .collect();
    format!(
        "UPDATE {TABLE} l SET {}, updated_at = now() \
         FROM unnest($1::text[]::tid[], {}) AS i({STORED_AT}, {}) \
         WHERE l.ctid = i.{STORED_AT} AND l.{period} = i.{period} AND l.{key} = i.{key}",
        set.join(", "),
        arrays.join(", "),
        names(unnested.into_iter()),
        period = PERIOD.name,
        key = KEY.name
    )
});

/// A SQL expression giving, for the ledger row aliased `alias`, the same JSON object as
/// [`values_json`] of its line.
pub fn journal_json_sql(alias: &str) -> String {
    let pairs: Vec<String> = COLUMNS
        .iter()
        .filter(|c| c.role.journaled())
        .filter_map(|c| {
            let value = c.json_sql?.replace("{}", &format!("{alias}.{}", c.name));
            Some(format!("'{}', {value}", c.name))
        })
        .collect();
    format!("jsonb_build_object({})", pairs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_column_and_unique_names() {
        assert_eq!(COLUMNS.iter().filter(|c| c.role == Role::Key).count(), 1);
        assert_eq!(COLUMNS.iter().filter(|c| c.role == Role::Period).count(), 1);
        let mut names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COLUMNS.len());
    }

    #[test]
    fn the_update_sets_every_column_but_the_identity_and_binds_nothing_it_does_not_use() {
        let sql = UPDATE_SQL.as_str();
        let (set, _) = sql
            .split_once(" FROM unnest(")
            .expect("an UPDATE … FROM unnest");
        for c in COLUMNS {
            let assignment = format!(" {0} = i.{0},", c.name);
            assert_eq!(
                set.contains(&assignment),
                c.role.updated(),
                "{}: {sql}",
                c.name
            );
        }
        // The rows' locations, then the columns.
        let arrays = 1 + COLUMNS.iter().filter(|c| c.role.unnested()).count();
        assert!(sql.contains("unnest($1::text[]::tid[], $2::"), "{sql}");
        assert!(sql.contains(&format!("${arrays}::")), "{sql}");
        assert!(!sql.contains(&format!("${}::", arrays + 1)), "{sql}");
        assert!(
            sql.contains(
                "WHERE l.ctid = i.stored_at \
                 AND l.report_period = i.report_period AND l.line_key = i.line_key"
            ),
            "{sql}"
        );
    }

    #[test]
    fn the_journal_sql_names_the_keys_values_json_writes() {
        let sql = journal_json_sql("g");
        let keys: Vec<String> = sql
            .split('\'')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        let line = crate::domain::validate::validate(&crate::sample::valid_line(
            &mut crate::sample::SampleRng::new(1),
            1,
        ))
        .expect("valid line");
        let Json::Object(values) = values_json(&line) else {
            panic!("an object")
        };
        let mut json_keys: Vec<String> = values.keys().cloned().collect();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort();
        json_keys.sort();
        assert_eq!(keys_sorted, json_keys);
        assert!(
            sql.contains("'royalty_amount', g.royalty_amount::text"),
            "{sql}"
        );
    }
}
