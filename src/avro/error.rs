//! Errors of the Avro layer, decided in one place: what failed ([`DecodeError::class`], a
//! stable machine name for dead letters and metrics), whether waiting helps
//! ([`DecodeError::is_retryable`]), and which writer schema was involved.

use std::fmt;
use std::path::PathBuf;

/// Which writer schema a record named: its single-object fingerprint or its registry id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaRef {
    /// CRC-64-AVRO fingerprint of the spec's Parsing Canonical Form (displayed as the
    /// 64-bit number in hex; on the wire it is little-endian after `C3 01`).
    Fingerprint(u64),
    /// Confluent schema registry id.
    RegistryId(u32),
}

impl fmt::Display for SchemaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaRef::Fingerprint(fp) => write!(f, "fingerprint 0x{fp:016x}"),
            SchemaRef::RegistryId(id) => write!(f, "registry id {id}"),
        }
    }
}

/// Why a payload could not be turned into a record.
#[derive(Debug, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The payload starts with neither `C3 01` nor `00`.
    #[error("unknown framing: {0}")]
    UnknownFraming(String),
    /// Single-object fingerprint not among the loaded schemas.
    #[error("no writer schema with fingerprint 0x{0:016x} is loaded")]
    UnknownFingerprint(u64),
    /// The registry answered that this schema id does not exist (error code 40403).
    #[error("the schema registry has no schema with id {0}")]
    UnknownSchemaId(u32),
    /// A Confluent-framed record arrived but no registry URL is configured.
    #[error("record names registry schema id {0} but no schema registry is configured")]
    NoRegistry(u32),
    /// The registry could not be asked (network, timeout, 5xx, odd answer): retry later.
    #[error("schema registry unavailable for id {id}: {reason}")]
    RegistryUnavailable {
        /// The schema id being fetched.
        id: u32,
        /// What went wrong.
        reason: String,
    },
    /// The writer schema exists but this consumer refuses it (e.g. a string amount).
    #[error("writer schema refused: {0}")]
    InvalidWriterSchema(String),
    /// The writer schema is a valid schema of another record type.
    #[error("expected a io.royaltyingest.RoyaltyLine record, the writer schema is {0}")]
    UnexpectedRecordType(String),
    /// The datum ends before the writer schema says it should.
    #[error("datum truncated: {0}")]
    Truncated(String),
    /// Bytes left after the datum: the writer schema does not describe this payload.
    #[error("{0} trailing byte(s) after the datum")]
    TrailingBytes(usize),
    /// Bytes that no writer could have produced (bad varint, union index, UTF-8, ...).
    #[error("invalid datum: {0}")]
    InvalidDatum(String),
    /// A field the ledger needs was null in the datum.
    #[error("required field `{0}` is null")]
    NullRequiredField(&'static str),
    /// A decimal that does not fit the writer's precision or rust_decimal's 28 digits.
    #[error("decimal out of range: {0}")]
    DecimalOutOfRange(String),
}

/// A decode failure plus, when known, the writer schema involved.
#[derive(Debug, thiserror::Error)]
#[error("{kind}{}", SchemaSuffix(unstated(.kind, .schema)))]
pub struct DecodeError {
    kind: DecodeErrorKind,
    schema: Option<SchemaRef>,
}

/// The writer schema to add to the message: none when the failure's own text names it
/// already ("no writer schema with fingerprint 0x… is loaded (writer schema fingerprint
/// 0x…)" said it twice).
fn unstated<'a>(kind: &DecodeErrorKind, schema: &'a Option<SchemaRef>) -> Option<&'a SchemaRef> {
    let named = matches!(
        kind,
        DecodeErrorKind::UnknownFingerprint(_)
            | DecodeErrorKind::UnknownSchemaId(_)
            | DecodeErrorKind::NoRegistry(_)
            | DecodeErrorKind::RegistryUnavailable { .. }
    );
    schema.as_ref().filter(|_| !named)
}

struct SchemaSuffix<'a>(Option<&'a SchemaRef>);

impl fmt::Display for SchemaSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(schema) => write!(f, " (writer schema {schema})"),
            None => Ok(()),
        }
    }
}

impl DecodeError {
    /// What failed.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// The writer schema involved, when the framing named one.
    pub fn schema(&self) -> Option<SchemaRef> {
        self.schema
    }

    /// The writer schema as text (for dead-letter headers), when known.
    pub fn schema_ref(&self) -> Option<String> {
        self.schema.map(|s| s.to_string())
    }

    /// Attaches (or replaces) the writer schema reference.
    pub fn with_schema(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Stable machine name of the failure, for dead-letter headers and metric labels.
    pub fn class(&self) -> &'static str {
        match &self.kind {
            DecodeErrorKind::UnknownFraming(_) => "unknown_framing",
            DecodeErrorKind::UnknownFingerprint(_) => "unknown_fingerprint",
            DecodeErrorKind::UnknownSchemaId(_) => "unknown_schema_id",
            DecodeErrorKind::NoRegistry(_) => "no_registry",
            DecodeErrorKind::RegistryUnavailable { .. } => "registry_unavailable",
            DecodeErrorKind::InvalidWriterSchema(_) => "invalid_writer_schema",
            DecodeErrorKind::UnexpectedRecordType(_) => "unexpected_record_type",
            DecodeErrorKind::Truncated(_) => "truncated",
            DecodeErrorKind::TrailingBytes(_) => "trailing_bytes",
            DecodeErrorKind::InvalidDatum(_) => "invalid_datum",
            DecodeErrorKind::NullRequiredField(_) => "null_required_field",
            DecodeErrorKind::DecimalOutOfRange(_) => "decimal_out_of_range",
        }
    }

    /// True only when waiting can help (the registry was unreachable): the caller must
    /// retry the record later instead of dead-lettering it.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, DecodeErrorKind::RegistryUnavailable { .. })
    }
}

impl From<DecodeErrorKind> for DecodeError {
    fn from(kind: DecodeErrorKind) -> Self {
        DecodeError { kind, schema: None }
    }
}

/// Why a schema (file, set of files or registry answer) was refused.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A schema file or directory could not be read.
    // The inner errors are part of the message and deliberately not `#[source]`: an
    // `{:#}` chain would otherwise say the same cause twice.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Context: which schema file the inner error is about.
    #[error("{file}: {error}")]
    InFile {
        /// File name (or registry id) of the schema.
        file: String,
        /// The error in that schema.
        error: Box<SchemaError>,
    },
    /// Not JSON.
    #[error("not valid JSON: {0}")]
    Json(serde_json::Error),
    /// JSON, but not a schema (by the spec or by the apache-avro parser).
    #[error("not a valid Avro schema: {0}")]
    Invalid(String),
    /// The schema's top level is not a named record.
    #[error("the top level of a writer schema must be a record, found {0}")]
    NotARecord(String),
    /// A file name without the `.vN.` version the store indexes by.
    #[error("schema file name must look like NAME.vN.avsc (N = version), got {0}")]
    FileName(String),
    /// Two files claim the same record name and version.
    #[error("{full_name} version {version} is defined by both {first} and {second}")]
    DuplicateVersion {
        /// Record full name.
        full_name: String,
        /// The version both claim.
        version: u32,
        /// First file.
        first: String,
        /// Second file.
        second: String,
    },
    /// Two layouts share one fingerprint: a single-object record could not be decoded
    /// unambiguously (the canonical form drops logical types, scale and precision).
    #[error(
        "{first} and {second} share fingerprint 0x{fingerprint:016x} but differ in layout \
         (logical type, precision or scale); keep the amount's type and scale identical"
    )]
    FingerprintCollision {
        /// The shared fingerprint.
        fingerprint: u64,
        /// First file.
        first: String,
        /// Second file.
        second: String,
    },
    /// An array whose items can take zero bytes: a few input bytes could claim billions
    /// of items.
    #[error("array at {0} has items that encode in zero bytes (allocation amplification)")]
    ZeroByteItems(String),
    /// A royalty-line writer schema lacks a field the ledger needs.
    #[error("royalty-line writer schema lacks required field `{0}`")]
    MissingField(&'static str),
    /// Two writer fields map onto one canonical field (e.g. both `streams` and `play_count`).
    #[error("writer fields `{first}` and `{second}` both map onto `{canonical}`")]
    DuplicateMapping {
        /// The canonical field.
        canonical: &'static str,
        /// First writer field.
        first: String,
        /// Second writer field.
        second: String,
    },
    /// A writer field's type cannot carry the canonical field (e.g. a string amount).
    #[error("writer field `{field}` has type {found}; `{canonical}` needs {expected}")]
    FieldType {
        /// The writer's field name.
        field: String,
        /// The canonical field it maps onto.
        canonical: &'static str,
        /// What the writer declared.
        found: String,
        /// What this consumer accepts.
        expected: &'static str,
    },
}

impl SchemaError {
    /// Wraps this error with the schema file (or registry id) it concerns.
    pub fn in_file(self, file: impl Into<String>) -> SchemaError {
        SchemaError::InFile {
            file: file.into(),
            error: Box::new(self),
        }
    }
}

impl From<serde_json::Error> for SchemaError {
    fn from(err: serde_json::Error) -> Self {
        SchemaError::Json(err)
    }
}

/// Why a record could not be encoded with a writer schema.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The writer schema is not a royalty line (use the generic record encoder).
    #[error("writer schema {0} is not a royalty line")]
    NotARoyaltyLine(String),
    /// The amount has more decimal places than the schema's scale (digits would be lost),
    /// or more digits than its precision.
    #[error("amount {amount} does not fit decimal(precision {precision}, scale {scale})")]
    AmountDoesNotFit {
        /// The amount as given.
        amount: String,
        /// Writer precision.
        precision: usize,
        /// Writer scale.
        scale: u32,
    },
    /// A value does not fit the writer's type (e.g. a count beyond `int`).
    #[error("field `{field}`: {reason}")]
    Value {
        /// Writer field name.
        field: String,
        /// What does not fit.
        reason: String,
    },
    /// The apache-avro encoder refused a generic value.
    #[error("value does not match the writer schema: {0}")]
    Avro(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_names_its_writer_schema_once() {
        let fingerprint = 0xb26c_4e47_5ffb_d118;
        let unknown = DecodeError::from(DecodeErrorKind::UnknownFingerprint(fingerprint))
            .with_schema(SchemaRef::Fingerprint(fingerprint));
        assert_eq!(
            unknown.to_string(),
            "no writer schema with fingerprint 0xb26c4e475ffbd118 is loaded"
        );
        let no_registry =
            DecodeError::from(DecodeErrorKind::NoRegistry(7)).with_schema(SchemaRef::RegistryId(7));
        assert_eq!(
            no_registry.to_string().matches('7').count(),
            1,
            "{no_registry}"
        );
        // A failure that does not name it still gets it.
        let truncated = DecodeError::from(DecodeErrorKind::Truncated("amount".into()))
            .with_schema(SchemaRef::Fingerprint(fingerprint));
        assert_eq!(
            truncated.to_string(),
            "datum truncated: amount (writer schema fingerprint 0xb26c4e475ffbd118)"
        );
    }
}
