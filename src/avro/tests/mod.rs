//! Tests of the Avro layer: golden vectors from fastavro, hostile input, round trips,
//! the schema store, the registry client against a local HTTP fixture, and speed.

mod golden;
mod hostile;
mod registry;
mod roundtrip;
mod speed;
mod store;

use std::str::FromStr;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::{SchemaStore, WriterSchema};
use crate::domain::DecodedLine;

/// The committed schemas.
pub(super) fn builtin() -> SchemaStore {
    SchemaStore::builtin().expect("committed schemas load")
}

/// A committed royalty-line version.
pub(super) fn version(v: u32) -> Arc<WriterSchema> {
    builtin()
        .by_name_version(super::ROYALTY_LINE, v)
        .expect("version is committed")
}

/// Parses a schema that the test expects to be valid.
pub(super) fn schema(json: &str) -> WriterSchema {
    WriterSchema::parse(json).unwrap_or_else(|e| panic!("schema refused: {e}\n{json}"))
}

/// A full v3 line.
pub(super) fn sample_line() -> DecodedLine {
    DecodedLine {
        isrc: "USRC17607839".into(),
        upc: Some("00602537518357".into()),
        dsp_name: "Spotify".into(),
        report_period: "2024-03-01".into(),
        transaction_id: "SPOT-2024-03-000001".into(),
        stream_count: 1523,
        royalty_amount: Decimal::from_str("4.7570001234567").expect("decimal"),
        currency: "EUR".into(),
        territory: Some("DE".into()),
        usage_type: Some("stream".into()),
        line_type: Some("sale".into()),
        label: None,
        artist: None,
        report_id: Some("DSR-1".into()),
    }
}

/// Builds a RoyaltyLine schema with the given field JSON snippets (namespace included).
pub(super) fn line_schema(fields: &[&str]) -> String {
    format!(
        r#"{{"type":"record","name":"RoyaltyLine","namespace":"io.royaltyingest","fields":[{}]}}"#,
        fields.join(",")
    )
}

/// The eight required fields of v1, with `amount` and `count` as given.
pub(super) fn required_fields<'a>(count: &'a str, amount: &'a str) -> Vec<&'a str> {
    vec![
        r#"{"name":"isrc","type":"string"}"#,
        r#"{"name":"upc","type":"string"}"#,
        r#"{"name":"dsp_name","type":"string"}"#,
        r#"{"name":"report_period","type":"string"}"#,
        r#"{"name":"transaction_id","type":"string"}"#,
        count,
        amount,
        r#"{"name":"currency","type":"string"}"#,
    ]
}

/// The v1 amount field.
pub(super) const AMOUNT_28_13: &str = r#"{"name":"royalty_amount","type":{"type":"bytes","logicalType":"decimal","precision":28,"scale":13}}"#;
/// The v1 quantity field.
pub(super) const STREAMS_LONG: &str = r#"{"name":"streams","type":"long"}"#;

/// Deterministic xorshift64* generator (no extra crate).
pub(super) struct XorShift(pub(super) u64);

impl XorShift {
    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
