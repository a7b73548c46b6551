//! The Confluent wire format end to end. No schema registry server can be installed on
//! these machines, so a small HTTP fixture answers as the registry's documented API does
//! (`GET /schemas/ids/{id}` → `{"schema": "..."}`, 404 with `error_code` 40403 for an
//! unknown id); the broker and the database are real.

mod common;

use std::time::Duration;

use common::pipeline::{
    LINE_SCHEMA, distinct_lines, encode, expected_totals, ledger_totals, run_args, run_until_idle,
};
use royalty_ingest::avro::{SchemaStore, encode_confluent};
use royalty_ingest::ledger::dead_letter::headers;
use royalty_ingest::sample::record_key;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves schema id 7 (royalty line v2); every other id is unknown.
async fn registry_fixture() -> String {
    let store = SchemaStore::builtin().expect("schemas");
    let v2 = store
        .by_name_version(LINE_SCHEMA, 2)
        .expect("v2")
        .json()
        .to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let v2 = v2.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                let n = stream.read(&mut buffer).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if path == "/schemas/ids/7" {
                    ("200 OK", serde_json::json!({ "schema": v2 }).to_string())
                } else {
                    (
                        "404 Not Found",
                        serde_json::json!({"error_code": 40403, "message": "Schema not found"})
                            .to_string(),
                    )
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn confluent_framed_lines_are_decoded_through_the_registry() {
    let registry = registry_fixture().await;
    let topic = common::fresh_topic("it.registry.raw", 1).await;
    let dlq = common::fresh_topic("it.registry.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let lines = distinct_lines(81, 1, 20);
    let store = SchemaStore::builtin().expect("schemas");
    let v2 = store.by_name_version(LINE_SCHEMA, 2).expect("v2");
    let producer = common::producer();
    for line in &lines {
        let confluent = encode_confluent(7, &v2, line).expect("encode");
        common::send(&producer, &topic, record_key(line).as_bytes(), &confluent).await;
        // The same sale in single-object v1: one ledger row for both.
        common::send(
            &producer,
            &topic,
            record_key(line).as_bytes(),
            &encode(1, line),
        )
        .await;
    }
    let unknown_id = encode_confluent(99, &v2, &lines[0]).expect("encode");
    common::send(&producer, &topic, b"unknown-id", &unknown_id).await;

    let mut args = run_args(&topic, &dlq, &url, "it-registry");
    args.schemas.registry_url = Some(registry);
    run_until_idle(args).await;

    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    let letters = common::read_topic(&dlq, 1, Duration::from_secs(30));
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].header(headers::CLASS).as_deref(),
        Some("unknown_schema_id")
    );
    assert_eq!(letters[0].value.as_deref(), Some(unknown_id.as_slice()));
}
