//! Records → decode → validate → key: every record of a batch becomes either a line to
//! post or a dead letter with the stage, class and reason that refused it.

use crate::avro::LineDecoder;
use crate::domain::validate;
use crate::domain::validate::identity;
use crate::drift::CatalogEntry;
use crate::drift::catalog::{check_entry, decode_update};
use crate::ledger::dead_letter::{self, RefusedLine};
use crate::ledger::{Batch, DeadLetter, LineToPost, OffsetAdvance, Sourced};
use crate::report::ReportSummary;

use super::source::SourceMessage;
use crate::retry::Unavailable;

/// Builds the batch for the given records and offset moves. Records of `catalog_topic`
/// are catalog updates, of `summaries_topic` report summaries; all others are royalty
/// lines.
pub async fn build_batch(
    decoder: &LineDecoder,
    catalog_topic: Option<&str>,
    summaries_topic: Option<&str>,
    records: &[SourceMessage],
    offsets: Vec<OffsetAdvance>,
) -> Result<Batch, Unavailable> {
    let mut batch = Batch {
        catalog: Vec::new(),
        summaries: Vec::new(),
        lines: Vec::with_capacity(records.len()),
        dead_letters: Vec::new(),
        offsets,
    };
    for message in records {
        let refuse = |stage: &'static str,
                      class: String,
                      reason: String,
                      schema_ref: Option<String>| DeadLetter {
            source: message.source.clone(),
            record: message.record.clone(),
            stage,
            class,
            reason,
            schema_ref,
            line: None,
        };
        if let Some(not_read) = &message.record.not_read {
            batch.dead_letters.push(refuse(
                "decode",
                not_read.class().into(),
                not_read.reason(&message.source),
                None,
            ));
            continue;
        }
        let Some(payload) = message.record.value.as_deref().filter(|v| !v.is_empty()) else {
            batch.dead_letters.push(refuse(
                "decode",
                dead_letter::EMPTY_VALUE_CLASS.into(),
                "the record has no value (null or 0 bytes; a tombstone is not a royalty line)"
                    .into(),
                None,
            ));
            continue;
        };
        if catalog_topic == Some(&*message.source.topic) {
            let coordinates = message.source.to_string();
            let sourced = |item| Sourced {
                item,
                source: message.source.clone(),
                record: message.record.clone(),
            };
            match catalog_entry(decoder, payload) {
                // The sender's own `source` first, then where we read it.
                Ok((entry, Some(sender))) => batch
                    .catalog
                    .push(sourced((entry, format!("{sender} ({coordinates})")))),
                Ok((entry, None)) => batch.catalog.push(sourced((entry, coordinates))),
                Err((stage, class, reason)) => {
                    batch.dead_letters.push(refuse(stage, class, reason, None))
                }
            }
            continue;
        }
        if summaries_topic == Some(&*message.source.topic) {
            match ReportSummary::decode(decoder.store(), payload) {
                Ok(summary) => batch.summaries.push(Sourced {
                    item: summary,
                    source: message.source.clone(),
                    record: message.record.clone(),
                }),
                Err((class, reason)) => batch
                    .dead_letters
                    .push(refuse("decode", class, reason, None)),
            }
            continue;
        }
        let decoded = match decoder.decode(payload).await {
            Ok(decoded) => decoded,
            // Never dead-letter a record because a dependency was briefly down.
            Err(err) if err.is_retryable() => {
                return Err(Unavailable {
                    dependency: "schema registry",
                    reason: err.to_string(),
                });
            }
            Err(err) => {
                batch.dead_letters.push(refuse(
                    "decode",
                    err.class().to_string(),
                    err.to_string(),
                    err.schema_ref(),
                ));
                continue;
            }
        };
        match validate(&decoded.line) {
            Ok(line) => batch.lines.push(LineToPost {
                line,
                source: message.source.clone(),
                record: message.record.clone(),
            }),
            Err(rejection) => batch.dead_letters.push(DeadLetter {
                line: identity(&decoded.line).map(|known| RefusedLine {
                    key: known.key,
                    report_id: known.report_id,
                    dsp_name: known.dsp_name,
                    report_period: known.report_period,
                }),
                ..refuse(
                    "validate",
                    rejection.first_rule().to_string(),
                    rejection.to_string(),
                    Some(decoded.schema.to_string()),
                )
            }),
        }
    }
    Ok(batch)
}

/// A catalog update decoded and checked (with the sender's `source`), or the stage, class
/// and reason refusing it.
fn catalog_entry(
    decoder: &LineDecoder,
    payload: &[u8],
) -> Result<(CatalogEntry, Option<String>), (&'static str, String, String)> {
    let (raw, source) = decode_update(decoder.store(), payload)
        .map_err(|(class, reason)| ("decode", class, reason))?;
    let entry = check_entry(&raw).map_err(|reason| {
        (
            "validate",
            dead_letter::CATALOG_ENTRY_CLASS.to_string(),
            reason,
        )
    })?;
    Ok((entry, source))
}
