//! Decoding the service's own Avro records (catalog updates, drift alerts, report
//! summaries): an Avro single-object value of one named record, read with its writer
//! schema, as fields with unions unwrapped.

use apache_avro::types::Value;

use super::{Framing, SchemaStore, decode_value, parse_framing};

/// Why a record could not be decoded: a stable class (as in dead letters) and a reason.
pub type RecordError = (String, String);

/// The fields of a single-object encoded record whose writer schema is `full_name`.
pub fn decode_record(
    store: &SchemaStore,
    payload: &[u8],
    full_name: &str,
) -> Result<Vec<(String, Value)>, RecordError> {
    let (framing, datum) =
        parse_framing(payload).map_err(|e| (e.class().to_string(), e.to_string()))?;
    let Framing::SingleObject { fingerprint } = framing else {
        return Err((
            "unknown_framing".into(),
            format!("{full_name} records must be Avro single-object encoded"),
        ));
    };
    let schema = store
        .get(fingerprint)
        .filter(|s| s.full_name() == full_name)
        .ok_or_else(|| {
            (
                "unknown_fingerprint".to_string(),
                format!("no {full_name} schema with fingerprint {fingerprint:#018x}"),
            )
        })?;
    let value = decode_value(&schema, datum).map_err(|e| (e.class().to_string(), e.to_string()))?;
    let Value::Record(fields) = value else {
        return Err(("invalid_datum".into(), format!("a {full_name} is a record")));
    };
    Ok(fields
        .into_iter()
        .map(|(name, value)| match value {
            Value::Union(_, inner) => (name, *inner),
            other => (name, other),
        })
        .collect())
}

/// The text of a string field (None for null or another type).
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}
