//! PostgreSQL stopped mid-stream: the run keeps retrying with backoff, moves no offset past
//! unwritten data, resumes on its own when the database returns, and the ledger is exact.
//! The outage runs against the second PostgreSQL cluster (port 5433) that scripts/services
//! starts, so stopping it disturbs no other test. A second test cuts TLS handshakes short
//! through a proxy, as a restarting server can; two more make the run's own database refuse
//! sessions (SQLSTATE 55000) while it runs, and when it starts.
// scripts/test: chaos-services — stops the second PostgreSQL cluster (port 5433).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::pipeline::{
    expected_totals, ledger_totals, mixed_stream, publish_records, run_flags,
    run_flags_with_metrics, services, spawn_run, spawn_run_logged, terminate, wait_for_rows,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Whether the run's metrics report at least `at_least` retried batch attempts.
async fn retries_reported(metrics_addr: &str, at_least: f64) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(metrics_addr).await else {
        return false;
    };
    if stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body).await;
    body.lines()
        .find(|l| l.starts_with("royalty_batch_retries_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .is_some_and(|v| v >= at_least)
}

/// The HTTP status of `/readyz` (0 when nothing answers).
async fn readyz_status(metrics_addr: &str) -> u16 {
    let Ok(mut stream) = tokio::net::TcpStream::connect(metrics_addr).await else {
        return 0;
    };
    if stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return 0;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_survives_a_postgresql_outage_and_the_ledger_stays_exact() {
    let chaos = std::env::var("CHAOS_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://royalty:royalty@127.0.0.1:5433/royalty".into());
    let (url, pool) = common::fresh_database_on(&chaos).await;
    let topic = common::fresh_topic("it.outage.raw", 2).await;
    let dlq = common::fresh_topic("it.outage.dlq", 1).await;
    let (records, lines) = mixed_stream(61, 6_000, 200, 20);
    let metrics_addr = "127.0.0.1:19464";
    let mut run = spawn_run(
        &[
            "--topics",
            &topic,
            "--dlq-topic",
            &dlq,
            "--group",
            "it-outage",
            "--batch-size",
            "200",
            "--linger-ms",
            "20",
            "--metrics-addr",
            metrics_addr,
            "--no-create-topics",
            "--catalog-topic",
            "",
        ],
        &url,
    );
    let producer = common::producer();
    let (first, rest) = records.split_at(2_000);
    publish_records(&producer, &topic, first).await;
    wait_for_rows(
        &pool,
        1_000,
        Duration::from_secs(120),
        "first lines ingested",
    )
    .await;
    pool.close().await;

    services("pg-stop-chaos");
    publish_records(&producer, &topic, rest).await;
    common::wait_until(Duration::from_secs(60), "the run reports retries", || {
        retries_reported(metrics_addr, 1.0)
    })
    .await;
    assert!(
        run.try_wait().expect("status").is_none(),
        "the run survives the outage"
    );
    services("pg-start-chaos");

    let pool = sqlx::PgPool::connect(&url).await.expect("reconnect");
    let expected = expected_totals(&lines);
    wait_for_rows(
        &pool,
        expected.0,
        Duration::from_secs(180),
        "every line ingested after the outage",
    )
    .await;
    let quarantined = || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM quarantine")
                .fetch_one(&pool)
                .await
                .unwrap_or(0)
                == 20
        }
    };
    common::wait_until(
        Duration::from_secs(60),
        "every refused record quarantined",
        quarantined,
    )
    .await;
    terminate(&mut run).await;
    assert_eq!(
        ledger_totals(&pool).await,
        expected,
        "ledger exact after the outage"
    );
}

/// A TCP proxy in front of PostgreSQL that can cut connections the way a server that is
/// shutting down or starting up does: while cutting, open connections are closed, and a
/// new connection's TLS request is accepted (`S`) and the socket closed at once, so the
/// client's TLS handshake meets end of file. A real server shows this only in a narrow
/// window of a restart (the chaos suite hit it once), so it is staged here.
struct CuttingProxy {
    addr: String,
    cutting: watch::Sender<bool>,
    handshakes_cut: Arc<AtomicU64>,
}

impl CuttingProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let (cutting, watching) = watch::channel(false);
        let handshakes_cut = Arc::new(AtomicU64::new(0));
        let cut_count = handshakes_cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watching = watching.clone();
                let (upstream, cut_count) = (upstream.clone(), cut_count.clone());
                tokio::spawn(async move {
                    if *watching.borrow() {
                        cut_handshake(client).await;
                        cut_count.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watching.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        CuttingProxy {
            addr,
            cutting,
            handshakes_cut,
        }
    }

    fn cut(&self, on: bool) {
        self.cutting.send_replace(on);
    }

    fn handshakes_cut(&self) -> u64 {
        self.handshakes_cut.load(Ordering::SeqCst)
    }
}

/// Reads the client's 8-byte `SSLRequest`, says yes, and hangs up.
async fn cut_handshake(mut client: TcpStream) {
    let mut request = [0u8; 8];
    if client.read_exact(&mut request).await.is_ok() {
        let _ = client.write_all(b"S").await;
    }
}

/// Regression (found by the chaos suite): a reconnect whose TLS handshake the server cut
/// short ("unexpected EOF") was classed as fatal, and the run stopped mid-stream. It is a
/// connection failure like any other: the batch is retried, and the ledger stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_cut_short_during_a_reconnect_is_retried() {
    let (url, pool) = common::fresh_database().await;
    let mut proxied = url::Url::parse(&url).expect("database URL");
    let upstream = format!(
        "{}:{}",
        proxied.host_str().expect("database host"),
        proxied.port().unwrap_or(5432)
    );
    let proxy = CuttingProxy::start(upstream).await;
    let port = proxy.addr.rsplit(':').next().expect("proxy port");
    proxied
        .set_port(Some(port.parse().expect("port number")))
        .expect("set port");
    // TLS required, so that every reconnect goes through a handshake the proxy can cut.
    proxied.set_query(Some("sslmode=require"));

    let topic = common::fresh_topic("it.tlscut.raw", 2).await;
    let dlq = common::fresh_topic("it.tlscut.dlq", 1).await;
    let (records, lines) = mixed_stream(67, 3_000, 100, 10);
    let metrics_addr = format!("127.0.0.1:{}", common::free_port());
    let mut args = run_flags_with_metrics(&topic, &dlq, "it-tlscut", &metrics_addr);
    args.extend(["--batch-size", "200"]);
    let mut run = spawn_run(&args, proxied.as_str());
    let producer = common::producer();
    let (first, rest) = records.split_at(1_000);
    publish_records(&producer, &topic, first).await;
    wait_for_rows(&pool, 500, Duration::from_secs(120), "first lines booked").await;

    proxy.cut(true);
    publish_records(&producer, &topic, rest).await;
    common::wait_until(
        Duration::from_secs(60),
        "batches retried through cut handshakes",
        || {
            let cut = proxy.handshakes_cut();
            let metrics_addr = metrics_addr.clone();
            async move { cut >= 3 && retries_reported(&metrics_addr, 3.0).await }
        },
    )
    .await;
    assert!(
        run.try_wait().expect("status").is_none(),
        "the run keeps retrying through TLS handshakes cut short"
    );
    proxy.cut(false);

    let expected = expected_totals(&lines);
    wait_for_rows(
        &pool,
        expected.0,
        Duration::from_secs(120),
        "every line booked once the handshakes succeed again",
    )
    .await;
    terminate(&mut run).await;
    assert_eq!(
        ledger_totals(&pool).await,
        expected,
        "ledger exact after the cut handshakes"
    );
}

/// Makes database `name` refuse new sessions (SQLSTATE 55000, "not currently accepting
/// connections") and ends the ones it has, or accepts them again.
async fn refuse_connections(admin: &sqlx::PgPool, name: &str, refuse: bool) {
    // The name is generated by the test helpers (hex suffix), never input.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS {}",
        !refuse
    )))
    .execute(admin)
    .await
    .expect("alter database");
    if refuse {
        sqlx::query(
            // Client sessions only: an autovacuum worker on the database is a superuser
            // process this role may not end (42501), and it is not what maintenance ends.
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()
                AND backend_type = 'client backend' AND usename = current_user",
        )
        .bind(name)
        .execute(admin)
        .await
        .expect("terminate the database's sessions");
    }
}

/// Regression: a database that refuses connections (ALTER DATABASE … ALLOW_CONNECTIONS
/// false and its sessions terminated, as maintenance does) made every reconnect fail with
/// SQLSTATE 55000, classed as fatal, and the run exited. A daemon waits it out like a
/// database that is down: /readyz says 503, batches are retried, nothing is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_waits_out_a_database_that_refuses_connections() {
    const REFUSED_FOR: Duration = Duration::from_secs(30);
    let (url, pool) = common::fresh_database().await;
    let name = url::Url::parse(&url)
        .expect("database URL")
        .path()
        .trim_start_matches('/')
        .to_string();
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&common::admin_url())
        .await
        .expect("admin connection");
    let topic = common::fresh_topic("it.refused.raw", 2).await;
    let dlq = common::fresh_topic("it.refused.dlq", 1).await;
    let alerts = common::fresh_topic("it.refused.alerts", 1).await;
    let (records, lines) = mixed_stream(71, 3_000, 100, 10);
    let metrics_addr = format!("127.0.0.1:{}", common::free_port());
    let mut args = run_flags_with_metrics(&topic, &dlq, "it-refused", &metrics_addr);
    args.extend(["--batch-size", "200", "--alerts-topic", &alerts]);
    let mut run = spawn_run(&args, &url);
    let producer = common::producer();
    let (first, rest) = records.split_at(1_000);
    publish_records(&producer, &topic, first).await;
    wait_for_rows(&pool, 500, Duration::from_secs(120), "first lines booked").await;
    pool.close().await;

    refuse_connections(&admin, &name, true).await;
    let refused_at = tokio::time::Instant::now();
    publish_records(&producer, &topic, rest).await;
    common::wait_until(
        Duration::from_secs(60),
        "/readyz 503 and batches retried while connections are refused",
        || {
            let metrics_addr = metrics_addr.clone();
            async move {
                readyz_status(&metrics_addr).await == 503
                    && retries_reported(&metrics_addr, 3.0).await
            }
        },
    )
    .await;
    // The refusal lasts REFUSED_FOR; the run must be alive all along.
    while refused_at.elapsed() < REFUSED_FOR {
        assert!(
            run.try_wait().expect("status").is_none(),
            "the run exited while its database refused connections"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    refuse_connections(&admin, &name, false).await;

    let pool = sqlx::PgPool::connect(&url).await.expect("reconnect");
    let expected = expected_totals(&lines);
    wait_for_rows(
        &pool,
        expected.0,
        Duration::from_secs(180),
        "every line booked once connections are accepted again",
    )
    .await;
    common::wait_until(
        Duration::from_secs(60),
        "every refused record quarantined",
        || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM quarantine")
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(0)
                    == 10
            }
        },
    )
    .await;
    common::wait_until(Duration::from_secs(30), "/readyz 200 again", || {
        let metrics_addr = metrics_addr.clone();
        async move { readyz_status(&metrics_addr).await == 200 }
    })
    .await;
    terminate(&mut run).await;
    assert_eq!(
        ledger_totals(&pool).await,
        expected,
        "every line booked exactly once"
    );
}

/// A daemon started while its database refuses sessions waits for it, as it waits for the
/// broker (it used to exit at once), then books everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_while_its_database_refuses_connections_waits_for_it() {
    let (url, pool) = common::fresh_database().await;
    pool.close().await;
    let name = url::Url::parse(&url)
        .expect("database URL")
        .path()
        .trim_start_matches('/')
        .to_string();
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&common::admin_url())
        .await
        .expect("admin connection");
    let topic = common::fresh_topic("it.refused.raw", 2).await;
    let dlq = common::fresh_topic("it.refused.dlq", 1).await;
    let alerts = common::fresh_topic("it.refused.alerts", 1).await;
    let (records, lines) = mixed_stream(73, 500, 20, 5);
    refuse_connections(&admin, &name, true).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("run.log");
    let mut args = run_flags(&topic, &dlq, "it-refused-start");
    args.extend(["--alerts-topic", &alerts]);
    let mut run = spawn_run_logged(&args, &url, &log);
    common::wait_until(
        Duration::from_secs(60),
        "the run says it waits for PostgreSQL",
        || {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            async move {
                said.contains("waiting for PostgreSQL")
                    && said.contains("not currently accepting connections")
            }
        },
    )
    .await;
    assert!(
        run.try_wait().expect("status").is_none(),
        "the daemon waits instead of exiting"
    );
    publish_records(&common::producer(), &topic, &records).await;
    refuse_connections(&admin, &name, false).await;

    let pool = sqlx::PgPool::connect(&url).await.expect("reconnect");
    let expected = expected_totals(&lines);
    wait_for_rows(
        &pool,
        expected.0,
        Duration::from_secs(120),
        "every line booked once the database accepts sessions",
    )
    .await;
    terminate(&mut run).await;
    assert_eq!(ledger_totals(&pool).await, expected);
}
