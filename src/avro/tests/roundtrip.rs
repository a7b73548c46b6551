//! Old and new writer versions of one sale decode to the same canonical line; encoders
//! round-trip; the line decoder's framings and error classes.

use std::str::FromStr;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::super::{EncodeError, LineDecoder, SchemaRef, encode_confluent, encode_single_object};
use super::{AMOUNT_28_13, builtin, line_schema, required_fields, sample_line, schema, version};

fn decoder() -> LineDecoder {
    LineDecoder::new(Arc::new(builtin()), None)
}

#[tokio::test]
async fn avro_v1_v2_v3_copies_of_a_sale_decode_to_the_same_line() {
    let decoder = decoder();
    let line = sample_line();
    let mut decoded = Vec::new();
    for v in 1..=3 {
        let payload = encode_single_object(&version(v), &line).expect("encodes");
        let got = decoder.decode(&payload).await.expect("decodes");
        assert_eq!(got.schema, SchemaRef::Fingerprint(version(v).fingerprint()));
        decoded.push(got.line);
    }
    // Required fields identical in every version.
    for d in &decoded {
        assert_eq!(
            (
                &d.isrc,
                &d.upc,
                &d.dsp_name,
                &d.report_period,
                &d.transaction_id
            ),
            (
                &line.isrc,
                &line.upc,
                &line.dsp_name,
                &line.report_period,
                &line.transaction_id
            )
        );
        assert_eq!(
            (d.stream_count, d.royalty_amount, &d.currency),
            (1523, line.royalty_amount, &line.currency)
        );
    }
    // v1 knows nothing optional; v2 knows territory/usage/report id; v3 everything.
    assert_eq!(
        (
            &decoded[0].territory,
            &decoded[0].line_type,
            &decoded[0].report_id
        ),
        (&None, &None, &None)
    );
    assert_eq!(decoded[1].territory.as_deref(), Some("DE"));
    assert_eq!(decoded[1].line_type, None);
    assert_eq!(decoded[2], line);
}

#[tokio::test]
async fn avro_v4_carries_a_line_without_upc_and_older_versions_refuse_to_write_one() {
    let mut line = sample_line();
    line.upc = None;
    let payload = encode_single_object(&version(4), &line).expect("v4 encodes a null upc");
    let back = decoder().decode(&payload).await.expect("decodes");
    assert_eq!(back.line, line);
    assert!(encode_single_object(&version(3), &line).is_err());
}

#[test]
fn avro_v3_writes_the_default_line_type_when_unknown() {
    let mut line = sample_line();
    line.line_type = None;
    let v3 = version(3);
    let payload = encode_single_object(&v3, &line).expect("encodes");
    let back = v3.decode_line(&payload[10..]).expect("decodes");
    assert_eq!(back.line_type.as_deref(), Some("sale"));
}

#[test]
fn avro_amounts_are_rescaled_exactly_or_refused() {
    let v1 = version(1);
    let mut line = sample_line();
    line.royalty_amount = Decimal::from_str("-12.5").expect("dec");
    let back = v1
        .decode_line(&encode_single_object(&v1, &line).expect("encodes")[10..])
        .expect("decodes");
    assert_eq!(back.royalty_amount.to_string(), "-12.5000000000000");
    // Trailing zeros beyond the scale are no lost digits.
    line.royalty_amount = Decimal::from_str("1.000000000000000").expect("dec");
    assert!(encode_single_object(&v1, &line).is_ok());
    // A 14th significant decimal place would be lost: refused.
    line.royalty_amount = Decimal::from_str("0.00000000000001").expect("dec");
    let err = encode_single_object(&v1, &line).expect_err("lost digit");
    assert!(matches!(err, EncodeError::AmountDoesNotFit { .. }), "{err}");
    // Beyond precision 28 (16 integer digits at scale 13): refused.
    line.royalty_amount = Decimal::from_str("1000000000000000").expect("dec");
    assert!(encode_single_object(&v1, &line).is_err());
}

#[test]
fn avro_int_counts_read_and_write_within_range() {
    let writer = schema(&line_schema(&required_fields(
        r#"{"name":"streams","type":"int"}"#,
        AMOUNT_28_13,
    )));
    let mut line = sample_line();
    line.stream_count = i64::from(i32::MAX);
    let payload = encode_single_object(&writer, &line).expect("fits int");
    assert_eq!(
        writer
            .decode_line(&payload[10..])
            .expect("decodes")
            .stream_count,
        i64::from(i32::MAX)
    );
    line.stream_count = i64::from(i32::MAX) + 1;
    assert!(encode_single_object(&writer, &line).is_err());
    // A long on the wire where the writer said int is invalid.
    let long_writer = version(1);
    let payload = encode_single_object(&long_writer, &line).expect("long");
    let err = writer
        .decode_line(&payload[10..])
        .expect_err("int overflow");
    assert_eq!(err.class(), "invalid_datum");
}

#[test]
fn avro_unknown_writer_fields_are_skipped() {
    let mut fields = required_fields(r#"{"name":"play_count","type":"long"}"#, AMOUNT_28_13);
    fields.insert(2, r#"{"name":"extra","type":["null",{"type":"map","values":{"type":"array","items":"double"}}],"default":null}"#);
    fields.push(r#"{"name":"note","type":["null","string"],"default":null}"#);
    let writer = schema(&line_schema(&fields));
    let line = sample_line();
    let payload = encode_single_object(&writer, &line).expect("null defaults written");
    let back = writer.decode_line(&payload[10..]).expect("decodes");
    assert_eq!((back.isrc, back.stream_count), (line.isrc, 1523));
}

#[tokio::test]
async fn avro_line_decoder_names_framing_and_schema_failures() {
    let decoder = decoder();
    let err = decoder.decode(b"{\"isrc\":1}").await.expect_err("json");
    assert_eq!(err.class(), "unknown_framing");
    assert_eq!(
        decoder.decode(b"").await.expect_err("empty").class(),
        "unknown_framing"
    );
    let err = decoder
        .decode(&[0xc3, 0x01, 1, 2])
        .await
        .expect_err("short header");
    assert_eq!(err.class(), "truncated");
    let mut unknown = vec![0xc3, 0x01];
    unknown.extend_from_slice(&42u64.to_le_bytes());
    let err = decoder.decode(&unknown).await.expect_err("fingerprint");
    assert_eq!(err.class(), "unknown_fingerprint");
    assert_eq!(err.schema(), Some(SchemaRef::Fingerprint(42)));
    let payload = encode_confluent(7, &version(3), &sample_line()).expect("encodes");
    let err = decoder.decode(&payload).await.expect_err("no registry");
    assert_eq!(err.class(), "no_registry");
    assert!(!err.is_retryable());
    assert_eq!(err.schema_ref().as_deref(), Some("registry id 7"));
}
