//! Span export over OTLP/HTTP in its JSON encoding, written out here rather than taken from
//! `opentelemetry-otlp`: that crate's HTTP exporters need the generated protobuf types
//! (tonic, prost and their build) even to write JSON, which made a fresh build compile a
//! gRPC stack for one optional flag. The encoding is the one the OTLP specification gives
//! for JSON (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>): ids in
//! hex, enums as numbers, 64-bit integers as strings, field names in lowerCamelCase.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::{Value as Json, json};

/// Sends each batch of spans as one `ExportTraceServiceRequest` in JSON to a collector's
/// `/v1/traces`.
#[derive(Debug)]
pub(super) struct HttpJsonExporter {
    url: String,
    /// Blocking: the batch processor calls `export` from a thread of its own, outside any
    /// async runtime, and waits for it.
    client: reqwest::blocking::Client,
    /// The provider's resource (service name...), as OTLP JSON.
    resource: Json,
    shut_down: AtomicBool,
}

impl HttpJsonExporter {
    /// An exporter to `url` (the full `/v1/traces` URL). Must not be called on an async
    /// worker thread: the blocking client starts a runtime of its own.
    pub(super) fn new(url: String, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()?;
        Ok(HttpJsonExporter {
            url,
            client,
            resource: json!({ "attributes": [] }),
            shut_down: AtomicBool::new(false),
        })
    }

    fn send(&self, batch: &[SpanData]) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(&request(&self.resource, batch))
            .map_err(|e| OTelSdkError::InternalFailure(format!("encoding spans: {e}")))?;
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .map_err(|e| OTelSdkError::InternalFailure(format!("sending spans: {e}")))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(OTelSdkError::InternalFailure(format!(
                "the collector answered {status}"
            )))
        }
    }
}

impl SpanExporter for HttpJsonExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        // The work is done before the future is returned: the batch processor's thread
        // blocks on it anyway, and the blocking client cannot be awaited.
        std::future::ready(self.send(&batch))
    }

    fn shutdown_with_timeout(&mut self, _timeout: Duration) -> OTelSdkResult {
        self.shut_down.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        let mut out = json!({
            "attributes": resource
                .iter()
                .map(|(key, value)| attribute(key.as_str(), value))
                .collect::<Vec<_>>(),
        });
        if let Some(url) = resource.schema_url() {
            out["schemaUrl"] = json!(url);
        }
        self.resource = out;
    }
}

/// The request body: one resource, one entry per instrumentation scope, in the order the
/// scopes first appear.
fn request(resource: &Json, batch: &[SpanData]) -> Json {
    let mut scopes: Vec<(&opentelemetry::InstrumentationScope, Vec<Json>)> = Vec::new();
    for data in batch {
        let encoded = span(data);
        match scopes
            .iter_mut()
            .find(|(scope, _)| **scope == data.instrumentation_scope)
        {
            Some((_, spans)) => spans.push(encoded),
            None => scopes.push((&data.instrumentation_scope, vec![encoded])),
        }
    }
    let scope_spans = scopes
        .into_iter()
        .map(|(scope, spans)| {
            let mut out = json!({
                "scope": {
                    "name": scope.name(),
                    "attributes": key_values(scope.attributes()),
                },
                "spans": spans,
            });
            if let Some(version) = scope.version() {
                out["scope"]["version"] = json!(version);
            }
            if let Some(url) = scope.schema_url() {
                out["schemaUrl"] = json!(url);
            }
            out
        })
        .collect::<Vec<_>>();
    json!({
        "resourceSpans": [{
            "resource": resource,
            "scopeSpans": scope_spans,
        }]
    })
}

/// One span.
fn span(data: &SpanData) -> Json {
    let context = &data.span_context;
    // Bits 0-7 the W3C trace flags; bit 8 says bit 9 is known, bit 9 that the parent is
    // remote (the OTLP `SpanFlags`).
    let flags = u32::from(context.trace_flags().to_u8())
        | 0x100
        | if data.parent_span_is_remote { 0x200 } else { 0 };
    let mut out = json!({
        "traceId": context.trace_id().to_string(),
        "spanId": context.span_id().to_string(),
        "flags": flags,
        "name": data.name,
        "kind": kind(&data.span_kind),
        "startTimeUnixNano": unix_nanos(data.start_time),
        "endTimeUnixNano": unix_nanos(data.end_time),
        "attributes": key_values(&data.attributes),
        "droppedAttributesCount": data.dropped_attributes_count,
        "events": data.events.events.iter().map(|event| json!({
            "timeUnixNano": unix_nanos(event.timestamp),
            "name": event.name,
            "attributes": key_values(&event.attributes),
            "droppedAttributesCount": event.dropped_attributes_count,
        })).collect::<Vec<_>>(),
        "droppedEventsCount": data.events.dropped_count,
        "links": data.links.links.iter().map(|link| {
            let mut out = json!({
                "traceId": link.span_context.trace_id().to_string(),
                "spanId": link.span_context.span_id().to_string(),
                "attributes": key_values(&link.attributes),
                "droppedAttributesCount": link.dropped_attributes_count,
            });
            let state = link.span_context.trace_state().header();
            if !state.is_empty() {
                out["traceState"] = json!(state);
            }
            out
        }).collect::<Vec<_>>(),
        "droppedLinksCount": data.links.dropped_count,
        "status": status(&data.status),
    });
    // A root span has no parent: the field is left out rather than sent as zeros.
    if data.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        out["parentSpanId"] = json!(data.parent_span_id.to_string());
    }
    let state = context.trace_state().header();
    if !state.is_empty() {
        out["traceState"] = json!(state);
    }
    out
}

/// `SpanKind` as its OTLP number (0 is "unspecified", never sent).
fn kind(kind: &SpanKind) -> u8 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// `Status` as OTLP's `{code, message}` (0 unset, 1 ok, 2 error).
fn status(status: &Status) -> Json {
    match status {
        Status::Unset => json!({ "code": 0 }),
        Status::Ok => json!({ "code": 1 }),
        Status::Error { description } => json!({ "code": 2, "message": description }),
    }
}

/// Nanoseconds since the epoch, as a string (a `fixed64` in proto3 JSON). A time before
/// the epoch (a clock set back) is sent as 0 rather than failing the whole batch.
fn unix_nanos(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        .to_string()
}

fn key_values<'a>(values: impl IntoIterator<Item = &'a KeyValue>) -> Vec<Json> {
    values
        .into_iter()
        .map(|kv| attribute(kv.key.as_str(), &kv.value))
        .collect()
}

fn attribute(key: &str, value: &Value) -> Json {
    json!({ "key": key, "value": any_value(value) })
}

/// An attribute value as OTLP's `AnyValue`.
fn any_value(value: &Value) -> Json {
    match value {
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::I64(i) => json!({ "intValue": i.to_string() }),
        Value::F64(f) => double(*f),
        Value::String(s) => json!({ "stringValue": s.as_str() }),
        Value::Array(array) => {
            let values: Vec<Json> = match array {
                Array::Bool(v) => v.iter().map(|b| json!({ "boolValue": b })).collect(),
                Array::I64(v) => v
                    .iter()
                    .map(|i| json!({ "intValue": i.to_string() }))
                    .collect(),
                Array::F64(v) => v.iter().map(|f| double(*f)).collect(),
                Array::String(v) => v
                    .iter()
                    .map(|s| json!({ "stringValue": s.as_str() }))
                    .collect(),
                // A kind of array added to the API later: sent as its text.
                other => vec![json!({ "stringValue": other.to_string() })],
            };
            json!({ "arrayValue": { "values": values } })
        }
        // A kind of value added to the API later: sent as its text.
        other => json!({ "stringValue": other.as_str() }),
    }
}

/// A double; NaN and the infinities, which JSON numbers cannot hold, as proto3 JSON's
/// strings.
fn double(f: f64) -> Json {
    if f.is_nan() {
        json!({ "doubleValue": "NaN" })
    } else if f.is_infinite() {
        json!({ "doubleValue": if f > 0.0 { "Infinity" } else { "-Infinity" } })
    } else {
        json!({ "doubleValue": f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{Event, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    fn sample(parent: SpanId) -> SpanData {
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            "committed: inserted=3",
            UNIX_EPOCH + Duration::from_nanos(1_500),
            vec![KeyValue::new("level", "INFO")],
            0,
        ));
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(0x0102_u128),
                SpanId::from(0x0a0b_u64),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: parent,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "batch".into(),
            start_time: UNIX_EPOCH + Duration::from_nanos(1_000),
            end_time: UNIX_EPOCH + Duration::from_nanos(2_000),
            attributes: vec![
                KeyValue::new("records", 5000_i64),
                KeyValue::new("lane", "0"),
                KeyValue::new("ratio", f64::NAN),
            ],
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status: Status::error("broken"),
            instrumentation_scope: InstrumentationScope::builder("royalty-ingest").build(),
        }
    }

    #[test]
    fn spans_are_encoded_as_the_otlp_json_mapping_says() {
        let resource = json!({
            "attributes": [attribute("service.name", &Value::from("royalty-ingest"))],
        });
        let body = request(
            &resource,
            &[sample(SpanId::INVALID), sample(SpanId::from(7))],
        );
        let scope_spans = &body["resourceSpans"][0]["scopeSpans"];
        assert_eq!(scope_spans.as_array().map(Vec::len), Some(1), "{body}");
        assert_eq!(scope_spans[0]["scope"]["name"], "royalty-ingest");
        let root = &scope_spans[0]["spans"][0];
        assert_eq!(root["traceId"], "00000000000000000000000000000102");
        assert_eq!(root["spanId"], "0000000000000a0b");
        assert!(root.get("parentSpanId").is_none(), "{root}");
        assert_eq!(
            scope_spans[0]["spans"][1]["parentSpanId"],
            "0000000000000007"
        );
        assert_eq!(root["kind"], 1);
        assert_eq!(root["flags"], 0x101);
        assert_eq!(root["startTimeUnixNano"], "1000");
        assert_eq!(root["endTimeUnixNano"], "2000");
        assert_eq!(
            root["attributes"][0],
            json!({ "key": "records", "value": { "intValue": "5000" } })
        );
        assert_eq!(root["attributes"][1]["value"]["stringValue"], "0");
        assert_eq!(root["attributes"][2]["value"]["doubleValue"], "NaN");
        assert_eq!(root["events"][0]["name"], "committed: inserted=3");
        assert_eq!(root["events"][0]["timeUnixNano"], "1500");
        assert_eq!(root["status"], json!({ "code": 2, "message": "broken" }));
        assert_eq!(
            body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "royalty-ingest"
        );
    }
}
