//! The field plan of a royalty-line writer schema, built (and so validated) once per
//! writer schema: for each writer field, in writer order, which canonical
//! [`DecodedLine`](crate::domain::DecodedLine) field it fills and how its bytes read.
//! Renamed fields map through the canonical aliases (`streams`, `play_count` →
//! `stream_count`); fields we do not know are skipped; a writer type that cannot carry
//! the canonical field (e.g. a string amount) refuses the schema here, not per record.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, RecordField, RecordSchema, UuidSchema};

use super::decimal::DecimalSpec;
use super::error::SchemaError;
use super::shape::{ShapeId, resolve};

/// Full name of the royalty-line record in every schema version.
pub const ROYALTY_LINE: &str = "io.royaltyingest.RoyaltyLine";

/// A canonical royalty-line field (the newest schema's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Canon {
    Isrc,
    Upc,
    DspName,
    ReportPeriod,
    TransactionId,
    Currency,
    Territory,
    UsageType,
    LineType,
    Label,
    Artist,
    ReportId,
    StreamCount,
    RoyaltyAmount,
}

/// Number of text canonical fields (the first variants of [`Canon`]).
pub(crate) const TEXT_FIELDS: usize = 12;

impl Canon {
    /// Every canonical field.
    pub(crate) const ALL: [Canon; 14] = [
        Canon::Isrc,
        Canon::Upc,
        Canon::DspName,
        Canon::ReportPeriod,
        Canon::TransactionId,
        Canon::Currency,
        Canon::Territory,
        Canon::UsageType,
        Canon::LineType,
        Canon::Label,
        Canon::Artist,
        Canon::ReportId,
        Canon::StreamCount,
        Canon::RoyaltyAmount,
    ];

    /// The canonical (newest schema) field name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Canon::Isrc => "isrc",
            Canon::Upc => "upc",
            Canon::DspName => "dsp_name",
            Canon::ReportPeriod => "report_period",
            Canon::TransactionId => "transaction_id",
            Canon::Currency => "currency",
            Canon::Territory => "territory",
            Canon::UsageType => "usage_type",
            Canon::LineType => "line_type",
            Canon::Label => "label",
            Canon::Artist => "artist",
            Canon::ReportId => "report_id",
            Canon::StreamCount => "stream_count",
            Canon::RoyaltyAmount => "royalty_amount",
        }
    }

    /// Older names of the field (the newest schema declares the same list as aliases).
    pub(crate) fn aliases(self) -> &'static [&'static str] {
        match self {
            Canon::StreamCount => &["streams", "play_count"],
            _ => &[],
        }
    }

    /// Fields every writer schema must carry (the line's identity and value; the UPC is
    /// optional since version 4: ISRC-only lines are real).
    pub(crate) fn required(self) -> bool {
        matches!(
            self,
            Canon::Isrc
                | Canon::DspName
                | Canon::ReportPeriod
                | Canon::TransactionId
                | Canon::Currency
                | Canon::StreamCount
                | Canon::RoyaltyAmount
        )
    }

    /// Slot of a text field in the decoder's scratch array.
    pub(crate) fn text_slot(self) -> Option<usize> {
        let slot = self as usize;
        (slot < TEXT_FIELDS).then_some(slot)
    }

    fn for_writer_field(name: &str) -> Option<Canon> {
        Canon::ALL
            .into_iter()
            .find(|c| c.name() == name || c.aliases().contains(&name))
    }
}

/// How one writer value reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Prim {
    Str,
    Int,
    Long,
    Decimal(DecimalSpec),
}

/// A `["null", X]` / `[X, "null"]` writer union: which index means null.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nullable {
    pub(crate) null_index: i64,
    pub(crate) value_index: i64,
}

/// What to do with one writer field.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Fill a canonical field.
    Canon {
        canon: Canon,
        prim: Prim,
        nullable: Option<Nullable>,
    },
    /// A field this consumer does not know: walk over it. The bytes are what the
    /// encoder writes for it: its null default, when it has one.
    Skip(ShapeId, Option<&'static [u8]>),
}

/// One writer field of the plan.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// The writer's field name (for messages and encoding).
    pub(crate) name: String,
    /// The writer's default (the encoder uses it when a value is absent).
    pub(crate) default: Option<serde_json::Value>,
    pub(crate) target: Target,
}

/// The compiled plan of a royalty-line writer schema.
#[derive(Debug, Clone)]
pub(crate) struct LinePlan {
    pub(crate) steps: Vec<Step>,
}

impl LinePlan {
    /// Validates `record` as a royalty-line writer schema and compiles its plan.
    /// `field_shapes` are the shapes of the record's fields (for skipping).
    pub(crate) fn build(
        record: &RecordSchema,
        defs: &HashMap<String, &Schema>,
        field_shapes: &[ShapeId],
    ) -> Result<LinePlan, SchemaError> {
        let ns = record.name.namespace();
        let mut seen: HashMap<Canon, String> = HashMap::new();
        let mut steps = Vec::with_capacity(record.fields.len());
        for (field, &shape) in record.fields.iter().zip(field_shapes) {
            let target = match Canon::for_writer_field(&field.name) {
                None => Target::Skip(shape, null_default(field, ns, defs)?),
                Some(canon) => {
                    if let Some(first) = seen.insert(canon, field.name.clone()) {
                        return Err(SchemaError::DuplicateMapping {
                            canonical: canon.name(),
                            first,
                            second: field.name.clone(),
                        });
                    }
                    let schema = resolve(&field.schema, ns, defs)?;
                    let (prim, nullable) = classify(canon, &field.name, schema, ns, defs)?;
                    Target::Canon {
                        canon,
                        prim,
                        nullable,
                    }
                }
            };
            steps.push(Step {
                name: field.name.clone(),
                default: field.default.clone(),
                target,
            });
        }
        if let Some(missing) = Canon::ALL
            .into_iter()
            .find(|c| c.required() && !seen.contains_key(c))
        {
            return Err(SchemaError::MissingField(missing.name()));
        }
        Ok(LinePlan { steps })
    }
}

/// The encoding of an unknown field's default when that default is null.
fn null_default(
    field: &RecordField,
    ns: Option<&str>,
    defs: &HashMap<String, &Schema>,
) -> Result<Option<&'static [u8]>, SchemaError> {
    if field.default != Some(serde_json::Value::Null) {
        return Ok(None);
    }
    Ok(match resolve(&field.schema, ns, defs)? {
        Schema::Null => Some(&[]),
        Schema::Union(u) if matches!(u.variants().first(), Some(Schema::Null)) => Some(&[0]),
        _ => None,
    })
}

fn expected(canon: Canon) -> &'static str {
    match canon {
        Canon::StreamCount => "int or long (optionally in a union with null)",
        Canon::RoyaltyAmount => {
            "a decimal logical type on bytes or fixed, scale <= 28 (optionally in a union with null)"
        }
        _ => "string (optionally in a union with null)",
    }
}

/// Reads a writer type as the primitive `canon` needs, or says why it cannot.
fn classify(
    canon: Canon,
    field: &str,
    schema: &Schema,
    ns: Option<&str>,
    defs: &HashMap<String, &Schema>,
) -> Result<(Prim, Option<Nullable>), SchemaError> {
    let refuse = |found: String| SchemaError::FieldType {
        field: field.to_owned(),
        canonical: canon.name(),
        found,
        expected: expected(canon),
    };
    if let Schema::Union(union) = schema {
        let variants = union.variants();
        let null_at = variants.iter().position(|v| matches!(v, Schema::Null));
        return match (variants.len(), null_at) {
            (2, Some(null_index)) => {
                let value_index = 1 - null_index;
                let inner = resolve(&variants[value_index], ns, defs)?;
                let prim = primitive(canon, inner).map_err(|_| refuse(describe(schema)))?;
                Ok((
                    prim,
                    Some(Nullable {
                        null_index: null_index as i64,
                        value_index: value_index as i64,
                    }),
                ))
            }
            _ => Err(refuse(describe(schema))),
        };
    }
    let prim = primitive(canon, schema).map_err(|_| refuse(describe(schema)))?;
    Ok((prim, None))
}

fn primitive(canon: Canon, schema: &Schema) -> Result<Prim, ()> {
    match (canon, schema) {
        (Canon::StreamCount, Schema::Int) => Ok(Prim::Int),
        (Canon::StreamCount, Schema::Long) => Ok(Prim::Long),
        (Canon::RoyaltyAmount, Schema::Decimal(d)) => {
            let fixed_size = match &d.inner {
                InnerDecimalSchema::Bytes => None,
                InnerDecimalSchema::Fixed(f) => Some(f.size),
            };
            DecimalSpec::new(d.precision, d.scale, fixed_size)
                .map(Prim::Decimal)
                .map_err(|_| ())
        }
        (Canon::StreamCount | Canon::RoyaltyAmount, _) => Err(()),
        (_, Schema::String | Schema::Uuid(UuidSchema::String)) => Ok(Prim::Str),
        _ => Err(()),
    }
}

/// A short description of a writer type for error messages.
fn describe(schema: &Schema) -> String {
    match schema {
        Schema::Decimal(d) => format!("decimal({},{})", d.precision, d.scale),
        Schema::Union(u) => {
            let parts: Vec<String> = u.variants().iter().map(describe).collect();
            format!("[{}]", parts.join(", "))
        }
        Schema::Ref { name } => name.fullname(None),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
    }
}
