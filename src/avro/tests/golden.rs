//! Our canonical form, fingerprints, decoder and encoder against vectors written by
//! fastavro (scripts/golden/make_avro_vectors.py → tests/golden/avro_vectors.json).

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value as Json;

use super::super::{
    EMPTY_FINGERPRINT, SchemaStore, WriterSchema, crc64_avro, encode_single_object, parse_framing,
    parsing_canonical_form,
};
use crate::domain::DecodedLine;

fn vectors() -> Json {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/avro_vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("golden vectors exist");
    serde_json::from_str(&text).expect("golden vectors are JSON")
}

fn u64_hex(v: &Json) -> u64 {
    let s = v.as_str().expect("hex string");
    u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex u64")
}

fn text(v: &Json, key: &str) -> String {
    v[key].as_str().expect(key).to_owned()
}

fn opt(v: &Json, key: &str) -> Option<String> {
    v[key].as_str().map(str::to_owned)
}

fn expected_line(v: &Json) -> DecodedLine {
    DecodedLine {
        isrc: text(v, "isrc"),
        upc: Some(text(v, "upc")),
        dsp_name: text(v, "dsp_name"),
        report_period: text(v, "report_period"),
        transaction_id: text(v, "transaction_id"),
        stream_count: v["stream_count"].as_i64().expect("count"),
        royalty_amount: Decimal::from_str(v["royalty_amount"].as_str().expect("amount"))
            .expect("decimal string"),
        currency: text(v, "currency"),
        territory: opt(v, "territory"),
        usage_type: opt(v, "usage_type"),
        line_type: opt(v, "line_type"),
        label: opt(v, "label"),
        artist: opt(v, "artist"),
        report_id: opt(v, "report_id"),
    }
}

#[test]
fn avro_crc64_matches_the_spec_constants() {
    assert_eq!(crc64_avro(b""), EMPTY_FINGERPRINT);
    // fastavro: fingerprint('"null"', "CRC-64-AVRO") == "8a8f25cce724dd63" (little-endian).
    assert_eq!(crc64_avro(br#""null""#), 0x63dd_24e7_cc25_8f8a);
}

#[test]
fn avro_canonical_form_and_fingerprint_match_fastavro_for_every_schema_file() {
    let vectors = vectors();
    let builtin = SchemaStore::builtin().expect("builtin");
    let schemas = vectors["schemas"].as_array().expect("schemas");
    assert!(schemas.len() >= 3, "one entry per committed schema file");
    for entry in schemas {
        let file = text(entry, "file");
        let path = format!("{}/schemas/{file}", env!("CARGO_MANIFEST_DIR"));
        let json = std::fs::read_to_string(&path).expect("schema file");
        let schema = WriterSchema::parse(&json).expect("schema parses");
        assert_eq!(
            schema.canonical_form(),
            text(entry, "canonical_form"),
            "{file}"
        );
        let fingerprint = u64_hex(&entry["fingerprint_u64"]);
        assert_eq!(schema.fingerprint(), fingerprint, "{file}");
        assert_eq!(
            hex::encode(fingerprint.to_le_bytes()),
            text(entry, "fingerprint_le_hex")
        );
        assert!(builtin.get(fingerprint).is_some(), "{file} is built in");
    }
}

#[test]
fn avro_canonical_form_matches_fastavro_beyond_our_schemas() {
    for entry in vectors()["extra_canonical"].as_array().expect("extra") {
        let ours = parsing_canonical_form(&entry["schema"]).expect("canonicalises");
        assert_eq!(ours, text(entry, "canonical_form"));
        assert_eq!(
            crc64_avro(ours.as_bytes()),
            u64_hex(&entry["fingerprint_u64"])
        );
    }
}

#[test]
fn avro_decoding_fastavro_datums_gives_the_exact_lines() {
    let builtin = SchemaStore::builtin().expect("builtin");
    let mut checked = 0;
    for entry in vectors()["schemas"].as_array().expect("schemas") {
        let header = hex::decode(text(entry, "single_object_header_hex")).expect("hex");
        for datum in entry["datums"].as_array().expect("datums") {
            let name = text(datum, "name");
            let bytes = hex::decode(text(datum, "hex")).expect("hex");
            let expected = expected_line(&datum["expected"]);
            let payload = [header.as_slice(), bytes.as_slice()].concat();
            let (framing, body) = parse_framing(&payload).expect("framing");
            let super::super::Framing::SingleObject { fingerprint } = framing else {
                panic!("single-object framing expected");
            };
            let schema = builtin.get(fingerprint).expect("schema by fingerprint");
            let line = schema.decode_line(body).expect("fastavro datum decodes");
            assert_eq!(line, expected, "{name}");
            // Exact, not merely numerically equal: the writer's 13 places survive.
            assert_eq!(line.royalty_amount.scale(), 13, "{name}");
            assert_eq!(
                line.royalty_amount.to_string(),
                text(&datum["expected"], "royalty_amount"),
                "{name}"
            );
            // And our encoder writes fastavro's bytes exactly.
            assert_eq!(
                encode_single_object(&schema, &line).expect("encodes"),
                payload,
                "{name}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "every version has datums ({checked})");
}
