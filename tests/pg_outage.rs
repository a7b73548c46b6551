//! PostgreSQL stopped mid-stream: the run keeps retrying with backoff, moves no offset past
//! unwritten data, resumes on its own when the database returns, and the ledger is exact.
//! Runs against the second PostgreSQL cluster (port 5433) that scripts/services starts, so
//! stopping it disturbs no other test.

mod common;

use std::time::Duration;

use common::pipeline::{
    expected_totals, ledger_totals, mixed_stream, publish_records, services, spawn_run, terminate,
    wait_for_rows,
};

async fn retries_reported(metrics_addr: &str) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(metrics_addr).await else {
        return false;
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
        .is_some_and(|v| v >= 1.0)
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
        retries_reported(metrics_addr)
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
