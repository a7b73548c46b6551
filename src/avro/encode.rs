//! Encodes a [`DecodedLine`] as a datum of a given royalty-line writer schema, driven by
//! the same field plan the decoder uses (so an old schema simply drops the fields it
//! lacks). For producers and tests; the amount is rescaled to the writer's scale exactly.

use super::decode::WriterSchema;
use super::error::EncodeError;
use super::plan::{Canon, Nullable, Prim, Target};
use super::wire::{write_bytes, write_long};
use crate::domain::DecodedLine;

fn text_of(line: &DecodedLine, canon: Canon) -> Option<&str> {
    match canon {
        Canon::Isrc => Some(&line.isrc),
        Canon::Upc => line.upc.as_deref(),
        Canon::DspName => Some(&line.dsp_name),
        Canon::ReportPeriod => Some(&line.report_period),
        Canon::TransactionId => Some(&line.transaction_id),
        Canon::Currency => Some(&line.currency),
        Canon::Territory => line.territory.as_deref(),
        Canon::UsageType => line.usage_type.as_deref(),
        Canon::LineType => line.line_type.as_deref(),
        Canon::Label => line.label.as_deref(),
        Canon::Artist => line.artist.as_deref(),
        Canon::ReportId => line.report_id.as_deref(),
        Canon::StreamCount | Canon::RoyaltyAmount => None,
    }
}

/// Appends the datum of `line` under `schema` to `out`.
pub(crate) fn encode_line(
    schema: &WriterSchema,
    line: &DecodedLine,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let plan = schema
        .plan()
        .ok_or_else(|| EncodeError::NotARoyaltyLine(schema.full_name().to_owned()))?;
    for step in &plan.steps {
        let field_error = |reason: &str| EncodeError::Value {
            field: step.name.clone(),
            reason: reason.to_owned(),
        };
        match &step.target {
            // A field DecodedLine has no counterpart for: only a null default can be
            // written without inventing a value.
            Target::Skip(_, Some(null_default)) => out.extend_from_slice(null_default),
            Target::Skip(_, None) => {
                return Err(field_error(
                    "no counterpart in a royalty line and no null default",
                ));
            }
            Target::Canon {
                canon,
                prim,
                nullable,
            } => {
                let branch = |out: &mut Vec<u8>| {
                    if let Some(Nullable { value_index, .. }) = nullable {
                        write_long(out, *value_index);
                    }
                };
                match prim {
                    Prim::Str => {
                        let default = match &step.default {
                            Some(serde_json::Value::String(s)) => Some(s.as_str()),
                            _ => None,
                        };
                        match (text_of(line, *canon), nullable) {
                            (Some(text), _) => {
                                branch(out);
                                write_bytes(out, text.as_bytes());
                            }
                            (None, Some(Nullable { null_index, .. })) => {
                                write_long(out, *null_index)
                            }
                            (None, None) => {
                                let text = default
                                    .ok_or_else(|| field_error("no value and no default"))?;
                                write_bytes(out, text.as_bytes());
                            }
                        }
                    }
                    Prim::Int => {
                        let count = i32::try_from(line.stream_count)
                            .map_err(|_| field_error("count does not fit the writer's int"))?;
                        branch(out);
                        write_long(out, i64::from(count));
                    }
                    Prim::Long => {
                        branch(out);
                        write_long(out, line.stream_count);
                    }
                    Prim::Decimal(spec) => {
                        branch(out);
                        spec.encode(&line.royalty_amount, out)?;
                    }
                }
            }
        }
    }
    Ok(())
}
