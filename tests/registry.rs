//! The Confluent wire format end to end. No schema registry server can be installed on
//! these machines, so a small HTTP fixture answers as the registry's documented API does
//! (`GET /schemas/ids/{id}` → `{"schema": "..."}`, 404 with `error_code` 40403 for an
//! unknown id), over http and over https with a private CA; the broker and the database
//! are real.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::pipeline::{
    LINE_SCHEMA, distinct_lines, encode, expected_totals, ledger_totals, run_args, run_flags,
    run_until_idle,
};
use royalty_ingest::avro::{SchemaStore, encode_confluent};
use royalty_ingest::ledger::dead_letter::headers;
use royalty_ingest::sample::record_key;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves schema id 7 (royalty line v2); every other id is unknown.
async fn registry_fixture() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(answer(stream));
        }
    });
    format!("http://{addr}")
}

/// The same registry over https, with `tls` (a certificate for `localhost`).
async fn tls_registry_fixture(tls: tokio_native_tls::TlsAcceptor) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                // A client that does not trust the certificate ends the handshake.
                if let Ok(stream) = tls.accept(stream).await {
                    answer(stream).await;
                }
            });
        }
    });
    format!("https://localhost:{port}")
}

/// Answers one request as the registry does: schema id 7 (royalty line v2), every other id
/// unknown.
async fn answer(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
    let v2 = SchemaStore::builtin()
        .expect("schemas")
        .by_name_version(LINE_SCHEMA, 2)
        .expect("v2")
        .json()
        .to_string();
    let mut buffer = vec![0u8; 4096];
    let n = stream.read(&mut buffer).await.unwrap_or(0);
    let request = String::from_utf8_lossy(&buffer[..n]);
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if path == "/schemas/ids/7" {
        ("200 OK", serde_json::json!({ "schema": v2 }).to_string())
    } else {
        (
            "404 Not Found",
            serde_json::json!({"error_code": 40403, "message": "Schema not found"}).to_string(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A private CA and a certificate it signed for `localhost`, made with the openssl tool
/// (as `scripts/services tls-up` makes PostgreSQL's): (CA file, server identity).
fn private_ca(dir: &Path) -> (PathBuf, tokio_native_tls::native_tls::Identity) {
    // Each command is one line of words (no argument holds a space).
    let run = |command: &str| {
        let output = Command::new("openssl")
            .args(command.split_whitespace())
            .current_dir(dir)
            .output()
            .expect("the openssl tool (scripts/services installs it)");
        assert!(
            output.status.success(),
            "openssl {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(
        "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=royalty-ingest-test-registry-CA \
         -keyout ca.key -out ca.pem",
    );
    run("req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    run(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
         -extfile server.ext -out server.pem",
    );
    let read = |name: &str| std::fs::read(dir.join(name)).expect(name);
    let identity = tokio_native_tls::native_tls::Identity::from_pkcs8(
        &read("server.pem"),
        &read("server.key"),
    )
    .expect("server identity");
    (dir.join("ca.pem"), identity)
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

/// A registry behind a private CA is reached over https when the CA is in the trust store
/// OpenSSL reads (here named by `SSL_CERT_FILE`, as an operator's system store would hold
/// it): the client verifies against the system's store, not a fixed set of web roots.
#[tokio::test]
async fn an_https_registry_behind_a_private_ca_is_trusted_through_the_system_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, identity) = private_ca(dir.path());
    let acceptor = tokio_native_tls::native_tls::TlsAcceptor::new(identity).expect("acceptor");
    let registry = tls_registry_fixture(acceptor.into()).await;
    let topic = common::fresh_topic("it.registry.tls.raw", 1).await;
    let dlq = common::fresh_topic("it.registry.tls.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let lines = distinct_lines(82, 1, 10);
    let store = SchemaStore::builtin().expect("schemas");
    let v2 = store.by_name_version(LINE_SCHEMA, 2).expect("v2");
    let producer = common::producer();
    for line in &lines {
        let confluent = encode_confluent(7, &v2, line).expect("encode");
        common::send(&producer, &topic, record_key(line).as_bytes(), &confluent).await;
    }

    let mut args = vec!["run"];
    args.extend(run_flags(&topic, &dlq, "it-registry-tls"));
    args.extend(["--exit-when-idle-ms", "1500", "--registry-url", &registry]);
    let ca = ca.to_string_lossy();
    let output =
        common::pipeline::royalty_ingest_with_env(&args, &url, &[("SSL_CERT_FILE", ca.as_ref())])
            .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every line booked: none waited on (or was refused for) an unreachable registry.
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
}
