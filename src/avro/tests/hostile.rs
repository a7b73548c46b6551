//! Input no honest writer produces: truncation, trailing bytes, nulls where the ledger
//! needs values, oversized decimals, deep recursion, amplifying schemas, random bytes.

use std::str::FromStr;

use rust_decimal::Decimal;

use super::super::{SchemaError, WriterSchema, decode_value, encode_single_object, parse_framing};
use super::{
    AMOUNT_28_13, STREAMS_LONG, XorShift, builtin, line_schema, required_fields, sample_line,
    schema, version,
};

/// A v3 datum whose last fields are optional and null (label, artist).
fn v3_datum_with_nulls_at_end() -> Vec<u8> {
    let mut line = sample_line();
    line.label = None;
    line.artist = None;
    let payload = encode_single_object(&version(3), &line).expect("encodes");
    payload[10..].to_vec()
}

#[test]
fn avro_every_proper_prefix_of_a_datum_is_refused_as_truncated() {
    let v3 = version(3);
    let datum = v3_datum_with_nulls_at_end();
    assert!(v3.decode_line(&datum).is_ok());
    for len in 0..datum.len() {
        let err = v3
            .decode_line(&datum[..len])
            .expect_err("prefix must not decode");
        assert_eq!(err.class(), "truncated", "prefix of {len}: {err}");
        assert!(
            decode_value(&v3, &datum[..len]).is_err(),
            "generic prefix {len}"
        );
    }
}

#[test]
fn avro_trailing_bytes_are_refused() {
    let v3 = version(3);
    let mut datum = v3_datum_with_nulls_at_end();
    datum.push(0);
    let err = v3.decode_line(&datum).expect_err("trailing byte");
    assert_eq!(err.class(), "trailing_bytes");
    assert!(err.to_string().contains("fingerprint 0x"), "{err}");
    assert_eq!(
        decode_value(&v3, &datum).expect_err("generic").class(),
        "trailing_bytes"
    );
}

#[test]
fn avro_null_in_a_nullable_required_writer_field_is_refused() {
    let mut fields = required_fields(STREAMS_LONG, AMOUNT_28_13);
    fields[0] = r#"{"name":"isrc","type":["null","string"]}"#;
    let writer = schema(&line_schema(&fields));
    // isrc = null, then the rest of a valid v1 line.
    let v1_datum = &encode_single_object(&version(1), &sample_line()).expect("encodes")[10..];
    let isrc_len = 1 + sample_line().isrc.len();
    let mut datum = vec![0u8];
    datum.extend_from_slice(&v1_datum[isrc_len..]);
    let err = writer.decode_line(&datum).expect_err("null isrc");
    assert_eq!(err.class(), "null_required_field");
    // The same writer with a value decodes.
    let mut datum = vec![2u8];
    datum.extend_from_slice(v1_datum);
    assert_eq!(
        writer.decode_line(&datum).expect("decodes").isrc,
        "USRC17607839"
    );
}

fn amount_writer(precision: u32, fixed: Option<u32>) -> WriterSchema {
    let amount = match fixed {
        None => format!(
            r#"{{"name":"royalty_amount","type":{{"type":"bytes","logicalType":"decimal","precision":{precision},"scale":13}}}}"#
        ),
        Some(size) => format!(
            r#"{{"name":"royalty_amount","type":{{"type":"fixed","name":"Amount","size":{size},"logicalType":"decimal","precision":{precision},"scale":13}}}}"#
        ),
    };
    schema(&line_schema(&required_fields(STREAMS_LONG, &amount)))
}

/// A v1-shaped datum with the amount's raw bytes replaced.
fn datum_with_amount(raw: &[u8], fixed: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for s in [
        "USRC17607839",
        "0602537518357",
        "Spotify",
        "2024-03-01",
        "T-1",
    ] {
        out.push((s.len() * 2) as u8);
        out.extend_from_slice(s.as_bytes());
    }
    out.push(2); // streams = 1
    if !fixed {
        out.push((raw.len() * 2) as u8);
    }
    out.extend_from_slice(raw);
    out.extend_from_slice(&[6, b'E', b'U', b'R']);
    out
}

#[test]
fn avro_decimals_beyond_28_digits_or_128_bits_are_refused_never_truncated() {
    let wide = amount_writer(38, None);
    // 10^28 - 1 fits; 10^28 does not (rust_decimal holds 28 digits).
    let max = 10i128.pow(28) - 1;
    let ok = wide.decode_line(&datum_with_amount(&max.to_be_bytes(), false));
    assert_eq!(
        ok.expect("fits").royalty_amount,
        Decimal::from_str("999999999999999.9999999999999").expect("dec")
    );
    for unscaled in [10i128.pow(28), -(10i128.pow(28)), i128::MAX, i128::MIN] {
        let err = wide
            .decode_line(&datum_with_amount(&unscaled.to_be_bytes(), false))
            .expect_err("too many digits");
        assert_eq!(err.class(), "decimal_out_of_range", "{unscaled}: {err}");
    }
    // 17 significant bytes: beyond 128 bits.
    let mut huge = vec![0x01];
    huge.extend_from_slice(&[0; 16]);
    let err = wide
        .decode_line(&datum_with_amount(&huge, false))
        .expect_err("17 bytes");
    assert_eq!(err.class(), "decimal_out_of_range");
    // Redundant sign extension (as a fixed(20) pads) is the same number, so it decodes.
    let mut padded = vec![0xff; 4];
    padded.extend_from_slice(&(-125i128).to_be_bytes());
    let fixed = amount_writer(38, Some(20));
    let line = fixed
        .decode_line(&datum_with_amount(&padded, true))
        .expect("padded");
    assert_eq!(
        line.royalty_amount,
        Decimal::from_str("-0.0000000000125").expect("dec")
    );
    // The writer's own precision is enforced too.
    let narrow = amount_writer(15, None);
    let err = narrow
        .decode_line(&datum_with_amount(&10i128.pow(15).to_be_bytes(), false))
        .expect_err("precision 15");
    assert_eq!(err.class(), "decimal_out_of_range");
    // An empty decimal is no number at all.
    let err = wide
        .decode_line(&datum_with_amount(&[], false))
        .expect_err("empty");
    assert_eq!(err.class(), "invalid_datum");
}

#[test]
fn avro_writer_schemas_with_zero_byte_array_items_are_refused() {
    for items in [
        r#""null""#,
        r#"{"type":"array","items":"null"}"#,
        r#"{"type":"record","name":"Empty","fields":[]}"#,
        r#"{"type":"record","name":"Nulls","fields":[{"name":"a","type":"null"}]}"#,
        r#"{"type":"fixed","name":"Zero","size":0}"#,
    ] {
        let json = format!(
            r#"{{"type":"record","name":"io.royaltyingest.DriftAlert","fields":[{{"name":"xs","type":{{"type":"array","items":{items}}}}}]}}"#
        );
        let err = WriterSchema::parse(&json).expect_err("amplifying schema");
        assert!(
            matches!(err, SchemaError::ZeroByteItems(_)),
            "{items}: {err}"
        );
        assert!(err.to_string().contains("xs"), "names the field: {err}");
    }
    // Maps spend at least a key length per entry: fine.
    schema(
        r#"{"type":"record","name":"M","fields":[{"name":"m","type":{"type":"map","values":"null"}}]}"#,
    );
}

#[test]
fn avro_deeply_nested_recursive_datum_is_refused_without_overflowing_the_stack() {
    let list = schema(
        r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#,
    );
    let mut datum = vec![2u8; 200_000];
    datum.push(0);
    let err = decode_value(&list, &datum).expect_err("too deep");
    assert_eq!(err.class(), "invalid_datum");
    // Shallow is fine.
    assert!(decode_value(&list, &[2, 2, 0]).is_ok());
}

#[test]
fn avro_huge_declared_lengths_and_counts_are_refused_cheaply() {
    let arrays = schema(
        r#"{"type":"record","name":"A","fields":[{"name":"xs","type":{"type":"array","items":"long"}}]}"#,
    );
    // Block count i64::MAX/2 with three bytes of input.
    let datum = [
        0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02,
    ];
    assert_eq!(
        decode_value(&arrays, &datum).expect_err("count").class(),
        "truncated"
    );
    // A string length of 2^40 in a v1 line.
    let v1 = version(1);
    let datum = [0x80, 0x80, 0x80, 0x80, 0x80, 0x40];
    assert_eq!(
        v1.decode_line(&datum).expect_err("length").class(),
        "truncated"
    );
    // A negative length.
    assert_eq!(
        v1.decode_line(&[0x01]).expect_err("negative").class(),
        "invalid_datum"
    );
    // An 11-byte varint.
    let datum = [0xff; 11];
    assert_eq!(
        v1.decode_line(&datum).expect_err("varint").class(),
        "invalid_datum"
    );
}

#[test]
fn avro_random_and_mutated_inputs_never_panic() {
    let store = builtin();
    let writers: Vec<_> = store
        .iter()
        .map(|(_, s)| s.clone())
        .filter(|s| s.is_royalty_line())
        .collect();
    let generic = schema(
        r#"{"type":"record","name":"G","fields":[
            {"name":"a","type":{"type":"array","items":{"type":"map","values":["null","long","G"]}}},
            {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}},
            {"name":"f","type":{"type":"fixed","name":"F","size":3}},
            {"name":"d","type":"double"},
            {"name":"u","type":{"type":"string","logicalType":"uuid"}},
            {"name":"m","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}}]}"#,
    );
    let mut seeds: Vec<Vec<u8>> = writers
        .iter()
        .map(|w| encode_single_object(w, &sample_line()).expect("encodes"))
        .collect();
    seeds.push(vec![0xc3, 0x01]);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0usize;
    for round in 0..300_000 {
        let input: Vec<u8> = if round % 3 == 0 {
            let len = rng.below(160);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let mut bytes = seeds[rng.below(seeds.len())].clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 if !bytes.is_empty() => bytes[at] = rng.next() as u8,
                    1 => bytes.insert(at, rng.next() as u8),
                    2 if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            bytes
        };
        if let Ok((_, datum)) = parse_framing(&input) {
            let writer = &writers[rng.below(writers.len())];
            decoded += usize::from(writer.decode_line(datum).is_ok());
            let _ = decode_value(writer, datum);
        }
        let _ = decode_value(&generic, &input);
    }
    // Some mutations (e.g. a changed letter in a string) still decode: the test reached
    // the decoder, not only the framing check.
    assert!(decoded > 0);
}
