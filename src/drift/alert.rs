//! The `DriftAlert` message: Avro single-object value (schema `drift_alert.v1.avsc`), keyed
//! by ISRC, with headers naming the stable alert id, the kind, the ISRC and the DSP.

use apache_avro::types::Value;
use chrono::{DateTime, Utc};

use crate::avro::{SchemaStore, WriterSchema, encode_record_single_object};
use crate::db::outbox::OutboxMessage;

use super::detect::{Drift, DriftKind};
use crate::avro::record::{decode_record, text};

/// Full name of the alert record.
pub const DRIFT_ALERT: &str = "io.royaltyingest.DriftAlert";

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
        }
    }

    /// The kind, parsed.
    pub fn kind(&self) -> Option<DriftKind> {
        DriftKind::parse(&self.kind)
    }

    /// The outbox message publishing this alert to `topic`.
    pub fn to_message(&self, schema: &WriterSchema, topic: &str) -> Result<OutboxMessage, String> {
        let payload =
            encode_record_single_object(schema, self.to_value()).map_err(|e| e.to_string())?;
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

    fn to_value(&self) -> Value {
        let text = |v: &str| Value::String(v.to_string());
        let optional = |v: &Option<String>| match v {
            Some(v) => Value::Union(1, Box::new(Value::String(v.clone()))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        Value::Record(vec![
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
        ])
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
        };
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
                _ => {}
            }
        }
        Ok(alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        let message = alert.to_message(&schema, "alerts").expect("encode");
        let decoded = DriftAlert::decode(&store, message.payload.as_deref().unwrap_or_default())
            .expect("decode");
        assert_eq!(decoded, alert);
        assert_eq!(message.message_id, "drift-1");
    }
}
