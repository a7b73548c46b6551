//! One dead letter as the reviewer's tools see it: parsed from a record of the dead-letter
//! topic (its `royalty.*` headers) or from its quarantine row when it never reached the
//! topic, with the original record (key, value, headers, timestamp) needed to replay it.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::avro::{Framing, LineDecoder, decode_value, parse_framing};
use crate::ledger::dead_letter::headers;

/// Where the reviewer's copy of a dead letter lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Place {
    /// On the dead-letter topic.
    Topic {
        /// Partition of the dead-letter topic.
        partition: i32,
        /// Offset in that partition.
        offset: i64,
    },
    /// Never published: the broker refused it (the outbox keeps trying); the quarantine
    /// copy is all there is.
    Unpublished {
        /// The broker's last refusal, when one was recorded.
        error: Option<String>,
    },
    /// Published once, no longer on the topic (retention); the quarantine copy remains.
    Expired,
}

/// A dead letter: why, where from, and the original record.
#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    /// The stable `royalty.dlq.id`.
    pub id: String,
    /// `decode`, `validate` or `ledger`.
    pub stage: String,
    /// Machine-readable class, e.g. `unknown_fingerprint`.
    pub class: String,
    /// Human-readable reason.
    pub reason: String,
    /// Topic the refused record was read from.
    pub source_topic: Option<String>,
    /// Its partition.
    pub source_partition: Option<i32>,
    /// Its offset.
    pub source_offset: Option<i64>,
    /// The refused record's own timestamp (replay restores it).
    pub original_timestamp: Option<DateTime<Utc>>,
    /// When it was refused.
    pub refused_at: Option<DateTime<Utc>>,
    /// Writer schema the record named, when known.
    pub schema: Option<String>,
    /// Consumer group that refused it.
    pub group: Option<String>,
    /// The dead letter this record was a replay of, if it was one.
    pub replay_of: Option<String>,
    /// Where this copy was found.
    pub place: Place,
    /// The original key.
    #[serde(skip)]
    pub key: Option<Vec<u8>>,
    /// The original value.
    #[serde(skip)]
    pub value: Option<Vec<u8>>,
    /// The original headers (the `royalty.errors.*` and id headers removed).
    #[serde(skip)]
    pub original_headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Letter {
    /// Parses a record of the dead-letter topic. `None` when it carries no
    /// `royalty.dlq.id` (not written by this tool).
    pub fn from_topic_record(
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        all_headers: Vec<(String, Option<Vec<u8>>)>,
        place: Place,
    ) -> Option<Letter> {
        let text = |name: &str| {
            all_headers
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.as_deref())
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let id = text(headers::ID)?;
        let original_timestamp = text(headers::TIMESTAMP)
            .and_then(|ms| ms.trim().parse::<i64>().ok())
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
        let refused_at = text(headers::TIME)
            .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
            .map(|t| t.with_timezone(&Utc));
        let mut letter = Letter {
            id,
            stage: text(headers::STAGE).unwrap_or_default(),
            class: text(headers::CLASS).unwrap_or_default(),
            reason: text(headers::REASON).unwrap_or_default(),
            source_topic: text(headers::TOPIC),
            source_partition: text(headers::PARTITION).and_then(|p| p.trim().parse().ok()),
            source_offset: text(headers::OFFSET).and_then(|o| o.trim().parse().ok()),
            original_timestamp,
            refused_at,
            schema: text(headers::SCHEMA),
            group: text(headers::GROUP),
            replay_of: None,
            place,
            key,
            value,
            original_headers: original_headers(all_headers),
        };
        letter.replay_of = letter.header_text(headers::REPLAY_OF);
        Some(letter)
    }

    /// The first original header of that name, as text.
    pub fn header_text(&self, name: &str) -> Option<String> {
        self.original_headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// `topic[partition]@offset` of the refused record.
    pub fn source(&self) -> String {
        match (
            &self.source_topic,
            self.source_partition,
            self.source_offset,
        ) {
            (Some(t), Some(p), Some(o)) => format!("{t}[{p}]@{o}"),
            (Some(t), _, _) => t.clone(),
            _ => "unknown source".to_string(),
        }
    }

    /// The headers a replay sends: the originals without an earlier replay mark, then
    /// the mark naming this dead letter.
    pub fn replay_headers(&self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out: Vec<(String, Option<Vec<u8>>)> = self
            .original_headers
            .iter()
            .filter(|(name, _)| name != headers::REPLAY_OF)
            .cloned()
            .collect();
        out.push((
            headers::REPLAY_OF.to_string(),
            Some(self.id.clone().into_bytes()),
        ));
        out
    }

    /// The line's `report_id`, when the value decodes as a royalty line that carries one.
    pub async fn report_id(&self, decoder: &LineDecoder) -> Option<String> {
        let value = self.value.as_deref()?;
        decoder.decode(value).await.ok()?.line.report_id
    }
}

/// The record's own headers: ours (`royalty.errors.*`, `royalty.dlq.id`) removed.
fn original_headers(all: Vec<(String, Option<Vec<u8>>)>) -> Vec<(String, Option<Vec<u8>>)> {
    all.into_iter()
        .filter(|(name, _)| name != headers::ID && !name.starts_with(headers::ERRORS_PREFIX))
        .collect()
}

/// The payload as JSON when its writer schema is known: a royalty line under the canonical
/// field names (amounts as exact decimal strings), any other record as Avro's JSON. `Err`
/// says why it could not be decoded (the caller shows hex then).
pub async fn payload_json(
    decoder: &LineDecoder,
    payload: &[u8],
) -> Result<serde_json::Value, String> {
    if let Ok(decoded) = decoder.decode(payload).await {
        return serde_json::to_value(&decoded.line).map_err(|e| e.to_string());
    }
    let (framing, datum) = parse_framing(payload).map_err(|e| e.to_string())?;
    let writer = match framing {
        Framing::SingleObject { fingerprint } => {
            decoder.store().get(fingerprint).ok_or_else(|| {
                format!("no writer schema with fingerprint 0x{fingerprint:016x} is loaded")
            })?
        }
        Framing::Confluent { schema_id } => {
            return Err(format!(
                "registry schema id {schema_id}: not a royalty line this decoder can read"
            ));
        }
    };
    let value = decode_value(&writer, datum).map_err(|e| e.to_string())?;
    serde_json::Value::try_from(value).map_err(|e| e.to_string())
}

/// Bytes as text when they are printable UTF-8, hex otherwise.
pub fn printable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(|c| c.is_control()) => text.to_string(),
        _ => format!("0x{}", hex::encode(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> (String, Option<Vec<u8>>) {
        (name.to_string(), Some(value.as_bytes().to_vec()))
    }

    #[test]
    fn a_dead_letter_record_parses_and_replays_with_its_own_headers() {
        let all = vec![
            h("trace", "abc"),
            h(headers::REPLAY_OF, "dl-old"),
            h(headers::ID, "dl-new"),
            h(headers::STAGE, "decode"),
            h(headers::CLASS, "unknown_fingerprint"),
            h(headers::REASON, "no writer schema"),
            h(headers::TOPIC, "raw"),
            h(headers::PARTITION, "2"),
            h(headers::OFFSET, "41"),
            h(headers::TIMESTAMP, "1700000000123"),
            h(headers::TIME, "2026-11-27T10:00:00+00:00"),
        ];
        let letter = Letter::from_topic_record(
            Some(b"k".to_vec()),
            Some(b"v".to_vec()),
            all,
            Place::Topic {
                partition: 0,
                offset: 7,
            },
        )
        .expect("has an id");
        assert_eq!(letter.id, "dl-new");
        assert_eq!(letter.source(), "raw[2]@41");
        assert_eq!(letter.replay_of.as_deref(), Some("dl-old"));
        assert_eq!(
            letter.original_timestamp.map(|t| t.timestamp_millis()),
            Some(1_700_000_000_123)
        );
        let sent = letter.replay_headers();
        let names: Vec<&str> = sent.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["trace", headers::REPLAY_OF]);
        assert_eq!(sent[1].1.as_deref(), Some(&b"dl-new"[..]));
    }

    #[test]
    fn a_record_without_an_id_is_not_a_dead_letter() {
        assert!(Letter::from_topic_record(None, None, vec![h("x", "y")], Place::Expired).is_none());
    }

    #[test]
    fn printable_falls_back_to_hex() {
        assert_eq!(printable(b"ISRC-1"), "ISRC-1");
        assert_eq!(printable(&[0xc3, 0x01, 0x00]), "0xc30100");
    }
}
