//! Avro on the wire: from a Kafka record's bytes to a [`DecodedLine`].
//!
//! Contract (what the pipeline relies on):
//! - Two framings are accepted: Avro single-object (`C3 01` + 8-byte little-endian
//!   CRC-64-AVRO fingerprint of the spec's Parsing Canonical Form, writer schema looked up
//!   in the local [`SchemaStore`]) and Confluent (`00` + 4-byte big-endian id, writer
//!   schema fetched from the [`RegistryClient`] and cached). Anything else is refused.
//! - A datum is decoded with its WRITER schema only and mapped onto the canonical field
//!   names by this module (never by apache-avro's resolution, which ignores aliases and
//!   breaks decimals): `streams` / `play_count` become `stream_count`; fields a writer
//!   lacks stay `None` (unknown, not erased); unknown writer fields are skipped.
//! - Strict: truncated datums, trailing bytes, null required fields, bad varints, bad
//!   UTF-8 and decimals that do not fit 28 digits are refused, each with a stable
//!   [`DecodeError::class`]; only `registry_unavailable` is retryable.
//! - Amounts are exact: the unscaled two's-complement integer with the writer's scale,
//!   into `rust_decimal::Decimal`, never through a float.
//! - Writer schemas are validated once when they enter the store or the registry cache
//!   (canonical field mapping, supported types, no zero-byte array items); a schema set
//!   where one fingerprint maps to two layouts is refused at load time.

mod canonical;
mod decimal;
mod decode;
mod encode;
mod error;
mod framing;
mod plan;
pub mod record;
mod registry;
mod schema_store;
mod shape;
mod wire;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use canonical::{EMPTY_FINGERPRINT, crc64_avro, layout_form, parsing_canonical_form};
pub use decode::{WriterSchema, decode_value};
pub use error::{DecodeError, DecodeErrorKind, EncodeError, SchemaError, SchemaRef};
pub use framing::{
    Framing, encode_confluent, encode_record_single_object, encode_single_object, parse_framing,
};
pub use plan::ROYALTY_LINE;
pub use registry::{RegistryClient, RegistryConfigError};
pub use schema_store::SchemaStore;

use crate::domain::DecodedLine;

/// A decoded royalty line and the writer schema it was written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The line under canonical field names, not yet checked by the domain rules.
    pub line: DecodedLine,
    /// Which writer schema the record named (kept in dead letters and revisions).
    pub schema: SchemaRef,
}

/// What the pipeline calls per record: framing → writer schema → [`DecodedLine`].
#[derive(Debug)]
pub struct LineDecoder {
    store: Arc<SchemaStore>,
    registry: Option<RegistryClient>,
}

impl LineDecoder {
    /// A decoder over local schemas and, when configured, a schema registry.
    pub fn new(store: Arc<SchemaStore>, registry: Option<RegistryClient>) -> Self {
        LineDecoder { store, registry }
    }

    /// The local schemas.
    pub fn store(&self) -> &Arc<SchemaStore> {
        &self.store
    }

    /// Decodes one record value. Errors carry the writer schema reference when known;
    /// [`DecodeError::is_retryable`] tells "retry later" from "dead-letter".
    pub async fn decode(&self, payload: &[u8]) -> Result<Decoded, DecodeError> {
        let (framing, datum) = parse_framing(payload)?;
        match framing {
            Framing::SingleObject { fingerprint } => {
                let schema = SchemaRef::Fingerprint(fingerprint);
                let writer = self.store.get(fingerprint).ok_or_else(|| {
                    DecodeError::from(DecodeErrorKind::UnknownFingerprint(fingerprint))
                        .with_schema(schema)
                })?;
                let line = writer.decode_line(datum)?;
                Ok(Decoded { line, schema })
            }
            Framing::Confluent { schema_id } => {
                let schema = SchemaRef::RegistryId(schema_id);
                let registry = self.registry.as_ref().ok_or_else(|| {
                    DecodeError::from(DecodeErrorKind::NoRegistry(schema_id)).with_schema(schema)
                })?;
                let writer = registry.get(schema_id).await?;
                let line = writer
                    .decode_line(datum)
                    .map_err(|e| e.with_schema(schema))?;
                Ok(Decoded { line, schema })
            }
        }
    }
}
