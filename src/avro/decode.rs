//! Writer schemas and decoding against them. A [`WriterSchema`] is built once per schema
//! (file or registry id) and shared as `Arc`: parsed schema, spec fingerprint, compiled
//! layout and — for royalty lines — the field plan. Decoding reads the datum strictly
//! with the WRITER schema only (the apache-avro crate's resolution ignores aliases and
//! mangles decimals) and maps it onto [`DecodedLine`] itself: every byte consumed, no
//! more, no less; required fields non-null; amounts exact.

use std::sync::Once;

use apache_avro::Schema;
use apache_avro::types::Value;
use rust_decimal::Decimal;

use super::canonical::{crc64_avro, layout_form, parsing_canonical_form};
use super::error::{DecodeError, DecodeErrorKind, SchemaError, SchemaRef};
use super::plan::{Canon, LinePlan, Nullable, Prim, ROYALTY_LINE, TEXT_FIELDS, Target};
use super::shape::{Shapes, named_definitions};
use super::wire::Cursor;
use crate::domain::DecodedLine;

/// Largest single allocation the apache-avro decoder may make (Kafka records are far
/// smaller; the crate's default is 512 MiB).
const MAX_ALLOCATION_BYTES: usize = 64 * 1024 * 1024;

static ALLOCATION_CAP: Once = Once::new();

/// A writer schema, validated and compiled once, shared by every record that names it.
#[derive(Debug)]
pub struct WriterSchema {
    full_name: String,
    version: Option<u32>,
    fingerprint: u64,
    canonical_form: String,
    layout_form: String,
    json: String,
    schema: Schema,
    shapes: Shapes,
    plan: Option<LinePlan>,
}

impl WriterSchema {
    /// Parses and validates a schema (JSON text): a named record, no zero-byte array items;
    /// a `io.royaltyingest.RoyaltyLine` must also map onto the canonical line.
    pub fn parse(json: &str) -> Result<WriterSchema, SchemaError> {
        ALLOCATION_CAP.call_once(|| {
            apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        });
        let value: serde_json::Value = serde_json::from_str(json)?;
        let canonical_form = parsing_canonical_form(&value)?;
        let layout_form = layout_form(&value)?;
        let schema = Schema::parse(&value).map_err(|e| SchemaError::Invalid(e.to_string()))?;
        let Schema::Record(record) = &schema else {
            return Err(SchemaError::NotARecord(canonical_form));
        };
        let full_name = record.name.fullname(None);
        let shapes = Shapes::compile(&schema)?;
        let plan = if full_name == ROYALTY_LINE {
            let defs = named_definitions(&schema);
            Some(LinePlan::build(record, &defs, shapes.root_fields())?)
        } else {
            None
        };
        Ok(WriterSchema {
            full_name,
            version: None,
            fingerprint: crc64_avro(canonical_form.as_bytes()),
            canonical_form,
            layout_form,
            json: json.to_owned(),
            schema,
            shapes,
            plan,
        })
    }

    /// Sets the version (from the `.vN.` of the file name).
    pub(crate) fn with_version(mut self, version: u32) -> Self {
        self.version = Some(version);
        self
    }

    /// The record's full name, e.g. `io.royaltyingest.RoyaltyLine`.
    pub fn full_name(&self) -> &str {
        &self.full_name
    }

    /// Version from the schema file name; `None` for registry schemas.
    pub fn version(&self) -> Option<u32> {
        self.version
    }

    /// CRC-64-AVRO of the Parsing Canonical Form (what single-object headers carry).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The spec's Parsing Canonical Form.
    pub fn canonical_form(&self) -> &str {
        &self.canonical_form
    }

    /// Canonical form plus logical-type attributes: equal iff bytes decode identically.
    pub fn layout_form(&self) -> &str {
        &self.layout_form
    }

    /// The schema text as written.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The parsed apache-avro schema (for generic encoding).
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// True for a `io.royaltyingest.RoyaltyLine` schema (one [`Self::decode_line`] accepts).
    pub fn is_royalty_line(&self) -> bool {
        self.plan.is_some()
    }

    pub(crate) fn plan(&self) -> Option<&LinePlan> {
        self.plan.as_ref()
    }

    fn schema_ref(&self) -> SchemaRef {
        SchemaRef::Fingerprint(self.fingerprint)
    }

    /// Decodes one royalty-line datum (no framing) written with this schema.
    pub fn decode_line(&self, datum: &[u8]) -> Result<DecodedLine, DecodeError> {
        let Some(plan) = &self.plan else {
            return Err(DecodeError::from(DecodeErrorKind::UnexpectedRecordType(
                self.full_name.clone(),
            ))
            .with_schema(self.schema_ref()));
        };
        let mut cur = Cursor::new(datum);
        self.read_line(plan, &mut cur)
            .and_then(|line| cur.finish().map(|()| line))
            .map_err(|kind| DecodeError::from(kind).with_schema(self.schema_ref()))
    }

    fn read_line(
        &self,
        plan: &LinePlan,
        cur: &mut Cursor<'_>,
    ) -> Result<DecodedLine, DecodeErrorKind> {
        let mut text: [Option<String>; TEXT_FIELDS] = Default::default();
        let mut count: Option<i64> = None;
        let mut amount: Option<Decimal> = None;
        for step in &plan.steps {
            let (canon, prim, nullable) = match &step.target {
                Target::Skip(shape, _) => {
                    self.shapes.skip(*shape, cur, 1)?;
                    continue;
                }
                Target::Canon {
                    canon,
                    prim,
                    nullable,
                } => (*canon, *prim, *nullable),
            };
            if let Some(Nullable {
                null_index,
                value_index,
            }) = nullable
            {
                let index = cur.read_long()?;
                if index == null_index {
                    if canon.required() {
                        return Err(DecodeErrorKind::NullRequiredField(canon.name()));
                    }
                    continue;
                }
                if index != value_index {
                    return Err(DecodeErrorKind::InvalidDatum(format!(
                        "union index {index} for field `{}` (a two-branch union)",
                        step.name
                    )));
                }
            }
            match prim {
                Prim::Str => {
                    let value = cur.read_str()?.to_owned();
                    if let Some(slot) = canon.text_slot() {
                        text[slot] = Some(value);
                    }
                }
                Prim::Int => count = Some(i64::from(cur.read_int()?)),
                Prim::Long => count = Some(cur.read_long()?),
                Prim::Decimal(spec) => {
                    let bytes = match spec.fixed_size {
                        Some(n) => cur.read_fixed(n)?,
                        None => cur.read_bytes()?,
                    };
                    amount = Some(spec.decode(bytes)?);
                }
            }
        }
        let mut take = |canon: Canon| canon.text_slot().and_then(|slot| text[slot].take());
        let upc = take(Canon::Upc);
        let mut required =
            |canon: Canon| take(canon).ok_or(DecodeErrorKind::NullRequiredField(canon.name()));
        Ok(DecodedLine {
            isrc: required(Canon::Isrc)?,
            upc,
            dsp_name: required(Canon::DspName)?,
            report_period: required(Canon::ReportPeriod)?,
            transaction_id: required(Canon::TransactionId)?,
            currency: required(Canon::Currency)?,
            stream_count: count.ok_or(DecodeErrorKind::NullRequiredField(
                Canon::StreamCount.name(),
            ))?,
            royalty_amount: amount.ok_or(DecodeErrorKind::NullRequiredField(
                Canon::RoyaltyAmount.name(),
            ))?,
            territory: take(Canon::Territory),
            usage_type: take(Canon::UsageType),
            line_type: take(Canon::LineType),
            label: take(Canon::Label),
            artist: take(Canon::Artist),
            report_id: take(Canon::ReportId),
        })
    }
}

/// Decodes one datum (no framing) of any record type into an apache-avro `Value`, with
/// the same strictness as [`WriterSchema::decode_line`]: the bytes are first walked
/// against the writer layout (bounded nesting, truncation and trailing bytes refused),
/// then handed to the apache-avro decoder, which can no longer hit end of input.
pub fn decode_value(schema: &WriterSchema, datum: &[u8]) -> Result<Value, DecodeError> {
    let with_ref = |kind: DecodeErrorKind| DecodeError::from(kind).with_schema(schema.schema_ref());
    let mut cur = Cursor::new(datum);
    schema.shapes.skip(0, &mut cur, 0).map_err(with_ref)?;
    cur.finish().map_err(with_ref)?;
    let mut reader = datum;
    let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema.schema)
        .build()
        .and_then(|avro| avro.read_value(&mut reader))
        .map_err(|e| with_ref(DecodeErrorKind::InvalidDatum(e.to_string())))?;
    if !reader.is_empty() {
        return Err(with_ref(DecodeErrorKind::TrailingBytes(reader.len())));
    }
    Ok(value)
}
