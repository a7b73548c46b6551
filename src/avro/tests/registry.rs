//! The registry client against a local fixture that answers as Confluent's documented
//! API does (`GET /schemas/ids/{id}` → `{"schema": "..."}`, 404 + error_code 40403).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::super::{LineDecoder, RegistryClient, SchemaRef, encode_confluent};
use super::{builtin, sample_line, version};

/// Serves registry answers on 127.0.0.1; returns the base URL and a request counter.
async fn fixture() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let request = String::from_utf8_lossy(&buf).to_string();
                let (status, body) = answer(&request);
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://127.0.0.1:{}", addr.port()), requests)
}

fn schema_body(schema: &str, extra: &str) -> String {
    format!(
        r#"{{"schema":{}{extra}}}"#,
        serde_json::Value::String(schema.to_owned())
    )
}

fn answer(request: &str) -> (&'static str, String) {
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let authorized = request
        .to_ascii_lowercase()
        .contains("authorization: basic dxnlcjpwdw=="); // user:pw
    let string_amount = version(1).json().replace(
        r#"{"type": "bytes", "logicalType": "decimal", "precision": 28, "scale": 13}"#,
        r#""string""#,
    );
    match path {
        "/schemas/ids/1" => ("200 OK", schema_body(version(3).json(), "")),
        "/schemas/ids/2" => ("200 OK", schema_body(&string_amount, "")),
        "/schemas/ids/3" => (
            "200 OK",
            schema_body("syntax = \"proto3\";", r#","schemaType":"PROTOBUF""#),
        ),
        "/schemas/ids/5" => ("200 OK", "<html>proxy login</html>".into()),
        "/schemas/ids/6" if authorized => ("200 OK", schema_body(version(1).json(), "")),
        "/schemas/ids/6" => (
            "401 Unauthorized",
            r#"{"error_code":401,"message":"Unauthorized"}"#.into(),
        ),
        "/schemas/ids/404" => (
            "404 Not Found",
            r#"{"error_code":40403,"message":"Schema 404 not found"}"#.into(),
        ),
        "/schemas/ids/500" => (
            "500 Internal Server Error",
            r#"{"error_code":50001,"message":"Error in the backend data store"}"#.into(),
        ),
        _ => ("404 Not Found", "<html>no such page</html>".into()),
    }
}

#[tokio::test]
async fn avro_registry_schema_is_fetched_once_and_decodes_confluent_records() {
    let (base, requests) = fixture().await;
    let client = RegistryClient::new(&format!("{base}/")).expect("client");
    let schema = client.get(1).await.expect("schema 1");
    assert!(schema.is_royalty_line());
    assert_eq!(schema.fingerprint(), version(3).fingerprint());
    client.get(1).await.expect("cached");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "ids are immutable: cached"
    );

    let decoder = LineDecoder::new(Arc::new(builtin()), Some(client));
    let payload = encode_confluent(1, &version(3), &sample_line()).expect("encodes");
    let decoded = decoder.decode(&payload).await.expect("decodes");
    assert_eq!(decoded.line, sample_line());
    assert_eq!(decoded.schema, SchemaRef::RegistryId(1));
    let err = decoder
        .decode(&payload[..payload.len() - 1])
        .await
        .expect_err("truncated");
    assert_eq!(
        (err.class(), err.schema()),
        ("truncated", Some(SchemaRef::RegistryId(1)))
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn avro_registry_permanent_answers_are_not_retryable() {
    let (base, requests) = fixture().await;
    let client = RegistryClient::new(&base).expect("client");
    let err = client.get(404).await.expect_err("not found");
    assert_eq!(err.class(), "unknown_schema_id");
    assert!(!err.is_retryable());
    for id in [2, 3] {
        let err = client.get(id).await.expect_err("refused schema");
        assert_eq!(err.class(), "invalid_writer_schema", "{id}: {err}");
        assert!(!err.is_retryable());
    }
    let before = requests.load(Ordering::SeqCst);
    assert_eq!(
        client.get(2).await.expect_err("cached").class(),
        "invalid_writer_schema"
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        before,
        "refusals are cached too"
    );
}

#[tokio::test]
async fn avro_registry_outages_are_retryable() {
    let (base, _) = fixture().await;
    let client = RegistryClient::new(&base).expect("client");
    // 500, an unreadable 200, a 401 and a 404 without error code 40403 (wrong URL).
    for id in [500, 5, 6, 7] {
        let err = client.get(id).await.expect_err("unavailable");
        assert_eq!(err.class(), "registry_unavailable", "{id}: {err}");
        assert!(err.is_retryable());
        assert_eq!(err.schema(), Some(SchemaRef::RegistryId(id)));
    }
    // Nothing listening at all.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let client = RegistryClient::new(&format!("http://127.0.0.1:{port}")).expect("client");
    let err = client.get(1).await.expect_err("connection refused");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn avro_registry_credentials_in_the_url_are_sent_as_basic_auth() {
    let (base, _) = fixture().await;
    let with_auth = base.replace("http://", "http://user:pw@");
    let client = RegistryClient::new(&with_auth).expect("client");
    assert!(
        !client.base_url().contains("pw"),
        "credentials are not kept in the URL"
    );
    client.get(6).await.expect("authorized");
    assert!(RegistryClient::new("ftp://registry").is_err());
    assert!(RegistryClient::new("not a url").is_err());
}
