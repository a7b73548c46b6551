//! The schema store: loading, indexing, refusing ambiguous or unusable schema sets, and
//! writer-schema validation of royalty lines.

use std::path::PathBuf;

use apache_avro::types::Value;

use super::super::{
    DecodeErrorKind, ROYALTY_LINE, SchemaError, SchemaStore, WriterSchema, decode_value,
    encode_record_single_object, parse_framing,
};
use super::{AMOUNT_28_13, STREAMS_LONG, builtin, line_schema, required_fields, version};

fn sources(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
        .collect()
}

const DRIFT_ALERT: &str = r#"{"type":"record","name":"DriftAlert","namespace":"io.royaltyingest",
    "fields":[{"name":"isrc","type":"string"},{"name":"field","type":"string"},
    {"name":"seen","type":["null","string"],"default":null}]}"#;

#[test]
fn avro_builtin_store_indexes_every_version() {
    let store = builtin();
    assert_eq!(store.len(), 9);
    let files: Vec<&str> = store.iter().map(|(file, _)| file).collect();
    assert_eq!(
        files,
        [
            "catalog_update.v1.avsc",
            "drift_alert.v1.avsc",
            "drift_alert.v2.avsc",
            "report_summary.v1.avsc",
            "report_summary.v2.avsc",
            "royalty_line.v1.avsc",
            "royalty_line.v2.avsc",
            "royalty_line.v3.avsc",
            "royalty_line.v4.avsc"
        ]
    );
    let latest = store.latest(ROYALTY_LINE).expect("latest");
    assert_eq!(latest.version(), Some(4));
    for v in 1..=4 {
        let schema = store.by_name_version(ROYALTY_LINE, v).expect("version");
        assert!(schema.is_royalty_line());
        let by_fp = store.get(schema.fingerprint()).expect("by fingerprint");
        assert_eq!(by_fp.version(), Some(v));
    }
    assert!(store.by_name_version(ROYALTY_LINE, 5).is_none());
    assert!(store.get(0).is_none());
}

#[test]
fn avro_load_dir_of_committed_schemas_equals_builtin() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let loaded = SchemaStore::load_dir(&dir).expect("schemas/ loads");
    let builtin = builtin();
    for (file, schema) in builtin.iter() {
        let other = loaded.get(schema.fingerprint()).expect(file);
        assert_eq!(other.json(), schema.json(), "{file}: builtin is stale");
    }
    assert_eq!(loaded.len(), builtin.len());
}

#[test]
fn avro_committed_versions_share_the_amount_type_and_every_field_is_documented() {
    let mut amounts = Vec::new();
    for (file, schema) in builtin().iter() {
        let json: serde_json::Value = serde_json::from_str(schema.json()).expect("json");
        for field in json["fields"].as_array().expect("fields") {
            assert!(
                field["doc"].as_str().is_some_and(|d| !d.is_empty()),
                "{file}: {field}"
            );
            if field["name"] == "royalty_amount" {
                amounts.push(field["type"].clone());
            }
        }
    }
    assert_eq!(amounts.len(), 4);
    assert!(amounts.windows(2).all(|w| w[0] == w[1]), "{amounts:?}");
}

#[test]
fn avro_newest_schema_aliases_are_the_decoder_aliases() {
    let json: serde_json::Value = serde_json::from_str(version(4).json()).expect("json");
    for field in json["fields"].as_array().expect("fields") {
        let aliases: Vec<&str> = field["aliases"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
            .unwrap_or_default();
        let name = field["name"].as_str().expect("name");
        let canon = super::super::plan::Canon::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .expect("the newest version uses canonical names");
        assert_eq!(aliases, canon.aliases(), "{name}");
    }
}

#[test]
fn avro_one_fingerprint_with_two_layouts_is_refused() {
    let scale_2 = AMOUNT_28_13.replace("\"scale\":13", "\"scale\":2");
    let a = line_schema(&required_fields(STREAMS_LONG, AMOUNT_28_13));
    let b = line_schema(&required_fields(STREAMS_LONG, &scale_2));
    let err = SchemaStore::from_sources(sources(&[("line.v1.avsc", &a), ("line.v2.avsc", &b)]))
        .expect_err("collision");
    assert!(
        matches!(err, SchemaError::FingerprintCollision { .. }),
        "{err}"
    );
    // The same layout twice (docs differ) is no ambiguity.
    let documented = a.replace(r#""name":"upc","#, r#""name":"upc","doc":"the UPC","#);
    let store =
        SchemaStore::from_sources(sources(&[("l.v1.avsc", &a), ("l.v2.avsc", &documented)]))
            .expect("same layout");
    assert_eq!(store.len(), 2);
}

#[test]
fn avro_store_refuses_bad_names_duplicates_and_empty_dirs() {
    let a = line_schema(&required_fields(STREAMS_LONG, AMOUNT_28_13));
    let err = SchemaStore::from_sources(sources(&[("line.avsc", &a)])).expect_err("no version");
    assert!(matches!(err, SchemaError::FileName(_)), "{err}");
    let err = SchemaStore::from_sources(sources(&[("a.v1.avsc", &a), ("b.v1.avsc", &a)]))
        .expect_err("duplicate version");
    assert!(matches!(err, SchemaError::DuplicateVersion { .. }), "{err}");
    let dir = std::env::temp_dir().join(format!("avro-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    assert!(SchemaStore::load_dir(&dir).is_err());
    std::fs::remove_dir(&dir).expect("cleanup");
}

#[test]
fn avro_other_record_types_are_indexed_and_round_trip_generically() {
    let store = SchemaStore::from_sources(sources(&[
        ("royalty_line.v1.avsc", version(1).json()),
        ("drift_alert.v1.avsc", DRIFT_ALERT),
    ]))
    .expect("mixed set");
    let alert = store
        .latest("io.royaltyingest.DriftAlert")
        .expect("indexed by name");
    assert!(!alert.is_royalty_line());
    let value = Value::Record(vec![
        ("isrc".into(), Value::String("USRC17607839".into())),
        ("field".into(), Value::String("upc".into())),
        (
            "seen".into(),
            Value::Union(1, Box::new(Value::String("123".into()))),
        ),
    ]);
    let payload = encode_record_single_object(&alert, value.clone()).expect("encodes");
    let (_, datum) = parse_framing(&payload).expect("framing");
    let found = store.get(alert.fingerprint()).expect("by fingerprint");
    assert_eq!(decode_value(&found, datum).expect("decodes"), value);
    let err = found.decode_line(datum).expect_err("not a line");
    assert_eq!(err.class(), "unexpected_record_type");
    assert!(matches!(
        err.kind(),
        DecodeErrorKind::UnexpectedRecordType(_)
    ));
}

#[test]
fn avro_royalty_line_writer_schemas_are_validated_once_at_load() {
    let cases: Vec<(String, &str)> = vec![
        (
            line_schema(&required_fields(
                STREAMS_LONG,
                r#"{"name":"royalty_amount","type":"string"}"#,
            )),
            "string amount",
        ),
        (
            line_schema(&required_fields(
                STREAMS_LONG,
                r#"{"name":"royalty_amount","type":"double"}"#,
            )),
            "float amount",
        ),
        (
            line_schema(&required_fields(
                r#"{"name":"streams","type":"string"}"#,
                AMOUNT_28_13,
            )),
            "string count",
        ),
        (
            line_schema(&required_fields(STREAMS_LONG, AMOUNT_28_13)[1..]),
            "missing isrc",
        ),
        (
            {
                let mut f = required_fields(STREAMS_LONG, AMOUNT_28_13);
                f.push(r#"{"name":"play_count","type":"long"}"#);
                line_schema(&f)
            },
            "streams and play_count",
        ),
        (
            line_schema(&required_fields(
                STREAMS_LONG,
                r#"{"name":"royalty_amount","type":{"type":"bytes","logicalType":"decimal","precision":38,"scale":30}}"#,
            )),
            "scale beyond 28",
        ),
        (
            {
                let mut f = required_fields(STREAMS_LONG, AMOUNT_28_13);
                f.push(r#"{"name":"territory","type":["null","string","long"]}"#);
                line_schema(&f)
            },
            "three-branch union",
        ),
    ];
    for (json, what) in cases {
        let err = WriterSchema::parse(&json).expect_err(what);
        assert!(
            matches!(
                err,
                SchemaError::FieldType { .. }
                    | SchemaError::MissingField(_)
                    | SchemaError::DuplicateMapping { .. }
            ),
            "{what}: {err}"
        );
    }
    // int counts and unknown extra fields of safe types are accepted.
    let mut fields = required_fields(r#"{"name":"play_count","type":"int"}"#, AMOUNT_28_13);
    fields
        .push(r#"{"name":"extra","type":{"type":"map","values":{"type":"array","items":"long"}}}"#);
    WriterSchema::parse(&line_schema(&fields)).expect("int count, extra field");
}
