//! A minimal HTTP endpoint: `GET /metrics` (Prometheus text format), `GET /healthz`
//! (liveness) and `GET /readyz` (readiness, 503 with the reasons when not ready). Three
//! fixed routes do not justify a web framework.
//!
//! Every connection is bounded: the request head must arrive within [`READ_TIMEOUT`], the
//! answer must be taken within [`WRITE_TIMEOUT`], and at most [`MAX_CONNECTIONS`] are
//! served at once (more are closed at accept). An idle or slow client (a port scanner, a
//! load balancer's TCP check, a stuck proxy) otherwise pinned a task and a socket forever.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{Metrics, Readiness};

/// How long a client may take to send its request line and headers.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to read the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; a scraper and a few probes need a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// Most bytes of request head read; only the request line is used.
const MAX_REQUEST_HEAD: usize = 4096;

/// Binds the endpoint and serves it until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} for metrics (use --metrics-addr to change it, or set it empty)"
        )
    })?;
    let bound = listener
        .local_addr()
        .context("the metrics listener has no local address")?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((stream, _)) = accepted else {
                continue;
            };
            // Full: close at once (dropping the stream) rather than queue, so a flood of
            // idle connections costs nothing beyond the ones already held.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let metrics = metrics.clone();
            let readiness = readiness.clone();
            tokio::spawn(async move {
                answer(stream, &metrics, &readiness).await;
                drop(slot);
            });
        }
    });
    Ok(bound)
}

/// Reads one request (bounded in time and size) and writes the answer; a client that
/// sends nothing in time is disconnected without one.
async fn answer(mut stream: TcpStream, metrics: &Metrics, readiness: &Readiness) {
    let head = read_head(&mut stream).await;
    if !head.contains(&b'\n') {
        // Not even a request line in time: an idle connection, not a request.
        return;
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let (status, content_type, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        "/readyz" => match readiness.check(metrics).await {
            Ok(()) => ("200 OK", "text/plain", "ready\n".to_string()),
            Err(reasons) => (
                "503 Service Unavailable",
                "text/plain",
                format!("not ready: {}\n", reasons.join("; ")),
            ),
        },
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A client gone or too slow gets nothing more; there is nobody to tell.
    let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(response.as_bytes())).await;
}

/// The request head as far as it came: bytes up to the blank line that ends it, the end
/// of the stream, [`MAX_REQUEST_HEAD`] or [`READ_TIMEOUT`], whichever comes first. Reading
/// the headers too (not only the first segment) leaves nothing unread at close, which
/// would make the kernel reset the connection under the answer.
async fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while head.len() < MAX_REQUEST_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => break,
            Ok(Ok(n)) => head.extend_from_slice(&chunk[..n]),
        }
    }
    head
}
