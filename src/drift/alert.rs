//! The `DriftAlert` message: Avro single-object value (schema `drift_alert.v2.avsc`; v1
//! alerts still decode), keyed by ISRC, with headers naming the stable alert id, the kind,
//! the ISRC and the DSP. An alert stands for one drift, or for the tracks of one DSP's
//! report that the catalog does not know (`tracks` and a sample of their ISRCs).

use apache_avro::Schema;
use apache_avro::types::Value;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::avro::{SchemaStore, WriterSchema, encode_record_single_object};
use crate::db::outbox::OutboxMessage;

use super::detect::{Drift, DriftKind};
use crate::avro::record::{decode_record, text};

/// Full name of the alert record.
pub const DRIFT_ALERT: &str = "io.royaltyingest.DriftAlert";

/// At most this many ISRCs are named in an alert for a report's unknown tracks; all of
/// them are in `drift_events` (`royalty-ingest alerts unknown-tracks --alert ID`).
pub const UNKNOWN_ISRC_SAMPLE: usize = 20;

/// Header names of a published alert.
pub mod headers {
    /// Stable alert id (drop repeats by it).
    pub const ID: &str = "royalty.alert.id";
    /// Drift kind.
    pub const KIND: &str = "royalty.alert.kind";
    /// ISRC concerned.
    pub const ISRC: &str = "royalty.alert.isrc";
    /// DSP where it was first seen.
    pub const DSP: &str = "royalty.alert.dsp";
}

/// A drift alert as subscribers see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DriftAlert {
    /// Stable id.
    pub alert_id: String,
    /// Kind name.
    pub kind: String,
    /// ISRC.
    pub isrc: String,
    /// What the catalog says.
    pub expected: Option<String>,
    /// What was received.
    pub received: Option<String>,
    /// Catalog version compared against.
    pub catalog_version_id: Option<i64>,
    /// DSP of the first occurrence.
    pub dsp_name: String,
    /// Report of the first occurrence.
    pub report_id: Option<String>,
    /// Report period of the first occurrence.
    pub report_period: Option<String>,
    /// Transaction id of the first occurrence.
    pub transaction_id: Option<String>,
    /// Where it was first seen.
    pub source: String,
    /// When it was detected.
    pub detected_at: String,
    /// Tracks the alert stands for: 1, or the number of a report's unknown tracks.
    pub tracks: u64,
    /// Up to [`UNKNOWN_ISRC_SAMPLE`] of their ISRCs, in the order seen (`isrc` is the first).
    pub isrc_sample: Vec<String>,
}

impl DriftAlert {
    /// The alert for the first observation of a drift.
    pub fn from_drift(drift: &Drift, detected_at: DateTime<Utc>) -> Self {
        DriftAlert {
            alert_id: drift.id().to_string(),
            kind: drift.kind.as_str().to_string(),
            isrc: drift.isrc.clone(),
            expected: drift.expected.clone(),
            received: drift.received.clone(),
            catalog_version_id: drift.catalog_version_id,
            dsp_name: drift.dsp_name.clone(),
            report_id: drift.report_id.clone(),
            report_period: drift.period.map(|p| p.format("%Y-%m-%d").to_string()),
            transaction_id: drift.transaction_id.clone(),
            source: drift.source.clone(),
            detected_at: detected_at.to_rfc3339(),
            tracks: 1,
            isrc_sample: vec![drift.isrc.clone()],
        }
    }

    /// The alert for tracks first found unknown to the catalog at one DSP, in one of its
    /// reports, `first` and then `more` in the order seen: their number and a sample of their
    /// ISRCs, the rest as for `first`. Its id is derived from the DSP and the tracks' ids (the
    /// same tracks at the same DSP, the same id; at another DSP, another alert).
    pub fn unknown_tracks(first: &Drift, more: &[&Drift], detected_at: DateTime<Utc>) -> Self {
        let alert = DriftAlert::from_drift(first, detected_at);
        let tracks = std::iter::once(first).chain(more.iter().copied());
        let mut hasher = Sha256::new();
        hasher.update(b"unknown2|");
        hasher.update(first.dsp_name.trim().to_lowercase().as_bytes());
        for track in tracks.clone() {
            hasher.update(b"|");
            hasher.update(track.id().as_bytes());
        }
        DriftAlert {
            alert_id: format!("drift-unknown-{}", hex::encode(&hasher.finalize()[..16])),
            tracks: 1 + more.len() as u64,
            isrc_sample: tracks
                .take(UNKNOWN_ISRC_SAMPLE)
                .map(|t| t.isrc.clone())
                .collect(),
            ..alert
        }
    }

    /// The kind, parsed.
    pub fn kind(&self) -> Option<DriftKind> {
        DriftKind::parse(&self.kind)
    }

    /// The outbox message publishing this alert to `topic`.
    pub fn to_message(&self, schema: &WriterSchema, topic: &str) -> Result<OutboxMessage, String> {
        let payload = encode_record_single_object(schema, self.to_value(schema))
            .map_err(|e| e.to_string())?;
        let header = |name: &str, value: &str| (name.to_string(), Some(value.as_bytes().to_vec()));
        Ok(OutboxMessage {
            message_id: self.alert_id.clone(),
            topic: topic.to_string(),
            key: Some(self.isrc.as_bytes().to_vec()),
            payload: Some(payload),
            headers: vec![
                header(headers::ID, &self.alert_id),
                header(headers::KIND, &self.kind),
                header(headers::ISRC, &self.isrc),
                header(headers::DSP, &self.dsp_name),
            ],
            timestamp: None,
        })
    }

    /// The record in `schema`'s layout: v1 has no `tracks` and `isrc_sample` (a
    /// `--schemas-dir` may pin it); such an alert names its first track only, and
    /// `alerts unknown-tracks --alert ID` still lists all of them.
    fn to_value(&self, schema: &WriterSchema) -> Value {
        let text = |v: &str| Value::String(v.to_string());
        let optional = |v: &Option<String>| match v {
            Some(v) => Value::Union(1, Box::new(Value::String(v.clone()))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        let mut fields = vec![
            ("alert_id".into(), text(&self.alert_id)),
            ("kind".into(), text(&self.kind)),
            ("isrc".into(), text(&self.isrc)),
            ("expected".into(), optional(&self.expected)),
            ("received".into(), optional(&self.received)),
            (
                "catalog_version_id".into(),
                match self.catalog_version_id {
                    Some(id) => Value::Union(1, Box::new(Value::Long(id))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
            ("dsp_name".into(), text(&self.dsp_name)),
            ("report_id".into(), optional(&self.report_id)),
            ("report_period".into(), optional(&self.report_period)),
            ("transaction_id".into(), optional(&self.transaction_id)),
            ("source".into(), text(&self.source)),
            ("detected_at".into(), text(&self.detected_at)),
        ];
        if has_field(schema, "tracks") {
            let tracks = i64::try_from(self.tracks).unwrap_or(i64::MAX);
            fields.push(("tracks".into(), Value::Long(tracks)));
        }
        if has_field(schema, "isrc_sample") {
            let sample = self.isrc_sample.iter().map(|i| text(i)).collect();
            fields.push(("isrc_sample".into(), Value::Array(sample)));
        }
        Value::Record(fields)
    }

    /// Decodes a published alert (single-object encoded with a known schema).
    pub fn decode(store: &SchemaStore, payload: &[u8]) -> Result<DriftAlert, String> {
        let fields = decode_record(store, payload, DRIFT_ALERT).map_err(|(_, reason)| reason)?;
        let mut alert = DriftAlert {
            alert_id: String::new(),
            kind: String::new(),
            isrc: String::new(),
            expected: None,
            received: None,
            catalog_version_id: None,
            dsp_name: String::new(),
            report_id: None,
            report_period: None,
            transaction_id: None,
            source: String::new(),
            detected_at: String::new(),
            tracks: 1,
            isrc_sample: Vec::new(),
        };
        let mut sampled = false;
        for (name, value) in fields {
            let text = text(&value);
            match name.as_str() {
                "alert_id" => alert.alert_id = text.unwrap_or_default(),
                "kind" => alert.kind = text.unwrap_or_default(),
                "isrc" => alert.isrc = text.unwrap_or_default(),
                "expected" => alert.expected = text,
                "received" => alert.received = text,
                "catalog_version_id" => {
                    alert.catalog_version_id = match value {
                        Value::Long(id) => Some(id),
                        _ => None,
                    }
                }
                "dsp_name" => alert.dsp_name = text.unwrap_or_default(),
                "report_id" => alert.report_id = text,
                "report_period" => alert.report_period = text,
                "transaction_id" => alert.transaction_id = text,
                "source" => alert.source = text.unwrap_or_default(),
                "detected_at" => alert.detected_at = text.unwrap_or_default(),
                "tracks" => {
                    if let Value::Long(n) = value {
                        alert.tracks = u64::try_from(n).unwrap_or_default();
                    }
                }
                "isrc_sample" => {
                    if let Value::Array(items) = value {
                        sampled = true;
                        alert.isrc_sample =
                            items.iter().filter_map(crate::avro::record::text).collect();
                    }
                }
                _ => {}
            }
        }
        // A v1 alert stands for its one ISRC.
        if !sampled {
            alert.isrc_sample = vec![alert.isrc.clone()];
        }
        Ok(alert)
    }
}

/// Whether a record schema has a field of this name.
fn has_field(schema: &WriterSchema, name: &str) -> bool {
    match schema.schema() {
        Schema::Record(record) => record.lookup.contains_key(name),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validate::validate;
    use crate::drift::detect::detect_line;
    use crate::sample::{SampleRng, isrc_for, valid_line};

    #[test]
    fn an_alert_round_trips_through_its_schema() {
        let store = SchemaStore::builtin().expect("schemas");
        let schema = store.latest(DRIFT_ALERT).expect("alert schema");
        let alert = DriftAlert {
            alert_id: "drift-1".into(),
            kind: "upc_mismatch".into(),
            isrc: "GBQZA2400001".into(),
            expected: Some("036000291452".into()),
            received: Some("6291041500213".into()),
            catalog_version_id: Some(7),
            dsp_name: "Spotify".into(),
            report_id: None,
            report_period: Some("2026-09-01".into()),
            transaction_id: Some("T-1".into()),
            source: "raw[0]@5".into(),
            detected_at: "2026-11-26T00:00:00+00:00".into(),
            tracks: 2,
            isrc_sample: vec!["GBQZA2400001".into(), "GBQZA2400002".into()],
        };
        let message = alert.to_message(&schema, "alerts").expect("encode");
        let decoded = DriftAlert::decode(&store, message.payload.as_deref().unwrap_or_default())
            .expect("decode");
        assert_eq!(decoded, alert);
        assert_eq!(message.message_id, "drift-1");
    }

    fn unknown(n: u64) -> Drift {
        let mut line =
            validate(&valid_line(&mut SampleRng::new(n), n)).expect("a valid sample line");
        line.isrc = isrc_for(n);
        let found = detect_line(&line, None, true, true, &format!("raw[0]@{n}"));
        found.into_iter().next().expect("an unknown ISRC is drift")
    }

    #[test]
    fn a_reports_unknown_tracks_are_one_alert_with_their_number_and_a_bounded_sample() {
        let tracks: Vec<Drift> = (1..=50).map(unknown).collect();
        let more: Vec<&Drift> = tracks[1..].iter().collect();
        let at = Utc::now();
        let alert = DriftAlert::unknown_tracks(&tracks[0], &more, at);
        assert_eq!(alert.kind, "unknown_isrc");
        assert_eq!(alert.tracks, 50);
        assert_eq!(alert.isrc, tracks[0].isrc);
        let first_20: Vec<String> = tracks[..20].iter().map(|t| t.isrc.clone()).collect();
        assert_eq!(alert.isrc_sample, first_20);
        assert!(alert.alert_id.starts_with("drift-unknown-"));
        assert_eq!(
            DriftAlert::unknown_tracks(&tracks[0], &more, at).alert_id,
            alert.alert_id,
            "the same tracks, the same id"
        );
        assert_ne!(
            DriftAlert::unknown_tracks(&tracks[0], &more[1..], at).alert_id,
            alert.alert_id
        );
        let single = DriftAlert::unknown_tracks(&tracks[0], &[], at);
        assert!(single.alert_id.starts_with("drift-unknown-"));
        assert_eq!((single.tracks, single.isrc_sample.len()), (1, 1));
        let mut at_another_dsp = tracks[0].clone();
        at_another_dsp.dsp_name = format!("{} Other", at_another_dsp.dsp_name);
        assert_ne!(
            DriftAlert::unknown_tracks(&at_another_dsp, &[], at).alert_id,
            single.alert_id,
            "the same track at another DSP: another alert"
        );
    }

    #[test]
    fn a_v1_writer_schema_still_encodes_an_alert_and_it_decodes_as_one_track() {
        let store = SchemaStore::builtin().expect("schemas");
        let v1 = store.by_name_version(DRIFT_ALERT, 1).expect("v1");
        let tracks: Vec<Drift> = (1..=3).map(unknown).collect();
        let alert = DriftAlert::unknown_tracks(&tracks[0], &[&tracks[1], &tracks[2]], Utc::now());
        let message = alert.to_message(&v1, "alerts").expect("encode with v1");
        let decoded = DriftAlert::decode(&store, message.payload.as_deref().unwrap_or_default())
            .expect("decode");
        assert_eq!(decoded.alert_id, alert.alert_id);
        assert_eq!((decoded.tracks, decoded.isrc_sample), (1, vec![alert.isrc]));
    }
}
