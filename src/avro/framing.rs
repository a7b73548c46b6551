//! The two accepted wire framings around an Avro datum, and encoders that produce them:
//! Avro single-object encoding (`C3 01` + 8-byte little-endian CRC-64-AVRO fingerprint)
//! and the Confluent wire format (`00` + 4-byte big-endian schema id).

use apache_avro::types::Value;

use super::decode::WriterSchema;
use super::encode::encode_line;
use super::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::domain::DecodedLine;

/// The single-object marker.
const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xc3, 0x01];
/// Length of the single-object header (marker + fingerprint).
const SINGLE_OBJECT_HEADER: usize = 10;
/// The Confluent magic byte.
const CONFLUENT_MAGIC: u8 = 0x00;
/// Length of the Confluent header (magic + schema id).
const CONFLUENT_HEADER: usize = 5;

/// How the writer schema of a payload is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Avro single-object encoding: the writer schema is found by spec fingerprint.
    SingleObject {
        /// CRC-64-AVRO of the writer's Parsing Canonical Form.
        fingerprint: u64,
    },
    /// Confluent wire format: the writer schema is fetched from the registry by id.
    Confluent {
        /// Registry schema id.
        schema_id: u32,
    },
}

/// Splits a payload into its framing and the datum that follows.
pub fn parse_framing(payload: &[u8]) -> Result<(Framing, &[u8]), DecodeError> {
    match payload {
        [0xc3, 0x01, rest @ ..] => {
            let (Some(fp), Some(datum)) = (rest.get(..8), rest.get(8..)) else {
                return Err(DecodeErrorKind::Truncated(format!(
                    "single-object header needs {SINGLE_OBJECT_HEADER} bytes, got {}",
                    payload.len()
                ))
                .into());
            };
            let mut le = [0u8; 8];
            le.copy_from_slice(fp);
            let fingerprint = u64::from_le_bytes(le);
            Ok((Framing::SingleObject { fingerprint }, datum))
        }
        [CONFLUENT_MAGIC, rest @ ..] => {
            let (Some(id), Some(datum)) = (rest.get(..4), rest.get(4..)) else {
                return Err(DecodeErrorKind::Truncated(format!(
                    "Confluent header needs {CONFLUENT_HEADER} bytes, got {}",
                    payload.len()
                ))
                .into());
            };
            let mut be = [0u8; 4];
            be.copy_from_slice(id);
            let schema_id = u32::from_be_bytes(be);
            Ok((Framing::Confluent { schema_id }, datum))
        }
        [] => Err(DecodeErrorKind::UnknownFraming("empty payload".into()).into()),
        [first, ..] => Err(DecodeErrorKind::UnknownFraming(format!(
            "payload starts with 0x{first:02x}{}; expected C3 01 (Avro single-object) or 00 \
             (Confluent)",
            payload
                .get(1)
                .map_or(String::new(), |b| format!(" {b:02x}"))
        ))
        .into()),
    }
}

fn single_object_header(schema: &WriterSchema, datum_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(SINGLE_OBJECT_HEADER + datum_len);
    out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
    out.extend_from_slice(&schema.fingerprint().to_le_bytes());
    out
}

/// A royalty line as an Avro single-object message of `schema` (fields the schema lacks
/// are dropped; the amount is rescaled to the schema's scale, refusing lost digits).
pub fn encode_single_object(
    schema: &WriterSchema,
    line: &DecodedLine,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = single_object_header(schema, 128);
    encode_line(schema, line, &mut out)?;
    Ok(out)
}

/// A royalty line in the Confluent wire format, `schema` being registry id `schema_id`.
pub fn encode_confluent(
    schema_id: u32,
    schema: &WriterSchema,
    line: &DecodedLine,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(CONFLUENT_HEADER + 128);
    out.push(CONFLUENT_MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    encode_line(schema, line, &mut out)?;
    Ok(out)
}

/// Any record (drift alert, catalog update, ...) as an Avro single-object message; the
/// value is checked against `schema` by the apache-avro encoder.
pub fn encode_record_single_object(
    schema: &WriterSchema,
    value: Value,
) -> Result<Vec<u8>, EncodeError> {
    let datum = apache_avro::writer::datum::GenericDatumWriter::builder(schema.schema())
        .build()
        .and_then(|avro| avro.write_value_to_vec(value))
        .map_err(|e| EncodeError::Avro(e.to_string()))?;
    let mut out = single_object_header(schema, datum.len());
    out.extend_from_slice(&datum);
    Ok(out)
}
