//! Operating it: what `/metrics` and `/readyz` say about a live `run`, checked against
//! what was sent — counters, the end-to-end latency histogram, consumer lag, readiness
//! through a PostgreSQL outage — and that no password reaches the logs or `--help`.
// scripts/test: chaos-services — stops the second PostgreSQL cluster (port 5433).

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::pipeline::{
    ChildGuard, mixed_stream, publish_records, run_flags_with_metrics, services, terminate,
    wait_for_rows,
};

/// GET `path`; the status code and body (None when nothing answers).
async fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Polls `probe` until `done` holds for its value (a condition awaited, not a fixed
/// sleep); fails after `timeout` with the last value.
async fn poll<T: std::fmt::Debug, F, Fut>(
    timeout: Duration,
    what: &str,
    mut probe: F,
    done: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let value = probe().await;
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {timeout:?}; last: {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The samples of a scrape: `name{labels}` → value.
async fn scrape(addr: &str) -> HashMap<String, f64> {
    let Some((200, body)) = get(addr, "/metrics").await else {
        return HashMap::new();
    };
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of every sample of a metric (all label sets).
fn total(samples: &HashMap<String, f64>, metric: &str) -> f64 {
    samples
        .iter()
        .filter(|(name, _)| *name == metric || name.starts_with(&format!("{metric}{{")))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_readiness_tell_the_truth_about_a_live_run() {
    let chaos = std::env::var("CHAOS_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://royalty:royalty@127.0.0.1:5433/royalty".into());
    let (owner_url, pool) = common::fresh_database_on(&chaos).await;
    // A role of the test's own, with a password that must never be written anywhere.
    let secret = format!("Pw-{}", common::unique_suffix());
    let role = format!("ri_op_{}", common::unique_suffix());
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .expect("database name");
    for statement in [
        format!("CREATE ROLE {role} LOGIN PASSWORD '{secret}'"),
        format!("GRANT ALL ON DATABASE {database} TO {role}"),
        format!("GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        format!("GRANT ALL ON SCHEMA public TO {role}"),
    ] {
        // Generated names and a generated password, never input.
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&pool)
            .await
            .expect("grant");
    }
    let url = owner_url.replacen("royalty:royalty@", &format!("{role}:{secret}@"), 1);
    assert_ne!(url, owner_url);

    let topic = common::fresh_topic("it.operate.raw", 2).await;
    let dlq = common::fresh_topic("it.operate.dlq", 1).await;
    let (records, lines) = mixed_stream(71, 1_000, 100, 7);
    assert_eq!(lines.len(), 1_000);
    publish_records(&common::producer(), &topic, &records).await;

    // The database URL (with its password) comes from a config file.
    let config =
        std::env::temp_dir().join(format!("royalty-operate-{}.toml", common::unique_suffix()));
    std::fs::write(
        &config,
        format!("database_url = \"{url}\"\nbatch_size = 200\nlinger_ms = 20\n"),
    )
    .expect("config file");
    let config_arg = config.to_string_lossy().into_owned();
    let log_path =
        std::env::temp_dir().join(format!("royalty-operate-{}.log", common::unique_suffix()));
    let log = std::fs::File::create(&log_path).expect("log file");
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut run = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
            .arg("run")
            .args(run_flags_with_metrics(&topic, &dlq, "it-operate", &addr))
            .args(["--log-format", "json", "--config", &config_arg])
            .env("KAFKA_BROKERS", common::brokers())
            .env_remove("DATABASE_URL")
            .env_remove("ROYALTY_BATCH_SIZE")
            .env("RUST_LOG", "debug,rdkafka=info,librdkafka=info,sqlx=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start run"),
    );
    wait_for_rows(&pool, 1_000, Duration::from_secs(120), "all lines booked").await;

    // The scrape settles on exactly what was sent: 1,107 records, 1,000 new lines, 100
    // redeliveries, 7 dead letters, 1,100 latencies, no lag.
    let settled = |s: &HashMap<String, f64>| {
        total(s, "royalty_records_consumed_total") == 1_107.0
            && total(s, "royalty_outbox_unpublished") == 0.0
            && s.keys()
                .any(|k| k.starts_with("royalty_consumer_lag_records{"))
            && total(s, "royalty_consumer_lag_records") == 0.0
    };
    let samples = poll(
        Duration::from_secs(60),
        "counters and lag settled",
        || scrape(&addr),
        settled,
    )
    .await;
    let line = |outcome: &str| {
        samples
            .get(&format!(
                "royalty_ledger_lines_total{{outcome=\"{outcome}\"}}"
            ))
            .copied()
            .unwrap_or(0.0)
    };
    assert_eq!(line("inserted"), 1_000.0);
    assert_eq!(
        line("duplicate") + line("enriched") + line("restated") + line("stale"),
        100.0
    );
    assert_eq!(total(&samples, "royalty_dead_letters_total"), 7.0);
    assert_eq!(
        total(&samples, "royalty_ingest_latency_seconds_count"),
        1_100.0
    );
    assert_eq!(total(&samples, "royalty_assigned_partitions"), 2.0);
    assert!(total(&samples, "royalty_rebalances_total") >= 1.0);
    assert!(total(&samples, "royalty_last_commit_timestamp_seconds") > 0.0);
    assert_eq!(total(&samples, "royalty_build_info"), 1.0);
    assert!(
        samples.contains_key(
            "royalty_outbox_published_total{topic=\""
                .to_string()
                .as_str()
        ) || total(&samples, "royalty_outbox_published_total") == 7.0
    );

    // Ready; not ready (saying why) while PostgreSQL is down; ready again after.
    assert_eq!(get(&addr, "/readyz").await.map(|(s, _)| s), Some(200));
    services("pg-stop-chaos");
    let (_, body) = poll(
        Duration::from_secs(30),
        "/readyz not ready",
        || async { get(&addr, "/readyz").await.unwrap_or((0, String::new())) },
        |(status, _)| *status == 503,
    )
    .await;
    assert!(body.contains("PostgreSQL"), "{body}");
    assert_eq!(
        get(&addr, "/healthz").await.map(|(s, _)| s),
        Some(200),
        "still alive"
    );
    services("pg-start-chaos");
    common::wait_until(Duration::from_secs(60), "/readyz ready again", || {
        let addr = addr.clone();
        async move { get(&addr, "/readyz").await.is_some_and(|(s, _)| s == 200) }
    })
    .await;
    terminate(&mut run).await;

    // The logs are JSON, one object per line, at debug level — and the password is in
    // none of them, nor in --help.
    let logs = std::fs::read_to_string(&log_path).expect("read logs");
    let _ = std::fs::remove_file(&log_path);
    assert!(logs.lines().count() > 5, "{logs}");
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert!(logs.contains("\"batch\""), "a span per batch: {logs}");
    assert!(!logs.contains(&secret), "the password leaked into the logs");
    let help = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
        .args(["run", "--help"])
        .env("DATABASE_URL", &url)
        .env("KAFKA_PROPERTIES", format!("sasl.password={secret}"))
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--database-url"));
    assert!(!help.contains(&secret), "the password leaked into --help");
    let shown = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
        .args(["config", "show", "--config", &config_arg])
        .env_remove("DATABASE_URL")
        .env_remove("ROYALTY_BATCH_SIZE")
        .output()
        .expect("config show");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("batch_size = 200  # config file"), "{shown}");
    assert!(shown.contains(&format!("{role}:***@")), "{shown}");
    assert!(
        !shown.contains(&secret),
        "the password leaked into config show"
    );
    let _ = std::fs::remove_file(&config);

    // Roles outlive databases: leave none behind.
    for statement in [
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"),
        format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}"),
        format!("REVOKE ALL ON SCHEMA public FROM {role}"),
        format!("REVOKE ALL ON DATABASE {database} FROM {role}"),
        format!("DROP ROLE {role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&pool)
            .await
            .expect("drop the test role");
    }
}

#[test]
fn a_config_file_sits_under_environment_and_flags_and_refuses_unknown_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("royalty.toml");
    std::fs::write(
        &file,
        "batch_size = 123\nlinger_ms = 50\ntopics = [\"a.raw\", \"b.raw\"]\nno_create_topics = true\n",
    )
    .expect("write");
    let file = file.to_string_lossy().into_owned();
    let show = |extra: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"));
        command
            .args(["config", "show", "--config", &file])
            .args(extra)
            .env_remove("ROYALTY_BATCH_SIZE")
            .env_remove("ROYALTY_LINGER_MS")
            .env_remove("ROYALTY_TOPICS");
        for (k, v) in env {
            command.env(k, v);
        }
        let output = command.output().expect("config show");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let plain = show(&[], &[]);
    assert!(plain.contains("batch_size = 123  # config file"), "{plain}");
    assert!(
        plain.contains("topics = [\"a.raw\", \"b.raw\"]  # config file"),
        "{plain}"
    );
    assert!(
        plain.contains("no_create_topics = true  # config file"),
        "{plain}"
    );
    let layered = show(&["--linger-ms", "7"], &[("ROYALTY_BATCH_SIZE", "456")]);
    assert!(
        layered.contains("batch_size = 456  # environment ROYALTY_BATCH_SIZE"),
        "{layered}"
    );
    assert!(layered.contains("linger_ms = 7  # flag"), "{layered}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "batch_sise = 1\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
        .args(["run", "--config", &bad.to_string_lossy()])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("unknown key `batch_sise`"), "{err}");
    std::fs::write(&bad, "batch_size = \"many\"\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
        .args(["config", "show", "--config", &bad.to_string_lossy()])
        .env_remove("ROYALTY_BATCH_SIZE")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("--batch-size") && err.contains("bad.toml"),
        "{err}"
    );
}

/// A tiny OTLP/HTTP receiver: answers every POST with 200 and keeps the bodies.
async fn otlp_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    if let Ok(mut kept) = kept.lock() {
                        kept.push(body.to_string());
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                        .await;
                    buf.clear();
                }
            });
        }
    });
    (format!("http://{addr}"), bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_spans_are_exported_over_otlp_without_secrets() {
    let (url, _pool) = common::fresh_database().await;
    let topic = common::fresh_topic("it.otlp.raw", 1).await;
    let dlq = common::fresh_topic("it.otlp.dlq", 1).await;
    let (records, _) = mixed_stream(91, 50, 5, 2);
    publish_records(&common::producer(), &topic, &records).await;
    let (endpoint, bodies) = otlp_receiver().await;
    let output = common::pipeline::run_once(
        &topic,
        &dlq,
        "it-otlp",
        &["--otlp-endpoint", &endpoint],
        &url,
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The process flushed its spans before exiting: they are here already.
    let bodies = bodies.lock().map(|b| b.clone()).unwrap_or_default();
    // Compact JSON, whatever the exporter's spacing.
    let all = bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<serde_json::Value>(b)
                .unwrap_or_else(|e| panic!("an OTLP body that is not JSON ({e}): {b}"))
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(all.contains("\"name\":\"batch\""), "no batch span: {all}");
    assert!(all.contains("\"records\""), "{all}");
    assert!(all.contains("committed: inserted="), "{all}");
    assert!(all.contains("royalty-ingest"), "service name: {all}");
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(credentials, _)| credentials.split_once(':'))
        .map(|(_, password)| password.to_string())
        .expect("a password in the test URL");
    assert!(
        !all.contains(&format!(":{password}@")),
        "a URL with its password in a span"
    );
}

/// The metrics endpoint on a free port, in-process, with a readiness over `pool` whose
/// consumer has joined (so only PostgreSQL decides `/readyz`).
async fn metrics_endpoint(
    pool: sqlx::PgPool,
) -> (
    String,
    std::sync::Arc<royalty_ingest::observe::Readiness>,
    tokio_util::sync::CancellationToken,
) {
    use royalty_ingest::observe::{Metrics, Readiness, server};
    let metrics = std::sync::Arc::new(Metrics::new().expect("metrics"));
    let readiness = std::sync::Arc::new(Readiness::new(pool));
    readiness.joined();
    let stop = tokio_util::sync::CancellationToken::new();
    let bound = server::serve(
        "127.0.0.1:0".parse().expect("addr"),
        metrics,
        readiness.clone(),
        stop.clone(),
    )
    .await
    .expect("serve");
    (bound.to_string(), readiness, stop)
}

/// The endpoint read requests without a timeout: a connection that never sent one (a port
/// scan, a TCP health check) pinned a task and a socket for ever. Now it is closed after
/// the read timeout, and connections beyond the cap are closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_to_the_metrics_endpoint_is_closed_and_their_number_is_capped() {
    use royalty_ingest::observe::server::{MAX_CONNECTIONS, READ_TIMEOUT};
    use tokio::io::AsyncReadExt;
    let (_url, pool) = common::fresh_database().await;
    let (addr, _readiness, stop) = metrics_endpoint(pool).await;

    let started = tokio::time::Instant::now();
    let mut idle = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(READ_TIMEOUT + Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("the server closes an idle connection within its read timeout");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed without an answer: {read:?}"
    );
    assert!(started.elapsed() >= READ_TIMEOUT - Duration::from_millis(500));

    // The cap: with every slot held by an idle client, one more is closed at once...
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        held.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    let mut extra = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let read = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf))
        .await
        .expect("a connection beyond the cap is closed at once, not after the timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // ... and the slots come back as soon as their clients leave.
    drop(held);
    poll(
        Duration::from_secs(5),
        "/healthz after the idle clients left",
        || get(&addr, "/healthz"),
        |answer| matches!(answer, Some((200, _))),
    )
    .await;
    stop.cancel();
}

/// `/readyz` asked PostgreSQL, on the ingest pool, for every probe: probes could take the
/// connections batches need. Now one answer stands for a second, and probes arriving
/// while it is asked wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_readiness_probes_ask_the_database_about_once_a_second() {
    use royalty_ingest::observe::readiness::DATABASE_CHECK_TTL;
    let (_url, pool) = common::fresh_database().await;
    let (addr, readiness, stop) = metrics_endpoint(pool.clone()).await;

    let started = tokio::time::Instant::now();
    let probes: Vec<_> = (0..50)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move { get(&addr, "/readyz").await })
        })
        .collect();
    for probe in probes {
        let answer = probe.await.expect("probe task");
        assert_eq!(answer.map(|(status, _)| status), Some(200));
    }
    let seconds = started.elapsed().as_secs();
    let checks = readiness.database_checks();
    assert!(
        (1..=seconds + 1).contains(&checks),
        "50 probes in {seconds} s asked PostgreSQL {checks} times"
    );

    // The answer is fresh again after the TTL: a closed pool turns /readyz 503.
    pool.close().await;
    tokio::time::sleep(DATABASE_CHECK_TTL).await;
    let (status, body) = get(&addr, "/readyz").await.expect("an answer");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("PostgreSQL"), "{body}");
    stop.cancel();
}
